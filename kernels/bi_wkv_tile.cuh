// The exact Bi-WKV CUDA kernel (one template for forward and backward), used by bi_wkv.cu and
// bi_wkv_backward.cu. The arithmetic is bi_wkv_scan.h; this file maps it onto threads.
//
// Mapping. A block is one tile: 32 consecutive channels (lane = channel, so every load and store of a
// warp is one contiguous run of C-innermost memory) × `warps` segments of kSeg = 4 tokens (warp w owns
// tokens tile·L + 4w .. +3, L = 4·warps ≤ 64). Each thread keeps its 4 tokens of k, v (, dy) in
// registers from the single read to the single write.
// Stage = one bidirectional scan (stage 1: sums over (k, v); stage 2, backward only: sums over
// (−m, ẑ, ẑ·y)). Per stage: segment summaries → shared memory → warp 0 (left) and warp 1 (right) scan
// the tile's segments (exclusive prefixes stay in shared memory, the tile summary goes to global) →
// carries of every tile of the sequence from the tile summaries (fixed order) → each thread combines
// its tile's carry with its in-tile prefix and rescans its 4 tokens.
//
// Cross-tile exchange, per Mode:
//  - Chained (one launch): blocks take tiles in the order they start (atomic ticket), so the tiles of a
//    sequence are consecutive tickets. Each tile publishes its summary and increments the sequence's
//    counter; the last one to arrive computes all carries and releases a flag the others wait on. A
//    block only waits for tiles of its own sequence, which have all been handed out unless the
//    sequence holds the next ticket; so the launch makes progress whenever `tiles` blocks fit on the
//    device at once (the launcher requires tiles ≤ resident blocks / 2 for Auto, ≤ resident for
//    Chained). Memory order: summaries and carries are published with fence/release after a barrier,
//    read after an atomic + fence or an acquire and a barrier, and every cross-block read goes through
//    L2 (__ldcg), never a possibly stale L1 line.
//  - Publish1 / Publish2 / Final (multi-pass): the launch ends after publishing the tile summaries of
//    stage 1 / stage 2; carry_kernel computes the carries; Final reads them. Later passes recompute the
//    earlier stages from k, v (, dy) instead of storing per-token state.
// Both orders of combination are fixed, so every mode is deterministic.
//
// Device code only (CUDA builtins, no runtime API), so that tests/kernels/bi_wkv_emulated_test.cpp can
// run this exact source on the host under an emulation of the CUDA execution model; the launchers'
// host helpers are in bi_wkv_launch.cuh.
#pragma once

#include "kernels/bi_wkv_scan.h"

namespace drwkv::kernels::bi_wkv_detail {

enum class Mode : int { Chained, Publish1, Publish2, Final };

template <typename E> struct TileArgs {
  const E* k;
  const E* v;
  const E* dy;     // backward
  E* y;            // forward
  E* dk;           // backward, may be null
  E* dv;           // backward, may be null
  const float* decay;
  const float* first;
  float* agg;      // [seqs][tiles][8][32] tile summaries (both stages reuse it)
  float* car1;     // [seqs][tiles][8][32] tile carries of stage 1
  float* car2;     // ... of stage 2
  float* part;     // [B·tiles][2][C] per-tile ∂L/∂w, ∂L/∂u (backward)
  unsigned* sync;  // Chained: [0] ticket; per sequence q: [1+4q+s−1] arrivals, [3+4q+s−1] ready flag
  int64_t B, T, C, tiles, groups;
  int warps;
};

struct TileShared {
  float seg[kMaxWarps][8][32];  // segment summaries, then in-tile exclusive prefixes
  float part[kMaxWarps][2][32];
  unsigned id;
  int last;
};

// Flag store/load with gpu-scope release/acquire semantics. The #else branches are what the host
// compilation pass (and the host emulation) sees; device code always takes the PTX.
__device__ __forceinline__ void store_release(unsigned* p, unsigned v) {
#if defined(__CUDA_ARCH__)
  asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
#else
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
#endif
}
__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
#if defined(__CUDA_ARCH__)
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
#else
  v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
  return v;
}

