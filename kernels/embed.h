// Embedding lookup and its gradient (MODEL.md §1.5: the label table of (Nc + 1) × D rows; any [R, C]
// table of T, R = table_rows, indexed by i32 ids).
//
// Forward: out[i, :] = table[ids[i], :] for the n positions i (out [n, C] contiguous).
// Backward: dtable[r, :] = Σ_{i : ids[i] = r} dout[i, :], summed in increasing position order into A =
// acc_t<T> (the f32 gradient of a bf16 table), written (accumulate = false: rows no id selects become 0)
// or added to dtable (accumulate = true). The order of every sum is fixed: results are deterministic and
// the CPU and CUDA launchers add the same terms in the same order.
// Ids outside [0, table_rows): the CPU launchers fail a DRWKV_ASSERT naming the position and the id; the
// CUDA kernels print the position and the id and stop with a device-side assertion, so the next CUDA
// call on the stream fails with cudaErrorAssert ("device-side assert triggered") and CUDA_CHECK reports
// it; the CUDA context cannot be used afterwards (as after any device-side assertion).
// CUDA backward: a stable radix sort of (id, position) pairs, then one block per run of equal ids and
// 128 channels; it needs embedding_backward_scratch_bytes_cuda(n, table_rows) bytes of device scratch
// (contents on entry do not matter; CPU launchers ignore `scratch`). n must be below 2^31.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

template <typename T>
void embedding_forward_cpu(T* out, const T* table, const int32_t* ids, int64_t n, int64_t table_rows, int64_t C);
template <typename T>
void embedding_forward_cuda(T* out, const T* table, const int32_t* ids, int64_t n, int64_t table_rows, int64_t C,
                            StreamHandle s);

// dtable [table_rows, C] of acc_t<T>; dout [n, C]; ids [n].
template <typename T>
void embedding_backward_cpu(acc_t<T>* dtable, const T* dout, const int32_t* ids, int64_t n, int64_t table_rows,
                            int64_t C, bool accumulate, void* scratch);
template <typename T>
void embedding_backward_cuda(acc_t<T>* dtable, const T* dout, const int32_t* ids, int64_t n, int64_t table_rows,
                             int64_t C, bool accumulate, void* scratch, StreamHandle s);

// Device scratch of embedding_backward_cuda (CUDA builds only).
size_t embedding_backward_scratch_bytes_cuda(int64_t n, int64_t table_rows);

}  // namespace drwkv::kernels
