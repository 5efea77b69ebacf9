// Optimizer step and gradient norm over a parameter store's gradient ranges (models/optimizer_step.h).
#include "models/optimizer_step.h"

namespace drwkv::models {

double grad_sum_squares(ParameterStore& store) {
  const int n = int(store.grad_segments().size());
  Tensor parts = Tensor::empty(Shape{n}, DType::F64, store.device());
  for (int k = 0; k < n; ++k) parts.narrow(0, k, 1).copy_(autograd::sum_squares(store.segment_grads(k)));
  double total = 0;
  for (double p : parts.to_vector<double>()) total += p;
  return total;
}

void adamw_step(ParameterStore& store, Tensor& m, Tensor& v, const autograd::AdamWConfig& cfg, int64_t step,
                const Tensor& grad_scale, Tensor ema, double ema_decay) {
  const int64_t n = store.padded_numel();
  DRWKV_ASSERT(m.numel() == n && v.numel() == n && (!ema.defined() || ema.numel() == n),
               "adamw_step over a store of %lld elements: m %s, v %s, ema %s", (long long)n, describe(m).c_str(),
               describe(v).c_str(), ema.defined() ? describe(ema).c_str() : "none");
  Tensor& params = store.flat_params();
  Tensor& copy = store.compute_copy();
  for (int k = 0; k < int(store.grad_segments().size()); ++k) {
    const FlatRange& r = store.grad_segments()[size_t(k)];
    const int64_t len = r.end - r.begin;
    Tensor p = params.narrow(0, r.begin, len), mk = m.narrow(0, r.begin, len), vk = v.narrow(0, r.begin, len);
    autograd::adamw_step(p, store.segment_grads(k), mk, vk, cfg, step, grad_scale,
                         copy.defined() ? copy.narrow(0, r.begin, len) : Tensor(),
                         ema.defined() ? ema.narrow(0, r.begin, len) : Tensor(), ema_decay);
  }
}

}  // namespace drwkv::models
