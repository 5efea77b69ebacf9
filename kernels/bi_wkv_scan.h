// The arithmetic of the exact Bi-WKV (MODEL.md §2.3–2.4), shared by the CPU implementation
// (bi_wkv_cpu.cpp) and the CUDA kernel (bi_wkv_tile.cuh) so that both run the same segmented scan.
//
// Representation. A decayed sum Σ_i e^{κ_i − d_i·w}·(x1_i, x2_i) is kept as (p, a, b) with value
// 2^p·(a, b): exponents are in log2 units (keys, w and u are pre-multiplied by log2 e, so the device
// uses its native ex2), p is the running maximum of the exponents that entered (every rescale factor
// is 2^{≤0}, nothing overflows for any key or any sign of w), and no epsilon is needed. Left sums
// optionally carry (da, db) = ∂/∂w of (a, b) in the same scale, w in natural units: decaying by d
// steps maps (a, da) to (a, da − d·a).
//
// Positions. A left sum "measured at e" holds Σ_{i≤e} e^{κ_i − (e−i)w}; the left state that output t
// needs is the sum over i < t measured at t−1. A right sum "measured at s" holds Σ_{i≥s} e^{κ_i − (i−s)w};
// output t needs the sum over i > t measured at t+1. Combining a sum measured at one position with
// tokens further along therefore decays it by the exact number of positions in between (§2.4,
// "parallel evaluation"), which is what `decayed` does.
//
// Hierarchy. A thread (one channel) owns a segment of kSeg tokens held in registers; a tile is
// `warps` consecutive segments (one CUDA block); a sequence is `tiles` tiles. Each stage (forward
// sums over (k, v); backward sums over (−m, ẑ)) computes segment summaries, scans them within the
// tile, combines tile summaries across the sequence, and rescans each segment from its exact carry.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"

// Full unrolling keeps the per-segment arrays in registers on the device; the host compiler needs no hint.
#if defined(__CUDA_ARCH__)
#define DRWKV_BIWKV_UNROLL _Pragma("unroll")
#else
#define DRWKV_BIWKV_UNROLL
#endif

namespace drwkv::kernels::bi_wkv_detail {

inline constexpr int kSeg = 4;        // tokens per thread
inline constexpr int kMaxWarps = 16;  // segments (warps) per tile
inline constexpr float kEmpty = -1e30f;  // exponent of an empty sum / an absent token: 2^kEmpty = 0
inline constexpr double kLog2e = 1.4426950408889634074;

// Segments per tile for a sequence of T tokens (the same on the CPU and the GPU).
inline int warps_for(int64_t T) {
  int64_t segs = (T + kSeg - 1) / kSeg;
  return int(segs < 1 ? 1 : (segs > kMaxWarps ? kMaxWarps : segs));
}

// Workspace of the CUDA launchers (the CPU computes the same quantities in local buffers). Summaries
// of one tile are 8 × 32 floats: [field][lane], fields 0–4 the left sum (p, a, b, da, db), 5–7 the right
// sum (p, a, b); partial parameter gradients are [B·tiles][2][C] floats (∂L/∂w, ∂L/∂u per tile).
struct Layout {
  int warps = 1;
  int64_t L = 0, tiles = 0, groups = 0, seqs = 0;  // tile length, tiles per sequence, 32-channel groups
  size_t agg = 0, car1 = 0, car2 = 0, part = 0, sync = 0, bytes = 0;  // byte offsets, total
};
inline constexpr int kSumFloats = 8 * 32;
inline Layout layout(int64_t B, int64_t T, int64_t C) {
  auto up = [](size_t x) { return (x + 255) & ~size_t(255); };
  Layout l;
  l.warps = warps_for(T);
  l.L = int64_t(l.warps) * kSeg;
  l.tiles = (T + l.L - 1) / l.L;
  l.groups = (C + 31) / 32;
  l.seqs = B * l.groups;
  size_t sums = up(size_t(l.seqs * l.tiles) * kSumFloats * sizeof(float));
  l.agg = 0;
  l.car1 = l.agg + sums;
  l.car2 = l.car1 + sums;
  l.part = l.car2 + sums;
  l.sync = l.part + up(size_t(B * l.tiles * 2 * C) * sizeof(float));
  l.bytes = l.sync + up(size_t(1 + 4 * l.seqs) * sizeof(uint32_t));  // ticket; per sequence count[2], ready[2]
  return l;
}

template <typename A> DRWKV_HD A exp2_(A x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(float(x)));
  return A(r);
#else
  return std::exp2(x);
#endif
}
template <typename A> DRWKV_HD A rcp_(A x) {
#if defined(__CUDA_ARCH__)
  return __frcp_rn(x);
#else
  return A(1) / x;
#endif
}
template <typename A> DRWKV_HD A abs_(A x) { return x < A(0) ? -x : x; }
template <typename A> DRWKV_HD A max_(A x, A y) { return x > y ? x : y; }

