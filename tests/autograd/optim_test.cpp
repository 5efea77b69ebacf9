// Optimizer entry points on the CPU: adamw_step against a scalar reimplementation (grad scale as a
// tensor, bf16 compute copy, several steps), ema_update against its closed form, sum_squares against
// plain sums for every float dtype, and the argument checks.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/optim.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {

Tensor rnd(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0, DType dt = DType::F32) {
  return testing::random_uniform(Shape{n}, dt, Device::cpu(), seed, lo, hi);
}

TEST(AdamWStep, MatchesScalarReimplementation) {
  const int64_t n = 333;
  AdamWConfig cfg;
  cfg.lr = 3e-2;
  cfg.weight_decay = 0.2;
  cfg.beta2 = 0.95;
  Tensor p = rnd(n, 1), m = Tensor::zeros(Shape{n}, DType::F32), v = Tensor::zeros(Shape{n}, DType::F32);
  Tensor copy = testing::poisoned(Shape{n}, DType::BF16, Device::cpu());
  Tensor scale = Tensor::full(Shape{1}, 0.4, DType::F32);
  std::vector<double> rp = p.to_vector<double>(), rm(static_cast<size_t>(n), 0.0), rv(static_cast<size_t>(n), 0.0);
  for (int t = 1; t <= 4; ++t) {
    Tensor g = rnd(n, 10 + uint64_t(t), -2.0, 2.0);
    adamw_step(p, g, m, v, cfg, t, scale, copy);
    std::vector<double> gv = g.to_vector<double>();
    for (size_t i = 0; i < rp.size(); ++i) {
      double gi = gv[i] * 0.4;
      rm[i] = cfg.beta1 * rm[i] + (1 - cfg.beta1) * gi;
      rv[i] = cfg.beta2 * rv[i] + (1 - cfg.beta2) * gi * gi;
      rp[i] *= 1 - cfg.lr * cfg.weight_decay;
      rp[i] -= cfg.lr * (rm[i] / (1 - std::pow(cfg.beta1, t))) /
               (std::sqrt(rv[i] / (1 - std::pow(cfg.beta2, t))) + cfg.eps);
    }
    const std::string step = "step " + std::to_string(t);
    EXPECT_TENSORS_CLOSE(p, Tensor::from_vector(rp, Shape{n}), (testing::Tolerance{1e-5, 1e-6}), step + " params", 1);
    EXPECT_TENSORS_CLOSE(m, Tensor::from_vector(rm, Shape{n}), (testing::Tolerance{1e-5, 1e-7}), step + " m", 1);
    EXPECT_TENSORS_CLOSE(v, Tensor::from_vector(rv, Shape{n}), (testing::Tolerance{1e-5, 1e-8}), step + " v", 1);
    EXPECT_TENSORS_CLOSE(copy, p.to(DType::BF16), (testing::Tolerance{0, 0}), step + " bf16 copy", 1);
  }
}

TEST(AdamWStep, GradScaleTensorEqualsPrescaledGradients) {
  const int64_t n = 100;
  AdamWConfig cfg;
  Tensor p1 = rnd(n, 2), p2 = p1.clone(), g = rnd(n, 3);
  Tensor m1 = Tensor::zeros(Shape{n}, DType::F32), v1 = m1.clone(), m2 = m1.clone(), v2 = m1.clone();
  adamw_step(p1, g, m1, v1, cfg, 1, Tensor::full(Shape{1}, 0.5, DType::F32));
  std::vector<float> gv = g.to_vector<float>();
  for (float& x : gv) x *= 0.5f;  // exact in binary
  adamw_step(p2, Tensor::from_vector(gv, Shape{n}), m2, v2, cfg, 1);
  EXPECT_EQ(p1.to_vector<float>(), p2.to_vector<float>());
  EXPECT_EQ(m1.to_vector<float>(), m2.to_vector<float>());
  EXPECT_EQ(v1.to_vector<float>(), v2.to_vector<float>());
}

