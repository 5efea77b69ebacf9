// Shared device helpers for the kernel families (.cu files only): launch sizing, 16-byte vector
// loads/stores of any element type, float conversion, warp and block reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"
#include "core/dtype.h"

namespace drwkv::kernels::cuda {

// Loads/stores through float (or double) for any storage type.
template <typename T> __device__ __forceinline__ float to_f(T x) { return float(x); }
__device__ __forceinline__ double to_f(double x) { return x; }
template <typename T> __device__ __forceinline__ T from_f(float x) { return store_as<T>(x); }

// N elements of T in one aligned register pack (N * sizeof(T) == 16 for the vector paths).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};
template <typename T> inline constexpr int kPack = 16 / int(sizeof(T));

template <typename T, int N>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, N>*>(p);
}
template <typename T, int N>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& v) {
  *reinterpret_cast<Pack<T, N>*>(p) = v;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Grid for a grid-stride loop over n work items: enough blocks to fill the device a few times.
inline unsigned grid_size(int64_t n, int threads, int max_blocks = 132 * 32) {
  int64_t b = (n + threads - 1) / threads;
  if (b > max_blocks) b = max_blocks;
  return unsigned(b < 1 ? 1 : b);
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename A>
__device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` must hold 32 values; the call contains __syncthreads().
template <typename A>
__device__ __forceinline__ A block_sum(A v, A* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be in use by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A t = lane < warps ? scratch[lane] : A(0);
  return warp_sum(t);
}

}  // namespace drwkv::kernels::cuda
