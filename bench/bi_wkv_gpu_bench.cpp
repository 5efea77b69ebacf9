// Bi-WKV (exact, kernels/bi_wkv.h) on the GPU: forward and forward+backward at the shapes of the
// reference measurements (ANCHORS.md), f32 and bf16. Bandwidth counts the bytes the op must move:
// forward reads k, v and writes y (3 tensors), backward reads k, v, dy and writes dk, dv (5 tensors);
// the workspace traffic (tile summaries, ~2% of that) is not counted. The copy bandwidth is measured in
// the same run. A second table times both algorithms (chained, multi-pass) for f32.
//
// Usage: bi_wkv_gpu_bench [iterations]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/bi_wkv.h"

namespace drwkv {
namespace {
using bench::fmt;
using kernels::BiWkvPath;

struct Config {
  int64_t B, T, C;
  double ref_fwd_ms, ref_fwdbwd_ms;  // reference (ANCHORS.md, H100, f32); 0 when not measured
};

// ANCHORS.md "Bi-WKV kernel (reference, f32), forward + backward" and the B256 T256 C384 split.
const Config kConfigs[] = {
    {32, 256, 384, 0, 0.386},    {32, 1024, 384, 0, 1.161},    {32, 4096, 384, 0, 4.248},
    {32, 256, 1536, 0, 1.482},   {32, 1024, 1536, 0, 4.324},   {32, 4096, 1536, 0, 16.68},
    {256, 256, 384, 0.662, 0.662 + 2.247},
};

struct Buffers {
  Tensor k, v, dy, y, dk, dv, decay, first, ddecay, dfirst, ws;
};

Buffers make_buffers(const Config& c, DType dt) {
  const Device g = Device::cuda(0);
  Shape x{c.B, c.T, c.C};
  Buffers b;
  b.k = Tensor::empty(x, dt, g);
  b.v = Tensor::empty(x, dt, g);
  b.dy = Tensor::empty(x, dt, g);
  rng_normal_(b.k, 1, 1);
  rng_normal_(b.v, 1, 2);
  rng_normal_(b.dy, 1, 3);
  b.y = Tensor::empty(x, dt, g);
  b.dk = Tensor::empty(x, dt, g);
  b.dv = Tensor::empty(x, dt, g);
  b.decay = Tensor::empty(Shape{c.C}, DType::F32, g);
  b.first = Tensor::empty(Shape{c.C}, DType::F32, g);
  rng_normal_(b.decay, 1, 4, 0, 0.0, 3.0);  // w = decay/T, DRWKV-sized
  rng_normal_(b.first, 1, 5, 0, 0.0, 3.0);
  b.ddecay = Tensor::zeros(Shape{c.C}, DType::F32, g);
  b.dfirst = Tensor::zeros(Shape{c.C}, DType::F32, g);
  b.ws = Tensor::empty(Shape{int64_t(kernels::bi_wkv_workspace_bytes(c.B, c.T, c.C))}, DType::U8, g);
  return b;
}

template <typename E> void forward(const Buffers& b, const Config& c, BiWkvPath path) {
  kernels::bi_wkv_forward_cuda_path<E>(path, b.y.data_ptr<E>(), b.k.data_ptr<E>(), b.v.data_ptr<E>(),
                                       b.decay.data_ptr<float>(), b.first.data_ptr<float>(), c.B, c.T, c.C, b.ws.data(),
                                       current_stream(0).handle());
}
template <typename E> void backward(const Buffers& b, const Config& c, BiWkvPath path) {
  kernels::bi_wkv_backward_cuda_path<E>(path, b.dk.data_ptr<E>(), b.dv.data_ptr<E>(), b.ddecay.data_ptr<float>(),
                                        b.dfirst.data_ptr<float>(), b.dy.data_ptr<E>(), b.k.data_ptr<E>(),
                                        b.v.data_ptr<E>(), b.decay.data_ptr<float>(), b.first.data_ptr<float>(), c.B,
                                        c.T, c.C, b.ws.data(), current_stream(0).handle());
}

std::string shape_name(const Config& c) {
  return absl::StrFormat("B%d T%d C%d", c.B, c.T, c.C);
}
std::string path_name(BiWkvPath p) { return p == BiWkvPath::Chained ? "chained" : "multi-pass"; }

template <typename E>
void measure(const Config& c, int iters, double copy_gbs, std::vector<std::vector<std::string>>& rows) {
  const DType dt = dtype_v<E>;
  Buffers b = make_buffers(c, dt);
  const double elems = double(c.B * c.T * c.C), es = double(dtype_size(dt));
  bench::Timing f = bench::time_gpu(0, [&] { forward<E>(b, c, BiWkvPath::Auto); }, 3, iters);
  bench::Timing fb = bench::time_gpu(0, [&] {
    forward<E>(b, c, BiWkvPath::Auto);
    backward<E>(b, c, BiWkvPath::Auto);
  }, 3, iters);
  const double f_gbs = 3 * elems * es / (f.median_ms * 1e-3) / 1e9, fb_gbs = 8 * elems * es / (fb.median_ms * 1e-3) / 1e9;
  auto speedup = [](double ref, double ms) { return ref > 0 ? fmt(ref / ms, 1) + "x" : std::string("-"); };
  rows.push_back({shape_name(c), std::string(dtype_name(dt)), path_name(kernels::bi_wkv_auto_path<E>(c.B, c.T, c.C, true)),
                  fmt(f.median_ms, 3), fmt(f_gbs, 0), fmt(100 * f_gbs / copy_gbs, 0) + "%", fmt(fb.median_ms, 3),
                  fmt(fb_gbs, 0), fmt(100 * fb_gbs / copy_gbs, 0) + "%",
                  c.ref_fwd_ms > 0 ? fmt(c.ref_fwd_ms, 3) : "-", fmt(c.ref_fwdbwd_ms, 3),
                  speedup(c.ref_fwd_ms, f.median_ms), speedup(c.ref_fwdbwd_ms, fb.median_ms)});
}

void compare_paths(const Config& c, int iters, double copy_gbs, std::vector<std::vector<std::string>>& rows) {
  Buffers b = make_buffers(c, DType::F32);
  const double elems = double(c.B * c.T * c.C);
  for (BiWkvPath p : {BiWkvPath::Chained, BiWkvPath::MultiPass}) {
    if (p == BiWkvPath::Chained && kernels::bi_wkv_auto_path<float>(c.B, c.T, c.C, true) != BiWkvPath::Chained) continue;
    bench::Timing f = bench::time_gpu(0, [&] { forward<float>(b, c, p); }, 3, iters);
    bench::Timing bw = bench::time_gpu(0, [&] { backward<float>(b, c, p); }, 3, iters);
    const double f_gbs = 3 * elems * 4 / (f.median_ms * 1e-3) / 1e9, b_gbs = 5 * elems * 4 / (bw.median_ms * 1e-3) / 1e9;
    rows.push_back({shape_name(c), path_name(p), fmt(f.median_ms, 3), fmt(100 * f_gbs / copy_gbs, 0) + "%",
                    fmt(bw.median_ms, 3), fmt(100 * b_gbs / copy_gbs, 0) + "%"});
  }
}

}  // namespace
}  // namespace drwkv

