// Flat parameter buffers (models/parameter_store.h).
#include "models/parameter_store.h"

#include <cmath>

#include "core/philox.h"
#include "core/rng.h"

namespace drwkv::models {
namespace {
// FNV-1a: a name hash that is the same on every platform and library version.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}
}  // namespace

int ParameterStore::add(const std::string& name, const Shape& shape, Precision precision, Initializer init) {
  DRWKV_ASSERT(!finalized(), "parameter %s registered after finalize", name.c_str());
  DRWKV_ASSERT(find(name) < 0, "parameter %s registered twice", name.c_str());
  ParamInfo p;
  p.name = name;
  p.shape = shape;
  p.numel = shape.numel();
  p.offset = padded_;
  p.precision = precision;
  padded_ += (p.numel + kAlign - 1) / kAlign * kAlign;
  info_.push_back(p);
  init_.push_back(std::move(init));
  return int(info_.size()) - 1;
}

int ParameterStore::find(const std::string& name) const {
  for (size_t i = 0; i < info_.size(); ++i)
    if (info_[i].name == name) return int(i);
  return -1;
}

int64_t ParameterStore::parameter_count() const {
  int64_t n = 0;
  for (const ParamInfo& p : info_) n += p.numel;
  return n;
}

void ParameterStore::finalize(Device device, DType compute_dtype, uint64_t seed, int64_t total_multiple) {
  DRWKV_ASSERT(!finalized(), "finalize called twice");
  DRWKV_ASSERT(total_multiple >= 1, "finalize: total_multiple %lld", (long long)total_multiple);
  padded_ = (padded_ + total_multiple - 1) / total_multiple * total_multiple;
  DRWKV_ASSERT(compute_dtype == DType::F32 || compute_dtype == DType::BF16 || compute_dtype == DType::F64,
               "compute dtype must be f32, bf16 or f64");
  device_ = device;
  compute_dtype_ = compute_dtype;
  // f64 stores (gradient checks) keep master, gradients and compute in f64
  DType master_dtype = compute_dtype == DType::F64 ? DType::F64 : DType::F32;
  std::vector<float> host(size_t(padded_), 0.0f);
  for (size_t i = 0; i < info_.size(); ++i) {
    uint64_t key = rng_mix({name_hash(info_[i].name), 0x9a7a3ull});
    init_[i](host.data() + info_[i].offset, info_[i].numel, seed, key);
  }
  params_ = Tensor::from_vector(host, Shape{padded_}, device, master_dtype);
  grads_ = Tensor::zeros(Shape{padded_}, master_dtype, device);
  if (compute_dtype == DType::BF16) compute_ = params_.to(DType::BF16);
  leaves_.clear();
  for (size_t i = 0; i < info_.size(); ++i) {
    const ParamInfo& p = info_[i];
    bool use_copy = p.precision == Precision::Compute && compute_.defined();
    Tensor value = (use_copy ? compute_ : params_).narrow(0, p.offset, p.numel).view(p.shape);
    autograd::Variable v(value, true, p.name);
    v.bind_grad(grad_view(int(i)));
    leaves_.push_back(v);
  }
}

Tensor ParameterStore::master(int i) const {
  const ParamInfo& p = info_[size_t(i)];
  return params_.narrow(0, p.offset, p.numel).view(p.shape);
}

Tensor ParameterStore::grad(int i) const {
  if (size_t(i) < leaves_.size() && leaves_[size_t(i)].grad_pending_reset()) (void)leaves_[size_t(i)].grad();
  return grad_view(i);
}

Tensor ParameterStore::grad_view(int i) const {
  const ParamInfo& p = info_[size_t(i)];
  return grads_.narrow(0, p.offset, p.numel).view(p.shape);
}

void ParameterStore::zero_grads() {
  for (autograd::Variable& v : leaves_) v.reset_grad();
}

void ParameterStore::settle_grads() {
  for (const autograd::Variable& v : leaves_)
    if (v.grad_pending_reset()) (void)v.grad();  // grad() zeroes a reset gradient nothing has written
}

void ParameterStore::refresh_compute_copy() {
  if (compute_.defined()) compute_.copy_(params_);
}

// ---- initialisers -------------------------------------------------------------------------------
Initializer init_zeros() {
  return [](float* v, int64_t n, uint64_t, uint64_t) {
    for (int64_t i = 0; i < n; ++i) v[i] = 0.0f;
  };
}

Initializer init_constant(float value) {
  return [value](float* v, int64_t n, uint64_t, uint64_t) {
    for (int64_t i = 0; i < n; ++i) v[i] = value;
  };
}

Initializer init_xavier_uniform(int64_t fan_in, int64_t fan_out) {
  double s = std::sqrt(6.0 / double(fan_in + fan_out));
  return [s](float* v, int64_t n, uint64_t seed, uint64_t key) {
    for (int64_t i = 0; i < n; ++i) v[i] = float((2.0 * philox::uniform_at(seed, key, 0, uint64_t(i)) - 1.0) * s);
  };
}

Initializer init_normal(double std_dev) {
  return [std_dev](float* v, int64_t n, uint64_t seed, uint64_t key) {
    for (int64_t i = 0; i < n; ++i) v[i] = philox::normal_at(seed, key, 0, uint64_t(i), 0.0, std_dev);
  };
}

Initializer init_formula(std::function<float(int64_t)> f) {
  return [f = std::move(f)](float* v, int64_t n, uint64_t, uint64_t) {
    for (int64_t i = 0; i < n; ++i) v[i] = f(i);
  };
}

}  // namespace drwkv::models
