// Values that backward closures need but the forward pass does not keep: recomputed on first use from
// tensors that are kept anyway, shared by a known number of consumers and dropped after the last one has
// taken them. Every kernel is deterministic, so a recomputed value is bitwise the forward's.
//
// Used for cheap elementwise results whose storage would dominate activation memory (the token-shift
// mixes, and with DrwkvModel::set_recompute_elementwise the LayerNorm-modulate outputs): an op given a
// Recomputed for an input it saves keeps the Recomputed instead of the tensor.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace drwkv::autograd {

class Recomputed {
 public:
  // `f` computes the values (it runs with gradients off and may take other Recomputed values);
  // `consumers` get() calls share one evaluation, after which the cache is dropped (a later get()
  // evaluates again).
  Recomputed(std::function<std::vector<Tensor>()> f, int consumers) : f_(std::move(f)), consumers_(consumers) {}
  Tensor get(int i = 0);

 private:
  std::function<std::vector<Tensor>()> f_;
  int consumers_, taken_ = 0;
  std::vector<Tensor> cache_;
};
using RecomputedPtr = std::shared_ptr<Recomputed>;

// One tensor from a function of kept tensors, for `consumers` get() calls.
RecomputedPtr recomputed(std::function<Tensor()> f, int consumers);

// What a backward closure saves of an input: the tensor itself, or (when given) its recomputation.
class SavedInput {
 public:
  SavedInput(const Tensor& value, RecomputedPtr again)
      : kept_(again ? Tensor() : value), again_(std::move(again)) {}
  Tensor get() const { return again_ ? again_->get() : kept_; }

 private:
  Tensor kept_;
  RecomputedPtr again_;
};

}  // namespace drwkv::autograd
