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
  if (compute_dtype == DType::BF16) compute_ = params_.to(DType::BF16);
  plan_segments();
  leaves_.clear();
  for (size_t i = 0; i < info_.size(); ++i) {
    const ParamInfo& p = info_[i];
    bool use_copy = p.precision == Precision::Compute && compute_.defined();
    Tensor value = (use_copy ? compute_ : params_).narrow(0, p.offset, p.numel).view(p.shape);
    leaves_.emplace_back(value, true, p.name);
  }
  if (grads_segmented()) {
    for (size_t i = 0; i < info_.size(); ++i) {
      const int k = segment_of_[i];
      leaves_[i].bind_grad_on_demand([this, k] { allocate_segment(k); });
    }
  } else {
    segment_buffers_[0] = Tensor::zeros(Shape{padded_}, master_dtype, device);
    for (size_t i = 0; i < info_.size(); ++i) leaves_[i].bind_grad(grad_view(int(i)));
  }
}

void ParameterStore::set_grad_segments(int64_t max_bytes) {
  DRWKV_ASSERT(!finalized(), "set_grad_segments after finalize");
  DRWKV_ASSERT(max_bytes > 0, "set_grad_segments(%lld): the segment size must be positive", (long long)max_bytes);
  segment_bytes_ = max_bytes;
}

// Segments tile [0, padded_): each extends over the padding up to the next one's start (the last to the
// end). Without segments, one range holds everything.
void ParameterStore::plan_segments() {
  std::vector<FlatSlot> slots;
  for (const ParamInfo& p : info_) slots.push_back({p.offset, p.numel});
  if (grads_segmented() && !slots.empty()) {
    segments_ = plan_flat_ranges(slots, int64_t(params_.element_size()), segment_bytes_);
    for (size_t k = 0; k < segments_.size(); ++k) segments_[k].end = k == 0 ? padded_ : segments_[k - 1].begin;
  } else {
    segments_ = {FlatRange{0, padded_, 0, int(info_.size()) - 1}};
  }
  segment_buffers_.assign(segments_.size(), Tensor());
  segment_gaps_.assign(segments_.size(), {});
  segment_of_.assign(info_.size(), 0);
  for (size_t k = 0; k < segments_.size(); ++k) {
    const FlatRange& r = segments_[k];
    for (int i = r.first_param; i <= r.last_param; ++i) {
      segment_of_[size_t(i)] = int(k);
      const ParamInfo& p = info_[size_t(i)];
      int64_t gap_end = i < r.last_param ? info_[size_t(i) + 1].offset : r.end;
      if (gap_end > p.offset + p.numel)
        segment_gaps_[k].push_back({p.offset + p.numel - r.begin, gap_end - p.offset - p.numel});
    }
  }
}

void ParameterStore::allocate_segment(int k) {
  const FlatRange& r = segments_[size_t(k)];
  Tensor& buf = segment_buffers_[size_t(k)];
  DRWKV_ASSERT(!buf.defined(), "gradient segment %d allocated twice", k);
  buf = Tensor::empty(Shape{r.end - r.begin}, params_.dtype(), device_);
  for (const FlatSlot& gap : segment_gaps_[size_t(k)]) buf.narrow(0, gap.offset, gap.numel).zero_();
  for (int i = r.first_param; i <= r.last_param; ++i) leaves_[size_t(i)].bind_grad(grad_view(i));
}

Tensor& ParameterStore::flat_grads() {
  DRWKV_ASSERT(!grads_segmented(), "flat_grads: this store holds its gradients in %zu segments; read them with "
               "segment_grads()", segments_.size());
  settle_grads();
  return segment_buffers_[0];
}

Tensor ParameterStore::segment_grads(int k) {
  DRWKV_ASSERT(k >= 0 && k < int(segments_.size()), "gradient segment %d of %zu", k, segments_.size());
  const FlatRange& r = segments_[size_t(k)];
  if (!segment_buffers_[size_t(k)].defined()) allocate_segment(k);
  for (int i = r.first_param; i <= r.last_param; ++i)
    if (leaves_[size_t(i)].grad_pending_reset()) (void)leaves_[size_t(i)].grad();
  return segment_buffers_[size_t(k)];
}

int64_t ParameterStore::allocated_grad_bytes() const {
  int64_t n = 0;
  for (const Tensor& b : segment_buffers_)
    if (b.defined()) n += b.numel() * int64_t(b.element_size());
  return n;
}

Tensor ParameterStore::master(int i) const {
  const ParamInfo& p = info_[size_t(i)];
  return params_.narrow(0, p.offset, p.numel).view(p.shape);
}

Tensor ParameterStore::grad(int i) const {
  (void)leaves_[size_t(i)].grad();  // allocates a released segment; zeroes a reset gradient nothing wrote
  return grad_view(i);
}

Tensor ParameterStore::grad_view(int i) const {
  const ParamInfo& p = info_[size_t(i)];
  const int k = segment_of_[size_t(i)];
  DRWKV_ASSERT(segment_buffers_[size_t(k)].defined(), "parameter %s: its gradient segment is not allocated",
               p.name.c_str());
  return segment_buffers_[size_t(k)].narrow(0, p.offset - segments_[size_t(k)].begin, p.numel).view(p.shape);
}

void ParameterStore::zero_grads() {
  if (!grads_segmented()) {
    for (autograd::Variable& v : leaves_) v.reset_grad();
    return;
  }
  for (size_t k = 0; k < segments_.size(); ++k) {
    if (!segment_buffers_[k].defined()) continue;
    for (int i = segments_[k].first_param; i <= segments_[k].last_param; ++i) leaves_[size_t(i)].release_grad();
    segment_buffers_[k] = Tensor();
  }
}

void ParameterStore::settle_grads() {
  for (int k = 0; k < int(segments_.size()); ++k) (void)segment_grads(k);
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
