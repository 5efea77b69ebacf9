// Per-op GPU time breakdown: when enabled, every kernel launch made through DRWKV_LAUNCH (and the GEMM
// and optimizer calls) is bracketed by CUDA events and attributed to its family name; report() sums
// the elapsed times per name, and the time the stream sat idle between the previous range's end and
// this one's start (the host queued the launch late, or unbracketed work ran: a copy, a memset), and
// the host time from the end of the previous range to the start of this one (the host work in
// between; when it matches the idle time, the host was the bottleneck there). For benchmarks ("where
// does a training step spend its time"); off by default, and a no-op on the CPU.
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
  double idle_before_ms = 0;  // stream idle between the previous range (same device) and these
  double host_before_ms = 0;  // host time between the previous range's end and these ranges' starts
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
