// Gaussian diffusion arithmetic (MODEL.md §5): forward noising, the hybrid training loss (ε-MSE plus
// the variational-bound term with a stop-gradient on ε̂) and its gradient, the DDPM and DDIM reverse
// steps, and classifier-free guidance. Everything is elementwise over [B, C, P] images (P = H·W pixels)
// with per-sample coefficients gathered from the float64 schedule tables by the caller (cast to acc_t).
//
// Per-sample coefficient rows (`coef`, [B, kCoefs], acc_t):
//   0 sqrt(ᾱ_t)   1 sqrt(1 − ᾱ_t)   2 sqrt(1/ᾱ_t)   3 sqrt(1/ᾱ_t − 1)   4 c1_t   5 c2_t
//   6 log β_t      7 log β̃c_t (clipped posterior log-variance)   8 [t == 0]   9 ᾱ_prev (DDIM)
//   10 σ_t for DDIM (η·…)   11 [t > 0] noise switch
// `out` holds the model output [B, 2C, P] (channels 0..C−1 = ε̂, C..2C−1 = v) or [B, C, P] for a
// fixed-variance model (learned = false: vb = 0, σ² = β_t).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

inline constexpr int kCoefs = 12;

// x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε.
template <typename T>
void diffusion_q_sample_cpu(T* xt, const T* x0, const T* eps, const acc_t<T>* coef, int64_t B, int64_t CP);
template <typename T>
void diffusion_q_sample_cuda(T* xt, const T* x0, const T* eps, const acc_t<T>* coef, int64_t B, int64_t CP,
                             StreamHandle s);

// Per-sample loss terms: terms[b] = (mse_b, vb_b), vb in bits as MODEL.md §5.2 (mean over C·P).
template <typename T>
void diffusion_loss_forward_cpu(acc_t<T>* terms, const T* out, const T* x0, const T* xt, const T* eps,
                                const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned);
template <typename T>
void diffusion_loss_forward_cuda(acc_t<T>* terms, const T* out, const T* x0, const T* xt, const T* eps,
                                 const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned,
                                 StreamHandle s);

// dout = g_b · ∂(mse_b + vb_b)/∂out (overwrites dout; ε̂ receives only the MSE gradient, v only the vb one).
template <typename T>
void diffusion_loss_backward_cpu(T* dout, const acc_t<T>* g, const T* out, const T* x0, const T* xt, const T* eps,
                                 const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned);
template <typename T>
void diffusion_loss_backward_cuda(T* dout, const acc_t<T>* g, const T* out, const T* x0, const T* xt,
                                  const T* eps, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned,
                                  StreamHandle s);

// One reverse step in place on x (= x_t, becomes x_{t−1}) from the model output; z is fresh N(0, I).
// DDPM (§5.3): x̂0 = sqrt(1/ᾱ) x − sqrt(1/ᾱ − 1) ε̂ (never clipped), μ = c1 x̂0 + c2 x,
//   x ← μ + [t > 0] exp(½ logσ²) z.
// DDIM (§5.4): ε' = (sqrt(1/ᾱ) x − x̂0) / sqrt(1/ᾱ − 1), x ← x̂0 sqrt(ᾱ_prev) + sqrt(1 − ᾱ_prev − σ²) ε' + [t > 0] σ z.
template <typename T>
void diffusion_ddpm_step_cpu(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                             bool learned);
template <typename T>
void diffusion_ddpm_step_cuda(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C,
                              int64_t P, bool learned, StreamHandle s);
template <typename T>
void diffusion_ddim_step_cpu(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                             int64_t out_channels);
template <typename T>
void diffusion_ddim_step_cuda(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C,
                              int64_t P, int64_t out_channels, StreamHandle s);

// Classifier-free guidance on a batch [2n, Cout, P] holding the conditional half then the
// unconditional half: for channels c < guided, ε = ε_u + scale (ε_c − ε_u) is written into both halves;
// the other channels keep each half's own value (MODEL.md §5.5).
template <typename T>
void diffusion_cfg_cpu(T* out, int64_t n, int64_t Cout, int64_t P, int64_t guided, double scale);
template <typename T>
void diffusion_cfg_cuda(T* out, int64_t n, int64_t Cout, int64_t P, int64_t guided, double scale, StreamHandle s);

}  // namespace drwkv::kernels