TEST(AdamWStep, RejectsMismatchedBuffers) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Tensor p = rnd(10, 4), g = rnd(11, 5), m = rnd(10, 6), v = rnd(10, 7);
  EXPECT_DEATH(adamw_step(p, g, m, v, AdamWConfig{}, 1), "grads");
  Tensor g10 = rnd(10, 8);
  EXPECT_DEATH(adamw_step(p, g10, m, v, AdamWConfig{}, 0), "step 0");
  Tensor copy32 = rnd(10, 9);
  EXPECT_DEATH(adamw_step(p, g10, m, v, AdamWConfig{}, 1, Tensor(), copy32), "compute_copy");
  Tensor ema11 = rnd(11, 12);
  EXPECT_DEATH(adamw_step(p, g10, m, v, AdamWConfig{}, 1, Tensor(), Tensor(), ema11, 0.9), "adamw_step ema");
  Tensor ema10 = rnd(10, 13);
  EXPECT_DEATH(adamw_step(p, g10, m, v, AdamWConfig{}, 1, Tensor(), Tensor(), ema10, 1.5), "ema_decay 1.5");
}

TEST(AdamWStep, WithTheEmaBufferEqualsStepThenEmaUpdate) {
  const int64_t n = 301;
  AdamWConfig cfg;
  cfg.lr = 1e-2;
  Tensor p1 = rnd(n, 20), m1 = Tensor::zeros(Shape{n}, DType::F32), v1 = m1.clone(), e1 = rnd(n, 21);
  Tensor p2 = p1.clone(), m2 = m1.clone(), v2 = m1.clone(), e2 = e1.clone();
  for (int t = 1; t <= 3; ++t) {
    Tensor g = rnd(n, 30 + uint64_t(t));
    adamw_step(p1, g, m1, v1, cfg, t, Tensor(), Tensor(), e1, 0.99);
    adamw_step(p2, g, m2, v2, cfg, t);
    ema_update(e2, p2, 0.99);
  }
  EXPECT_EQ(p1.to_vector<float>(), p2.to_vector<float>());
  EXPECT_EQ(e1.to_vector<float>(), e2.to_vector<float>());
}

TEST(EmaUpdate, ClosedForm) {
  const int64_t n = 77;
  Tensor p = rnd(n, 10), e0 = rnd(n, 11), e = e0.clone();
  const double decay = 0.75;
  for (int k = 1; k <= 6; ++k) ema_update(e, p, decay);
  std::vector<double> pv = p.to_vector<double>(), ev = e0.to_vector<double>(), want(static_cast<size_t>(n));
  for (size_t i = 0; i < want.size(); ++i) want[i] = pv[i] + std::pow(decay, 6) * (ev[i] - pv[i]);
  EXPECT_TENSORS_CLOSE(e, Tensor::from_vector(want, Shape{n}), (testing::Tolerance{1e-6, 1e-6}), "ema", 10);
}

TEST(SumSquares, AllFloatTypes) {
  for (DType dt : {DType::F32, DType::BF16, DType::F64})
    for (int64_t n : {1, 5, 10007}) {
      Tensor x = rnd(n, 20 + uint64_t(n), -2.0, 2.0, dt);
      std::vector<double> xv = x.to_vector<double>();
      double want = 0;
      for (double a : xv) want += a * a;
      Tensor s = sum_squares(x);
      EXPECT_EQ(s.shape(), Shape{1});
      EXPECT_EQ(s.dtype(), DType::F64);
      EXPECT_NEAR(s.item(), want, 1e-12 * want) << dtype_name(dt) << " n " << n;
    }
  // a strided view is summed over its elements only
  Tensor x = rnd(20, 30);
  Tensor view = x.slice(0, 1, 20, 3);
  double want = 0;
  for (double a : view.to_vector<double>()) want += a * a;
  EXPECT_NEAR(sum_squares(view).item(), want, 1e-12 * want);
}

}  // namespace
}  // namespace drwkv::autograd
