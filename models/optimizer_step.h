// The optimizer step and the gradient norm over a parameter store, range by range of its gradients
// (one range for a flat buffer, one per segment otherwise; models/parameter_store.h).
#pragma once

#include <cstdint>

#include "autograd/optim.h"
#include "models/parameter_store.h"

namespace drwkv::models {

// Σ g² over every gradient (padding included, which is zero), in float64: one reduction per range on
// the store's device, their results copied to the host together (one synchronisation) and added there
// in range order.
double grad_sum_squares(ParameterStore& store);

// autograd::adamw_step over the store: master values, gradients, the moments m and v (f32, the store's
// padded length) and, when defined, the EMA (same length, decay ema_decay); refreshes the bf16 compute
// copy in the same pass. One launch per gradient range.
void adamw_step(ParameterStore& store, Tensor& m, Tensor& v, const autograd::AdamWConfig& cfg, int64_t step,
                const Tensor& grad_scale = Tensor(), Tensor ema = Tensor(), double ema_decay = 0.0);

}  // namespace drwkv::models
