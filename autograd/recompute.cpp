// Shared recomputation of values for backward closures (autograd/recompute.h).
#include "autograd/recompute.h"

#include "autograd/variable.h"

namespace drwkv::autograd {

Tensor Recomputed::get(int i) {
  if (cache_.empty()) {
    NoGradGuard ng;
    cache_ = f_();
  }
  Tensor t = cache_[size_t(i)];
  if (++taken_ == consumers_) {
    cache_.clear();
    taken_ = 0;
  }
  return t;
}

RecomputedPtr recomputed(std::function<Tensor()> f, int consumers) {
  return std::make_shared<Recomputed>([f = std::move(f)] { return std::vector<Tensor>{f()}; }, consumers);
}

}  // namespace drwkv::autograd
