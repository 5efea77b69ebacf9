// The backward engine: accumulation, shared inputs, no-grad, grad-ready hooks, checkpointing.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/elementwise_ops.h"
#include "autograd/linear_ops.h"
#include "autograd/variable.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::random_uniform;

Tensor rnd(const Shape& s, uint64_t seed) { return random_uniform(s, DType::F64, Device::cpu(), seed); }

TEST(Engine, SharedInputAccumulates) {
  // y = x * x + x: dy/dx = 2x + 1
  Variable x(rnd(Shape{5}, 1), true);
  Variable y = add(mul(x, x), x);
  y.backward(Tensor::full(Shape{5}, 1.0, DType::F64));
  std::vector<double> xv = x.value().to_vector<double>(), g = x.grad().to_vector<double>();
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(g[i], 2 * xv[i] + 1, 1e-14);
}

TEST(Engine, LeafGradientsAccumulateAcrossBackwardCalls) {
  Variable x(rnd(Shape{3}, 2), true);
  sum_all(x).backward();
  sum_all(scale_shift(x, 3.0)).backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_DOUBLE_EQ(g, 4.0);
  x.zero_grad();
  for (double g : x.grad().to_vector<double>()) EXPECT_DOUBLE_EQ(g, 0.0);
}

TEST(Engine, BoundGradientBufferReceivesContributions) {
  Tensor flat = Tensor::full(Shape{8}, 10.0, DType::F64);
  Variable w(rnd(Shape{4}, 3), true);
  w.bind_grad(flat.slice(0, 2, 6));
  sum_all(scale_shift(w, 2.0)).backward();
  EXPECT_EQ(flat.to_vector<double>(), (std::vector<double>{10, 10, 12, 12, 12, 12, 10, 10}));
}

