// linear, linear2 and bmm on the GPU (bf16 and f32) against the same ops on the CPU in f64 from the
// same rounded values: outputs and every input gradient, including weight/bias gradients accumulated
// over two backward passes into bound f32 buffers of bf16 weights.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <tuple>

#include "autograd/linear_ops.h"
#include "autograd/shape_ops.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
const Device kGpu = Device::cuda(0);

using Fn = std::function<Variable(const std::vector<Variable>&)>;

struct Run {
  Tensor y;
  std::vector<Tensor> grads;
};

// Runs f on `dev` with input i stored as dtypes[i], seeds backward with `seed` (in y's dtype).
Run run(const Fn& f, const std::vector<Tensor>& inputs, const std::vector<DType>& dtypes, Device dev, const Tensor& seed) {
  std::vector<Variable> vars;
  for (size_t i = 0; i < inputs.size(); ++i) vars.emplace_back(inputs[i].to(dev, dtypes[i]), true);
  Run r;
  Variable y = f(vars);
  y.backward(seed.to(dev, y.dtype()));
  r.y = y.value().to(Device::cpu(), DType::F64);
  for (const Variable& v : vars) r.grads.push_back(v.grad().to(Device::cpu(), DType::F64));
  return r;
}

// f on the GPU in `dtypes` against f on the CPU in f64 from the same rounded inputs.
void compare(const Fn& f, const std::vector<Tensor>& host, const std::vector<DType>& dtypes, const Shape& out_shape,
             DType out_dtype, const std::string& what, uint64_t seed_value) {
  std::vector<Tensor> rounded;
  for (size_t i = 0; i < host.size(); ++i) rounded.push_back(host[i].to(dtypes[i]).to(DType::F64));
  Tensor seed = testing::random_uniform(out_shape, out_dtype, Device::cpu(), seed_value).to(DType::F64);
  Run want = run(f, rounded, std::vector<DType>(host.size(), DType::F64), Device::cpu(), seed);
  Run got = run(f, host, dtypes, kGpu, seed);
  bool any_bf16 = out_dtype == DType::BF16, any_f32 = false;
  for (DType d : dtypes) {
    any_bf16 = any_bf16 || d == DType::BF16;
    any_f32 = any_f32 || d == DType::F32;
  }
  // f32 operands of a bf16 product (linear2's mixed form) are rounded on the device only, and so is the
  // f32 output gradient: the gradients then carry bf16 rounding of sums, checked like a bf16 output
  const bool mixed = any_bf16 && any_f32 && out_dtype == DType::F32;
  auto rms_of = [](const Tensor& t) {
    double s = 0;
    std::vector<double> v = t.to_vector<double>();
    for (double a : v) s += a * a;
    return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
  };
  if (any_bf16) {
    // One bf16 rounding per GEMM (two in linear2, and one more where the bias is added after the
    // product): element errors scale with the partial products, which can exceed |y| under
    // cancellation, so elements get an absolute slack of a few percent of the output's RMS and the
    // whole output a tight normalised bound.
    EXPECT_TENSORS_CLOSE(got.y, want.y, (testing::Tolerance{1e-2, 1e-2 + 0.04 * rms_of(want.y)}), what + " output",
                         seed_value);
    EXPECT_LT(testing::relative_error(got.y, want.y), 8e-3) << what << " output";
  } else {
    EXPECT_TENSORS_CLOSE(got.y, want.y, (testing::Tolerance{1e-4, 1e-4}), what + " output", seed_value);
  }
  for (size_t i = 0; i < host.size(); ++i) {
    const std::string gwhat = what + " gradient of input " + std::to_string(i);
    if (mixed) {
      EXPECT_TENSORS_CLOSE(got.grads[i], want.grads[i], (testing::Tolerance{1e-2, 1e-2 + 0.04 * rms_of(want.grads[i])}),
                           gwhat, seed_value);
      EXPECT_LT(testing::relative_error(got.grads[i], want.grads[i]), 8e-3) << gwhat;
      continue;
    }
    testing::Tolerance tol = any_bf16 ? testing::Tolerance{1e-2, 1e-2} : testing::Tolerance{1e-4, 1e-4};
    EXPECT_TENSORS_CLOSE(got.grads[i], want.grads[i], tol, gwhat, seed_value);
  }
}

Tensor rnd(const Shape& s, uint64_t seed) { return testing::random_uniform(s, DType::F32, Device::cpu(), seed); }

TEST(LinearGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  const DType bf = DType::BF16, f32 = DType::F32;
  auto lin = [](const std::vector<Variable>& v) { return linear(v[0], v[1], v.size() > 2 ? v[2] : Variable()); };
  for (auto [lead, k, n] : std::vector<std::tuple<Shape, int64_t, int64_t>>{
           {Shape{1}, 1, 1}, {Shape{7}, 5, 3}, {Shape{4, 33}, 96, 160}, {Shape{2, 128}, 384, 1536}}) {
    Shape xs = lead;
    xs.push_back(k);
    Shape ys = lead;
    ys.push_back(n);
    std::vector<Tensor> in = {rnd(xs, 1), rnd(Shape{n, k}, 2), rnd(Shape{n}, 3)};
    compare(lin, in, {bf, bf, f32}, ys, bf, "linear bf16 (f32 bias) " + xs.str(), 10);
    compare(lin, in, {bf, bf, bf}, ys, bf, "linear bf16 (bf16 bias) " + xs.str(), 11);
    compare(lin, in, {f32, f32, f32}, ys, f32, "linear f32 " + xs.str(), 12);
    compare(lin, {in[0], in[1]}, {bf, bf}, ys, bf, "linear bf16 no bias " + xs.str(), 13);
  }
}

