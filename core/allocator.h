// Device memory: a caching allocator per CUDA device, and plain aligned host memory.
//
// The CUDA allocator keeps freed blocks in size-bucketed free lists, one set per stream, so that the
// steady state of a training step calls neither cudaMalloc nor cudaFree: requests up to 1 MiB round up
// to a multiple of 512 B, larger ones to a multiple of 2 MiB; a request is served from the same stream's
// smallest cached block that is at most 12.5% larger. A block freed by a tensor returns
// to the list of the stream it was allocated on; work on other streams that still reads it must be
// ordered by events (only persistent buffers, never transient ones, cross streams in this project).
// On cudaMalloc failure the cache is released and the call retried once; a second failure is fatal and
// reports the counters.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace drwkv {

struct AllocatorStats {
  int64_t current_bytes = 0;   // handed out to tensors now (rounded sizes)
  int64_t peak_bytes = 0;      // maximum of current_bytes since the last reset
  int64_t cached_bytes = 0;    // held in free lists
  int64_t reserved_bytes = 0;  // current + cached: what cudaMalloc has given us
  int64_t device_mallocs = 0;  // cudaMalloc calls so far
  int64_t device_frees = 0;    // cudaFree calls so far
  int64_t allocations = 0;     // allocate() calls so far
};

// CUDA device memory through the caching allocator of `device`, on the thread's current stream.
void* cuda_allocate(int device, size_t bytes);
void cuda_release(int device, void* ptr);
AllocatorStats cuda_allocator_stats(int device);
void cuda_allocator_reset_peak(int device);
void cuda_allocator_empty_cache(int device);  // frees every cached block (synchronises the device)
size_t cuda_allocator_round(size_t bytes);     // the size class a request is served from

// Page-locked host memory for asynchronous copies (cudaHostAlloc), uncached.
void* pinned_allocate(size_t bytes);
void pinned_release(void* ptr);

// 64-byte aligned host memory.
void* host_allocate(size_t bytes);
void host_release(void* ptr);

}  // namespace drwkv
