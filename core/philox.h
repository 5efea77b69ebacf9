// Philox4x32-10 counter-based generator and the transforms to uniform and normal numbers, written once
// for the host and the device so that the same (seed, stream, offset) gives bit-identical numbers on
// both. Normals use Box-Muller in float64 with our own logarithm and sine/cosine built only from
// correctly rounded +, -, *, / (no fused multiply-add, no library transcendental), then round to f32.
//
// Numbering: block b of stream s under seed k is philox(counter = (b_lo, b_hi, s_lo, s_hi), key =
// (k_lo, k_hi)), four 32-bit words. Element i of a fill starting at block `offset` uses block
// offset + i/4, word i%4 (uniform); the pair (2j, 2j+1) of a normal fill uses block offset + j/2,
// words 2(j%2) and 2(j%2)+1.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace drwkv::philox {

struct Words {
  uint32_t x[4];
};

DRWKV_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

DRWKV_HD Words block(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t c0 = uint32_t(index), c1 = uint32_t(index >> 32), c2 = uint32_t(stream), c3 = uint32_t(stream >> 32);
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Words{{c0, c1, c2, c3}};
}

// Uniform in (0, 1) with 24 random bits: exactly representable in f32.
DRWKV_HD float to_uniform(uint32_t x) { return (float(x >> 8) + 0.5f) * (1.0f / 16777216.0f); }

