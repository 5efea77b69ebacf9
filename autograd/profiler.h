// Per-op GPU time breakdown: when enabled, every kernel launch made through DRWKV_LAUNCH (and the GEMM
// and optimizer calls) is bracketed by CUDA events and attributed to its family name; report() sums
// the elapsed times per name. For benchmarks ("where does a training step spend its time"); off by
// default, and a no-op on the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"

namespace drwkv::autograd {

void profiler_enable(bool on);
bool profiler_enabled();
void profiler_reset();

struct ProfileEntry {
  std::string name;
  int64_t calls = 0;
  double total_ms = 0;
};
// Synchronises the devices it recorded on, then sums per name (largest first).
std::vector<ProfileEntry> profiler_report();

// Brackets the device work queued on `device`'s current stream during its lifetime.
class ProfileRange {
 public:
  ProfileRange(const char* name, Device device);
  ~ProfileRange();
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;

 private:
  int slot_ = -1;
};

}  // namespace drwkv::autograd