int main(int argc, char** argv) {
  using namespace drwkv;
  const int iters = argc > 1 ? std::atoi(argv[1]) : 20;
  const double copy_gbs = bench::copy_bandwidth_gbs(0);
  std::printf("Bi-WKV (exact) on %s, %s; device-to-device copy %.0f GB/s (read + write); median of %d\n\n",
              bench::device_name(0).c_str(), bench::now_string().c_str(), copy_gbs, iters);
  std::vector<std::vector<std::string>> rows{{"shape", "dtype", "path", "fwd ms", "fwd GB/s", "fwd % copy",
                                              "fwd+bwd ms", "fwd+bwd GB/s", "fwd+bwd % copy",
                                              "reference (ANCHORS.md, H100) fwd ms", "reference fwd+bwd ms",
                                              "fwd speed-up", "fwd+bwd speed-up"}};
  for (const auto& c : kConfigs) {
    measure<float>(c, iters, copy_gbs, rows);
    measure<bf16>(c, iters, copy_gbs, rows);
  }
  bench::print_table(rows);
  std::printf("\nAlgorithms, f32 (backward alone):\n\n");
  std::vector<std::vector<std::string>> paths{{"shape", "path", "fwd ms", "fwd % copy", "bwd ms", "bwd % copy"}};
  for (const auto& c : kConfigs) compare_paths(c, iters, copy_gbs, paths);
  bench::print_table(paths);
  return 0;
}
