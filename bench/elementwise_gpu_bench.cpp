// Elementwise kernels (kernels/elementwise.h, the production launchers) on ≥ 256 MiB tensors, f32 and
// bf16, against the device-to-device copy bandwidth measured in the same run. Bytes = operands read +
// output written, each once:
//   SiLU forward          y = x σ(x)                 read x, write y
//   SiLU backward         dx = dy · SiLU'(x)         read dy and x, write dx
//   add                   out = a + b                read a and b, write out
//   lerp, [C] weight      out = a + (b − a) ⊙ w      read a and b ([rows, C]) and w ([C]), write out
// Usage: elementwise_gpu_bench [MiB per tensor, default 256] [C of the lerp weight, default 384]
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
#include "kernels/elementwise.h"

namespace drwkv {
namespace {
using bench::fmt;
using kernels::Broadcast;

// The broadcast description of operands of `shapes` (numpy rules, as autograd builds it) over `out`.
Broadcast broadcast_of(const Shape& out, std::initializer_list<Shape> shapes) {
  Broadcast bc;
  bc.ndim = out.size();
  for (int d = 0; d < out.size(); ++d) bc.shape[d] = out[d];
  int k = 0;
  for (const Shape& s : shapes) {
    Shape st = s.contiguous_strides();
    const int lead = out.size() - s.size();
    for (int d = 0; d < out.size(); ++d) bc.stride[k][d] = d < lead || s[d - lead] == 1 ? 0 : st[d - lead];
    ++k;
  }
  return bc;
}

template <typename T>
void run(size_t tensor_bytes, int64_t C, double copy_gbs, std::vector<std::vector<std::string>>& table) {
  const Device dev = Device::cuda(0);
  const DType dt = dtype_v<T>;
  const int64_t rows = int64_t((tensor_bytes / sizeof(T) + size_t(C) - 1) / size_t(C)), n = rows * C;
  const double nb = double(n) * sizeof(T);
  Tensor a = Tensor::empty(Shape{rows, C}, dt, dev), b = Tensor::empty(Shape{rows, C}, dt, dev);
  Tensor out = Tensor::empty(Shape{rows, C}, dt, dev), w = Tensor::empty(Shape{C}, dt, dev);
  rng_normal_(a, 1, 1);
  rng_normal_(b, 2, 1);
  rng_uniform_(w, 3, 1);
  StreamHandle s = current_stream(dev).handle();
  auto p = [](const Tensor& t) { return static_cast<T*>(t.data()); };
  const Broadcast dense = broadcast_of(Shape{rows, C}, {Shape{rows, C}, Shape{rows, C}});
  const Broadcast row_w = broadcast_of(Shape{rows, C}, {Shape{rows, C}, Shape{rows, C}, Shape{C}});

  struct Case {
    const char* name;
    double bytes;
    std::function<void()> fn;
  };
  const Case cases[] = {
      {"SiLU forward", 2 * nb, [&] { kernels::unary_forward_cuda<T>(kernels::UnaryOp::SiLU, p(out), p(a), n, s); }},
      {"SiLU backward", 3 * nb,
       [&] { kernels::unary_backward_cuda<T>(kernels::UnaryOp::SiLU, p(out), p(b), p(a), nullptr, n, s); }},
      {"add", 3 * nb, [&] { kernels::binary_cuda<T>(kernels::BinaryOp::Add, p(out), p(a), p(b), dense, s); }},
      {"lerp, [C] weight", 3 * nb + double(C) * sizeof(T),
       [&] { kernels::lerp_cuda<T>(p(out), p(a), p(b), p(w), row_w, s); }},
  };
  for (const Case& c : cases) {
    bench::Timing t = bench::time_gpu(0, c.fn, 3, 20);
    const double gbs = c.bytes / (t.median_ms * 1e-3) / 1e9;
    table.push_back({c.name, std::string(dtype_name(dt)), std::to_string(rows) + " x " + std::to_string(C),
                     fmt(c.bytes / double(1 << 20), 0), fmt(t.median_ms, 3), fmt(gbs, 0), fmt(100.0 * gbs / copy_gbs, 1)});
  }
}

}  // namespace
}  // namespace drwkv

int main(int argc, char** argv) {
  using namespace drwkv;
  const size_t mib = argc > 1 ? size_t(std::atol(argv[1])) : 256;
  const int64_t C = argc > 2 ? std::atol(argv[2]) : 384;
  const double copy = bench::copy_bandwidth_gbs(0, size_t(1) << 30);
  std::printf("Elementwise kernels, %s, %s; tensors >= %zu MiB\n", bench::device_name(0).c_str(),
              bench::now_string().c_str(), mib);
  std::printf("device-to-device copy (cudaMemcpyAsync, 1 GiB): %.0f GB/s counting read + write\n\n", copy);
  std::vector<std::vector<std::string>> table = {{"op", "dtype", "shape", "MiB moved", "median ms", "GB/s", "% of copy"}};
  run<float>(mib << 20, C, copy, table);
  run<bf16>(mib << 20, C, copy, table);
  bench::print_table(table);
  return 0;
}
