// Tensor and Storage (core/tensor.h).
#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/allocator.h"
#include "core/build_config.h"
#include "core/copy.h"
#include "core/stream.h"

namespace drwkv {
using core_detail::StridedRef;

void fail_cuda_not_built(const char* file, int line) {
  fail(file, line, "CUDA backend", "this build of drwkv has no CUDA backend (configured with DRWKV_CUDA=OFF or without nvcc)");
}

// ---------------------------------------------------------------------------------------------
Storage::~Storage() {
  switch (kind_) {
    case Kind::Host: host_release(data_); break;
    case Kind::Pinned: DRWKV_CUDA_ONLY(pinned_release(data_)); break;
    case Kind::Cuda: DRWKV_CUDA_ONLY(cuda_release(device_.index, data_)); break;
    case Kind::External: break;
  }
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes, Device device, bool pinned) {
  if (device.is_cuda()) {
    void* p = nullptr;
    DRWKV_CUDA_ONLY(p = cuda_allocate(device.index, bytes));
    return std::make_shared<Storage>(p, bytes, device, Kind::Cuda);
  }
  if (pinned) {
    void* p = nullptr;
    DRWKV_CUDA_ONLY(p = pinned_allocate(bytes));
    return std::make_shared<Storage>(p, bytes, device, Kind::Pinned);
  }
  return std::make_shared<Storage>(host_allocate(bytes), bytes, device, Kind::Host);
}

std::shared_ptr<Storage> Storage::external(void* data, size_t bytes, Device device) {
  return std::make_shared<Storage>(data, bytes, device, Kind::External);
}

// ---------------------------------------------------------------------------------------------
namespace {
StridedRef ref(const Tensor& t) { return StridedRef{t.data(), t.shape(), t.strides()}; }
StreamHandle stream_of(const Tensor& t) {
  StreamHandle h = nullptr;
  DRWKV_CUDA_ONLY(h = current_stream(t.device()).handle());
  return h;
}
int norm_dim(int d, int n) {
  int j = d < 0 ? d + n : d;
  DRWKV_ASSERT(j >= 0 && j < n, "dimension %d out of range for a %d-d tensor", d, n);
  return j;
}
}  // namespace

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined tensor";
  return std::string(dtype_name(t.dtype())) + t.shape().str() + " " + t.device().str();
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, bool pinned) {
  for (int64_t d : shape) DRWKV_ASSERT(d >= 0, "negative dimension in shape %s", shape.str().c_str());
  size_t bytes = size_t(shape.numel()) * size_t(dtype_size(dtype));
  return Tensor(Storage::allocate(bytes, device, pinned), shape, shape.contiguous_strides(), 0, dtype, device);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, Device device) {
  size_t bytes = size_t(shape.numel()) * size_t(dtype_size(dtype));
  return Tensor(Storage::external(data, bytes, device), shape, shape.contiguous_strides(), 0, dtype, device);
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device, DType dtype) {
  DRWKV_ASSERT(int64_t(values.size()) == shape.numel(), "from_vector: %zu values for shape %s", values.size(),
               shape.str().c_str());
  Tensor host = from_blob(const_cast<T*>(values.data()), shape, dtype_v<T>, Device::cpu());
  Tensor out = empty(shape, dtype, device);  // always a copy: the blob is not owned
  out.copy_(host);
  return out;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

// ---- views -------------------------------------------------------------------------------------
Tensor Tensor::view(const Shape& shape) const {
  DRWKV_ASSERT(is_contiguous(), "view() of non-contiguous %s; use reshape()", describe(*this).c_str());
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DRWKV_ASSERT(infer < 0, "view(%s): more than one -1", shape.str().c_str());
      infer = i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DRWKV_ASSERT(known > 0 && numel() % known == 0, "view(%s) of %s", shape.str().c_str(), describe(*this).c_str());
    s[infer] = numel() / known;
  }
  DRWKV_ASSERT(s.numel() == numel(), "view(%s) of %s: element counts differ", shape.str().c_str(),
               describe(*this).c_str());
  return Tensor(storage_, s, s.contiguous_strides(), offset_, dtype_, device_);
}

Tensor Tensor::reshape(const Shape& shape) const { return is_contiguous() ? view(shape) : contiguous().view(shape); }

Tensor Tensor::permute(const std::vector<int>& order) const {
  DRWKV_ASSERT(int(order.size()) == dim(), "permute: %zu indices for %d dims", order.size(), dim());
  Shape s, st;
  std::vector<bool> seen(size_t(dim()), false);
  for (int o : order) {
    int j = norm_dim(o, dim());
    DRWKV_ASSERT(!seen[size_t(j)], "permute: repeated dim %d", o);
    seen[size_t(j)] = true;
    s.push_back(shape_[j]);
    st.push_back(strides_[j]);
  }
  return Tensor(storage_, s, st, offset_, dtype_, device_);
}

