// Reductions along one axis and global norms.
//
// Axis reductions view the input as [outer, n, inner] (row-major, contiguous) and write
// out[outer, inner] = reduce_{a < n} x[outer, a, inner] (sum, mean or max), accumulating in acc_t<T>.
// With accumulate = true the result is added to out instead of overwriting it (gradient contract for
// broadcast reductions). Results are deterministic: a fixed reduction order, no atomics.
//
// sum_squares: Σ x_i² of n elements in float64 into out[0], for gradient clipping by global norm. `out`
// holds kSumSquaresBuffer doubles (host memory for _cpu, device memory for _cuda, which keeps its
// per-block partials in out[1..]); the result stays where `out` is.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

enum class ReduceOp : uint8_t { Sum, Mean, Max };

template <typename T>
void reduce_axis_cpu(ReduceOp op, T* out, const T* x, int64_t outer, int64_t n, int64_t inner, bool accumulate);
template <typename T>
void reduce_axis_cuda(ReduceOp op, T* out, const T* x, int64_t outer, int64_t n, int64_t inner, bool accumulate,
                      StreamHandle s);

inline constexpr int kSumSquaresBuffer = 1 + 1024;
template <typename T> void sum_squares_cpu(double* out, const T* x, int64_t n);
template <typename T> void sum_squares_cuda(double* out, const T* x, int64_t n, StreamHandle s);

}  // namespace drwkv::kernels