template <typename A> struct Sum {
  A p, a, b;    // value 2^p·(a, b)
  A da, db;     // ∂/∂w (natural w) of the value, scaled by 2^p; zero when not tracked
};

template <typename A> DRWKV_HD Sum<A> empty_sum() { return {A(kEmpty), A(0), A(0), A(0), A(0)}; }

// The sum measured d positions further on: ×e^{−d·w} = 2^{−d·w2}.
template <typename A, bool kDeriv> DRWKV_HD Sum<A> decayed(Sum<A> s, A d, A w2) {
  s.p -= d * w2;
  if (kDeriv) {
    s.da -= d * s.a;
    s.db -= d * s.b;
  }
  return s;
}

// x + y, both measured at the same position. One exponential: the larger exponent scales by 1.
template <typename A, bool kDeriv> DRWKV_HD Sum<A> plus(const Sum<A>& x, const Sum<A>& y) {
  A diff = x.p - y.p;
  A e = exp2_(-abs_(diff));
  bool x_big = diff >= A(0);
  A ex = x_big ? A(1) : e, ey = x_big ? e : A(1);
  Sum<A> r;
  r.p = x_big ? x.p : y.p;
  r.a = ex * x.a + ey * y.a;
  r.b = ex * x.b + ey * y.b;
  r.da = kDeriv ? ex * x.da + ey * y.da : A(0);
  r.db = kDeriv ? ex * x.db + ey * y.db : A(0);
  return r;
}

// Moves a sum one position on and adds the token found there (key κ, values x1, x2):
// s ← e^{−w}·s + e^{κ}·(x1, x2). A token with key kEmpty and zero values only decays the sum.
template <typename A, bool kDeriv> DRWKV_HD void push(Sum<A>& s, A w2, A key, A x1, A x2) {
  A pd = s.p - w2;
  A diff = pd - key;
  A e = exp2_(-abs_(diff));
  bool keep = diff >= A(0);
  A e1 = keep ? A(1) : e, e2 = keep ? e : A(1);
  if (kDeriv) {  // d/dw of e^{−w}·s is e^{−w}·(ds − s); the new token does not depend on w
    s.da = e1 * (s.da - s.a);
    s.db = e1 * (s.db - s.b);
  }
  s.a = e1 * s.a + e2 * x1;
  s.b = e1 * s.b + e2 * x2;
  s.p = keep ? pd : key;
}

// Values of token j in a scan: (x1, 1) for the forward sums over (k, v), (x1, x1·y) for the backward
// sums over (−m, ẑ) whose second component carries ẑ·y.
template <bool kTimesY, typename A> DRWKV_HD A second_value(A x1, A y) { return kTimesY ? x1 * y : A(1); }

