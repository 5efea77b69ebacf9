// CUDA reductions (kernels/reduce.h). inner == 1: one warp per output row (coalesced along n);
// inner > 1: one thread per output column, coalesced across inner. Global sum of squares: fixed-size
// grid of block partials, then one block sums the partials in a fixed order.
#include "kernels/cuda_utils.cuh"
#include "kernels/reduce.h"

namespace drwkv::kernels {
namespace {
using namespace cuda;

template <typename A> __device__ __forceinline__ A combine(ReduceOp op, A a, A b) {
  return op == ReduceOp::Max ? fmax(a, b) : a + b;
}
template <typename A> __device__ __forceinline__ A identity(ReduceOp op) {
  return op == ReduceOp::Max ? A(-INFINITY) : A(0);
}

template <typename T>
__global__ void reduce_rows_kernel(ReduceOp op, T* out, const T* x, int64_t rows, int64_t n, bool accumulate) {
  using A = acc_t<T>;
  int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  int lane = threadIdx.x & 31;
  if (warp >= rows) return;
  const T* p = x + warp * n;
  A r = identity<A>(op);
  for (int64_t a = lane; a < n; a += 32) r = combine(op, r, load_as<A>(p[a]));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) r = combine(op, r, __shfl_xor_sync(0xffffffffu, r, o));
  if (lane == 0) {
    if (op == ReduceOp::Mean) r /= A(n);
    out[warp] = store_as<T>(accumulate ? load_as<A>(out[warp]) + r : r);
  }
}

template <typename T>
__global__ void reduce_cols_kernel(ReduceOp op, T* out, const T* x, int64_t outer, int64_t n, int64_t inner,
                                   bool accumulate) {
  using A = acc_t<T>;
  int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= outer * inner) return;
  int64_t o = col / inner, i = col % inner;
  const T* p = x + o * n * inner + i;
  A r = identity<A>(op);
  for (int64_t a = 0; a < n; ++a) r = combine(op, r, load_as<A>(p[a * inner]));
  if (op == ReduceOp::Mean) r /= A(n);
  out[col] = store_as<T>(accumulate ? load_as<A>(out[col]) + r : r);
}

constexpr int kPartials = kSumSquaresBuffer - 1;

template <typename T>
__global__ void sum_squares_partial_kernel(double* partial, const T* x, int64_t n) {
  __shared__ double scratch[32];
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v = double(load_as<float>(x[i]));
    s += v * v;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_partials_kernel(double* out, const double* partial, int count) {
  __shared__ double scratch[32];
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}
}  // namespace

template <typename T>
void reduce_axis_cuda(ReduceOp op, T* out, const T* x, int64_t outer, int64_t n, int64_t inner, bool accumulate,
                      StreamHandle s) {
  if (outer * inner == 0) return;
  if (inner == 1) {
    int64_t threads = outer * 32;
    reduce_rows_kernel<T><<<unsigned((threads + 255) / 256), 256, 0, to_cuda(s)>>>(op, out, x, outer, n, accumulate);
  } else {
    int64_t cols = outer * inner;
    reduce_cols_kernel<T><<<unsigned((cols + 255) / 256), 256, 0, to_cuda(s)>>>(op, out, x, outer, n, inner, accumulate);
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void sum_squares_cuda(double* out, const T* x, int64_t n, StreamHandle s) {
  double* partial = out + 1;
  int blocks = int(std::min<int64_t>(kPartials, std::max<int64_t>(1, (n + 255) / 256)));
  sum_squares_partial_kernel<T><<<blocks, 256, 0, to_cuda(s)>>>(partial, x, n);
  CUDA_CHECK_LAUNCH();
  sum_partials_kernel<<<1, 1024, 0, to_cuda(s)>>>(out, partial, blocks);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                       \
  template void reduce_axis_cuda<T>(ReduceOp, T*, const T*, int64_t, int64_t, int64_t, bool, StreamHandle); \
  template void sum_squares_cuda<T>(double*, const T*, int64_t, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
