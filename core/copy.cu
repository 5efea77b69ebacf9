// CUDA strided copies, conversions and fills (core/copy.h).
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/copy.h"
#include "core/cuda_check.h"

namespace drwkv::core_detail {
namespace {

struct Dims {
  int n;
  int64_t shape[Shape::kMaxDims];
  int64_t dst_stride[Shape::kMaxDims];
  int64_t src_stride[Shape::kMaxDims];
};

Dims make_dims(const StridedRef& dst, const StridedRef* src) {
  Dims d{};
  d.n = dst.shape.size();
  for (int i = 0; i < d.n; ++i) {
    d.shape[i] = dst.shape[i];
    d.dst_stride[i] = dst.strides[i];
    d.src_stride[i] = src ? src->strides[i] : 0;
  }
  return d;
}

unsigned grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

template <typename T>
__global__ void copy_strided_kernel(T* dst, const T* src, Dims d, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, od = 0, os = 0;
    for (int k = d.n - 1; k >= 0; --k) {
      int64_t idx = rem % d.shape[k];
      rem /= d.shape[k];
      od += idx * d.dst_stride[k];
      os += idx * d.src_stride[k];
    }
    dst[od] = src[os];
  }
}

template <typename D, typename S>
using ConvertAcc = std::conditional_t<std::is_same_v<S, double> || std::is_same_v<D, double> ||
                                          std::is_same_v<S, int64_t> || std::is_same_v<D, int64_t>,
                                      double, float>;

template <typename D, typename S>
__global__ void convert_kernel(D* dst, const S* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = store_as<D>(load_as<ConvertAcc<D, S>>(src[i]));
}

// Conversions move kConvertVec elements per thread and iteration as whole aligned packs (16 bytes for
// bf16, two 16-byte accesses for f32): one element per thread kept a bf16 ↔ f32 cast of an activation at
// about a third of the copy bandwidth.
constexpr int kConvertVec = 8;
template <typename T> struct alignas(kConvertVec * sizeof(T)) ConvertPack {
  T v[kConvertVec];
};

template <typename D, typename S>
__global__ void convert_vec_kernel(D* dst, const S* src, int64_t packs) {
  const auto* in = reinterpret_cast<const ConvertPack<S>*>(src);
  auto* out = reinterpret_cast<ConvertPack<D>*>(dst);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < packs; i += int64_t(gridDim.x) * blockDim.x) {
    const ConvertPack<S> a = in[i];
    ConvertPack<D> b;
#pragma unroll
    for (int j = 0; j < kConvertVec; ++j) b.v[j] = store_as<D>(load_as<ConvertAcc<D, S>>(a.v[j]));
    out[i] = b;
  }
}

bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename T>
__global__ void fill_kernel(T* dst, T value, Dims d, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, od = 0;
    for (int k = d.n - 1; k >= 0; --k) {
      od += (rem % d.shape[k]) * d.dst_stride[k];
      rem /= d.shape[k];
    }
    dst[od] = value;
  }
}

template <typename T>
void copy_typed(const StridedRef& dst, const StridedRef& src, StreamHandle stream) {
  int64_t n = dst.shape.numel();
  if (n == 0) return;
  copy_strided_kernel<T><<<grid_for(n, 256), 256, 0, to_cuda(stream)>>>(
      static_cast<T*>(dst.data), static_cast<const T*>(src.data), make_dims(dst, &src), n);
  CUDA_CHECK_LAUNCH();
}

template <typename D, typename S>
void convert_typed(void* dst, const void* src, int64_t n, StreamHandle stream) {
  auto* d = static_cast<D*>(dst);
  const auto* s = static_cast<const S*>(src);
  int64_t done = 0;
  if (aligned_to(d, sizeof(ConvertPack<D>)) && aligned_to(s, sizeof(ConvertPack<S>))) {
    const int64_t packs = n / kConvertVec;
    if (packs > 0) {
      convert_vec_kernel<D, S><<<grid_for(packs, 256), 256, 0, to_cuda(stream)>>>(d, s, packs);
      CUDA_CHECK_LAUNCH();
    }
    done = packs * kConvertVec;
  }
  if (done < n) {  // unaligned buffers, or the last n % kConvertVec elements
    convert_kernel<D, S><<<grid_for(n - done, 256), 256, 0, to_cuda(stream)>>>(d + done, s + done, n - done);
    CUDA_CHECK_LAUNCH();
  }
}

