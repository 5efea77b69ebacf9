// The hybrid loss (MODEL.md §5.2) against an independent evaluation of its formula, its gradient
// against finite differences (including t = 0, the discretised-Gaussian case), the stop-gradient on ε̂,
// and classifier-free guidance on every guided channel.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/diffusion_ops.h"
#include "autograd/shape_ops.h"
#include "kernels/diffusion.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::random_uniform;

// Linear-schedule coefficients at step t of 1000, computed here independently of models/.
std::vector<double> coef_row(int t) {
  std::vector<double> beta(1000), ac(1000);
  double prod = 1;
  for (int i = 0; i < 1000; ++i) {
    beta[size_t(i)] = 1e-4 + (0.02 - 1e-4) * i / 999.0;
    prod *= 1 - beta[size_t(i)];
    ac[size_t(i)] = prod;
  }
  auto post_var = [&](int i) { return beta[size_t(i)] * (1 - (i ? ac[size_t(i - 1)] : 1.0)) / (1 - ac[size_t(i)]); };
  double a = ac[size_t(t)], prev = t ? ac[size_t(t - 1)] : 1.0;
  return {std::sqrt(a), std::sqrt(1 - a), std::sqrt(1 / a), std::sqrt(1 / a - 1),
          beta[size_t(t)] * std::sqrt(prev) / (1 - a), (1 - prev) * std::sqrt(1 - beta[size_t(t)]) / (1 - a),
          std::log(beta[size_t(t)]), std::log(post_var(t == 0 ? 1 : t)), t == 0 ? 1.0 : 0.0, prev, 0.0, t > 0 ? 1.0 : 0.0};
}

Tensor coefs(const std::vector<int>& ts) {
  std::vector<double> v;
  for (int t : ts)
    for (double c : coef_row(t)) v.push_back(c);
  return Tensor::from_vector(v, Shape{int64_t(ts.size()), kernels::kCoefs});
}

double cdf(double z) { return 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z))); }

// Independent evaluation of mse_b + vb_b for one sample (vb in bits).
double reference_loss(const std::vector<double>& out, const std::vector<double>& x0, const std::vector<double>& eps,
                      int b, int C, int P, int t) {
  std::vector<double> c = coef_row(t);
  double mse = 0, vb = 0;
  for (int ch = 0; ch < C; ++ch)
    for (int p = 0; p < P; ++p) {
      size_t i = size_t((b * C + ch) * P + p);
      double e = out[size_t((b * 2 * C + ch) * P + p)], v = out[size_t((b * 2 * C + C + ch) * P + p)];
      double xt = c[0] * x0[i] + c[1] * eps[i];
      mse += (eps[i] - e) * (eps[i] - e);
      double mu = c[4] * (c[2] * xt - c[3] * e) + c[5] * xt;
      double logvar = (v + 1) / 2 * c[6] + (1 - (v + 1) / 2) * c[7];
      if (t > 0) {
        double mut = c[4] * x0[i] + c[5] * xt;
        vb += 0.5 * (-1 + logvar - c[7] + std::exp(c[7] - logvar) + (mut - mu) * (mut - mu) * std::exp(-logvar));
      } else {
        double s = std::exp(-0.5 * logvar), up = cdf(s * (x0[i] - mu + 1 / 255.0)), lo = cdf(s * (x0[i] - mu - 1 / 255.0));
        double pr = x0[i] < -0.999 ? up : x0[i] > 0.999 ? 1 - lo : up - lo;
        vb += -std::log(std::max(pr, 1e-12));
      }
    }
  return mse / (C * P) + vb / (C * P) / std::log(2.0);
}

struct Case {
  Tensor out, x0, eps, xt, coef;
  std::vector<int> ts;
};

Case make_case(int B, int C, int H, std::vector<int> ts, uint64_t seed) {
  Case k;
  k.ts = ts;
  k.out = random_uniform(Shape{B, 2 * C, H, H}, DType::F64, Device::cpu(), seed, -1, 1);
  k.x0 = random_uniform(Shape{B, C, H, H}, DType::F64, Device::cpu(), seed + 1, -1, 1);
  // a few pixels at the ends of the data range exercise the edge cases of the t = 0 likelihood
  double* px = k.x0.data_ptr<double>();
  px[0] = -1.0;
  px[1] = 1.0;
  k.eps = testing::random_normal(Shape{B, C, H, H}, DType::F64, Device::cpu(), seed + 2);
  k.coef = coefs(ts);
  k.xt = q_sample(k.x0, k.eps, k.coef);
  return k;
}

