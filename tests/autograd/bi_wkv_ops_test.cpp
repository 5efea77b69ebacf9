// The bi_wkv op (autograd/bi_wkv_ops.h): gradients of both variants against central finite
// differences in f64 (decay/first gradients include the 1/T of w = decay/T), accumulation into bound
// parameter gradients, and the f32 path against f64.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/bi_wkv_ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::gradcheck;

Tensor rnd(const Shape& s, uint64_t seed, double lo, double hi) {
  return testing::random_uniform(s, DType::F64, Device::cpu(), seed, lo, hi);
}

// decay, first, k, v for [B, T, C] with |w| = |decay|/T ≤ w_max.
std::vector<Tensor> inputs(int64_t B, int64_t T, int64_t C, double w_max, uint64_t seed) {
  Tensor decay = rnd(Shape{C}, seed, -w_max * double(T), w_max * double(T));
  Tensor first = rnd(Shape{C}, seed + 1, -2.0 * double(T), 2.0 * double(T));
  return {decay, first, rnd(Shape{B, T, C}, seed + 2, -2, 2), rnd(Shape{B, T, C}, seed + 3, -1, 1)};
}

class BiWkvGrad : public ::testing::TestWithParam<BiWkvVariant> {};

TEST_P(BiWkvGrad, MatchesFiniteDifferences) {
  const BiWkvVariant variant = GetParam();
  uint64_t seed = 40;
  for (int64_t T : {1, 2, 5, 33, 70}) {
    auto f = [variant](const std::vector<Variable>& x) { return bi_wkv(x[0], x[1], x[2], x[3], variant); };
    testing::GradcheckOptions opt;  // central differences of an O(10) loss: ~1e-9 of rounding noise
    opt.eps = 1e-5;
    opt.rtol = 1e-5;
    opt.atol = 1e-8;
    opt.seed = seed;
    EXPECT_TRUE(gradcheck(f, inputs(2, T, 3, 0.4, seed += 10), opt)) << "T=" << T << " variant " << int(variant);
  }
}
INSTANTIATE_TEST_SUITE_P(Variants, BiWkvGrad, ::testing::Values(BiWkvVariant::Exact, BiWkvVariant::OfficialCompat));

TEST(BiWkvOp, ParameterGradientsAccumulateIntoBoundBuffers) {
  std::vector<Tensor> in = inputs(2, 9, 4, 0.3, 7);
  Variable decay(in[0], true), first(in[1], true), k(in[2], true), v(in[3], false);
  Tensor seed = rnd(Shape{2, 9, 4}, 8, -1, 1);
  // reference: fresh gradients
  bi_wkv(decay, first, k, v).backward(seed);
  Tensor gd = decay.grad().clone(), gf = first.grad().clone();
  ASSERT_TRUE(k.grad().defined());
  // bound buffers holding 1.5: the op adds to them
  Variable decay2(in[0], true), first2(in[1], true), k2(in[2], false), v2(in[3], false);
  decay2.bind_grad(Tensor::full(Shape{4}, 1.5, DType::F64));
  first2.bind_grad(Tensor::full(Shape{4}, 1.5, DType::F64));
  bi_wkv(decay2, first2, k2, v2).backward(seed);
  std::vector<double> a = decay2.grad().to_vector<double>(), b = gd.to_vector<double>();
  std::vector<double> c = first2.grad().to_vector<double>(), d = gf.to_vector<double>();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(a[i], b[i] + 1.5, 1e-12) << i;
    EXPECT_NEAR(c[i], d[i] + 1.5, 1e-12) << i;
  }
}

TEST(BiWkvOp, F32MatchesF64) {
  std::vector<Tensor> in = inputs(3, 130, 5, 0.5, 21);
  Tensor seed = rnd(Shape{3, 130, 5}, 22, -1, 1);
  auto run = [&](DType dt) {
    Variable decay(in[0].to(dt == DType::F64 ? DType::F64 : DType::F32), true);
    Variable first(in[1].to(dt == DType::F64 ? DType::F64 : DType::F32), true);
    Variable k(in[2].to(dt), true), v(in[3].to(dt), true);
    Variable y = bi_wkv(decay, first, k, v);
    y.backward(seed.to(dt));
    return std::vector<Tensor>{y.value(), k.grad(), v.grad(), decay.grad(), first.grad()};
  };
  std::vector<Tensor> want = run(DType::F64), got = run(DType::F32);
  const char* names[] = {"y", "dk", "dv", "ddecay", "dfirst"};
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TENSORS_CLOSE(got[i].to(DType::F64), want[i], (testing::Tolerance{2e-4, 2e-5}), names[i], 21);
}

}  // namespace
}  // namespace drwkv::autograd
