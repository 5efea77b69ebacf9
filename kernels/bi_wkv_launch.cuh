// Host helpers of the exact Bi-WKV CUDA launchers (bi_wkv.cu, bi_wkv_backward.cu, bi_wkv_compat.cu):
// workspace views, the choice between the chained and the multi-pass algorithm, launches of the small
// kernels. The kernels themselves are in bi_wkv_tile.cuh.
#pragma once

#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_tile.cuh"
#include "kernels/cuda_utils.cuh"

namespace drwkv::kernels::bi_wkv_detail {

template <typename E>
TileArgs<E> tile_args(const Layout& l, void* workspace, const E* k, const E* v, const E* dy, E* y, E* dk, E* dv,
                      const float* decay, const float* first, int64_t B, int64_t T, int64_t C) {
  char* w = static_cast<char*>(workspace);
  TileArgs<E> a;
  a.k = k;
  a.v = v;
  a.dy = dy;
  a.y = y;
  a.dk = dk;
  a.dv = dv;
  a.decay = decay;
  a.first = first;
  a.agg = reinterpret_cast<float*>(w + l.agg);
  a.car1 = reinterpret_cast<float*>(w + l.car1);
  a.car2 = reinterpret_cast<float*>(w + l.car2);
  a.part = reinterpret_cast<float*>(w + l.part);
  a.sync = reinterpret_cast<unsigned*>(w + l.sync);
  a.B = B;
  a.T = T;
  a.C = C;
  a.tiles = l.tiles;
  a.groups = l.groups;
  a.warps = l.warps;
  return a;
}

// Grid size of the tile kernels (one block per tile of every sequence).
inline unsigned tile_blocks(const Layout& l) {
  DRWKV_ASSERT(l.seqs * l.tiles < (int64_t(1) << 31), "bi_wkv: %lld tiles exceed the grid limit",
               (long long)(l.seqs * l.tiles));
  return unsigned(l.seqs * l.tiles);
}

// Blocks of `kernel` (with `threads` threads) the current device holds at once.
inline int64_t resident_blocks(const void* kernel, int threads) {
  int dev = 0, sms = 0, per_sm = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
  return int64_t(per_sm) * sms;
}

// Auto: chained when a sequence's tiles fit on half the device (margin for other work sharing it).
inline bool use_chained(BiWkvPath path, const Layout& l, const void* chained_kernel) {
  if (l.tiles == 1) return true;  // no exchange at all
  int64_t resident = resident_blocks(chained_kernel, l.warps * 32);
  if (path == BiWkvPath::Chained) {
    DRWKV_ASSERT(l.tiles <= resident, "bi_wkv: chained path needs %lld resident blocks, the device holds %lld",
                 (long long)l.tiles, (long long)resident);
    return true;
  }
  return path == BiWkvPath::Auto && 2 * l.tiles <= resident;
}

// Clears the chained mode's ticket and per-sequence counters and flags.
inline void clear_sync(const Layout& l, void* workspace, cudaStream_t s) {
  CUDA_CHECK(cudaMemsetAsync(static_cast<char*>(workspace) + l.sync, 0, size_t(1 + 4 * l.seqs) * sizeof(unsigned), s));
}

// ddecay[c] += Σ_r part[r][0][c] / T and dfirst[c] += Σ_r part[r][1][c] / T over rows r in a fixed
// order (bi_wkv_backward.cu); either output may be null.
void launch_param_grads(float* ddecay, float* dfirst, const float* part, int64_t rows, int64_t C, int64_t T,
                        cudaStream_t s);

template <bool kDeriv>
void launch_carries(const Layout& l, const float* agg, float* car, const float* decay, int64_t T, int64_t C,
                    cudaStream_t s) {
  carry_kernel<kDeriv><<<unsigned(l.seqs), 64, 0, s>>>(agg, car, decay, l.tiles, l.groups, T, C, l.warps);
  CUDA_CHECK_LAUNCH();
}

}  // namespace drwkv::kernels::bi_wkv_detail
