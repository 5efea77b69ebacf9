// Glue between Tensors and the kernel families: choose the element type from a runtime dtype and run
// the CPU or the CUDA launcher of a family.
//
// Convention of every family (kernels/<family>.h): `<name>_cuda` takes exactly the arguments of
// `<name>_cpu` plus a trailing StreamHandle. CPU launchers exist for float, double and bf16; CUDA
// launchers for float and bf16. DRWKV_LAUNCH(where, T, name, args...) calls the right one for the
// device of tensor `where`, on its current stream.
#pragma once

#include <type_traits>

#include "autograd/profiler.h"
#include "core/build_config.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace drwkv::autograd {

// Calls f(T{}) with the C++ element type of a floating dtype (f32, bf16, f64).
template <typename F>
decltype(auto) dispatch_float(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: return f(float{});
    case DType::BF16: return f(bf16{});
    case DType::F64: return f(double{});
    default: break;
  }
  DRWKV_FAIL("operation needs a f32, bf16 or f64 tensor, got %s", std::string(dtype_name(dt)).c_str());
}

template <typename T, typename Cpu, typename Cuda>
void launch(const char* name, const Tensor& where, Cpu&& cpu, Cuda&& cuda) {
  if (where.is_cuda()) {
    if constexpr (std::is_same_v<T, double>) {
      DRWKV_FAIL("f64 tensors are for the CPU reference only (%s)", describe(where).c_str());
    } else {
      ProfileRange range(name, where.device());
      cuda(current_stream(where.device()).handle());
    }
  } else {
    cpu();
  }
}

}  // namespace drwkv::autograd

#define DRWKV_LAUNCH(where, T, name, ...)                                           \
  ::drwkv::autograd::launch<T>(                                                     \
      #name, (where), [&] { ::drwkv::kernels::name##_cpu<T>(__VA_ARGS__); },               \
      [&](auto drwkv_stream_) { DRWKV_CUDA_ONLY(::drwkv::kernels::name##_cuda<T>(__VA_ARGS__, drwkv_stream_)); })
