// Log-space decayed sums of the exact Bi-WKV (MODEL.md §2.3–2.4) and the per-token ("safe") chunk
// arithmetic, shared by the CPU implementation (bi_wkv_cpu.cpp) and the CUDA kernel (bi_wkv_kernel.cuh).
// The fast chunk arithmetic and the per-pass drivers built on these are in bi_wkv_chunk.h.
//
// Representation. A decayed sum Σ_i e^{κ_i − d_i·w}·(x1_i, x2_i) is kept as (p, a, b) with value
// 2^p·(a, b): exponents are in log2 units (keys, w and u are pre-multiplied by log2 e, so the device
// uses its native ex2). p bounds the exponents that entered (every rescale factor is 2^{≤0}, nothing
// overflows for any key or any sign of w) and no epsilon is needed. Left sums optionally carry
// (da, db) = ∂/∂w of (a, b) in the same scale, w in natural units: decaying by d steps maps (a, da) to
// (a, da − d·a).
//
// Positions. A left sum "measured at e" holds Σ_{i≤e} e^{κ_i − (e−i)w}; the left state that output t
// needs is the sum over i < t measured at t−1. A right sum "measured at s" holds Σ_{i≥s} e^{κ_i − (i−s)w};
// output t needs the sum over i > t measured at t+1. Combining a sum measured at one position with
// tokens further along therefore decays it by the exact number of positions in between (§2.4,
// "parallel evaluation"), which is what `decayed` does.
//
// Forward sums run over (key k_i; values v_i, 1). Backward sums (§2.4) run over (key −m_t; values ẑ_t,
// ẑ_t·y_t) where Den_t = 2^{m_t}·den_t and ẑ_t = dy_t / den_t; their mantissas are signed.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"

// Full unrolling keeps the per-chunk arrays in registers on the device; the host compiler needs no hint.
#if defined(__CUDA_ARCH__)
#define DRWKV_BIWKV_UNROLL _Pragma("unroll")
#else
#define DRWKV_BIWKV_UNROLL
#endif

namespace drwkv::kernels::bi_wkv_detail {

inline constexpr int kChunk = 8;         // tokens per chunk (one thread, registers)
inline constexpr float kEmpty = -1e30f;  // exponent of an empty sum / key of an absent token: 2^kEmpty = 0
inline constexpr double kLog2e = 1.4426950408889634074;

template <typename A> DRWKV_HD A exp2_(A x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(float(x)));
  return A(r);
#else
  return std::exp2(x);
#endif
}
// 1/x for the denominators of the outputs, which are ≥ 2^−24 (fast path) or ≥ 1 (per-token path): the
// device's approximate reciprocal (one MUFU operation, ≤ 1 ulp) suffices.
template <typename A> DRWKV_HD A rcp_(A x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(float(x)));
  return A(r);
#else
  return A(1) / x;
#endif
}
template <typename A> DRWKV_HD A abs_(A x) { return x < A(0) ? -x : x; }
template <typename A> DRWKV_HD A max_(A x, A y) {
#if defined(__CUDA_ARCH__)
  return fmaxf(x, y);  // one instruction (the operands are never NaN)
#else
  return x > y ? x : y;
#endif
}