// A summary lives at f[field·32] (lane-major rows of 32 floats), fields 0–4 left, 5–7 right.
template <bool kCoherent> __device__ __forceinline__ float ld(const float* p) { return kCoherent ? __ldcg(p) : *p; }
template <bool kCoherent> __device__ __forceinline__ Sum<float> read_left(const float* f) {
  return {ld<kCoherent>(f), ld<kCoherent>(f + 32), ld<kCoherent>(f + 64), ld<kCoherent>(f + 96), ld<kCoherent>(f + 128)};
}
template <bool kCoherent> __device__ __forceinline__ Sum<float> read_right(const float* f) {
  return {ld<kCoherent>(f + 160), ld<kCoherent>(f + 192), ld<kCoherent>(f + 224), 0.f, 0.f};
}
__device__ __forceinline__ void write_left(float* f, const Sum<float>& s) {
  f[0] = s.p;
  f[32] = s.a;
  f[64] = s.b;
  f[96] = s.da;
  f[128] = s.db;
}
__device__ __forceinline__ void write_right(float* f, const Sum<float>& s) {
  f[160] = s.p;
  f[192] = s.a;
  f[224] = s.b;
}

// Carries of all tiles of sequence q for this lane's channel, left (kLeft) or right ones
// (bi_wkv_scan.h tile_carries_*, loads issued kAhead tiles ahead of the dependent combines).
template <bool kDeriv, bool kLeft, int kAhead>
__device__ void tile_carries(const float* agg, float* car, int64_t q, int64_t tiles, float L, float w2, int lane) {
  const float* in = agg + q * tiles * kSumFloats + lane;
  float* out = car + q * tiles * kSumFloats + lane;
  if (kLeft)
    tile_carries_left<float, kDeriv, kAhead>(
        tiles, L, w2, [&](int64_t j) { return read_left<true>(in + j * kSumFloats); },
        [&](int64_t j, const Sum<float>& s) { write_left(out + j * kSumFloats, s); });
  else
    tile_carries_right<float, kAhead>(
        tiles, L, w2, [&](int64_t j) { return read_right<true>(in + j * kSumFloats); },
        [&](int64_t j, const Sum<float>& s) { write_right(out + j * kSumFloats, s); });
}

// The warp that runs the right-direction scans of a block (warp 0 runs the left ones).
__device__ __forceinline__ int right_warp(int warps) { return warps > 1 ? 1 : 0; }

// Chained mode, after this tile published its summary: arrive, then either compute every carry of
// the sequence (last arriver) or wait for them. Release/acquire: the summaries written by warps 0/1
// are ordered by the barrier before thread 0's fence and arrival; the last arriver's reads follow its
// arrival and fence; the carries are released by the flag and acquired by each waiting block's thread
// 0 before the barrier that precedes every thread's (L2) reads.
template <bool kDeriv, int kStage, typename E>
__device__ void chained_carries(const TileArgs<E>& a, TileShared& sh, int64_t q, int warp, int lane, float w2) {
  unsigned* count = a.sync + 1 + 4 * q + (kStage - 1);
  unsigned* ready = a.sync + 3 + 4 * q + (kStage - 1);
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    unsigned prev = atomicAdd(count, 1u);
    __threadfence();
    sh.last = prev == unsigned(a.tiles - 1);
  }
  __syncthreads();
  if (sh.last) {
    float* car = kStage == 1 ? a.car1 : a.car2;
    const float L = float(a.warps * kSeg);
    // 2 ahead: the registers of the segment arrays are still live here
    if (warp == 0) tile_carries<kDeriv, true, 2>(a.agg, car, q, a.tiles, L, w2, lane);
    if (warp == right_warp(a.warps)) tile_carries<kDeriv, false, 2>(a.agg, car, q, a.tiles, L, w2, lane);
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) store_release(ready, 1u);
  } else {
    if (threadIdx.x == 0)
      while (load_acquire(ready) == 0u) __nanosleep(100);
    __syncthreads();
  }
}

