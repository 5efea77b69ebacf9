// LayerNorm forward and backward (kernels/norm.h, the production launchers) on ≥ 256 MiB activations,
// C ∈ {384, 1024, 1536}, f32 and bf16, against the device-to-device copy bandwidth measured in the same
// run. Bytes are what each direction must move at least:
//   forward : read x, write y, write mean and rstd (8 B per row), read weight and bias;
//   backward: read x and dy, write dx, read mean and rstd, read weight, read and write dweight, dbias
//             (the per-block partials of the deterministic reduction are extra traffic, timed, not counted).
// Usage: norm_gpu_bench [MiB per activation tensor, default 256]
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/norm.h"

namespace drwkv {
namespace {
using bench::fmt;

template <typename T>
void run(int64_t C, size_t tensor_bytes, double copy_gbs, std::vector<std::vector<std::string>>& rows_out) {
  const Device dev = Device::cuda(0);
  const DType dt = dtype_v<T>;
  const int64_t rows = int64_t((tensor_bytes + size_t(C) * sizeof(T) - 1) / (size_t(C) * sizeof(T)));
  const double act = double(rows) * double(C) * sizeof(T);
  Tensor x = Tensor::empty(Shape{rows, C}, dt, dev), dy = Tensor::empty(Shape{rows, C}, dt, dev);
  rng_normal_(x, 1, 1, 0, 0.5, 2.0);
  rng_normal_(dy, 2, 1);
  Tensor y = Tensor::empty(Shape{rows, C}, dt, dev), dx = Tensor::empty(Shape{rows, C}, dt, dev);
  Tensor w = Tensor::full(Shape{C}, 1.0, DType::F32, dev), b = Tensor::zeros(Shape{C}, DType::F32, dev);
  Tensor dw = Tensor::zeros(Shape{C}, DType::F32, dev), db = Tensor::zeros(Shape{C}, DType::F32, dev);
  Tensor mean = Tensor::empty(Shape{rows}, DType::F32, dev), rstd = Tensor::empty(Shape{rows}, DType::F32, dev);
  Tensor scratch = Tensor::empty(Shape{kernels::norm_backward_scratch_size(rows, C)}, DType::F32, dev);
  StreamHandle s = current_stream(dev).handle();
  auto f32 = [](const Tensor& t) { return static_cast<float*>(t.data()); };
  auto pt = [](const Tensor& t) { return static_cast<T*>(t.data()); };

  bench::Timing fwd = bench::time_gpu(0, [&] {
    kernels::layernorm_forward_cuda<T>(pt(y), f32(mean), f32(rstd), pt(x), f32(w), f32(b), rows, C, 1e-5, s);
  }, 3, 20);
  bench::Timing bwd = bench::time_gpu(0, [&] {
    kernels::layernorm_backward_cuda<T>(pt(dx), f32(dw), f32(db), pt(dy), pt(x), f32(w), f32(mean), f32(rstd), rows, C,
                                        false, f32(scratch), s);
  }, 3, 20);
  const double fwd_bytes = 2 * act + 8.0 * double(rows) + 8.0 * double(C);
  const double bwd_bytes = 3 * act + 8.0 * double(rows) + 4.0 * double(C) + 16.0 * double(C);
  const std::string shape = std::to_string(rows) + " x " + std::to_string(C);
  for (auto [name, t, bytes] : {std::tuple{"forward", fwd, fwd_bytes}, std::tuple{"backward", bwd, bwd_bytes}}) {
    const double gbs = bytes / (t.median_ms * 1e-3) / 1e9;
    rows_out.push_back({name, std::string(dtype_name(dt)), shape, fmt(bytes / double(1 << 20), 0), fmt(t.median_ms, 3),
                        fmt(gbs, 0), fmt(100.0 * gbs / copy_gbs, 1)});
  }
}

}  // namespace
}  // namespace drwkv

int main(int argc, char** argv) {
  using namespace drwkv;
  const size_t mib = argc > 1 ? size_t(std::atol(argv[1])) : 256;
  const double copy = bench::copy_bandwidth_gbs(0, size_t(1) << 30);
  std::printf("LayerNorm kernels, %s, %s; activation tensors >= %zu MiB; eps 1e-5, affine\n",
              bench::device_name(0).c_str(), bench::now_string().c_str(), mib);
  std::printf("device-to-device copy (cudaMemcpyAsync, 1 GiB): %.0f GB/s counting read + write\n\n", copy);
  std::vector<std::vector<std::string>> table = {
      {"LayerNorm", "dtype", "rows x C", "MiB moved", "median ms", "GB/s", "% of copy"}};
  for (int64_t C : {384, 1024, 1536}) {
    run<float>(C, mib << 20, copy, table);
    run<bf16>(C, mib << 20, copy, table);
  }
  bench::print_table(table);
  return 0;
}