// Segment summaries: left measured at the segment's last position, right at its first.
template <typename A, bool kDeriv, bool kTimesY>
DRWKV_HD void segment_summaries(const A (&key)[kSeg], const A (&x1)[kSeg], const A (&y)[kSeg], A w2, Sum<A>& left,
                                Sum<A>& right) {
  left = empty_sum<A>();
  right = empty_sum<A>();
DRWKV_BIWKV_UNROLL
  for (int j = 0; j < kSeg; ++j) {  // two independent chains, interleaved
    const int r = kSeg - 1 - j;
    push<A, kDeriv>(left, w2, key[j], x1[j], second_value<kTimesY>(x1[j], y[j]));
    push<A, false>(right, w2, key[r], x1[r], second_value<kTimesY>(x1[r], y[r]));
  }
}

// Carries of every tile of one channel from the tile summaries (left measured at the tile's last
// position, right at its first; tiles of L positions): carry_left[j] = left sum over tiles < j measured
// at j·L − 1, carry_right[j] = right sum over tiles > j measured at (j+1)·L. Fixed order, so the result
// does not depend on which thread computes it. get(j) / put(j, sum) read and write tile j; gets are
// issued kBatch tiles ahead of the dependent combines (the device reads them from L2).
template <typename A, bool kDeriv, int kBatch, typename Get, typename Put>
DRWKV_HD void tile_carries_left(int64_t tiles, A L, A w2, Get get, Put put) {
  Sum<A> run = empty_sum<A>();
  for (int64_t j0 = 0; j0 < tiles; j0 += kBatch) {
    Sum<A> buf[kBatch];
    DRWKV_BIWKV_UNROLL
    for (int u = 0; u < kBatch; ++u) buf[u] = j0 + u < tiles ? get(j0 + u) : empty_sum<A>();
    DRWKV_BIWKV_UNROLL
    for (int u = 0; u < kBatch; ++u)
      if (j0 + u < tiles) {
        put(j0 + u, run);
        run = plus<A, kDeriv>(decayed<A, kDeriv>(run, L, w2), buf[u]);
      }
  }
}
template <typename A, int kBatch, typename Get, typename Put>
DRWKV_HD void tile_carries_right(int64_t tiles, A L, A w2, Get get, Put put) {
  Sum<A> run = empty_sum<A>();
  for (int64_t j0 = 0; j0 < tiles; j0 += kBatch) {
    Sum<A> buf[kBatch];
    DRWKV_BIWKV_UNROLL
    for (int u = 0; u < kBatch; ++u) buf[u] = j0 + u < tiles ? get(tiles - 1 - j0 - u) : empty_sum<A>();
    DRWKV_BIWKV_UNROLL
    for (int u = 0; u < kBatch; ++u)
      if (j0 + u < tiles) {
        put(tiles - 1 - j0 - u, run);
        run = plus<A, false>(buf[u], decayed<A, false>(run, L, w2));
      }
  }
}

// A segment's carries from its tile's carries and the exclusive prefixes within the tile
// (prefix_left measured at the segment's first position − 1, prefix_right at its last + 1).
template <typename A, bool kDeriv>
DRWKV_HD Sum<A> segment_carry_left(const Sum<A>& tile_left, const Sum<A>& prefix_left, int warp, A w2) {
  return plus<A, kDeriv>(decayed<A, kDeriv>(tile_left, A(warp * kSeg), w2), prefix_left);
}
template <typename A>
DRWKV_HD Sum<A> segment_carry_right(const Sum<A>& tile_right, const Sum<A>& prefix_right, int warp, int warps, A w2) {
  return plus<A, false>(prefix_right, decayed<A, false>(tile_right, A((warps - 1 - warp) * kSeg), w2));
}

