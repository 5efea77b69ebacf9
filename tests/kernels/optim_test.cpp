// CPU AdamW against a plain scalar f64 reimplementation of the textbook update over several steps
// (weight decay, host and pointer gradient scales, bf16 copy); EMA against its closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/optim.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {

std::vector<float> rnd(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return testing::random_uniform(Shape{n}, DType::F32, Device::cpu(), seed, lo, hi).to_vector<float>();
}

struct Hyper {
  double lr = 5e-2, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, wd = 0.1;
};

// Textbook AdamW in f64: bias-corrected moments, decoupled decay applied before the Adam update.
void reference_step(std::vector<double>& p, const std::vector<float>& grads, std::vector<double>& m,
                    std::vector<double>& v, const Hyper& h, int t, double scale) {
  for (size_t i = 0; i < p.size(); ++i) {
    double g = double(grads[i]) * scale;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g * g;
    double m_hat = m[i] / (1 - std::pow(h.beta1, t));
    double v_hat = v[i] / (1 - std::pow(h.beta2, t));
    p[i] *= 1 - h.lr * h.wd;
    p[i] -= h.lr * m_hat / (std::sqrt(v_hat) + h.eps);
  }
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(double(got[i]), want[i], atol + rtol * std::fabs(want[i]))
        << what << " element " << i << " (rtol " << rtol << ", atol " << atol << ")";
}

TEST(AdamWCpu, MatchesScalarReferenceOverSteps) {
  const int64_t n = 1037;
  for (bool with_ptr : {false, true})
    for (double wd : {0.0, 0.5}) {
      Hyper h;
      h.wd = wd;
      std::vector<float> p = rnd(n, 1), m(size_t(n), 0.0f), v(size_t(n), 0.0f);
      std::vector<double> rp(p.begin(), p.end()), rm(size_t(n), 0.0), rv(size_t(n), 0.0);
      std::vector<bf16> copy(size_t(n), bf16::from_bits(0x7fc0));  // NaN: every element must be written
      const float host_scale = 0.5f, dev_scale = 0.8f;
      for (int t = 1; t <= 5; ++t) {
        std::vector<float> g = rnd(n, 10 + uint64_t(t), -2.0, 2.0);
        AdamWStep k = adamw_step_constants(h.lr, h.beta1, h.beta2, h.eps, h.wd, t, host_scale);
        adamw_cpu(p.data(), g.data(), m.data(), v.data(), copy.data(), n, k, with_ptr ? &dev_scale : nullptr);
        reference_step(rp, g, rm, rv, h, t, host_scale * (with_ptr ? dev_scale : 1.0f));
        std::string what = "step " + std::to_string(t) + " wd " + std::to_string(wd) + (with_ptr ? " ptr" : "");
        expect_close(m, rm, 1e-5, 1e-7, what + " m");
        expect_close(v, rv, 1e-5, 1e-8, what + " v");
        expect_close(p, rp, 1e-5, 1e-6, what + " params");
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(copy[size_t(i)].bits, bf16(p[size_t(i)]).bits) << what << " bf16 copy element " << i;
      }
    }
}

TEST(AdamWCpu, FirstStepMovesByLearningRate) {
  // t = 1, no decay: m̂ = g, v̂ = g², so every parameter moves by lr · sign(g) (up to eps)
  const int64_t n = 9;
  std::vector<float> p = rnd(n, 3), g = rnd(n, 4), m(size_t(n), 0.0f), v(size_t(n), 0.0f), before = p;
  AdamWStep k = adamw_step_constants(1e-3, 0.9, 0.999, 1e-8, 0.0, 1);
  adamw_cpu(p.data(), g.data(), m.data(), v.data(), nullptr, n, k, nullptr);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_NEAR(double(p[size_t(i)]), double(before[size_t(i)]) - 1e-3 * (g[size_t(i)] > 0 ? 1 : -1), 2e-7) << i;
}

TEST(AdamWCpu, StepConstants) {
  AdamWStep k = adamw_step_constants(2e-4, 0.9, 0.999, 1e-8, 0.05, 3, 0.25);
  EXPECT_FLOAT_EQ(k.step_size, float(2e-4 / (1 - 0.9 * 0.9 * 0.9)));
  EXPECT_FLOAT_EQ(k.sqrt_bc2, float(std::sqrt(1 - 0.999 * 0.999 * 0.999)));
  EXPECT_FLOAT_EQ(k.decay_factor, float(1 - 2e-4 * 0.05));
  EXPECT_FLOAT_EQ(k.grad_scale, 0.25f);
}

TEST(AdamWCpu, FusedEmaEqualsEmaAfterTheStep) {
  // adamw given an ema buffer: parameters, moments and copy as without it, the EMA bit for bit as
  // ema_cpu on the updated parameters
  const int64_t n = 1031;
  for (double decay : {0.0, 0.9, 0.9999}) {
    std::vector<float> p1 = rnd(n, 21), p2 = p1, m1(size_t(n), 0.0f), m2 = m1, v1 = m1, v2 = m1;
    std::vector<float> e1 = rnd(n, 22), e2 = e1;
    for (int t = 1; t <= 3; ++t) {
      std::vector<float> g = rnd(n, 30 + uint64_t(t), -2.0, 2.0);
      AdamWStep k = adamw_step_constants(1e-2, 0.9, 0.999, 1e-8, 0.1, t);
      k.ema_decay = float(decay);
      adamw_cpu(p1.data(), g.data(), m1.data(), v1.data(), nullptr, n, k, nullptr, e1.data());
      adamw_cpu(p2.data(), g.data(), m2.data(), v2.data(), nullptr, n, k, nullptr);
      ema_cpu(e2.data(), p2.data(), n, float(decay));
      for (int64_t i = 0; i < n; ++i) {
        const size_t j = size_t(i);
        ASSERT_EQ(p1[j], p2[j]) << "decay " << decay << " step " << t << " params element " << i;
        ASSERT_EQ(m1[j], m2[j]) << "m element " << i;
        ASSERT_EQ(v1[j], v2[j]) << "v element " << i;
        ASSERT_EQ(e1[j], e2[j]) << "decay " << decay << " step " << t << " ema element " << i;
      }
    }
  }
}

TEST(EmaCpu, ClosedForm) {
  // constant parameters p: after k updates ema = p + decay^k (ema0 − p)
  const int64_t n = 515;
  std::vector<float> p = rnd(n, 5), e0 = rnd(n, 6);
  for (double decay : {0.0, 0.5, 0.9999, 1.0}) {
    std::vector<float> e = e0;
    for (int k = 1; k <= 10; ++k) {
      ema_cpu(e.data(), p.data(), n, float(decay));
      std::vector<double> want(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        want[size_t(i)] = p[size_t(i)] + std::pow(decay, k) * (double(e0[size_t(i)]) - p[size_t(i)]);
      expect_close(e, want, 1e-6, 1e-6, "ema decay " + std::to_string(decay) + " after " + std::to_string(k));
    }
  }
}

}  // namespace
}  // namespace drwkv::kernels
