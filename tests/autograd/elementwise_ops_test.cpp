// Elementwise ops and reductions: backward against finite differences (f64, CPU), with broadcasting.
#include <gtest/gtest.h>

#include "autograd/elementwise_ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using kernels::UnaryOp;
using testing::gradcheck;

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  return testing::random_uniform(s, DType::F64, Device::cpu(), seed, lo, hi);
}

class UnaryGrad : public ::testing::TestWithParam<UnaryOp> {};
TEST_P(UnaryGrad, MatchesFiniteDifferences) {
  for (Shape s : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 1, 3}}) {
    // keep inputs away from the kink of ReLU-type ops
    Tensor x = rnd(s, 11);
    EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return unary(GetParam(), v[0]); }, {x})) << s.str();
  }
}
INSTANTIATE_TEST_SUITE_P(All, UnaryGrad,
                         ::testing::Values(UnaryOp::Sigmoid, UnaryOp::SiLU, UnaryOp::Tanh, UnaryOp::Exp,
                                           UnaryOp::Softplus, UnaryOp::ReluSquared, UnaryOp::Relu, UnaryOp::Square));

TEST(BinaryGrad, BroadcastingCases) {
  struct Case { Shape a, b; };
  for (Case c : {Case{{4, 3}, {4, 3}}, Case{{4, 3}, {3}}, Case{{4, 1}, {1, 3}}, Case{{2, 3, 4}, {3, 1}}, Case{{1}, {5}}}) {
    Tensor a = rnd(c.a, 1), b = rnd(c.b, 2, 0.5, 2.0);  // b away from 0 for div
    for (auto op : {kernels::BinaryOp::Add, kernels::BinaryOp::Sub, kernels::BinaryOp::Mul, kernels::BinaryOp::Div})
      EXPECT_TRUE(gradcheck([op](const std::vector<Variable>& v) { return binary(op, v[0], v[1]); }, {a, b}))
          << c.a.str() << " op " << int(op) << " " << c.b.str();
  }
}

TEST(TernaryGrad, LerpAndAddcmul) {
  Tensor a = rnd(Shape{3, 4}, 3), b = rnd(Shape{3, 4}, 4), w = rnd(Shape{4}, 5);
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return lerp(v[0], v[1], v[2]); }, {a, b, w}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return addcmul(v[0], v[1], v[2], -0.7); }, {w, a, b}));
}

TEST(ReduceGrad, SumMeanAlongAxes) {
  Tensor x = rnd(Shape{2, 3, 5}, 6);
  for (int axis : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      EXPECT_TRUE(gradcheck([=](const std::vector<Variable>& v) { return sum(v[0], axis, keep); }, {x}));
      EXPECT_TRUE(gradcheck([=](const std::vector<Variable>& v) { return mean(v[0], axis, keep); }, {x}));
    }
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return mean_all(v[0]); }, {x}));
}

TEST(Reduce, ValuesAgainstClosedForm) {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, Shape{2, 3});
  EXPECT_EQ(reduce_tensor(kernels::ReduceOp::Sum, x, 1, false).to_vector<double>(), (std::vector<double>{6, 15}));
  EXPECT_EQ(reduce_tensor(kernels::ReduceOp::Mean, x, 0, false).to_vector<double>(), (std::vector<double>{2.5, 3.5, 4.5}));
  EXPECT_EQ(reduce_tensor(kernels::ReduceOp::Max, x, 1, true).to_vector<double>(), (std::vector<double>{3, 6}));
}

}  // namespace
}  // namespace drwkv::autograd