// Forward outputs of one segment (§2.3 combine) from its carries. k2 = k·log2 e (kEmpty for absent
// tokens), tokens j ≥ valid are absent. With kBackward also ẑ = dy/den, the backward scan key −m (in
// log2 units; kEmpty for absent tokens) and the contributions of these outputs to ∂L/∂u and to the
// left-source half of ∂L/∂w (Σ_t z_t·∂Lsum_t/∂w·(·, −y_t)).
template <typename A, bool kBackward>
DRWKV_HD void segment_forward(const A (&k2)[kSeg], const A (&v)[kSeg], const A (&dy)[kSeg], int valid, A w2, A u2,
                              const Sum<A>& carry_left, const Sum<A>& carry_right, A (&y)[kSeg], A (&z)[kSeg],
                              A (&key)[kSeg], A& gw, A& gu) {
  A rp[kSeg], ra[kSeg], rb[kSeg];
  Sum<A> r = carry_right;
DRWKV_BIWKV_UNROLL
  for (int j = kSeg - 1; j >= 0; --j) {  // right states, for t = last .. first
    rp[j] = r.p;
    ra[j] = r.a;
    rb[j] = r.b;
    push<A, false>(r, w2, k2[j], v[j], A(1));
  }
  Sum<A> l = carry_left;
DRWKV_BIWKV_UNROLL
  for (int j = 0; j < kSeg; ++j) {
    A ks = u2 + k2[j];
    A m = max_(max_(l.p, rp[j]), ks);  // bounds every exponent of Den_t
    A eL = exp2_(l.p - m), eR = exp2_(rp[j] - m), eS = exp2_(ks - m);
    A den = eL * l.b + eR * rb[j] + eS;  // ≥ eS > 0
    A rinv = rcp_(den);
    A yj = (eL * l.a + eR * ra[j] + eS * v[j]) * rinv;
    y[j] = yj;
    if (kBackward) {
      A zj = dy[j] * rinv;  // dy is 0 for absent tokens
      z[j] = zj;
      key[j] = j < valid ? -m : A(kEmpty);
      gu += zj * eS * (v[j] - yj);
      gw += zj * eL * (l.da - yj * l.db);
    }
    push<A, kBackward>(l, w2, k2[j], v[j], A(1));
  }
}

// Backward outputs of one segment (§2.4) from the carries of the backward scans over (−m, ẑ, ẑ·y):
// dk, dv, and the right-source half of ∂L/∂w (Σ_i e^{k_i}·(v_i·∂P_i/∂w − ∂Q_i/∂w) over the left scan).
template <typename A>
DRWKV_HD void segment_backward(const A (&k2)[kSeg], const A (&v)[kSeg], const A (&y)[kSeg], const A (&z)[kSeg],
                               const A (&key)[kSeg], A w2, A u2, const Sum<A>& carry_left, const Sum<A>& carry_right,
                               A (&dk)[kSeg], A (&dv)[kSeg], A& gw) {
  A pr[kSeg], qr[kSeg];
  Sum<A> r = carry_right;
DRWKV_BIWKV_UNROLL
  for (int j = kSeg - 1; j >= 0; --j) {
    A eR = exp2_(k2[j] + r.p);  // ≤ 1: m_t bounds k_i − (|t−i|−1)w
    pr[j] = eR * r.a;
    qr[j] = eR * r.b;
    push<A, false>(r, w2, key[j], z[j], z[j] * y[j]);
  }
  Sum<A> l = carry_left;
DRWKV_BIWKV_UNROLL
  for (int j = 0; j < kSeg; ++j) {
    A eL = exp2_(k2[j] + l.p);
    A P = eL * l.a + pr[j], Q = eL * l.b + qr[j];
    A zs = z[j] * exp2_(u2 + k2[j] + key[j]);  // z_j·e^{u+k_j} (key = −m_j)
    dv[j] = P + zs;
    dk[j] = v[j] * P - Q + zs * (v[j] - y[j]);
    gw += eL * (v[j] * l.da - l.db);
    push<A, true>(l, w2, key[j], z[j], z[j] * y[j]);
  }
}

}  // namespace drwkv::kernels::bi_wkv_detail
