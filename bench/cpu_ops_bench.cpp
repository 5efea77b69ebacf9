// Where CPU training time goes for a tiny model: the CPU backend's GEMM (BLAS) at a training batch of
// 64 images × 256 tokens with widths K, N ∈ {64, 128, 256} (forward X·Wᵀ, dX = dY·W, dW += dYᵀ·X),
// the elementwise kernels over one [16384, 256] activation, and the fused AdamW / EMA / sum of squares
// over a flat parameter buffer. All f32 (the CPU precision policy) except one bf16 GEMM row that shows
// the cost of widening bf16 operands. Bandwidth counts bytes read + written; inputs are random.
//
// Usage: cpu_ops_bench [iterations]   (default 5, after one warm-up)
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/check.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/optim.h"
#include "kernels/reduce.h"

namespace {
using namespace drwkv;
using namespace drwkv::bench;

Tensor random(const Shape& s, uint64_t seed, DType dt = DType::F32) {
  Tensor t = Tensor::empty(s, dt, Device::cpu());
  rng_normal_(t, seed, 0xc9);
  return t;
}

struct Table {
  int iterations;
  std::vector<std::vector<std::string>> rows = {{"op", "shape", "median ms", "GFLOP/s", "GB/s"}};
  void add(const std::string& op, const std::string& shape, double flops, double bytes, const std::function<void()>& fn) {
    Timing t = time_cpu(fn, 1, iterations);
    double s = t.median_ms * 1e-3;
    rows.push_back({op, shape, fmt(t.median_ms, 3), flops > 0 ? fmt(flops / s / 1e9, 1) : "-",
                    bytes > 0 ? fmt(bytes / s / 1e9, 2) : "-"});
  }
};

// D[m, n] (beta) = op(A) op(B) with dense row-major operands of `dt`.
kernels::GemmArgs gemm_args(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& d, float beta) {
  kernels::GemmArgs g;
  g.m = d.size(0);
  g.n = d.size(1);
  g.k = ta ? a.size(0) : a.size(1);
  g.a = a.data();
  g.a_dtype = a.dtype();
  g.lda = a.size(1);
  g.trans_a = ta;
  g.b = b.data();
  g.b_dtype = b.dtype();
  g.ldb = b.size(1);
  g.trans_b = tb;
  g.d = d.data();
  g.d_dtype = d.dtype();
  g.ldd = d.size(1);
  g.beta = beta;
  return g;
}

void gemm_rows(Table& t) {
  const int64_t M = 64 * 256;
  for (int64_t k : {64, 128, 256})
    for (int64_t n : {64, 128, 256}) {
      Tensor x = random(Shape{M, k}, 1), w = random(Shape{n, k}, 2), dy = random(Shape{M, n}, 3);
      Tensor y = Tensor::empty(Shape{M, n}, DType::F32), dx = Tensor::empty(Shape{M, k}, DType::F32);
      Tensor dw = Tensor::zeros(Shape{n, k}, DType::F32);
      const double flops = 2.0 * double(M) * double(n) * double(k);
      const std::string shape = strprintf("M%lld K%lld N%lld", (long long)M, (long long)k, (long long)n);
      auto fwd = gemm_args(x, false, w, true, y, 0.0f);
      auto bwd_x = gemm_args(dy, false, w, false, dx, 0.0f);
      auto bwd_w = gemm_args(dy, true, x, false, dw, 1.0f);
      t.add("gemm fwd X·Wᵀ", shape, flops, 0, [&] { kernels::gemm_cpu(fwd); });
      t.add("gemm dX = dY·W", shape, flops, 0, [&] { kernels::gemm_cpu(bwd_x); });
      t.add("gemm dW += dYᵀ·X", shape, flops, 0, [&] { kernels::gemm_cpu(bwd_w); });
      if (k == 256 && n == 256) {
        Tensor xb = x.to(DType::BF16), wb = w.to(DType::BF16);
        auto fwd16 = gemm_args(xb, false, wb, true, y, 0.0f);
        t.add("gemm fwd X·Wᵀ, bf16 operands", shape, flops, 0, [&] { kernels::gemm_cpu(fwd16); });
      }
    }
}

void elementwise_rows(Table& t) {
  const int64_t rows = 64 * 256, c = 256, n = rows * c;
  const std::string shape = strprintf("[%lld, %lld]", (long long)rows, (long long)c);
  Tensor a = random(Shape{rows, c}, 10), b = random(Shape{rows, c}, 11), w = random(Shape{rows, c}, 12);
  Tensor out = Tensor::empty(Shape{rows, c}, DType::F32), bias = random(Shape{c}, 13);
  float* o = out.data_ptr<float>();
  const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>(), *pw = w.data_ptr<float>();
  const double rw2 = 8.0 * double(n), rw3 = 12.0 * double(n), rw4 = 16.0 * double(n);
  for (auto [op, name] : std::vector<std::pair<kernels::UnaryOp, const char*>>{
           {kernels::UnaryOp::SiLU, "silu"}, {kernels::UnaryOp::Sigmoid, "sigmoid"}, {kernels::UnaryOp::Exp, "exp"},
           {kernels::UnaryOp::ReluSquared, "relu²"}}) {
    t.add(std::string("unary ") + name, shape, 0, rw2, [&, op = op] { kernels::unary_forward_cpu<float>(op, o, pa, n); });
    t.add(std::string("unary ") + name + " backward", shape, 0, rw3,
          [&, op = op] { kernels::unary_backward_cpu<float>(op, o, pb, pa, nullptr, n); });
  }
  kernels::Broadcast dense;
  dense.ndim = 2;
  dense.shape[0] = rows;
  dense.shape[1] = c;
  for (int k = 0; k < 3; ++k) {
    dense.stride[k][0] = c;
    dense.stride[k][1] = 1;
  }
  kernels::Broadcast row_bias = dense;  // operand 1 broadcast over rows
  row_bias.stride[1][0] = 0;
  t.add("binary mul", shape, 0, rw3, [&] { kernels::binary_cpu<float>(kernels::BinaryOp::Mul, o, pa, pb, dense); });
  t.add("binary add, [C] broadcast over rows", shape, 0, rw2,
        [&] { kernels::binary_cpu<float>(kernels::BinaryOp::Add, o, pa, bias.data_ptr<float>(), row_bias); });
  t.add("scale_shift", shape, 0, rw2, [&] { kernels::scale_shift_cpu<float>(o, pa, 0.5, 0.25, n); });
  t.add("lerp", shape, 0, rw4, [&] { kernels::lerp_cpu<float>(o, pa, pb, pw, dense); });
  t.add("addcmul", shape, 0, rw4, [&] { kernels::addcmul_cpu<float>(o, pa, pb, pw, 0.5, dense); });
}

void optimizer_rows(Table& t) {
  const int64_t n = int64_t(8) << 20;  // a tiny model's flat parameter buffer
  const std::string shape = strprintf("[%lld]", (long long)n);
  Tensor p = random(Shape{n}, 20), g = random(Shape{n}, 21), m = random(Shape{n}, 22), e = random(Shape{n}, 24);
  Tensor v = Tensor::empty(Shape{n}, DType::F32);
  rng_uniform_(v, 23, 0xc9);
  Tensor copy = Tensor::empty(Shape{n}, DType::BF16);
  kernels::AdamWStep h = kernels::adamw_step_constants(1e-4, 0.9, 0.999, 1e-8, 0.0, 100);
  t.add("adamw", shape, 0, 28.0 * double(n), [&] {
    kernels::adamw_cpu(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), nullptr, n,
                       h, nullptr);
  });
  t.add("adamw + bf16 copy", shape, 0, 30.0 * double(n), [&] {
    kernels::adamw_cpu(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
                       copy.data_ptr<bf16>(), n, h, nullptr);
  });
  t.add("ema", shape, 0, 12.0 * double(n), [&] { kernels::ema_cpu(e.data_ptr<float>(), p.data_ptr<float>(), n, 0.9999f); });
  double out[kernels::kSumSquaresBuffer];
  t.add("sum_squares", shape, 0, 4.0 * double(n), [&] { kernels::sum_squares_cpu<float>(out, g.data_ptr<float>(), n); });
}
}  // namespace

int main(int argc, char** argv) {
  using namespace drwkv::bench;
  Table t{argc > 1 ? std::atoi(argv[1]) : 5};
  std::printf("# CPU ops (f32), %s, median of %d after one warm-up\n", now_string().c_str(), t.iterations);
  gemm_rows(t);
  elementwise_rows(t);
  optimizer_rows(t);
  print_table(t.rows);
  return 0;
}
