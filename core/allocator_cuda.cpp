// CUDA caching allocator (core/allocator.h) and pinned host memory.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "core/log.h"
#include "core/stream.h"

namespace drwkv {
namespace {

constexpr size_t kSmall = size_t(1) << 20;     // 1 MiB
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t(2) << 20;  // 2 MiB

struct Block {
  size_t bytes;
  StreamHandle stream;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}

  void* allocate(size_t request) {
    size_t bytes = cuda_allocator_round(request);
    StreamHandle stream = current_stream(device_).handle();
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.allocations;
    void* p = take_cached(stream, bytes);
    if (!p) p = malloc_device(bytes);
    size_t got = live_.at(p).bytes;
    stats_.current_bytes += int64_t(got);
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    return p;
  }

  void release(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    DRWKV_ASSERT(it != live_.end(), "cuda_release of a pointer %p not allocated on device %d", p, device_);
    Block b = it->second;
    stats_.current_bytes -= int64_t(b.bytes);
    stats_.cached_bytes += int64_t(b.bytes);
    free_[b.stream].emplace(b.bytes, p);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    AllocatorStats s = stats_;
    s.reserved_bytes = s.current_bytes + s.cached_bytes;
    return s;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes = stats_.current_bytes;
  }
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_all_cached();
  }

 private:
  void* take_cached(StreamHandle stream, size_t bytes) {
    auto fl = free_.find(stream);
    if (fl == free_.end()) return nullptr;
    auto& lists = fl->second;
    auto it = lists.lower_bound(bytes);
    if (it == lists.end()) return nullptr;
    size_t slack = bytes / 8;  // at most 12.5% waste from reusing a larger block
    if (it->first > bytes + slack) return nullptr;
    void* p = it->second;
    stats_.cached_bytes -= int64_t(it->first);
    lists.erase(it);
    return p;
  }

  void* malloc_device(size_t bytes) {
    void* p = nullptr;
    CUDA_CHECK(cudaSetDevice(device_));
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      release_all_cached();
      err = cudaMalloc(&p, bytes);
      if (err != cudaSuccess) {
        (void)cudaGetLastError();
        DRWKV_FAIL("out of GPU memory on device %d: request of %zu bytes; in use %lld, peak %lld, cached %lld (%s). "
                   "A training step needs less with a smaller micro-batch or with activations recomputed in "
                   "backward (README: model.recompute_elementwise, model.checkpoint_blocks)",
                   device_, bytes, (long long)stats_.current_bytes, (long long)stats_.peak_bytes,
                   (long long)stats_.cached_bytes, cudaGetErrorString(err));
      }
    }
    ++stats_.device_mallocs;
    live_[p] = Block{bytes, current_stream(device_).handle()};
    return p;
  }

  void release_all_cached() {
    if (stats_.cached_bytes == 0) return;
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [stream, lists] : free_) {
      for (auto& [bytes, p] : lists) {
        CUDA_CHECK(cudaFree(p));
        live_.erase(p);
        ++stats_.device_frees;
      }
      lists.clear();
    }
    stats_.cached_bytes = 0;
  }

  int device_;
  std::mutex mu_;
  std::unordered_map<void*, Block> live_;  // every block cudaMalloc gave us, cached or in use
  std::unordered_map<StreamHandle, std::multimap<size_t, void*>> free_;
  AllocatorStats stats_;
};

CachingAllocator& allocator_for(int device) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<CachingAllocator>> all;
  std::lock_guard<std::mutex> lock(mu);
  auto& a = all[device];
  if (!a) a = std::make_unique<CachingAllocator>(device);
  return *a;
}

}  // namespace

size_t cuda_allocator_round(size_t bytes) {
  if (bytes == 0) bytes = 1;
  size_t r = bytes <= kSmall ? kSmallRound : kLargeRound;
  return (bytes + r - 1) / r * r;
}

void* cuda_allocate(int device, size_t bytes) { return allocator_for(device).allocate(bytes); }
void cuda_release(int device, void* ptr) { allocator_for(device).release(ptr); }
AllocatorStats cuda_allocator_stats(int device) { return allocator_for(device).stats(); }
void cuda_allocator_reset_peak(int device) { allocator_for(device).reset_peak(); }
void cuda_allocator_empty_cache(int device) { allocator_for(device).empty_cache(); }

void* pinned_allocate(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocDefault));
  return p;
}
void pinned_release(void* ptr) { CUDA_CHECK(cudaFreeHost(ptr)); }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace drwkv