TEST(LinearGroupGpu, MatchesCpu) {
  // three layers of one shape as one grouped GEMM per pass (bf16 as in training, and f32)
  DRWKV_REQUIRE_GPU();
  const DType bf = DType::BF16, f32 = DType::F32;
  auto f = [](const std::vector<Variable>& v) {
    std::vector<Variable> ys = linear_group({v[0], v[1], v[2]}, {v[3], v[4], v[5]});
    return concat(ys, 1);
  };
  for (auto [rows, k, n] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {77, 5, 3}, {300, 384, 384}}) {
    std::vector<Tensor> in;
    for (int i = 0; i < 3; ++i) in.push_back(rnd(Shape{rows, k}, 60 + uint64_t(i)));
    for (int i = 0; i < 3; ++i) in.push_back(rnd(Shape{n, k}, 70 + uint64_t(i)));
    const std::string what = "linear_group rows " + std::to_string(rows) + " k " + std::to_string(k);
    compare(f, in, std::vector<DType>(6, bf), Shape{rows, 3 * n}, bf, what + " bf16", 80);
    compare(f, in, std::vector<DType>(6, f32), Shape{rows, 3 * n}, f32, what + " f32", 81);
  }
}

TEST(Linear2Gpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  const DType bf = DType::BF16, f32 = DType::F32;
  // W = [W1 | W2] as slices of one weight
  auto f = [](const std::vector<Variable>& v) {
    int64_t k1 = v[0].shape()[v[0].shape().size() - 1];
    int64_t k2 = v[1].shape()[v[1].shape().size() - 1];
    return linear2(v[0], slice(v[2], 1, 0, k1), v[1], slice(v[2], 1, k1, k2), v[3]);
  };
  for (auto [k, n] : std::vector<std::array<int64_t, 2>>{{3, 5}, {384, 384}}) {
    std::vector<Tensor> in = {rnd(Shape{3, 77, k}, 20), rnd(Shape{3, 77, k}, 21), rnd(Shape{n, 2 * k}, 22), rnd(Shape{n}, 23)};
    compare(f, in, {bf, bf, bf, f32}, Shape{3, 77, n}, bf, "linear2 bf16 k " + std::to_string(k), 24);
    compare(f, in, {f32, f32, f32, f32}, Shape{3, 77, n}, f32, "linear2 f32 k " + std::to_string(k), 25);
    // f32 inputs, bias and output with bf16 weights (the long-skip projection of the residual stream)
    compare(f, in, {f32, f32, bf, f32}, Shape{3, 77, n}, f32, "linear2 f32 x/s, bf16 W, k " + std::to_string(k), 26);
  }
}

TEST(BmmGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  for (auto [batch, m, k, n] : std::vector<std::array<int64_t, 4>>{{1, 1, 1, 1}, {3, 5, 7, 9}, {4, 64, 96, 33}})
    for (int tr = 0; tr < 4; ++tr) {
      bool ta = tr & 1, tb = tr & 2;
      std::vector<Tensor> in = {rnd(ta ? Shape{batch, k, m} : Shape{batch, m, k}, 30),
                                rnd(tb ? Shape{batch, n, k} : Shape{batch, k, n}, 31)};
      auto f = [ta, tb](const std::vector<Variable>& v) { return bmm(v[0], v[1], ta, tb); };
      std::string what = "bmm t" + std::to_string(ta) + std::to_string(tb) + " m" + std::to_string(m);
      compare(f, in, {DType::BF16, DType::BF16}, Shape{batch, m, n}, DType::BF16, what + " bf16", 32);
      compare(f, in, {DType::F32, DType::F32}, Shape{batch, m, n}, DType::F32, what + " f32", 33);
    }
}

TEST(LinearGpu, Bf16WeightGradientsAccumulateInBoundF32Buffer) {
  DRWKV_REQUIRE_GPU();
  const int64_t tokens = 1000, k = 96, n = 160;
  Tensor x = rnd(Shape{tokens, k}, 40).to(DType::BF16), seed = rnd(Shape{tokens, n}, 41).to(DType::BF16);
  Tensor w_host = rnd(Shape{n, k}, 42).to(DType::BF16), b_host = rnd(Shape{n}, 43);
  Tensor flat_host = rnd(Shape{n * k + n + 8}, 44);  // earlier gradient values, a gap, then the bias
  Tensor flat = flat_host.to(kGpu);
  Variable w(w_host.to(kGpu), true), b(b_host.to(kGpu), true);
  w.bind_grad(flat.narrow(0, 0, n * k).view(Shape{n, k}));
  b.bind_grad(flat.narrow(0, n * k + 8, n));
  for (int pass = 0; pass < 2; ++pass) linear(Variable(x.to(kGpu)), w, b).backward(seed.to(kGpu));
  // CPU f64 from the same values
  Variable wc(w_host.to(DType::F64), true), bc(b_host.to(DType::F64), true);
  linear(Variable(x.to(DType::F64)), wc, bc).backward(seed.to(DType::F64));
  std::vector<double> want = flat_host.to_vector<double>(), dw = wc.grad().to_vector<double>(),
                      db = bc.grad().to_vector<double>();
  for (int64_t i = 0; i < n * k; ++i) want[size_t(i)] += 2 * dw[size_t(i)];
  for (int64_t j = 0; j < n; ++j) want[size_t(n * k + 8 + j)] += 2 * db[size_t(j)];
  EXPECT_TENSORS_CLOSE(flat, Tensor::from_vector(want, flat_host.shape()), (testing::Tolerance{1e-5, 1e-4}),
                       "bound f32 gradient buffer after two passes", 44);
}

}  // namespace
}  // namespace drwkv::autograd