// ---- deterministic float64 arithmetic (no contraction into FMA on either side) ------------------
DRWKV_HD double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
DRWKV_HD double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
DRWKV_HD double ddiv(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
DRWKV_HD double dsqrt(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return __builtin_sqrt(a);
#endif
}
DRWKV_HD uint64_t dbits(double d) {
#if defined(__CUDA_ARCH__)
  return uint64_t(__double_as_longlong(d));
#else
  uint64_t u;
  __builtin_memcpy(&u, &d, 8);
  return u;
#endif
}
DRWKV_HD double bitsd(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double((long long)u);
#else
  double d;
  __builtin_memcpy(&d, &u, 8);
  return d;
#endif
}

// Natural logarithm of a positive normal double: e·ln2 + 2·atanh((m−1)/(m+1)), m in [√½, √2).
DRWKV_HD double det_log(double x) {
  uint64_t b = dbits(x);
  int e = int((b >> 52) & 0x7ff) - 1023;
  double m = bitsd((b & 0x000fffffffffffffull) | 0x3ff0000000000000ull);  // [1, 2)
  if (m > 1.4142135623730951) {
    m = dmul(m, 0.5);
    e += 1;
  }
  double s = ddiv(dadd(m, -1.0), dadd(m, 1.0));
  double s2 = dmul(s, s);
  // Σ_{k=0}^{12} s^(2k+1)/(2k+1), Horner in s²; |s| ≤ 0.1716 so the tail is below 1e-19
  double p = 1.0 / 25.0;
  p = dadd(dmul(p, s2), 1.0 / 23.0);
  p = dadd(dmul(p, s2), 1.0 / 21.0);
  p = dadd(dmul(p, s2), 1.0 / 19.0);
  p = dadd(dmul(p, s2), 1.0 / 17.0);
  p = dadd(dmul(p, s2), 1.0 / 15.0);
  p = dadd(dmul(p, s2), 1.0 / 13.0);
  p = dadd(dmul(p, s2), 1.0 / 11.0);
  p = dadd(dmul(p, s2), 1.0 / 9.0);
  p = dadd(dmul(p, s2), 1.0 / 7.0);
  p = dadd(dmul(p, s2), 1.0 / 5.0);
  p = dadd(dmul(p, s2), 1.0 / 3.0);
  p = dadd(dmul(p, s2), 1.0);
  return dadd(dmul(double(e), 0.6931471805599453), dmul(2.0, dmul(s, p)));
}

// sin and cos of 2π·u for u in [0, 1): exact quadrant reduction on u, Taylor series on |x| ≤ π/4.
DRWKV_HD void det_sincos_2pi(double u, double* s_out, double* c_out) {
  double q = dmul(u, 4.0);  // exact
  int k = int(q);
  double f = dadd(q, -double(k));  // exact, in [0, 1)
  if (f > 0.5) {
    f = dadd(f, -1.0);
    k += 1;
  }
  double x = dmul(f, 1.5707963267948966);  // in [−π/4, π/4]
  double x2 = dmul(x, x);
  // sin x = x(1 − x²/3! + x⁴/5! − … − x¹⁶/17!)   cos x = 1 − x²/2! + … + x¹⁸/18!
  double ps = -1.0 / 355687428096000.0;      // −1/17!
  ps = dadd(dmul(ps, x2), 1.0 / 1307674368000.0);  // 1/15!
  ps = dadd(dmul(ps, x2), -1.0 / 6227020800.0);
  ps = dadd(dmul(ps, x2), 1.0 / 39916800.0);
  ps = dadd(dmul(ps, x2), -1.0 / 362880.0);
  ps = dadd(dmul(ps, x2), 1.0 / 5040.0);
  ps = dadd(dmul(ps, x2), -1.0 / 120.0);
  ps = dadd(dmul(ps, x2), 1.0 / 6.0);
  double sn = dadd(x, -dmul(dmul(x, x2), ps));
  double pc = 1.0 / 6402373705728000.0;      // 1/18!
  pc = dadd(dmul(pc, x2), -1.0 / 20922789888000.0);  // −1/16!
  pc = dadd(dmul(pc, x2), 1.0 / 87178291200.0);
  pc = dadd(dmul(pc, x2), -1.0 / 479001600.0);
  pc = dadd(dmul(pc, x2), 1.0 / 3628800.0);
  pc = dadd(dmul(pc, x2), -1.0 / 40320.0);
  pc = dadd(dmul(pc, x2), 1.0 / 720.0);
  pc = dadd(dmul(pc, x2), -1.0 / 24.0);
  pc = dadd(dmul(pc, x2), 0.5);
  double cs = dadd(1.0, -dmul(x2, pc));
  switch (k & 3) {
    case 0: *s_out = sn; *c_out = cs; break;
    case 1: *s_out = cs; *c_out = -sn; break;
    case 2: *s_out = -sn; *c_out = -cs; break;
    default: *s_out = -cs; *c_out = sn; break;
  }
}

// Two standard normals (as float64) from two 32-bit words.
DRWKV_HD void box_muller(uint32_t a, uint32_t b, double* z0, double* z1) {
  double u1 = dmul(dadd(double(a), 0.5), 2.3283064365386963e-10);  // (0, 1)
  double u2 = dmul(double(b), 2.3283064365386963e-10);             // [0, 1)
  double r = dsqrt(dmul(-2.0, det_log(u1)));
  double s, c;
  det_sincos_2pi(u2, &s, &c);
  *z0 = dmul(r, c);
  *z1 = dmul(r, s);
}

// Element i of a uniform fill.
DRWKV_HD float uniform_at(uint64_t seed, uint64_t stream, uint64_t offset, uint64_t i) {
  Words w = block(seed, stream, offset + i / 4);
  return to_uniform(w.x[i % 4]);
}

// Element i of a normal fill with mean and std, rounded once to f32.
DRWKV_HD float normal_at(uint64_t seed, uint64_t stream, uint64_t offset, uint64_t i, double mean, double std_dev) {
  uint64_t pair = i / 2;
  Words w = block(seed, stream, offset + pair / 2);
  int base = int(pair % 2) * 2;
  double z0, z1;
  box_muller(w.x[base], w.x[base + 1], &z0, &z1);
  double z = (i % 2) ? z1 : z0;
  return float(dadd(mean, dmul(std_dev, z)));
}

}  // namespace drwkv::philox