TEST(Engine, ResetBoundGradientIsOverwrittenThenAccumulated) {
  // a reset bound gradient holding garbage: the first contribution (through target(), the GEMM path, and
  // through add()) overwrites it, the next adds; the buffer around the slice is never touched
  const double nan = std::nan("");
  Tensor flat = Tensor::full(Shape{10}, nan, DType::F64);
  Variable w(rnd(Shape{4}, 7), true), u(rnd(Shape{2, 2}, 8), true);
  w.bind_grad(flat.slice(0, 1, 5));
  u.bind_grad(flat.slice(0, 5, 9).view(Shape{2, 2}));
  w.reset_grad();
  u.reset_grad();
  EXPECT_TRUE(w.grad_pending_reset());
  sum_all(scale_shift(w, 2.0)).backward();
  Variable x(rnd(Shape{3, 2}, 9));
  sum_all(linear(x, u)).backward();  // y = x·uᵀ: ∂Σy/∂u[o][i] = Σ_n x[n][i]
  EXPECT_FALSE(w.grad_pending_reset());
  std::vector<double> f = flat.to_vector<double>(), xv = x.value().to_vector<double>();
  EXPECT_TRUE(std::isnan(f[0]) && std::isnan(f[9]));
  for (int i = 1; i < 5; ++i) EXPECT_EQ(f[size_t(i)], 2.0);
  for (int o = 0; o < 2; ++o)
    for (int i = 0; i < 2; ++i)
      EXPECT_NEAR(f[size_t(5 + 2 * o + i)], xv[size_t(i)] + xv[size_t(2 + i)] + xv[size_t(4 + i)], 1e-14);
  sum_all(scale_shift(w, 3.0)).backward();
  for (double g : w.grad().to_vector<double>()) EXPECT_EQ(g, 5.0);
  // no contribution after a reset: grad() reads zeros
  w.reset_grad();
  for (double g : w.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
  EXPECT_TRUE(std::isnan(flat.to_vector<double>()[0]));
}

TEST(Engine, OnDemandGradientIsBoundAtFirstUseAndOverwritten) {
  // a buffer full of garbage bound by the binder at the first contribution (target() through the GEMM
  // path and add()): overwritten, then accumulated; released, it counts as zero and the binder runs again
  const double nan = std::nan("");
  Variable w(rnd(Shape{4}, 11), true), u(rnd(Shape{2, 2}, 12), true);
  int binds = 0;
  Tensor flat;
  auto binder = [&] {
    ++binds;
    flat = Tensor::full(Shape{10}, nan, DType::F64);
    w.bind_grad(flat.slice(0, 1, 5));
    u.bind_grad(flat.slice(0, 5, 9).view(Shape{2, 2}));
  };
  w.bind_grad_on_demand(binder);
  u.bind_grad_on_demand(binder);
  EXPECT_TRUE(w.grad_released() && u.grad_released());
  Variable x(rnd(Shape{3, 2}, 13));
  sum_all(linear(x, u)).backward();
  EXPECT_EQ(binds, 1);
  EXPECT_FALSE(w.grad_released());
  EXPECT_TRUE(w.grad_pending_reset());  // bound with the others, not written yet
  sum_all(scale_shift(w, 2.0)).backward();
  sum_all(scale_shift(w, 3.0)).backward();
  EXPECT_EQ(binds, 1);
  for (double g : w.grad().to_vector<double>()) EXPECT_EQ(g, 5.0);
  std::vector<double> ug = u.grad().to_vector<double>(), xv = x.value().to_vector<double>();
  for (int o = 0; o < 2; ++o)
    for (int i = 0; i < 2; ++i)
      EXPECT_NEAR(ug[size_t(2 * o + i)], xv[size_t(i)] + xv[size_t(2 + i)] + xv[size_t(4 + i)], 1e-14);
  // released: no buffer; zero_grad keeps it that way; grad() binds a fresh (garbage) buffer and zeroes it
  w.release_grad();
  u.release_grad();
  w.zero_grad();
  EXPECT_TRUE(w.grad_released());
  for (double g : w.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
  EXPECT_EQ(binds, 2);
  EXPECT_TRUE(u.grad_pending_reset());
  EXPECT_TRUE(std::isnan(flat.to_vector<double>()[0]));  // outside the slices: untouched
}

TEST(Engine, NoGradRecordsNothing) {
  Variable x(rnd(Shape{3}, 4), true);
  NoGradGuard ng;
  Variable y = sigmoid(x);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(grad_enabled() == false);
}

TEST(Engine, GradReadyHookFiresOnceWhenFinal) {
  // w is used by two nodes; its hook must fire only after both contributed, exactly once.
  Variable w(rnd(Shape{4}, 5), true), u(rnd(Shape{4}, 6), true);
  std::vector<std::string> events;
  double w_grad_at_hook = 0;
  w.set_grad_ready_hook([&] {
    events.push_back("w");
    w_grad_at_hook = w.grad().to_vector<double>()[0];
  });
  u.set_grad_ready_hook([&] { events.push_back("u"); });
  Variable a = mul(w, u);          // uses w, u
  Variable b = scale_shift(w, 2);  // uses w
  Variable loss = sum_all(add(a, b));
  loss.backward();
  ASSERT_EQ(events.size(), 2u);
  double expected = u.value().to_vector<double>()[0] + 2.0;
  EXPECT_NEAR(w_grad_at_hook, expected, 1e-12) << "hook saw a partial gradient";
}

TEST(Engine, CheckpointMatchesPlainAndFiresHooks) {
  Tensor xv = rnd(Shape{6}, 7), wv = rnd(Shape{6}, 8);
  auto segment = [](const Variable& x, const Variable& w) { return mul(sigmoid(mul(x, w)), w); };
  Variable x1(xv, true), w1(wv, true);
  sum_all(segment(x1, w1)).backward();
  Variable x2(xv, true), w2(wv, true);
  int fired = 0;
  w2.set_grad_ready_hook([&] { ++fired; });
  Variable y = checkpoint([&](const std::vector<Variable>& in) { return segment(in[0], w2); }, {x2});
  EXPECT_TRUE(y.requires_grad());
  EXPECT_EQ(y.grad_fn()->inputs.size(), 1u);
  sum_all(y).backward();
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(testing::tensors_close(x2.grad(), x1.grad(), {1e-14, 1e-15}, "dx", 7));
  EXPECT_TRUE(testing::tensors_close(w2.grad(), w1.grad(), {1e-14, 1e-15}, "dw", 7));
}

TEST(Engine, SavedTensorsAreReleasedAfterBackward) {
  Variable x(rnd(Shape{1000}, 9), true);
  Variable y = sigmoid(x);  // saves its output
  std::weak_ptr<Storage> saved = y.value().storage();
  Variable loss = sum_all(y);
  y = Variable();  // the graph still holds the saved output
  EXPECT_FALSE(saved.expired());
  loss.backward();
  EXPECT_TRUE(saved.expired()) << "the sigmoid node kept its saved tensor after backward";
}

}  // namespace
}  // namespace drwkv::autograd

namespace drwkv::autograd {
namespace {
// A two-output op (y1 = 2x, y2 = x²) exercises multi-output nodes, including an unused output.
std::vector<Variable> two_outputs(const Variable& x) {
  Tensor xv = x.value();
  std::vector<double> v = xv.to_vector<double>(), a, b;
  for (double e : v) {
    a.push_back(2 * e);
    b.push_back(e * e);
  }
  return make_results({Tensor::from_vector(a, xv.shape()), Tensor::from_vector(b, xv.shape())}, "two", {x},
                      [xv](BackwardContext& ctx) {
                        Tensor g1 = ctx.grad_output_or_zeros(0), g2 = ctx.grad_output_or_zeros(1);
                        std::vector<double> x = xv.to_vector<double>(), d1 = g1.to_vector<double>(),
                                            d2 = g2.to_vector<double>(), out;
                        for (size_t i = 0; i < x.size(); ++i) out.push_back(2 * d1[i] + 2 * x[i] * d2[i]);
                        ctx.add(0, Tensor::from_vector(out, xv.shape()));
                      });
}

TEST(Engine, MultiOutputNodes) {
  Tensor x = testing::random_uniform(Shape{4}, DType::F64, Device::cpu(), 12);
  EXPECT_TRUE(testing::gradcheck([](const std::vector<Variable>& v) {
    auto o = two_outputs(v[0]);
    return add(o[0], mul(o[1], o[1]));
  }, {x}));
  EXPECT_TRUE(testing::gradcheck([](const std::vector<Variable>& v) { return two_outputs(v[0])[1]; }, {x}));
}
}  // namespace
}  // namespace drwkv::autograd
