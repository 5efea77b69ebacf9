// The per-element formulas behind kernels/diffusion.h, written once for the host and the device.
#pragma once

#include <cmath>

#include "core/dtype.h"

namespace drwkv::kernels::diffusion_math {

template <typename A> DRWKV_HD A exp_(A x) { return ::exp(x); }
template <> DRWKV_HD float exp_<float>(float x) { return ::expf(x); }
template <typename A> DRWKV_HD A log_(A x) { return ::log(x); }
template <> DRWKV_HD float log_<float>(float x) { return ::logf(x); }
template <typename A> DRWKV_HD A tanh_(A x) { return ::tanh(x); }
template <> DRWKV_HD float tanh_<float>(float x) { return ::tanhf(x); }

// Φ̃(z) = ½(1 + tanh(√(2/π)(z + 0.044715 z³))) and its derivative.
template <typename A> DRWKV_HD A approx_cdf(A z) {
  return A(0.5) * (A(1) + tanh_(A(0.7978845608028654) * (z + A(0.044715) * z * z * z)));
}
template <typename A> DRWKV_HD A approx_cdf_grad(A z) {
  A th = tanh_(A(0.7978845608028654) * (z + A(0.044715) * z * z * z));
  return A(0.5) * (A(1) - th * th) * A(0.7978845608028654) * (A(1) + A(3) * A(0.044715) * z * z);
}

// Variational-bound term of one element and its derivative with respect to logσ² (MODEL.md §5.2).
// x0, xt: data and noised data; eps_hat: the (stop-gradient) ε prediction; logvar: logσ²_θ.
template <typename A>
DRWKV_HD void vb_term(A x0, A xt, A eps_hat, A logvar, const A* c, A* value, A* dvalue_dlogvar) {
  A x0_hat = c[2] * xt - c[3] * eps_hat;
  A mu = c[4] * x0_hat + c[5] * xt;
  if (c[8] == A(0)) {  // t > 0: KL(q(x_{t−1}|x_t,x_0) ‖ p_θ), in nats here; caller divides by ln 2
    A mu_true = c[4] * x0 + c[5] * xt;
    A d = mu_true - mu;
    A e1 = exp_(c[7] - logvar), e2 = exp_(-logvar);
    *value = A(0.5) * (A(-1) + logvar - c[7] + e1 + d * d * e2);
    *dvalue_dlogvar = A(0.5) * (A(1) - e1 - d * d * e2);
    return;
  }
  // t = 0: −log of the discretised Gaussian likelihood (bin half-width 1/255)
  A s = exp_(A(-0.5) * logvar);
  A centered = x0 - mu;
  A up = centered + A(1.0 / 255.0), lo = centered - A(1.0 / 255.0);
  A cp = approx_cdf(s * up), cm = approx_cdf(s * lo);
  A lp, dlp_ds;  // log P and its derivative with respect to s
  if (x0 < A(-0.999)) {
    A v = cp > A(1e-12) ? cp : A(1e-12);
    lp = log_(v);
    dlp_ds = cp > A(1e-12) ? approx_cdf_grad(s * up) * up / cp : A(0);
  } else if (x0 > A(0.999)) {
    A one_minus = A(1) - cm;
    A v = one_minus > A(1e-12) ? one_minus : A(1e-12);
    lp = log_(v);
    dlp_ds = one_minus > A(1e-12) ? -approx_cdf_grad(s * lo) * lo / one_minus : A(0);
  } else {
    A delta = cp - cm;
    A v = delta > A(1e-12) ? delta : A(1e-12);
    lp = log_(v);
    dlp_ds = delta > A(1e-12) ? (approx_cdf_grad(s * up) * up - approx_cdf_grad(s * lo) * lo) / delta : A(0);
  }
  *value = -lp;
  *dvalue_dlogvar = -dlp_ds * (A(-0.5) * s);  // ds/dlogσ² = −½ s
}

// logσ²_θ from the model's variance output v (learned range).
template <typename A> DRWKV_HD A learned_logvar(A v, const A* c) {
  A f = (v + A(1)) * A(0.5);
  return f * c[6] + (A(1) - f) * c[7];
}

// One element of the hybrid loss (the CPU and CUDA kernels differ only in how they iterate): element i of
// the data [B, C, P], ie/iv its ε̂ and v positions in the model output [B, 2C (or C), P], coefficient row c.
// Adds (ε − ε̂)² to *mse and the vb value (nats) to *vb.
template <typename A, typename T>
DRWKV_HD void loss_element_terms(const T* out, const T* x0, const T* xt, const T* eps, const A* c, int64_t i, int64_t ie,
                                 int64_t iv, bool learned, A* mse, A* vb) {
  A eh = load_as<A>(out[ie]);
  A d = load_as<A>(eps[i]) - eh;
  *mse += d * d;
  if (learned) {
    A value, dv;
    vb_term(load_as<A>(x0[i]), load_as<A>(xt[i]), eh, learned_logvar(load_as<A>(out[iv]), c), c, &value, &dv);
    *vb += value;
  }
}

// dout at ie (and iv) = g · ∂(mse + vb)/∂out for one element; inv_n = 1 / (C·P). ε̂ gets only the MSE
// gradient (stop-gradient inside vb), v only the vb one (∂logσ²/∂v = ½(log β − logβ̃c), vb in bits).
template <typename A, typename T>
DRWKV_HD void loss_element_backward(T* dout, const T* out, const T* x0, const T* xt, const T* eps, const A* c, A g,
                                    int64_t i, int64_t ie, int64_t iv, bool learned, A inv_n) {
  A eh = load_as<A>(out[ie]);
  dout[ie] = store_as<T>(g * A(-2) * (load_as<A>(eps[i]) - eh) * inv_n);
  if (learned) {
    A value, dv;
    vb_term(load_as<A>(x0[i]), load_as<A>(xt[i]), eh, learned_logvar(load_as<A>(out[iv]), c), c, &value, &dv);
    dout[iv] = store_as<T>(g * dv * A(0.5) * (c[6] - c[7]) * inv_n * A(1.4426950408889634));
  }
}

// x_{t−1} of one element from x_t (DDPM, §5.3); z is the fresh noise.
template <typename A, typename T>
DRWKV_HD A ddpm_element(const T* x, const T* out, const T* z, const A* c, int64_t i, int64_t ie, int64_t iv, bool learned) {
  A xv = load_as<A>(x[i]);
  A lv = learned ? learned_logvar(load_as<A>(out[iv]), c) : c[6];
  A mu = c[4] * (c[2] * xv - c[3] * load_as<A>(out[ie])) + c[5] * xv;
  return mu + c[11] * exp_(A(0.5) * lv) * load_as<A>(z[i]);
}

}  // namespace drwkv::kernels::diffusion_math
