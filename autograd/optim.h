// Optimizer and bookkeeping over flat parameter buffers (kernels/optim.h, kernels/reduce.h): one or a
// few launches per step for all parameters together, never one per parameter.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace drwkv::autograd {

struct AdamWConfig {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// One AdamW step (bias-corrected, decoupled weight decay) over flat f32 buffers params, grads, m, v
// (same length). `step` is the 1-based step number. `grad_scale` (device or host f32 scalar tensor [1],
// optional) multiplies the gradients first (gradient clipping). When `compute_copy` is defined (a bf16
// buffer of the same length) it receives the updated parameters rounded to bf16 in the same pass; when
// `ema` is defined (f32, same length) it is updated as ema_update(ema, params, ema_decay) would after
// the step, in the same pass (one read of the parameters fewer).
void adamw_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const AdamWConfig& cfg, int64_t step,
                const Tensor& grad_scale = Tensor(), Tensor compute_copy = Tensor(), Tensor ema = Tensor(),
                double ema_decay = 0.0);

// ema = decay · ema + (1 − decay) · params over flat f32 buffers, one pass.
void ema_update(Tensor& ema, const Tensor& params, double decay);

// Σ x² of a flat buffer as a float64 scalar tensor [1] on x's device (no host synchronisation).
Tensor sum_squares(const Tensor& x);

}  // namespace drwkv::autograd
