// CUDA sigmoid gate (kernels/gate.h): grid-stride over 16-byte packs, scalar tail; unaligned pointers
// take the scalar kernel.
#include <initializer_list>

#include "kernels/elementwise_math.h"
#include "kernels/gate.h"
#include "kernels/row_tiles.cuh"

namespace drwkv::kernels {
namespace {
using namespace cuda;

// Elements [i0, i0 + VW) handled by one thread.
template <int VW, typename T>
__device__ __forceinline__ void forward_at(T* out, const T* r, const T* z, int64_t i0) {
  float rv[VW], zv[VW];
  load_vec<VW>(r + i0, rv);
  load_vec<VW>(z + i0, zv);
#pragma unroll
  for (int j = 0; j < VW; ++j) rv[j] = sigmoid_(rv[j]) * zv[j];
  store_vec<VW>(out + i0, rv);
}

template <int VW, typename T>
__device__ __forceinline__ void backward_at(T* dr, T* dz, const T* dout, const T* r, const T* out, int64_t i0) {
  float gv[VW], rv[VW], ov[VW];
  load_vec<VW>(dout + i0, gv);
  load_vec<VW>(r + i0, rv);
  load_vec<VW>(out + i0, ov);
  float a[VW], b[VW];
#pragma unroll
  for (int j = 0; j < VW; ++j) {
    const float s = sigmoid_(rv[j]);
    a[j] = gv[j] * ov[j] * (1.f - s);
    b[j] = gv[j] * s;
  }
  if (dr) store_vec<VW>(dr + i0, a);
  if (dz) store_vec<VW>(dz + i0, b);
}

// VW elements per step over n / VW steps, then the n % VW tail one element per step.
template <int VW, typename T>
__global__ void gate_forward_kernel(T* __restrict__ out, const T* __restrict__ r, const T* __restrict__ z, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t steps = n / VW;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < steps; p += stride) forward_at<VW>(out, r, z, p * VW);
  for (int64_t i = steps * VW + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    forward_at<1>(out, r, z, i);
}

template <int VW, typename T>
__global__ void gate_backward_kernel(T* __restrict__ dr, T* __restrict__ dz, const T* __restrict__ dout,
                                     const T* __restrict__ r, const T* __restrict__ out, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t steps = n / VW;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < steps; p += stride)
    backward_at<VW>(dr, dz, dout, r, out, p * VW);
  for (int64_t i = steps * VW + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    backward_at<1>(dr, dz, dout, r, out, i);
}

bool all_aligned(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return false;
  return true;
}
}  // namespace

template <typename T>
void sigmoid_mul_forward_cuda(T* out, const T* r, const T* z, int64_t n, StreamHandle s) {
  if (n <= 0) return;
  constexpr int P = kPack<T>, threads = 256;
  if (all_aligned({out, r, z}))
    gate_forward_kernel<P><<<grid_size((n + P - 1) / P, threads), threads, 0, to_cuda(s)>>>(out, r, z, n);
  else
    gate_forward_kernel<1><<<grid_size(n, threads), threads, 0, to_cuda(s)>>>(out, r, z, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void sigmoid_mul_backward_cuda(T* dr, T* dz, const T* dout, const T* r, const T* out, int64_t n, StreamHandle s) {
  if (n <= 0 || (!dr && !dz)) return;
  constexpr int P = kPack<T>, threads = 256;
  if (all_aligned({dr, dz, dout, r, out}))
    gate_backward_kernel<P><<<grid_size((n + P - 1) / P, threads), threads, 0, to_cuda(s)>>>(dr, dz, dout, r, out, n);
  else
    gate_backward_kernel<1><<<grid_size(n, threads), threads, 0, to_cuda(s)>>>(dr, dz, dout, r, out, n);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                          \
  template void sigmoid_mul_forward_cuda<T>(T*, const T*, const T*, int64_t, StreamHandle);    \
  template void sigmoid_mul_backward_cuda<T>(T*, T*, const T*, const T*, const T*, int64_t, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
