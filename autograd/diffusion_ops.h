// Diffusion arithmetic on tensors (kernels/diffusion.h): the differentiable hybrid loss, and the
// non-differentiable noising, reverse steps and classifier-free guidance used by trainers and samplers.
// `coef` is [B, kernels::kCoefs] in the images' accumulation dtype on their device (see the header of
// kernels/diffusion.h for the rows); images are [B, C, H, W].
#pragma once

#include "autograd/variable.h"

namespace drwkv::autograd {

// Columns of `coef` (kernels/diffusion.h kCoefs; the rows are documented there).
inline constexpr int kDiffusionCoefs = 12;

struct HybridLoss {
  Variable loss;  // [B] mse_b + vb_b (differentiable with respect to the model output)
  Tensor terms;   // [B, 2] (mse_b, vb_b), for logging
};

// MODEL.md §5.2: `out` [B, 2C, H, W] (learned variance) or [B, C, H, W]; ε̂ gets the MSE gradient only,
// the variance channels the variational-bound gradient only (stop-gradient on ε̂ inside vb).
HybridLoss hybrid_loss(const Variable& out, const Tensor& x0, const Tensor& xt, const Tensor& eps, const Tensor& coef,
                       bool learned_variance);

Tensor q_sample(const Tensor& x0, const Tensor& eps, const Tensor& coef);
void ddpm_step_(Tensor& x, const Tensor& out, const Tensor& z, const Tensor& coef, bool learned_variance);
void ddim_step_(Tensor& x, const Tensor& out, const Tensor& z, const Tensor& coef);
// out [2n, Cout, H, W]: guidance on channels [0, guided) written into both halves.
void cfg_combine_(Tensor& out, int64_t guided_channels, double scale);

}  // namespace drwkv::autograd
