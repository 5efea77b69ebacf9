// Tensor: a strided view (shape, strides in elements, offset) of reference-counted storage, with a
// runtime dtype and a device. Views (reshape of contiguous data, permute/transpose, slice, chunk,
// expand/broadcast, squeeze/unsqueeze) share storage; contiguous(), clone(), to() copy.
//
// Tensor is the container used by autograd, models, data and dist. Kernels never see it: callers pass
// them raw pointers and sizes. CUDA operations run on the current stream of the tensor's device
// (core/stream.h); copies to the host synchronise that stream, so host code reads finished data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace drwkv {

class Storage {
 public:
  enum class Kind { Host, Pinned, Cuda, External };
  Storage(void* data, size_t bytes, Device device, Kind kind) : data_(data), bytes_(bytes), device_(device), kind_(kind) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  static std::shared_ptr<Storage> allocate(size_t bytes, Device device, bool pinned = false);
  // Non-owning storage over memory someone else keeps alive.
  static std::shared_ptr<Storage> external(void* data, size_t bytes, Device device);

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool pinned() const { return kind_ == Kind::Pinned; }

 private:
  void* data_;
  size_t bytes_;
  Device device_;
  Kind kind_;
};

class Tensor {
 public:
  Tensor() = default;

  // ---- creation
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu(), bool pinned = false);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype, Device device = Device::cpu());
  // A view of external memory (not owned).
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device = Device::cpu());
  // Copies host values (converted to `dtype`) into a new tensor on `device`.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu(),
                            DType dtype = dtype_v<T>);

  // ---- properties
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int dim() const { return shape_.size(); }
  int64_t size(int d) const { return shape_.at(d); }
  int64_t stride(int d) const { return strides_.at(d); }
  int64_t numel() const { return shape_.numel(); }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  bool is_cpu() const { return device_.is_cpu(); }
  size_t element_size() const { return size_t(dtype_size(dtype_)); }
  size_t nbytes() const { return size_t(numel()) * element_size(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool shares_storage_with(const Tensor& o) const { return storage_ && storage_ == o.storage_; }

  // Pointer to the first element.
  void* data() const {
    return storage_ ? static_cast<char*>(storage_->data()) + offset_ * int64_t(element_size()) : nullptr;
  }
  template <typename T>
  T* data_ptr() const {
    DRWKV_ASSERT(dtype_v<T> == dtype_, "data_ptr<%s>() on a %s tensor", std::string(dtype_name(dtype_v<T>)).c_str(),
                 std::string(dtype_name(dtype_)).c_str());
    return static_cast<T*>(data());
  }

  // ---- views (share storage)
  Tensor view(const Shape& shape) const;     // contiguous only; one dim may be -1
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a contiguous copy
  Tensor permute(const std::vector<int>& order) const;
  Tensor transpose(int a, int b) const;
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const { return slice(dim, start, start + length); }
  Tensor select(int dim, int64_t index) const;  // drops `dim`
  std::vector<Tensor> chunk(int chunks, int dim) const;
  Tensor expand(const Shape& shape) const;  // size-1 dims broadcast with stride 0; new leading dims allowed
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor flatten(int start_dim = 0, int end_dim = -1) const;

  // ---- copies
  Tensor contiguous() const;  // itself if already contiguous
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor to(Device device, DType dtype) const;
  void copy_(const Tensor& src);  // same shape (src may also broadcast via expand); any dtype/device
  void zero_();
  void fill_(double value);

  // ---- host access (synchronises the device for CUDA tensors)
  template <typename T>
  std::vector<T> to_vector() const;  // row-major, converted to T
  double item() const;               // single-element tensors
  std::string str(int64_t max_elements = 64) const;

 private:
  Tensor(std::shared_ptr<Storage> s, Shape shape, Shape strides, int64_t offset, DType dtype, Device device)
      : storage_(std::move(s)), shape_(shape), strides_(strides), offset_(offset), dtype_(dtype), device_(device) {}

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::F32;
  Device device_ = Device::cpu();
};

// Convenience: a human-readable description "f32[2, 3] cuda:0".
std::string describe(const Tensor& t);

}  // namespace drwkv
