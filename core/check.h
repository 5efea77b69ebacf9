// Fatal-error reporting: one helper behind every check macro of the project.
//
// Programming errors (a violated kernel contract, a failing CUDA/cuBLAS/NCCL/MPI/HDF5 call) go through
// drwkv::fail, which prints rank, file:line, the failing statement and the library's message, runs the
// fatal hook (a distributed run installs one that aborts every rank) and aborts. Errors caused by user
// input (recipes, flags, data files, checkpoints) are returned as absl::Status instead (core/status.h).
// Library-specific macros live beside the library: CUDA_CHECK/CUBLAS_CHECK in core/cuda_check.h,
// NCCL_CHECK/MPI_CHECK in dist/, H5_CHECK in data/.
#pragma once

#include <functional>
#include <string>

namespace drwkv {

[[noreturn]] void fail(const char* file, int line, const char* statement, const std::string& message);

// printf-style formatting into a std::string (usable from .cu files, which avoid heavier headers).
std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Called once by drwkv::fail before abort(); a distributed run sets it to abort all ranks.
void set_fatal_hook(std::function<void()> hook);

}  // namespace drwkv

// Always-on assertion with a printf-style message: DRWKV_ASSERT(n > 0, "n = %d", n).
#define DRWKV_ASSERT(cond, ...)                                                          \
  do {                                                                                   \
    if (!(cond)) ::drwkv::fail(__FILE__, __LINE__, #cond, ::drwkv::strprintf(__VA_ARGS__)); \
  } while (0)

#define DRWKV_FAIL(...) ::drwkv::fail(__FILE__, __LINE__, "DRWKV_FAIL", ::drwkv::strprintf(__VA_ARGS__))
