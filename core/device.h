// Where a tensor's memory lives: the host, or CUDA device n.
#pragma once

#include <cstdint>
#include <string>

namespace drwkv {

// The CUDA stream type without the CUDA headers: cudaStream_t is `CUstream_st*`.
struct CUstream_st;
using StreamHandle = CUstream_st*;

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  constexpr bool is_cpu() const { return type == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type == DeviceType::CUDA; }
  constexpr bool operator==(const Device& o) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// Number of CUDA devices visible to this process (0 in a CPU-only build or without a GPU).
int cuda_device_count();

}  // namespace drwkv