TEST(HybridLoss, MatchesTheFormula) {
  Case k = make_case(3, 2, 3, {0, 1, 500}, 1);
  HybridLoss hl = hybrid_loss(Variable(k.out), k.x0, k.xt, k.eps, k.coef, true);
  std::vector<double> got = hl.loss.value().to_vector<double>();
  std::vector<double> o = k.out.to_vector<double>(), x0 = k.x0.to_vector<double>(), e = k.eps.to_vector<double>();
  for (int b = 0; b < 3; ++b) EXPECT_NEAR(got[size_t(b)], reference_loss(o, x0, e, b, 2, 9, k.ts[size_t(b)]), 1e-12) << b;
}

TEST(HybridLoss, AtInitialisationTheMseIsAboutOneAndVbIsSmall) {
  // zero model output = the state of a freshly initialised DRWKV (adaLN-Zero + zero decoder)
  Case k = make_case(4, 3, 8, {10, 200, 600, 999}, 2);
  k.out.zero_();
  HybridLoss hl = hybrid_loss(Variable(k.out), k.x0, k.xt, k.eps, k.coef, true);
  std::vector<double> terms = hl.terms.to_vector<double>();
  for (int b = 0; b < 4; ++b) EXPECT_NEAR(terms[size_t(2 * b)], 1.0, 0.35) << "mse of sample " << b;
}

TEST(HybridLoss, VarianceGradientMatchesFiniteDifferences) {
  // ε̂ is held fixed (its vb dependence is cut by the stop-gradient by design, so a finite difference
  // through ε̂ would not match); the variance channels v are checked against finite differences
  Case k = make_case(3, 2, 2, {0, 3, 700}, 3);
  Tensor eps_hat = k.out.narrow(1, 0, 2).contiguous(), v = k.out.narrow(1, 2, 2).contiguous();
  EXPECT_TRUE(testing::gradcheck(
      [&](const std::vector<Variable>& in) {
        return hybrid_loss(concat({Variable(eps_hat), in[0]}, 1), k.x0, k.xt, k.eps, k.coef, true).loss;
      },
      {v}, {1e-6, 1e-5, 1e-8, 4}));
  // fixed variance: only the MSE term
  Tensor small = random_uniform(Shape{3, 2, 2, 2}, DType::F64, Device::cpu(), 5);
  EXPECT_TRUE(testing::gradcheck(
      [&](const std::vector<Variable>& v) { return hybrid_loss(v[0], k.x0, k.xt, k.eps, k.coef, false).loss; }, {small}));
}

TEST(HybridLoss, EpsilonGetsOnlyTheMseGradient) {
  Case k = make_case(2, 2, 3, {5, 400}, 4);
  Variable out(k.out, true);
  hybrid_loss(out, k.x0, k.xt, k.eps, k.coef, true).loss.backward(Tensor::full(Shape{2}, 1.0, DType::F64));
  std::vector<double> g = out.grad().to_vector<double>(), o = k.out.to_vector<double>(), e = k.eps.to_vector<double>();
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 18; ++i) {
      double want = -2 * (e[size_t(b * 18 + i)] - o[size_t(b * 36 + i)]) / 18;
      EXPECT_NEAR(g[size_t(b * 36 + i)], want, 1e-14);
    }
}

TEST(Guidance, AppliesToEveryGuidedChannel) {
  const int n = 2, Cout = 8, P = 4;
  Tensor out = random_uniform(Shape{2 * n, Cout, 2, 2}, DType::F64, Device::cpu(), 6);
  std::vector<double> before = out.to_vector<double>();
  cfg_combine_(out, 4, 1.5);  // all four ε channels of a 4-channel latent model
  std::vector<double> after = out.to_vector<double>();
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < Cout; ++ch)
      for (int p = 0; p < P; ++p) {
        size_t ic = size_t((b * Cout + ch) * P + p), iu = size_t(((b + n) * Cout + ch) * P + p);
        if (ch < 4) {
          double g = before[iu] + 1.5 * (before[ic] - before[iu]);
          EXPECT_DOUBLE_EQ(after[ic], g);
          EXPECT_DOUBLE_EQ(after[iu], g);
        } else {  // variance channels keep each half's value
          EXPECT_EQ(after[ic], before[ic]);
          EXPECT_EQ(after[iu], before[iu]);
        }
      }
}

}  // namespace
}  // namespace drwkv::autograd