// One stage's exchange. In: this thread's segment summaries; out: its segment carries. Returns false
// when this launch ends after publishing the stage's tile summaries (multi-pass). Block-uniform.
template <bool kDeriv, Mode kMode, int kStage, typename E>
__device__ bool exchange(const TileArgs<E>& a, TileShared& sh, int64_t q, int64_t tile, int warp, int lane, float w2,
                         Sum<float>& left, Sum<float>& right) {
  const int warps = a.warps;
  __syncthreads();  // sh.seg may still be read by the previous stage
  write_left(&sh.seg[warp][0][lane], left);
  write_right(&sh.seg[warp][0][lane], right);
  __syncthreads();
  // in-tile exclusive scans over the segments (lanes = channels); the prefixes replace the summaries
  const int rw = right_warp(warps);
  Sum<float> tile_left = empty_sum<float>(), tile_right = empty_sum<float>();
  if (warp == 0)
    for (int w = 0; w < warps; ++w) {
      float* f = &sh.seg[w][0][lane];
      Sum<float> agg = read_left<false>(f);
      write_left(f, tile_left);
      tile_left = plus<float, kDeriv>(decayed<float, kDeriv>(tile_left, float(kSeg), w2), agg);
    }
  if (warp == rw)
    for (int w = warps - 1; w >= 0; --w) {
      float* f = &sh.seg[w][0][lane];
      Sum<float> agg = read_right<false>(f);
      write_right(f, tile_right);
      tile_right = plus<float, false>(agg, decayed<float, false>(tile_right, float(kSeg), w2));
    }
  Sum<float> carry_left = empty_sum<float>(), carry_right = empty_sum<float>();
  if (a.tiles > 1) {
    constexpr bool kPublishOnly = (kMode == Mode::Publish1 && kStage == 1) || (kMode == Mode::Publish2 && kStage == 2);
    const size_t at = size_t(q * a.tiles + tile) * kSumFloats + size_t(lane);
    if (kMode == Mode::Chained || kPublishOnly) {
      if (warp == 0) write_left(a.agg + at, tile_left);
      if (warp == rw) write_right(a.agg + at, tile_right);
    }
    if (kPublishOnly) return false;
    if (kMode == Mode::Chained) chained_carries<kDeriv, kStage>(a, sh, q, warp, lane, w2);
    const float* car = (kStage == 1 ? a.car1 : a.car2) + at;
    carry_left = read_left<true>(car);
    carry_right = read_right<true>(car);
  }
  __syncthreads();  // the in-tile prefixes are complete
  const float* f = &sh.seg[warp][0][lane];
  left = segment_carry_left<float, kDeriv>(carry_left, read_left<false>(f), warp, w2);
  right = segment_carry_right<float>(carry_right, read_right<false>(f), warp, warps, w2);
  return true;
}

