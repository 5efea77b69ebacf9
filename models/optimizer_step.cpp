// Optimizer step and gradient norm over a parameter store's gradient ranges (models/optimizer_step.h).
#include "models/optimizer_step.h"

#include <algorithm>
#include <vector>

namespace drwkv::models {

namespace {
// Calls f(k, lo, hi) for each gradient range k that meets [begin, end), with [lo, hi) the overlap.
template <typename F> void for_each_overlap(const ParameterStore& store, int64_t begin, int64_t end, F&& f) {
  for (int k = 0; k < int(store.grad_segments().size()); ++k) {
    const FlatRange& r = store.grad_segments()[size_t(k)];
    const int64_t lo = std::max(begin, r.begin), hi = std::min(end, r.end);
    if (lo < hi) f(k, lo, hi);
  }
}
}  // namespace

double grad_sum_squares(ParameterStore& store, int64_t begin, int64_t end) {
  if (end < 0) end = store.padded_numel();
  std::vector<Tensor> parts;
  for_each_overlap(store, begin, end, [&](int k, int64_t lo, int64_t hi) {
    parts.push_back(autograd::sum_squares(store.segment_grads(k).narrow(0, lo - store.grad_segments()[size_t(k)].begin,
                                                                        hi - lo)));
  });
  Tensor all = Tensor::empty(Shape{int64_t(parts.size())}, DType::F64, store.device());
  for (size_t i = 0; i < parts.size(); ++i) all.narrow(0, int64_t(i), 1).copy_(parts[i]);
  double total = 0;
  for (double p : all.to_vector<double>()) total += p;
  return total;
}

void adamw_step(ParameterStore& store, Tensor& m, Tensor& v, const autograd::AdamWConfig& cfg, int64_t step,
                const Tensor& grad_scale, Tensor ema, double ema_decay, int64_t state_begin) {
  const int64_t n = m.numel(), end = state_begin + n;
  DRWKV_ASSERT(state_begin >= 0 && end <= store.padded_numel() && v.numel() == n &&
                   (!ema.defined() || ema.numel() == n),
               "adamw_step over elements [%lld, %lld) of a store of %lld: m %s, v %s, ema %s", (long long)state_begin,
               (long long)end, (long long)store.padded_numel(), describe(m).c_str(), describe(v).c_str(),
               ema.defined() ? describe(ema).c_str() : "none");
  Tensor& params = store.flat_params();
  Tensor& copy = store.compute_copy();
  for_each_overlap(store, state_begin, end, [&](int k, int64_t lo, int64_t hi) {
    const int64_t len = hi - lo, at = lo - state_begin;
    Tensor p = params.narrow(0, lo, len), mk = m.narrow(0, at, len), vk = v.narrow(0, at, len);
    Tensor g = store.segment_grads(k).narrow(0, lo - store.grad_segments()[size_t(k)].begin, len);
    autograd::adamw_step(p, g, mk, vk, cfg, step, grad_scale, copy.defined() ? copy.narrow(0, lo, len) : Tensor(),
                         ema.defined() ? ema.narrow(0, at, len) : Tensor(), ema_decay);
  });
}

}  // namespace drwkv::models
