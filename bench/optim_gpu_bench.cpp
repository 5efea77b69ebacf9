// Bandwidth of the fused optimizer kernels (kernels/optim.h) and of sum_squares over flat f32 buffers
// of 256 MiB and 1 GiB, next to the device-to-device copy bandwidth measured in the same run.
// Bytes counted are those each kernel must move (read + written), per element:
//   AdamW: reads p, g, m, v (16 B), writes p, m, v (12 B)             = 28 B   (+2 B with the bf16 copy)
//   EMA:   reads ema, p (8 B), writes ema (4 B)                        = 12 B
//   sum_squares (f32): reads x (4 B)                                    =  4 B
// The bar is ≥ 80% of the copy bandwidth. Inputs are random (never zero).
//
// Usage: optim_gpu_bench [iterations]   (default 30)
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/optim.h"
#include "kernels/reduce.h"

int main(int argc, char** argv) {
  using namespace drwkv;
  using namespace drwkv::bench;
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 30;
  const Device gpu = Device::cuda(0);
  const double copy_gbs = copy_bandwidth_gbs(0);
  std::printf("# fused optimizer kernels, %s, %s, median of %d; device-to-device copy %.0f GB/s (read + write)\n",
              device_name(0).c_str(), now_string().c_str(), iterations, copy_gbs);
  std::vector<std::vector<std::string>> table = {
      {"kernel", "elements", "MiB per buffer", "bytes moved / elem", "median ms", "GB/s", "% of copy", ">= 80%"}};
  StreamHandle s = current_stream(0).handle();
  for (int64_t n : {int64_t(64) << 20, int64_t(256) << 20}) {  // 256 MiB and 1 GiB per f32 buffer
    auto filled = [&](uint64_t seed, bool nonnegative) {
      Tensor t = Tensor::empty(Shape{n}, DType::F32, gpu);
      if (nonnegative) {
        rng_uniform_(t, seed, 0x0b7);  // second moments
      } else {
        rng_normal_(t, seed, 0x0b7);
      }
      return t;
    };
    Tensor p = filled(1, false), g = filled(2, false), m = filled(3, false), v = filled(4, true);
    Tensor copy = Tensor::empty(Shape{n}, DType::BF16, gpu);
    Tensor scale = Tensor::full(Shape{1}, 0.5, DType::F32, gpu);
    kernels::AdamWStep h = kernels::adamw_step_constants(1e-4, 0.9, 0.999, 1e-8, 0.0, 1000);
    auto row = [&](const std::string& name, double bytes_per_elem, const std::function<void()>& fn) {
      Timing t = time_gpu(0, fn, 3, iterations);
      double gbs = bytes_per_elem * double(n) / (t.median_ms * 1e-3) / 1e9;
      table.push_back({name, std::to_string(n), std::to_string(n * 4 >> 20), fmt(bytes_per_elem, 0), fmt(t.median_ms, 3),
                       fmt(gbs, 0), fmt(100.0 * gbs / copy_gbs, 1), gbs >= 0.8 * copy_gbs ? "yes" : "NO"});
    };
    row("adamw", 28, [&] {
      kernels::adamw_cuda(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), nullptr,
                          n, h, scale.data_ptr<float>(), s);
    });
    row("adamw + bf16 copy", 30, [&] {
      kernels::adamw_cuda(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
                          copy.data_ptr<bf16>(), n, h, scale.data_ptr<float>(), s);
    });
    row("ema", 12, [&] { kernels::ema_cuda(m.data_ptr<float>(), p.data_ptr<float>(), n, 0.9999f, s); });
    Tensor ema = filled(5, false);
    kernels::AdamWStep he = h;
    he.ema_decay = 0.9999f;
    row("adamw + bf16 copy + ema (fused)", 38, [&] {
      kernels::adamw_cuda(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
                          copy.data_ptr<bf16>(), n, he, scale.data_ptr<float>(), s, ema.data_ptr<float>());
    });
    Tensor buf = Tensor::empty(Shape{kernels::kSumSquaresBuffer}, DType::F64, gpu);
    row("sum_squares", 4, [&] { kernels::sum_squares_cuda<float>(buf.data_ptr<double>(), g.data_ptr<float>(), n, s); });
  }
  print_table(table);
  return 0;
}
