// Internal to core: strided copies, dtype conversion and fills, on the host and on CUDA devices.
// Tensor::copy_/contiguous/to/fill_ are built from these.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace drwkv::core_detail {

struct StridedRef {
  void* data;  // first element
  Shape shape;
  Shape strides;  // in elements
};

// Same-dtype strided copy (element size in bytes: 1, 2, 4 or 8); shapes equal.
void copy_strided_cpu(const StridedRef& dst, const StridedRef& src, int element_size);
void copy_strided_cuda(const StridedRef& dst, const StridedRef& src, int element_size, StreamHandle stream);

// Contiguous conversion of n elements between any two dtypes.
void convert_cpu(void* dst, DType dst_type, const void* src, DType src_type, int64_t n);
void convert_cuda(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, StreamHandle stream);

// Sets every element of a (possibly strided) region to `value` converted to `dtype`.
void fill_cpu(const StridedRef& dst, DType dtype, double value);
void fill_cuda(const StridedRef& dst, DType dtype, double value, StreamHandle stream);

// Byte copies between host and device memory on `stream` (host memory pageable or pinned); when
// `sync` the call returns after the copy has completed.
void memcpy_cuda(void* dst, const void* src, size_t bytes, StreamHandle stream, bool sync);
void memset_cuda(void* dst, int value, size_t bytes, StreamHandle stream);

}  // namespace drwkv::core_detail