Tensor Tensor::transpose(int a, int b) const {
  std::vector<int> order(static_cast<size_t>(dim()));
  for (int i = 0; i < dim(); ++i) order[size_t(i)] = i;
  std::swap(order[size_t(norm_dim(a, dim()))], order[size_t(norm_dim(b, dim()))]);
  return permute(order);
}

Tensor Tensor::slice(int d, int64_t start, int64_t end, int64_t step) const {
  d = norm_dim(d, dim());
  int64_t n = shape_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  end = std::min(end, n);
  DRWKV_ASSERT(start >= 0 && start <= end && step > 0, "slice(%d, %lld, %lld, %lld) of %s", d, (long long)start,
               (long long)end, (long long)step, describe(*this).c_str());
  Shape s = shape_, st = strides_;
  s[d] = (end - start + step - 1) / step;
  st[d] = strides_[d] * step;
  return Tensor(storage_, s, st, offset_ + start * strides_[d], dtype_, device_);
}

Tensor Tensor::select(int d, int64_t index) const {
  d = norm_dim(d, dim());
  if (index < 0) index += shape_[d];
  DRWKV_ASSERT(index >= 0 && index < shape_[d], "select(%d, %lld) of %s", d, (long long)index, describe(*this).c_str());
  Shape s = shape_, st = strides_;
  s.erase(d);
  st.erase(d);
  return Tensor(storage_, s, st, offset_ + index * strides_[d], dtype_, device_);
}

std::vector<Tensor> Tensor::chunk(int chunks, int d) const {
  d = norm_dim(d, dim());
  DRWKV_ASSERT(chunks > 0 && shape_[d] % chunks == 0, "chunk(%d, %d) of %s: size not divisible", chunks, d,
               describe(*this).c_str());
  int64_t len = shape_[d] / chunks;
  std::vector<Tensor> out;
  for (int i = 0; i < chunks; ++i) out.push_back(narrow(d, i * len, len));
  return out;
}

Tensor Tensor::expand(const Shape& shape) const {
  DRWKV_ASSERT(shape.size() >= dim(), "expand(%s) of %s", shape.str().c_str(), describe(*this).c_str());
  int lead = shape.size() - dim();
  Shape s = shape, st;
  for (int i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      st.push_back(0);
      continue;
    }
    int64_t have = shape_[i - lead];
    int64_t want = shape[i] == -1 ? have : shape[i];
    s[i] = want;
    if (have == want) {
      st.push_back(strides_[i - lead]);
    } else {
      DRWKV_ASSERT(have == 1, "expand(%s) of %s: dim %d is %lld, not 1", shape.str().c_str(), describe(*this).c_str(),
                   i, (long long)have);
      st.push_back(0);
    }
  }
  return Tensor(storage_, s, st, offset_, dtype_, device_);
}

Tensor Tensor::unsqueeze(int d) const {
  d = d < 0 ? d + dim() + 1 : d;
  DRWKV_ASSERT(d >= 0 && d <= dim(), "unsqueeze(%d) of %s", d, describe(*this).c_str());
  Shape s = shape_, st = strides_;
  int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  s.insert(d, 1);
  st.insert(d, stride);
  return Tensor(storage_, s, st, offset_, dtype_, device_);
}

Tensor Tensor::squeeze(int d) const {
  d = norm_dim(d, dim());
  DRWKV_ASSERT(shape_[d] == 1, "squeeze(%d) of %s: size is not 1", d, describe(*this).c_str());
  Shape s = shape_, st = strides_;
  s.erase(d);
  st.erase(d);
  return Tensor(storage_, s, st, offset_, dtype_, device_);
}

Tensor Tensor::flatten(int start, int end) const {
  if (dim() == 0) return reshape(Shape{1});
  start = norm_dim(start, dim());
  end = norm_dim(end, dim());
  Shape s;
  for (int i = 0; i < start; ++i) s.push_back(shape_[i]);
  int64_t n = 1;
  for (int i = start; i <= end; ++i) n *= shape_[i];
  s.push_back(n);
  for (int i = end + 1; i < dim(); ++i) s.push_back(shape_[i]);
  return reshape(s);
}

// ---- copies ------------------------------------------------------------------------------------
Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor out = empty(shape_, dtype_, device_);
  out.copy_(*this);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device_);
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device device) const { return to(device, dtype_); }
Tensor Tensor::to(DType dtype) const { return to(device_, dtype); }
Tensor Tensor::to(Device device, DType dtype) const {
  if (device == device_ && dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype, device);
  out.copy_(*this);
  return out;
}

