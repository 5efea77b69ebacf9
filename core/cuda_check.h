// CUDA and cuBLAS check macros. Include only from .cu and *_cuda.cpp files (they need the CUDA headers).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/check.h"
#include "core/device.h"

#define CUDA_CHECK(call)                                                                       \
  do {                                                                                         \
    cudaError_t drwkv_err_ = (call);                                                           \
    if (drwkv_err_ != cudaSuccess)                                                             \
      ::drwkv::fail(__FILE__, __LINE__, #call,                                                 \
                    ::drwkv::strprintf("%s (%s)", cudaGetErrorString(drwkv_err_), cudaGetErrorName(drwkv_err_))); \
  } while (0)

// Checks the launch just issued (configuration errors) without synchronising.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                     \
  do {                                                                                         \
    cublasStatus_t drwkv_st_ = (call);                                                         \
    if (drwkv_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::drwkv::fail(__FILE__, __LINE__, #call, cublasLtGetStatusString(drwkv_st_));            \
  } while (0)

namespace drwkv {
inline cudaStream_t to_cuda(StreamHandle s) { return reinterpret_cast<cudaStream_t>(s); }
}  // namespace drwkv
