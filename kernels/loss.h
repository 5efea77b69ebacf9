// Mean squared error, the diffusion objective's ε term (MODEL.md §5.2: mse = mean (ε − ε̂)²).
//
// Forward: out[0] = mean over n elements of (a − b)², a and b contiguous [n] of T (float, bf16; double on
// the CPU), accumulated in acc_t<T> (f64 on the CPU) and written as A = acc_t<T>. `out` holds
// kMseBuffer elements of A (device memory for _cuda): the CUDA launcher keeps its per-block partials in
// out[1..] and sums them in block order in a second kernel, with a grid and an element-to-thread mapping
// that depend only on n and on whether a and b are 16-byte aligned, so the result is deterministic and
// the same on every GPU; the CPU launcher writes only out[0].
// Backward: with g = dloss[0] (a single A, device memory for _cuda, so no host synchronisation),
// da = 2g(a − b)/n and db = −da. da, db are nullable; each is overwritten, or added to when its
// accumulate flag is set; either may alias a or b (each element is read before it is written).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

inline constexpr int kMsePartials = 1024;
inline constexpr int kMseBuffer = 1 + kMsePartials;

template <typename T> void mse_forward_cpu(acc_t<T>* out, const T* a, const T* b, int64_t n);
template <typename T> void mse_forward_cuda(acc_t<T>* out, const T* a, const T* b, int64_t n, StreamHandle s);

template <typename T>
void mse_backward_cpu(T* da, T* db, const acc_t<T>* dloss, const T* a, const T* b, int64_t n, bool accumulate_a,
                      bool accumulate_b);
template <typename T>
void mse_backward_cuda(T* da, T* db, const acc_t<T>* dloss, const T* a, const T* b, int64_t n, bool accumulate_a,
                       bool accumulate_b, StreamHandle s);

}  // namespace drwkv::kernels