void Tensor::copy_(const Tensor& src_in) {
  DRWKV_ASSERT(defined() && src_in.defined(), "copy_ with an undefined tensor");
  Tensor src = src_in.shape() == shape_ ? src_in : src_in.expand(shape_);
  if (numel() == 0) return;
  // 1. bring the source to this dtype (contiguous conversion on the source's device); straight into this
  // tensor when it is dense on that device (the usual cast), else into a temporary copied below
  if (src.dtype() != dtype_) {
    Tensor sc = src.contiguous();
    if (sc.device() == device_ && is_contiguous() && !shares_storage_with(sc)) {
      if (is_cuda()) {
        DRWKV_CUDA_ONLY(core_detail::convert_cuda(data(), dtype_, sc.data(), sc.dtype(), numel(), stream_of(sc)));
      } else {
        core_detail::convert_cpu(data(), dtype_, sc.data(), sc.dtype(), numel());
      }
      return;
    }
    Tensor conv = empty(sc.shape(), dtype_, sc.device());
    if (sc.is_cuda()) {
      DRWKV_CUDA_ONLY(core_detail::convert_cuda(conv.data(), dtype_, sc.data(), sc.dtype(), sc.numel(), stream_of(sc)));
    } else {
      core_detail::convert_cpu(conv.data(), dtype_, sc.data(), sc.dtype(), sc.numel());
    }
    src = conv;
  }
  // 2. same device: one memcpy when both are dense, else a strided copy
  if (src.device() == device_ && is_contiguous() && src.is_contiguous()) {
    if (is_cuda()) {
      DRWKV_CUDA_ONLY(core_detail::memcpy_cuda(data(), src.data(), nbytes(), stream_of(*this), false));
    } else {
      std::memcpy(data(), src.data(), nbytes());
    }
    return;
  }
  if (src.device() == device_) {
    if (is_cuda()) {
      DRWKV_CUDA_ONLY(core_detail::copy_strided_cuda(ref(*this), ref(src), int(element_size()), stream_of(*this)));
    } else {
      core_detail::copy_strided_cpu(ref(*this), ref(src), int(element_size()));
    }
    return;
  }
  // 3. across devices: contiguous bytes over the bus, then a strided copy on the destination if needed
  Tensor sc = src.contiguous();
  if (is_cuda() && sc.is_cuda()) {
    Tensor staged = sc.to(Device::cpu());
    copy_(staged);
    return;
  }
  Tensor dstc = is_contiguous() ? *this : empty(shape_, dtype_, device_);
  StreamHandle stream = is_cuda() ? stream_of(*this) : stream_of(sc);
  // device-to-host and pinned host-to-device copies complete before returning, so the caller may read
  // the result or release the source immediately
  bool sync = is_cpu() || sc.storage()->pinned();
  DRWKV_CUDA_ONLY(core_detail::memcpy_cuda(dstc.data(), sc.data(), nbytes(), stream, sync));
  if (!dstc.shares_storage_with(*this)) copy_(dstc);
}

void Tensor::zero_() {
  if (numel() == 0) return;
  if (is_cuda() && is_contiguous()) {
    DRWKV_CUDA_ONLY(core_detail::memset_cuda(data(), 0, nbytes(), stream_of(*this)));
    return;
  }
  if (is_cpu() && is_contiguous()) {
    std::memset(data(), 0, nbytes());
    return;
  }
  fill_(0.0);
}

void Tensor::fill_(double value) {
  if (numel() == 0) return;
  if (is_cuda()) {
    DRWKV_CUDA_ONLY(core_detail::fill_cuda(ref(*this), dtype_, value, stream_of(*this)));
  } else {
    core_detail::fill_cpu(ref(*this), dtype_, value);
  }
}

// ---- host access -------------------------------------------------------------------------------
template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor h = to(Device::cpu(), dtype_v<T>).contiguous();
  const T* p = h.data_ptr<T>();
  return std::vector<T>(p, p + h.numel());
}

double Tensor::item() const {
  DRWKV_ASSERT(numel() == 1, "item() of %s", describe(*this).c_str());
  return to_vector<double>()[0];
}

std::string Tensor::str(int64_t max_elements) const {
  std::ostringstream os;
  os << describe(*this);
  if (!defined() || numel() > max_elements) return os.str();
  std::vector<double> v = to_vector<double>();
  os << " {";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) os << (dim() > 0 && i % size_t(shape_[dim() - 1]) == 0 ? "; " : ", ");
    os << v[i];
  }
  os << "}";
  return os.str();
}

#define DRWKV_INSTANTIATE(T)                                                                              \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, const Shape&, Device, DType); \
  template std::vector<T> Tensor::to_vector<T>() const;
DRWKV_INSTANTIATE(float)
DRWKV_INSTANTIATE(double)
DRWKV_INSTANTIATE(bf16)
DRWKV_INSTANTIATE(f16)
DRWKV_INSTANTIATE(int32_t)
DRWKV_INSTANTIATE(int64_t)
DRWKV_INSTANTIATE(uint8_t)
#undef DRWKV_INSTANTIATE

}  // namespace drwkv
