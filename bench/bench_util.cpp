// Shared benchmark helpers (bench/bench_util.h).
#include "bench/bench_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "core/build_config.h"
#include "core/stream.h"
#include "core/tensor.h"

#if DRWKV_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace drwkv::bench {
namespace {
Timing summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Timing t;
  t.iterations = int(ms.size());
  if (ms.empty()) return t;
  t.median_ms = ms[ms.size() / 2];
  t.min_ms = ms.front();
  t.max_ms = ms.back();
  return t;
}
}  // namespace

Timing time_gpu(int device, const std::function<void()>& fn, int warmup, int iterations) {
  for (int i = 0; i < warmup; ++i) fn();
  Stream s = current_stream(device);
  std::vector<std::unique_ptr<Event>> start, stop;
  for (int i = 0; i < iterations; ++i) {
    start.push_back(std::make_unique<Event>(true));
    stop.push_back(std::make_unique<Event>(true));
  }
  for (int i = 0; i < iterations; ++i) {
    start[size_t(i)]->record(s);
    fn();
    stop[size_t(i)]->record(s);
  }
  s.synchronize();
  std::vector<double> ms;
  for (int i = 0; i < iterations; ++i) ms.push_back(start[size_t(i)]->elapsed_ms(*stop[size_t(i)]));
  return summarize(ms);
}

Timing time_cpu(const std::function<void()>& fn, int warmup, int iterations) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < iterations; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn();
    auto b = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  return summarize(ms);
}

double copy_bandwidth_gbs(int device, size_t bytes) {
  Tensor a = Tensor::empty(Shape{int64_t(bytes)}, DType::U8, Device::cuda(device));
  Tensor b = Tensor::empty(Shape{int64_t(bytes)}, DType::U8, Device::cuda(device));
  a.fill_(1);
#if DRWKV_WITH_CUDA
  // the copy engine path itself (Tensor::copy_ of a u8 tensor would time the generic strided kernel)
  auto stream = reinterpret_cast<cudaStream_t>(current_stream(device).handle());
  Timing t = time_gpu(device, [&] {
    CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, stream));
  }, 3, 20);
#else
  Timing t = time_gpu(device, [&] { b.copy_(a); }, 3, 20);
#endif
  return 2.0 * double(bytes) / (t.median_ms * 1e-3) / 1e9;
}

std::string device_name(int device) {
#if DRWKV_WITH_CUDA
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, device) == cudaSuccess) return p.name;
#endif
  (void)device;
  return "cpu";
}

std::string now_string() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", std::localtime(&t));
  return buf;
}

std::string fmt(double v, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

void print_table(const std::vector<std::vector<std::string>>& rows, bool markdown) {
  if (rows.empty()) return;
  std::vector<size_t> w(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) std::printf("%-*s  ", int(w[i]), r[i].c_str());
    std::printf("\n");
  }
  if (!markdown) return;
  std::printf("\n");
  for (size_t k = 0; k < rows.size(); ++k) {
    std::printf("|");
    for (const auto& c : rows[k]) std::printf(" %s |", c.c_str());
    std::printf("\n");
    if (k == 0) {
      std::printf("|");
      for (size_t i = 0; i < rows[0].size(); ++i) std::printf("---|");
      std::printf("\n");
    }
  }
  std::fflush(stdout);
}

}  // namespace drwkv::bench
