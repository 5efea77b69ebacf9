// Build-time facts: whether the CUDA backend is compiled in. DRWKV_WITH_CUDA is set by CMake on the
// drwkv_core target (0 or 1). Code that calls a CUDA launcher wraps the call in DRWKV_CUDA_ONLY(...):
// in a CPU-only build the call is replaced by a clear fatal error, so no other file needs an #ifdef.
#pragma once

#ifndef DRWKV_WITH_CUDA
#define DRWKV_WITH_CUDA 0
#endif

namespace drwkv {
inline constexpr bool kCudaBuilt = DRWKV_WITH_CUDA != 0;
[[noreturn]] void fail_cuda_not_built(const char* file, int line);
}  // namespace drwkv

#if DRWKV_WITH_CUDA
#define DRWKV_CUDA_ONLY(...) __VA_ARGS__
#else
#define DRWKV_CUDA_ONLY(...) ::drwkv::fail_cuda_not_built(__FILE__, __LINE__)
#endif
