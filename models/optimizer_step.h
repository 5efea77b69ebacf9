// The optimizer step and the gradient norm over a parameter store, range by range of its gradients
// (one range for a flat buffer, one per segment otherwise; models/parameter_store.h).
#pragma once

#include <cstdint>

#include "autograd/optim.h"
#include "models/parameter_store.h"

namespace drwkv::models {

// Σ g² over the gradients of layout elements [begin, end) (default: all, padding included, which is
// zero), in float64: one reduction per gradient range it meets, on the store's device, their results
// copied to the host together (one synchronisation) and added there in range order.
double grad_sum_squares(ParameterStore& store, int64_t begin = 0, int64_t end = -1);

// autograd::adamw_step over the store: master values, gradients, the moments m and v (f32) and, when
// defined, the EMA (decay ema_decay); refreshes the bf16 compute copy in the same pass. m, v (and ema)
// hold the state of layout elements [state_begin, state_begin + m.numel()): the whole layout, or a
// ZeRO-1 shard, whose parameters alone are updated. One launch per gradient range it meets.
void adamw_step(ParameterStore& store, Tensor& m, Tensor& v, const autograd::AdamWConfig& cfg, int64_t step,
                const Tensor& grad_scale = Tensor(), Tensor ema = Tensor(), double ema_decay = 0.0,
                int64_t state_begin = 0);

}  // namespace drwkv::models
