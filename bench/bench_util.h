// Shared benchmark helpers: timing (CUDA events around each iteration, median of many after warm-up;
// host clock for CPU work), the device-to-device copy bandwidth measured in the same run, and a plain
// aligned table printer. Bandwidth figures count bytes read plus bytes written.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace drwkv::bench {

struct Timing {
  double median_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  int iterations = 0;
};

// Runs `fn` `warmup` times, then `iterations` times, each bracketed by events on the current stream
// of `device`; returns the statistics of the per-iteration times.
Timing time_gpu(int device, const std::function<void()>& fn, int warmup = 3, int iterations = 20);
// The same with the host clock (CPU code).
Timing time_cpu(const std::function<void()>& fn, int warmup = 1, int iterations = 5);

// cudaMemcpyAsync device-to-device of `bytes`, median GB/s counting read + write (2 × bytes).
double copy_bandwidth_gbs(int device, size_t bytes = size_t(1) << 30);

// Device name, e.g. "NVIDIA H100 80GB HBM3".
std::string device_name(int device);
// Local date and time "YYYY-MM-DD HH:MM".
std::string now_string();

// Prints rows as an aligned plain-text table (first row = header) and, when `markdown`, as a markdown
// table too (for docs/PERF.md).
void print_table(const std::vector<std::vector<std::string>>& rows, bool markdown = true);
std::string fmt(double v, int precision = 3);

}  // namespace drwkv::bench
