// Closed-form weights of the official Bi-WKV kernel (MODEL.md §2.6 table), shared by the CPU and CUDA
// implementations of the `official_compat` variant.
//
// The kernel splits each sequence into segments of S = ceil(T/32) tokens; with t0 = S·floor(t/S) the
// first token of t's segment, output t is y_t = Σ_i ω_{t,i} e^{k_i} v_i / Σ_i ω_{t,i} e^{k_i} with
//   i > t            ω = e^{−(i−t)w}
//   i < t0           ω = e^{−(t−i)w}
//   i = t0 < t       ω = e^{−(t−i−1)w}
//   t0 < i < t       ω = e^{−(t−i−1)w} + (1 − e^{w})·e^{(t−i)w}
//   i = t            ω = e^{u} + [t > t0]·(1 − e^{w})
// ω_{t,i}·e^{k_i} is written as at most two terms c_r·e^{x_r} (x_r includes k_i); dc_r·e^{x_r} is the
// derivative of term r with respect to w (natural units), du_r·e^{x_r} with respect to u.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace drwkv::kernels::bi_wkv_detail {

template <typename A> DRWKV_HD A exp_(A x) {
#if defined(__CUDA_ARCH__)
  return ::expf(float(x));
#else
  return std::exp(x);
#endif
}
template <typename A> DRWKV_HD A expm1_(A x) {
#if defined(__CUDA_ARCH__)
  return ::expm1f(float(x));
#else
  return std::expm1(x);
#endif
}

// Segment length of the official kernel (32 segments per sequence).
DRWKV_HD int64_t compat_segment(int64_t T) { return (T + 31) / 32; }

template <typename A> struct CompatTerms {
  int count;
  A x[2], c[2], dc[2], du[2];
};

// Per-channel constants: w, u (natural units), e^w and 1 − e^w.
template <typename A> struct CompatChannel {
  A w, u, ew, one_minus_ew;
};
template <typename A> DRWKV_HD CompatChannel<A> compat_channel(A w, A u) {
  return {w, u, exp_(w), -expm1_(w)};
}

template <typename A>
DRWKV_HD CompatTerms<A> compat_terms(int64_t t, int64_t i, int64_t S, const CompatChannel<A>& ch, A k_i) {
  CompatTerms<A> r{};
  const int64_t t0 = S * (t / S);
  const A w = ch.w;
  r.count = 1;
  r.c[0] = A(1);
  r.du[0] = A(0);
  if (i > t) {
    A d = A(i - t);
    r.x[0] = k_i - d * w;
    r.dc[0] = -d;
  } else if (i < t0) {
    A d = A(t - i);
    r.x[0] = k_i - d * w;
    r.dc[0] = -d;
  } else if (i < t) {  // t0 ≤ i < t
    A d = A(t - i - 1);
    r.x[0] = k_i - d * w;
    r.dc[0] = -d;
    if (i > t0) {
      A dist = A(t - i);
      r.count = 2;
      r.x[1] = k_i + dist * w;
      r.c[1] = ch.one_minus_ew;
      r.dc[1] = -ch.ew + ch.one_minus_ew * dist;
      r.du[1] = A(0);
    }
  } else {  // i == t
    r.x[0] = ch.u + k_i;
    r.dc[0] = A(0);
    r.du[0] = A(1);
    if (t > t0) {
      r.count = 2;
      r.x[1] = k_i;
      r.c[1] = ch.one_minus_ew;
      r.dc[1] = -ch.ew;
      r.du[1] = A(0);
    }
  }
  return r;
}

}  // namespace drwkv::kernels::bi_wkv_detail
