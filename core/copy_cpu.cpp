// Host strided copies, conversions and fills (core/copy.h).
#include <cstring>

#include "core/check.h"
#include "core/copy.h"

namespace drwkv::core_detail {
namespace {

// Visits every index of `shape` in row-major order, calling f(dst_offset, src_offset) in elements.
template <typename F>
void for_each_index(const Shape& shape, const Shape& a, const Shape& b, F&& f) {
  int n = shape.size();
  if (shape.numel() == 0) return;
  if (n == 0) {
    f(0, 0);
    return;
  }
  int64_t idx[Shape::kMaxDims] = {};
  int64_t oa = 0, ob = 0;
  int64_t last = shape[n - 1], sa = a[n - 1], sb = b[n - 1];
  while (true) {
    for (int64_t i = 0; i < last; ++i) f(oa + i * sa, ob + i * sb);
    int d = n - 2;
    for (; d >= 0; --d) {
      ++idx[d];
      oa += a[d];
      ob += b[d];
      if (idx[d] < shape[d]) break;
      oa -= a[d] * shape[d];
      ob -= b[d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

template <typename T>
void copy_typed(const StridedRef& dst, const StridedRef& src) {
  T* d = static_cast<T*>(dst.data);
  const T* s = static_cast<const T*>(src.data);
  for_each_index(dst.shape, dst.strides, src.strides, [&](int64_t od, int64_t os) { d[od] = s[os]; });
}

template <typename D, typename S>
void convert_typed(void* dst, const void* src, int64_t n) {
  D* d = static_cast<D*>(dst);
  const S* s = static_cast<const S*>(src);
  using A = std::conditional_t<std::is_same_v<S, double> || std::is_same_v<D, double> ||
                                   std::is_same_v<S, int64_t> || std::is_same_v<D, int64_t>,
                               double, float>;
  for (int64_t i = 0; i < n; ++i) d[i] = store_as<D>(load_as<A>(s[i]));
}

template <typename S>
void convert_from(void* dst, DType dt, const void* src, int64_t n) {
  switch (dt) {
    case DType::F32: return convert_typed<float, S>(dst, src, n);
    case DType::BF16: return convert_typed<bf16, S>(dst, src, n);
    case DType::F16: return convert_typed<f16, S>(dst, src, n);
    case DType::F64: return convert_typed<double, S>(dst, src, n);
    case DType::I32: return convert_typed<int32_t, S>(dst, src, n);
    case DType::I64: return convert_typed<int64_t, S>(dst, src, n);
    case DType::U8: return convert_typed<uint8_t, S>(dst, src, n);
  }
}

template <typename T>
void fill_typed(const StridedRef& dst, double value) {
  T* d = static_cast<T*>(dst.data);
  using A = std::conditional_t<std::is_same_v<T, double> || std::is_same_v<T, int64_t>, double, float>;
  T v = store_as<T>(A(value));
  for_each_index(dst.shape, dst.strides, dst.strides, [&](int64_t od, int64_t) { d[od] = v; });
}

}  // namespace

void copy_strided_cpu(const StridedRef& dst, const StridedRef& src, int element_size) {
  switch (element_size) {
    case 1: return copy_typed<uint8_t>(dst, src);
    case 2: return copy_typed<uint16_t>(dst, src);
    case 4: return copy_typed<uint32_t>(dst, src);
    case 8: return copy_typed<uint64_t>(dst, src);
  }
  DRWKV_FAIL("copy_strided_cpu: element size %d", element_size);
}

void convert_cpu(void* dst, DType dst_type, const void* src, DType src_type, int64_t n) {
  switch (src_type) {
    case DType::F32: return convert_from<float>(dst, dst_type, src, n);
    case DType::BF16: return convert_from<bf16>(dst, dst_type, src, n);
    case DType::F16: return convert_from<f16>(dst, dst_type, src, n);
    case DType::F64: return convert_from<double>(dst, dst_type, src, n);
    case DType::I32: return convert_from<int32_t>(dst, dst_type, src, n);
    case DType::I64: return convert_from<int64_t>(dst, dst_type, src, n);
    case DType::U8: return convert_from<uint8_t>(dst, dst_type, src, n);
  }
}

void fill_cpu(const StridedRef& dst, DType dtype, double value) {
  switch (dtype) {
    case DType::F32: return fill_typed<float>(dst, value);
    case DType::BF16: return fill_typed<bf16>(dst, value);
    case DType::F16: return fill_typed<f16>(dst, value);
    case DType::F64: return fill_typed<double>(dst, value);
    case DType::I32: return fill_typed<int32_t>(dst, value);
    case DType::I64: return fill_typed<int64_t>(dst, value);
    case DType::U8: return fill_typed<uint8_t>(dst, value);
  }
}

}  // namespace drwkv::core_detail