template <typename E, bool kBackward, Mode kMode>
__global__ void __launch_bounds__(kMaxWarps * 32, 2) tile_kernel(const TileArgs<E> a) {
  __shared__ TileShared sh;
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  int64_t id = blockIdx.x;
  if (kMode == Mode::Chained && a.tiles > 1) {  // tiles in start order (see the file comment)
    if (threadIdx.x == 0) sh.id = atomicAdd(a.sync, 1u);
    __syncthreads();
    id = sh.id;
  }
  const int64_t q = id / a.tiles, tile = id % a.tiles;
  const int64_t b = q / a.groups, c = (q % a.groups) * 32 + lane;
  const bool channel = c < a.C;
  const int64_t s0 = tile * (a.warps * kSeg) + warp * kSeg;  // first token of this thread's segment
  const int64_t rest = a.T - s0;
  const int valid = !channel || rest <= 0 ? 0 : (rest >= kSeg ? kSeg : int(rest));
  const float w2 = channel ? a.decay[c] / float(a.T) * float(kLog2e) : 0.f;
  const float u2 = channel ? a.first[c] / float(a.T) * float(kLog2e) : 0.f;
  const int64_t base = (b * a.T + s0) * a.C + c;

  float k2[kSeg], v[kSeg], g[kSeg];
DRWKV_BIWKV_UNROLL
  for (int j = 0; j < kSeg; ++j) {  // absent tokens: key kEmpty, zero values (they only decay the sums)
    const bool in = j < valid;
    k2[j] = in ? load_as<float>(a.k[base + j * a.C]) * float(kLog2e) : kEmpty;
    v[j] = in ? load_as<float>(a.v[base + j * a.C]) : 0.f;
    g[j] = kBackward && in ? load_as<float>(a.dy[base + j * a.C]) : 0.f;
  }

  Sum<float> left, right;
  segment_summaries<float, kBackward, false>(k2, v, v, w2, left, right);
  if (!exchange<kBackward, kMode, 1>(a, sh, q, tile, warp, lane, w2, left, right)) return;
  float y[kSeg], z[kSeg], key[kSeg], gw = 0.f, gu = 0.f;
  segment_forward<float, kBackward>(k2, v, g, valid, w2, u2, left, right, y, z, key, gw, gu);
  if constexpr (!kBackward) {
DRWKV_BIWKV_UNROLL
    for (int j = 0; j < kSeg; ++j)
      if (j < valid) a.y[base + j * a.C] = store_as<E>(y[j]);
  } else {
    segment_summaries<float, true, true>(key, z, y, w2, left, right);
    if (!exchange<true, kMode, 2>(a, sh, q, tile, warp, lane, w2, left, right)) return;
    float dk[kSeg], dv[kSeg];
    segment_backward<float>(k2, v, y, z, key, w2, u2, left, right, dk, dv, gw);
DRWKV_BIWKV_UNROLL
    for (int j = 0; j < kSeg; ++j)
      if (j < valid) {
        if (a.dk) a.dk[base + j * a.C] = store_as<E>(dk[j]);
        if (a.dv) a.dv[base + j * a.C] = store_as<E>(dv[j]);
      }
    sh.part[warp][0][lane] = gw;
    sh.part[warp][1][lane] = gu;
    __syncthreads();
    if (warp == 0 && channel) {  // this tile's share, over its segments in order
      float sw = 0.f, su = 0.f;
      for (int w = 0; w < a.warps; ++w) {
        sw += sh.part[w][0][lane];
        su += sh.part[w][1][lane];
      }
      const int64_t row = b * a.tiles + tile;
      a.part[(row * 2 + 0) * a.C + c] = sw;
      a.part[(row * 2 + 1) * a.C + c] = su;
    }
  }
}

// Multi-pass: the carries of stage s from the tile summaries published by the previous launch.
// Grid: one block of 64 threads per sequence (warp 0 left, warp 1 right).
template <bool kDeriv>
__global__ void carry_kernel(const float* agg, float* car, const float* decay, int64_t tiles, int64_t groups,
                             int64_t T, int64_t C, int warps) {
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  const int64_t q = blockIdx.x, c = (q % groups) * 32 + lane;
  const float w2 = c < C ? decay[c] / float(T) * float(kLog2e) : 0.f;
  if (warp == 0) tile_carries<kDeriv, true, 8>(agg, car, q, tiles, float(warps * kSeg), w2, lane);
  else tile_carries<kDeriv, false, 8>(agg, car, q, tiles, float(warps * kSeg), w2, lane);
}

}  // namespace drwkv::kernels::bi_wkv_detail