template <typename S>
void convert_from(void* dst, DType dt, const void* src, int64_t n, StreamHandle s) {
  switch (dt) {
    case DType::F32: return convert_typed<float, S>(dst, src, n, s);
    case DType::BF16: return convert_typed<bf16, S>(dst, src, n, s);
    case DType::F16: return convert_typed<f16, S>(dst, src, n, s);
    case DType::F64: return convert_typed<double, S>(dst, src, n, s);
    case DType::I32: return convert_typed<int32_t, S>(dst, src, n, s);
    case DType::I64: return convert_typed<int64_t, S>(dst, src, n, s);
    case DType::U8: return convert_typed<uint8_t, S>(dst, src, n, s);
  }
}

template <typename T>
void fill_typed(const StridedRef& dst, double value, StreamHandle stream) {
  int64_t n = dst.shape.numel();
  using A = std::conditional_t<std::is_same_v<T, double> || std::is_same_v<T, int64_t>, double, float>;
  fill_kernel<T><<<grid_for(n, 256), 256, 0, to_cuda(stream)>>>(static_cast<T*>(dst.data), store_as<T>(A(value)),
                                                                 make_dims(dst, nullptr), n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void copy_strided_cuda(const StridedRef& dst, const StridedRef& src, int element_size, StreamHandle stream) {
  switch (element_size) {
    case 1: return copy_typed<uint8_t>(dst, src, stream);
    case 2: return copy_typed<uint16_t>(dst, src, stream);
    case 4: return copy_typed<uint32_t>(dst, src, stream);
    case 8: return copy_typed<uint64_t>(dst, src, stream);
  }
  DRWKV_FAIL("copy_strided_cuda: element size %d", element_size);
}

void convert_cuda(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, StreamHandle stream) {
  if (n == 0) return;
  switch (src_type) {
    case DType::F32: return convert_from<float>(dst, dst_type, src, n, stream);
    case DType::BF16: return convert_from<bf16>(dst, dst_type, src, n, stream);
    case DType::F16: return convert_from<f16>(dst, dst_type, src, n, stream);
    case DType::F64: return convert_from<double>(dst, dst_type, src, n, stream);
    case DType::I32: return convert_from<int32_t>(dst, dst_type, src, n, stream);
    case DType::I64: return convert_from<int64_t>(dst, dst_type, src, n, stream);
    case DType::U8: return convert_from<uint8_t>(dst, dst_type, src, n, stream);
  }
}

void fill_cuda(const StridedRef& dst, DType dtype, double value, StreamHandle stream) {
  if (dst.shape.numel() == 0) return;
  switch (dtype) {
    case DType::F32: return fill_typed<float>(dst, value, stream);
    case DType::BF16: return fill_typed<bf16>(dst, value, stream);
    case DType::F16: return fill_typed<f16>(dst, value, stream);
    case DType::F64: return fill_typed<double>(dst, value, stream);
    case DType::I32: return fill_typed<int32_t>(dst, value, stream);
    case DType::I64: return fill_typed<int64_t>(dst, value, stream);
    case DType::U8: return fill_typed<uint8_t>(dst, value, stream);
  }
}

void memcpy_cuda(void* dst, const void* src, size_t bytes, StreamHandle stream, bool sync) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, to_cuda(stream)));
  if (sync) CUDA_CHECK(cudaStreamSynchronize(to_cuda(stream)));
}

void memset_cuda(void* dst, int value, size_t bytes, StreamHandle stream) {
  CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, to_cuda(stream)));
}

}  // namespace drwkv::core_detail
