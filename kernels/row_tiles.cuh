// Device helpers of the DRWKV fused-op families (shift, adaln_zero, gate, linear_decoder); .cu only.
//
// These kernels share one layout: a block covers a range of rows (tokens) of a [rows, C] tensor; thread
// (x, y) owns the channel chunk [x·VW, x·VW + VW) and visits rows y, y + blockDim.y, ... of the range, so
// that per-channel parameters stay in registers and per-channel gradient sums (μ, gates, modulation,
// norm affine) accumulate per thread, are summed over y in shared memory and leave the block as one
// partial row; a second small kernel (column_sum_kernel) adds the partial rows in a fixed order. Results
// are bitwise reproducible: no atomics, no order that depends on scheduling.
#pragma once

#include "kernels/cuda_utils.cuh"

namespace drwkv::kernels::cuda {

// ---- VW contiguous elements through registers of type A ------------------------------------------
// One access of VW·sizeof(T) bytes when that is 4, 8 or 16, several 16-byte accesses when it is a larger
// multiple of 16, scalar accesses otherwise. The caller guarantees the alignment of p to that width.
template <int VW, typename T, typename A>
__device__ __forceinline__ void load_vec(const T* p, A (&v)[VW]) {
  constexpr int bytes = VW * int(sizeof(T));
  if constexpr (bytes == 4 || bytes == 8 || bytes == 16) {
    Pack<T, VW> q = load_pack<T, VW>(p);
#pragma unroll
    for (int j = 0; j < VW; ++j) v[j] = load_as<A>(q.v[j]);
  } else if constexpr (bytes % 16 == 0) {
    constexpr int P = 16 / int(sizeof(T));
#pragma unroll
    for (int k = 0; k < VW / P; ++k) {
      Pack<T, P> q = load_pack<T, P>(p + k * P);
#pragma unroll
      for (int j = 0; j < P; ++j) v[k * P + j] = load_as<A>(q.v[j]);
    }
  } else {
#pragma unroll
    for (int j = 0; j < VW; ++j) v[j] = load_as<A>(p[j]);
  }
}

template <int VW, typename T, typename A>
__device__ __forceinline__ void store_vec(T* p, const A (&v)[VW]) {
  constexpr int bytes = VW * int(sizeof(T));
  if constexpr (bytes == 4 || bytes == 8 || bytes == 16) {
    Pack<T, VW> q;
#pragma unroll
    for (int j = 0; j < VW; ++j) q.v[j] = store_as<T>(v[j]);
    store_pack<T, VW>(p, q);
  } else if constexpr (bytes % 16 == 0) {
    constexpr int P = 16 / int(sizeof(T));
#pragma unroll
    for (int k = 0; k < VW / P; ++k) {
      Pack<T, P> q;
#pragma unroll
      for (int j = 0; j < P; ++j) q.v[j] = store_as<T>(v[k * P + j]);
      store_pack<T, P>(p + k * P, q);
    }
  } else {
#pragma unroll
    for (int j = 0; j < VW; ++j) p[j] = store_as<T>(v[j]);
  }
}

// ---- launch shape ------------------------------------------------------------------------------------
// blockDim.x covers the chunks of a row (at most `max_x`), rounded up to whole warps when the kernel
// reduces along rows with warp shuffles (`whole_warps`); otherwise exact, so that no thread idles (a warp
// then spans the end of one row and the start of the next, which are adjacent in memory). blockDim.y
// fills the block to about 256 threads, at most `max_y` (the rows a block owns).
struct RowBlock {
  unsigned x = 32, y = 1;
};
inline RowBlock row_block(int64_t C, int vw, int max_x, bool whole_warps, int max_y = 64) {
  int64_t chunks = (C + vw - 1) / vw;
  int64_t x = whole_warps ? (chunks + 31) / 32 * 32 : chunks;
  if (x > max_x) x = max_x;
  int64_t y = 256 / x;
  if (y > max_y) y = max_y;
  RowBlock b;
  b.x = unsigned(x);
  b.y = unsigned(y > 0 ? y : 1);
  return b;
}

// ---- reductions inside a block -----------------------------------------------------------------------
// For every thread, replaces v[k] by the sum of v[k] over the threads with the same threadIdx.y (one row),
// in a fixed order. blockDim.x must be a multiple of 32; `scratch` holds blockDim.y · blockDim.x / 32 · K
// values. Every thread of the block must call it (it contains __syncthreads). With kTrailingSync = false
// the function returns without waiting for the other threads to have read `scratch`: callers then
// alternate between two scratch buffers (a buffer is rewritten only after the next call's barrier).
template <int K, bool kTrailingSync = true, typename A>
__device__ __forceinline__ void row_sum(A (&v)[K], A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int k = 0; k < K; ++k) v[k] = warp_sum(v[k]);
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) scratch[(threadIdx.y * warps + warp) * K + k] = v[k];
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < K; ++k) {
    A s = A(0);
    for (int w = 0; w < warps; ++w) s += scratch[(threadIdx.y * warps + w) * K + k];
    v[k] = s;
  }
  if (kTrailingSync) __syncthreads();  // scratch is free again when the function returns
}

// For threads with threadIdx.y == 0, replaces v[k] by the sum of v[k] over y (same threadIdx.x) in the
// order y = 0, 1, ...; other threads keep unspecified values. `scratch` holds blockDim.x · blockDim.y · K
// values. Every thread of the block must call it.
template <int K, typename A>
__device__ __forceinline__ void column_sum_over_y(A (&v)[K], A* scratch) {
  if (blockDim.y == 1) return;  // uniform over the block
  const int stride = blockDim.x * K;
#pragma unroll
  for (int k = 0; k < K; ++k) scratch[threadIdx.y * stride + threadIdx.x * K + k] = v[k];
  __syncthreads();
  if (threadIdx.y == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      A s = v[k];
      for (unsigned y = 1; y < blockDim.y; ++y) s += scratch[y * stride + threadIdx.x * K + k];
      v[k] = s;
    }
  }
  __syncthreads();
}

// ---- second stage: sums of partial rows -------------------------------------------------------------
// For col < ncols: epilogue(col, Σ_{r < R} in[r · ncols + col]). Block 32 × 32: thread (x, y) sums the
// rows y, y + 32, ... of its column, then thread y = 0 adds the 32 sums in order.
template <typename A, typename F>
__global__ void column_sum_kernel(const A* in, int64_t R, int64_t ncols, F epilogue) {
  __shared__ A part[32][33];
  const int64_t col = int64_t(blockIdx.x) * 32 + threadIdx.x;
  A s = A(0);
  if (col < ncols)
    for (int64_t r = threadIdx.y; r < R; r += 32) s += in[r * ncols + col];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < ncols) {
    A t = A(0);
    for (int y = 0; y < 32; ++y) t += part[y][threadIdx.x];
    epilogue(col, t);
  }
}

template <typename A, typename F>
void launch_column_sum(const A* in, int64_t R, int64_t ncols, F epilogue, cudaStream_t stream) {
  if (ncols <= 0) return;
  column_sum_kernel<A, F><<<unsigned((ncols + 31) / 32), dim3(32, 32), 0, stream>>>(in, R, ncols, epilogue);
  CUDA_CHECK_LAUNCH();
}

// True when p is aligned to `bytes` (a power of two).
inline bool aligned_to(const void* p, size_t bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

}  // namespace drwkv::kernels::cuda