template <typename A> struct Sum {
  A p{}, a{}, b{};  // value 2^p·(a, b)
  A da{}, db{};     // ∂/∂w (natural w) of the value, scaled by 2^p; zero when not tracked
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

// The same value with b scaled into [1, 2) by an exact power of two (p absorbs it): p is then within one
// of log2 of the positive component, so the sum's p is a tight bound of its terms. Zero b: empty.
template <typename A> DRWKV_HD Sum<A> normalized(Sum<A> s) {
  if (!(s.b > A(0))) return empty_sum<A>();
  int e = 0;  // b·2^{−e} ∈ [1, 2)
  A f;
  if constexpr (sizeof(A) == sizeof(float)) {  // the exponent field (b ≤ 16 here; subnormal b: e = −127)
    e = int((float_bits(float(s.b)) >> 23) & 0xffu) - 127;
    f = A(bits_float(uint32_t(127 - e) << 23));
  } else {
    std::frexp(s.b, &e);
    e -= 1;
    f = std::ldexp(A(1), -e);
  }
  s.p += A(e);
  s.a *= f;
  s.b *= f;
  s.da *= f;
  s.db *= f;
  return s;
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

// ---- per-token ("safe") chunk arithmetic: any w, any u ---------------------------------------------------
// Every output gets its own running maximum (one exponential per push, three per output). Used for
// channels outside the fast path's range (bi_wkv_chunk.h) and as the reference of its semantics.

// Values of token j in a scan: (x1, 1) for the forward sums over (k, v), (x1, x1·y) for the backward
// sums over (−m, ẑ) whose second component carries ẑ·y.
template <bool kTimesY, typename A> DRWKV_HD A second_value(A x1, A y) { return kTimesY ? x1 * y : A(1); }

// Chunk summaries: left measured at the chunk's last position, right at its first.
template <typename A, int N, bool kDeriv, bool kTimesY>
DRWKV_HD void safe_summaries(const A (&key)[N], const A (&x1)[N], const A (&y)[N], A w2, Sum<A>& left,
                             Sum<A>& right) {
  left = empty_sum<A>();
  right = empty_sum<A>();
DRWKV_BIWKV_UNROLL
  for (int j = 0; j < N; ++j) {  // two independent chains, interleaved
    const int r = N - 1 - j;
    push<A, kDeriv>(left, w2, key[j], x1[j], second_value<kTimesY>(x1[j], y[j]));
    push<A, false>(right, w2, key[r], x1[r], second_value<kTimesY>(x1[r], y[r]));
  }
}

// Forward outputs of one chunk (§2.3 combine) from its carries; `left` (measured at the chunk's first
// position − 1) advances to the chunk's last position. k2 = k·log2 e (kEmpty for absent tokens), tokens
// j ≥ valid are absent (their y, z are 0). kZ: also ẑ = dy/den and the backward key −m (kEmpty for absent
// tokens). kGrads: the contributions of these outputs to ∂L/∂u and to the left-source half of ∂L/∂w
// (Σ_t z_t·∂Lsum_t/∂w·(·, −y_t)); `left` then tracks its derivatives. The chunk is done in two halves
// (the right state at the middle first); the right states of a half are held in key / y / z until the
// outputs replace them.
template <typename A, int N, bool kZ, bool kGrads>
DRWKV_HD void safe_rows(const A (&k2)[N], const A (&v)[N], const A (&dy)[N], int valid, A w2, A u2, Sum<A>& left,
                        const Sum<A>& carry_right, A (&y)[N], A (&z)[N], A (&key)[N], A& gw, A& gu) {
  static_assert(N % 2 == 0, "two halves");
  constexpr int H = N / 2;
  Sum<A> mid = carry_right;  // measured at the first position of the second half
DRWKV_BIWKV_UNROLL
  for (int j = N - 1; j >= H; --j) push<A, false>(mid, w2, k2[j], v[j], A(1));
DRWKV_BIWKV_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int j0 = half * H;
    Sum<A> r = half == 0 ? mid : carry_right;
DRWKV_BIWKV_UNROLL
    for (int j = j0 + H - 1; j >= j0; --j) {  // right states, for t = last .. first of the half
      key[j] = r.p;
      y[j] = r.a;
      z[j] = r.b;
      push<A, false>(r, w2, k2[j], v[j], A(1));
    }
DRWKV_BIWKV_UNROLL
    for (int j = j0; j < j0 + H; ++j) {
      const bool in = j < valid;
      A ks = u2 + k2[j];
      A m = max_(max_(left.p, key[j]), ks);  // bounds every exponent of Den_t
      A eL = exp2_(left.p - m), eR = exp2_(key[j] - m), eS = exp2_(ks - m);
      A den = eL * left.b + eR * z[j] + eS;  // ≥ 1: the largest term has factor 1 and b ≥ 1
      A rinv = rcp_(den);
      A yj = in ? (eL * left.a + eR * y[j] + eS * v[j]) * rinv : A(0);
      y[j] = yj;
      if (kZ) {
        A zj = in ? dy[j] * rinv : A(0);
        z[j] = zj;
        key[j] = in ? -m : A(kEmpty);
        if (kGrads) {
          gu += zj * eS * (v[j] - yj);
          gw += zj * eL * (left.da - yj * left.db);
        }
      }
      push<A, kGrads>(left, w2, k2[j], v[j], A(1));
    }
  }
}

// Backward outputs of one chunk (§2.4) from the carries of the backward scans over (−m, ẑ, ẑ·y): dk, dv
// and the right-source half of ∂L/∂w (Σ_i e^{k_i}·
// (v_i·∂P_i/∂w − ∂Q_i/∂w) over the left scan). `left` (measured at the chunk's first position − 1, with
// derivatives) advances to its last position. The chunk is done in two halves (the right state at the
// middle first), which halves the right parts held at once.
template <typename A, int N>
DRWKV_HD void safe_backward(const A (&k2)[N], const A (&v)[N], const A (&y)[N], const A (&z)[N], const A (&key)[N],
                            A w2, A u2, Sum<A>& left, const Sum<A>& carry_right, A (&dk)[N], A (&dv)[N], A& gw) {
  static_assert(N % 2 == 0, "two halves");
  constexpr int H = N / 2;
  Sum<A> mid = carry_right;  // measured at the first position of the second half
DRWKV_BIWKV_UNROLL
  for (int j = N - 1; j >= H; --j) push<A, false>(mid, w2, key[j], z[j], z[j] * y[j]);
DRWKV_BIWKV_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int j0 = half * H;
    Sum<A> r = half == 0 ? mid : carry_right;  // right parts of the half in dv / dk, last .. first
DRWKV_BIWKV_UNROLL
    for (int h = H - 1; h >= 0; --h) {
      const int j = j0 + h;
      A eR = exp2_(k2[j] + r.p);  // ≤ 1: m_t bounds k_i − (|t−i|−1)w
      dv[j] = eR * r.a;
      dk[j] = eR * r.b;
      push<A, false>(r, w2, key[j], z[j], z[j] * y[j]);
    }
DRWKV_BIWKV_UNROLL
    for (int h = 0; h < H; ++h) {
      const int j = j0 + h;
      A eL = exp2_(k2[j] + left.p);
      A P = eL * left.a + dv[j], Q = eL * left.b + dk[j];
      A zs = z[j] * exp2_(u2 + k2[j] + key[j]);  // z_j·e^{u+k_j} (key = −m_j; z = 0 for absent tokens)
      dk[j] = v[j] * P - Q + zs * (v[j] - y[j]);
      dv[j] = P + zs;
      gw += eL * (v[j] * left.da - left.db);
      push<A, true>(left, w2, key[j], z[j], z[j] * y[j]);
    }
  }
}

}  // namespace drwkv::kernels::bi_wkv_detail
