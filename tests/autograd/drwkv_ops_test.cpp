// DRWKV fused ops on the CPU: values against formulas written out independently in this file (the §1.8
// neighbour table, LayerNorm + modulation, the §1.11 head with its unpatchify order, the §1.2 patch order),
// gradients against central finite differences in f64, and in-place accumulation into shared gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "autograd/drwkv_ops.h"
#include "autograd/shape_ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::gradcheck;

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return testing::random_uniform(s, DType::F64, Device::cpu(), seed, lo, hi);
}
std::vector<double> vals(const Tensor& t) { return t.contiguous().to_vector<double>(); }

// ---- q-shift -------------------------------------------------------------------------------------------
// The §1.8 table spelled out: quarter k of the channels (b_k = floor(k·C/4)) reads the left, right, upper,
// lower neighbour; zero off the grid.
double qshift_ref(const std::vector<double>& x, int64_t b, int y, int xx, int64_t c, int gh, int gw, int64_t C) {
  int k = 0;
  for (int q = 1; q < 4; ++q)
    if (c >= (q * C) / 4) k = q;
  int sy = y, sx = xx;
  if (k == 0) sx = xx - 1;
  if (k == 1) sx = xx + 1;
  if (k == 2) sy = y - 1;
  if (k == 3) sy = y + 1;
  if (sx < 0 || sx >= gw || sy < 0 || sy >= gh) return 0.0;
  return x[size_t(((b * gh + sy) * gw + sx) * C + c)];
}

TEST(QShiftMix, ValuesFollowTheNeighbourTable) {
  for (auto [B, gh, gw, C] : std::vector<std::tuple<int64_t, int, int, int64_t>>{
           {2, 3, 4, 8}, {1, 1, 1, 4}, {2, 2, 3, 12}, {1, 3, 1, 6}, {1, 1, 5, 1}, {1, 4, 2, 20}}) {
    for (int M = 1; M <= 4; ++M) {
      Tensor x = rnd(Shape{B, int64_t(gh) * gw, C}, 1 + uint64_t(M));
      std::vector<Variable> mus;
      for (int m = 0; m < M; ++m) mus.emplace_back(rnd(Shape{C}, 10 + uint64_t(m), 0.0, 1.0));
      std::vector<Variable> outs = qshift_mix(Variable(x), mus, gh, gw);
      ASSERT_EQ(int(outs.size()), M);
      std::vector<double> xv = vals(x);
      for (int m = 0; m < M; ++m) {
        std::vector<double> mu = vals(mus[size_t(m)].value()), o = vals(outs[size_t(m)].value());
        for (int64_t b = 0; b < B; ++b)
          for (int y = 0; y < gh; ++y)
            for (int xx = 0; xx < gw; ++xx)
              for (int64_t c = 0; c < C; ++c) {
                const size_t i = size_t(((b * gh + y) * gw + xx) * C + c);
                const double q = qshift_ref(xv, b, y, xx, c, gh, gw, C);
                const double want = xv[i] * mu[size_t(c)] + q * (1 - mu[size_t(c)]);
                ASSERT_NEAR(o[i], want, 1e-14) << "B" << B << " grid " << gh << "x" << gw << " C " << C << " mix " << m
                                               << " at b " << b << " y " << y << " x " << xx << " c " << c;
              }
      }
    }
  }
}

TEST(QShiftMix, DirectionsOnASmallGrid) {
  // 2×2 grid, C = 4 (one channel per quarter), μ = 0 so that the output is Q itself. x[t, c] = 10 t + c.
  std::vector<double> xs;
  for (int t = 0; t < 4; ++t)
    for (int c = 0; c < 4; ++c) xs.push_back(10.0 * t + c);
  Variable x(Tensor::from_vector(xs, Shape{1, 4, 4}));
  Variable mu(Tensor::zeros(Shape{4}, DType::F64));
  std::vector<double> q = vals(qshift_mix(x, {mu}, 2, 2)[0].value());
  // token 1 = (y 0, x 1): channel 0 from its left neighbour token 0, channel 1 (right) off the grid,
  // channel 2 (above) off the grid, channel 3 from the token below, token 3
  EXPECT_EQ(q[4 + 0], 0.0);
  EXPECT_EQ(q[4 + 1], 0.0);
  EXPECT_EQ(q[4 + 2], 0.0);
  EXPECT_EQ(q[4 + 3], 33.0);
  // token 2 = (y 1, x 0): right neighbour token 3, neighbour above token 0
  EXPECT_EQ(q[8 + 0], 0.0);
  EXPECT_EQ(q[8 + 1], 31.0);
  EXPECT_EQ(q[8 + 2], 2.0);
  EXPECT_EQ(q[8 + 3], 0.0);
}

TEST(QShiftMix, GradientsMatchFiniteDifferences) {
  for (auto [B, gh, gw, C] : std::vector<std::tuple<int64_t, int, int, int64_t>>{
           {2, 2, 3, 8}, {1, 1, 1, 4}, {1, 3, 2, 12}, {2, 1, 4, 6}, {1, 3, 3, 20}}) {
    for (int M : {2, 3, 4}) {
      std::vector<Tensor> in{rnd(Shape{B, int64_t(gh) * gw, C}, 3)};
      for (int m = 0; m < M; ++m) in.push_back(rnd(Shape{C}, 20 + uint64_t(m), 0.0, 1.0));
      EXPECT_TRUE(gradcheck(
          [&](const std::vector<Variable>& v) {
            std::vector<Variable> mus(v.begin() + 1, v.end());
            return concat(qshift_mix(v[0], mus, gh, gw), 2);
          },
          in))
          << "B " << B << " grid " << gh << "x" << gw << " C " << C << " M " << M;
    }
  }
}

TEST(QShiftMix, UnusedOutputAndBoundGradient) {
  // only the second output feeds the loss; μ_0's gradient is bound to a pre-filled buffer and must be added to
  Tensor x = rnd(Shape{2, 6, 8}, 4);
  Tensor mu0 = rnd(Shape{8}, 5, 0, 1), mu1 = rnd(Shape{8}, 6, 0, 1);
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return qshift_mix(v[0], {v[1], v[2]}, 2, 3)[1]; },
                        {x, mu0, mu1}));
  Variable a(mu0, true), b(mu1, true), xv(x, true);
  Tensor flat = Tensor::full(Shape{16}, 0.5, DType::F64);
  a.bind_grad(flat.narrow(0, 8, 8));
  Tensor seed = rnd(Shape{2, 6, 8}, 7);
  qshift_mix(xv, {a, b}, 2, 3)[0].backward(seed);
  // μ_0 gradient: Σ g (x − Q), computed from the table
  std::vector<double> xs = vals(x), g = vals(seed), got = vals(flat);
  for (int64_t c = 0; c < 8; ++c) {
    double want = 0;
    for (int64_t bb = 0; bb < 2; ++bb)
      for (int y = 0; y < 2; ++y)
        for (int xx = 0; xx < 3; ++xx) {
          size_t i = size_t(((bb * 2 + y) * 3 + xx) * 8 + c);
          want += g[i] * (xs[i] - qshift_ref(xs, bb, y, xx, c, 2, 3, 8));
        }
    EXPECT_NEAR(got[size_t(8 + c)], 0.5 + want, 1e-12) << "channel " << c;
    EXPECT_EQ(got[size_t(c)], 0.5) << "outside the bound view";
  }
}

// ---- adaLN-Zero ----------------------------------------------------------------------------------------
TEST(LayerNormModulate, ValuesMatchTheFormula) {
  const int64_t B = 2, T = 3, C = 6, M = 6;
  Tensor h = rnd(Shape{B, T, C}, 1, -2, 3), w = rnd(Shape{C}, 2), bias = rnd(Shape{C}, 3), mod = rnd(Shape{B, M * C}, 4);
  for (bool affine : {false, true}) {
    Variable y = layernorm_modulate(Variable(h), affine ? Variable(w) : Variable(), affine ? Variable(bias) : Variable(),
                                    1e-5, Variable(mod), 3, 4, DType::F64);
    std::vector<double> hv = vals(h), wv = vals(w), bv = vals(bias), mv = vals(mod), yv = vals(y.value());
    for (int64_t r = 0; r < B * T; ++r) {
      const int64_t b = r / T;
      double mu = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mu += hv[size_t(r * C + c)] / C;
      for (int64_t c = 0; c < C; ++c) var += std::pow(hv[size_t(r * C + c)] - mu, 2) / C;
      for (int64_t c = 0; c < C; ++c) {
        double n = (hv[size_t(r * C + c)] - mu) / std::sqrt(var + 1e-5);
        if (affine) n = n * wv[size_t(c)] + bv[size_t(c)];
        const double want = n * (1 + mv[size_t(b * M * C + 4 * C + c)]) + mv[size_t(b * M * C + 3 * C + c)];
        ASSERT_NEAR(yv[size_t(r * C + c)], want, 1e-12) << "row " << r << " c " << c << " affine " << affine;
      }
    }
  }
}

TEST(LayerNormModulate, GradientsMatchFiniteDifferences) {
  for (auto [B, T, C] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 3, 5}, {1, 1, 4}, {3, 2, 8}, {1, 70, 3}}) {
    Tensor h = rnd(Shape{B, T, C}, 1, -2, 2), w = rnd(Shape{C}, 2, 0.5, 1.5), bias = rnd(Shape{C}, 3);
    Tensor mod = rnd(Shape{B, 6 * C}, 4);
    EXPECT_TRUE(gradcheck(
        [](const std::vector<Variable>& v) { return layernorm_modulate(v[0], v[1], v[2], 1e-5, v[3], 0, 1, DType::F64); },
        {h, w, bias, mod}))
        << "affine B " << B << " T " << T << " C " << C;
    EXPECT_TRUE(gradcheck(
        [](const std::vector<Variable>& v) {
          return layernorm_modulate(v[0], Variable(), Variable(), 1e-6, v[1], 5, 2, DType::F64);
        },
        {h, mod}))
        << "no affine B " << B << " T " << T << " C " << C;
  }
}

TEST(GatedResidual, ValuesAndGradients) {
  for (auto [B, T, C] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 3, 5}, {1, 1, 1}, {3, 4, 8}, {2, 65, 3}}) {
    Tensor h = rnd(Shape{B, T, C}, 1), y = rnd(Shape{B, T, C}, 2), mod = rnd(Shape{B, 3 * C}, 3);
    std::vector<float> sv;
    for (int64_t b = 0; b < B; ++b) sv.push_back(b % 2 ? 0.f : 1.f / 0.9f);  // dropped and kept samples
    Tensor scale = Tensor::from_vector(sv, Shape{B});
    Variable out = gated_residual(Variable(h), Variable(y), Variable(mod), 2, scale);
    std::vector<double> hv = vals(h), yv = vals(y), mv = vals(mod), ov = vals(out.value());
    for (int64_t i = 0; i < B * T * C; ++i) {
      const int64_t b = i / (T * C), c = i % C;
      const double want = hv[size_t(i)] + double(sv[size_t(b)]) * mv[size_t(b * 3 * C + 2 * C + c)] * yv[size_t(i)];
      ASSERT_NEAR(ov[size_t(i)], want, 1e-12) << "element " << i;
    }
    EXPECT_TRUE(gradcheck([&](const std::vector<Variable>& v) { return gated_residual(v[0], v[1], v[2], 2, scale); },
                          {h, y, mod}))
        << "B " << B << " T " << T << " C " << C;
    EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return gated_residual(v[0], v[1], v[2], 0); }, {h, y, mod}))
        << "no drop path, B " << B << " T " << T << " C " << C;
  }
}

TEST(ReceptanceGatedResidual, ValuesAndGradients) {
  for (auto [B, T, C] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 3, 5}, {1, 1, 1}, {3, 4, 8}, {2, 65, 3}}) {
    Tensor h = rnd(Shape{B, T, C}, 1), r = rnd(Shape{B, T, C}, 4, -4, 4), y = rnd(Shape{B, T, C}, 2);
    Tensor mod = rnd(Shape{B, 6 * C}, 3);
    std::vector<float> sv;
    for (int64_t b = 0; b < B; ++b) sv.push_back(b % 2 ? 0.f : 1.f / 0.9f);  // dropped and kept samples
    Tensor scale = Tensor::from_vector(sv, Shape{B});
    Variable out = receptance_gated_residual(Variable(h), Variable(r), Variable(y), Variable(mod), 5, scale);
    std::vector<double> hv = vals(h), rv = vals(r), yv = vals(y), mv = vals(mod), ov = vals(out.value());
    for (int64_t i = 0; i < B * T * C; ++i) {
      const int64_t b = i / (T * C), c = i % C;
      const double gate = double(sv[size_t(b)]) * mv[size_t(b * 6 * C + 5 * C + c)];
      const double want = hv[size_t(i)] + gate * yv[size_t(i)] / (1 + std::exp(-rv[size_t(i)]));
      ASSERT_NEAR(ov[size_t(i)], want, 1e-12) << "element " << i;
    }
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Variable>& v) { return receptance_gated_residual(v[0], v[1], v[2], v[3], 5, scale); },
        {h, r, y, mod}))
        << "B " << B << " T " << T << " C " << C;
    // r and y one tensor: its two gradient contributions add up (one written, one accumulated)
    EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return receptance_gated_residual(v[0], v[1], v[1], v[2], 0); },
                          {h, y, mod}))
        << "r = y, B " << B << " T " << T << " C " << C;
    // the unfused composition, gradients included
    std::vector<Variable> a{Variable(h, true), Variable(r, true), Variable(y, true), Variable(mod, true)};
    std::vector<Variable> u{Variable(h, true), Variable(r, true), Variable(y, true), Variable(mod, true)};
    Variable fused = receptance_gated_residual(a[0], a[1], a[2], a[3], 5, scale);
    Variable plain = gated_residual(u[0], sigmoid_mul(u[1], u[2]), u[3], 5, scale);
    Tensor seed = rnd(Shape{B, T, C}, 9);
    fused.backward(seed);
    plain.backward(seed);
    EXPECT_TENSORS_CLOSE(fused.value(), plain.value(), (testing::Tolerance{1e-14, 1e-14}), "fused vs unfused", 1);
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TENSORS_CLOSE(a[i].grad(), u[i].grad(), (testing::Tolerance{1e-14, 1e-14}),
                           "fused vs unfused gradient " + std::to_string(i), 1);
  }
}

TEST(GatedResidualLayerNormModulate, EqualsTheTwoOps) {
  for (auto [B, T, C] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 3, 5}, {1, 1, 1}, {2, 65, 12}}) {
    std::vector<Tensor> in{rnd(Shape{B, T, C}, 1, -2, 2), rnd(Shape{B, T, C}, 2), rnd(Shape{B, 6 * C}, 3),
                           rnd(Shape{C}, 4, 0.5, 1.5), rnd(Shape{C}, 5)};
    std::vector<float> sv;
    for (int64_t b = 0; b < B; ++b) sv.push_back(b % 2 ? 0.f : 1.f / 0.9f);
    Tensor scale = Tensor::from_vector(sv, Shape{B});
    auto fused = [&](const std::vector<Variable>& v) {
      return gated_residual_layernorm_modulate(v[0], v[1], v[2], 2, scale, v[3], v[4], 1e-5, 3, 4, DType::F64);
    };
    auto apart = [&](const std::vector<Variable>& v) {
      Variable h1 = gated_residual(v[0], v[1], v[2], 2, scale);
      return std::pair<Variable, Variable>{h1, layernorm_modulate(h1, v[3], v[4], 1e-5, v[2], 3, 4, DType::F64)};
    };
    auto leaves = [&] {
      std::vector<Variable> v;
      for (const Tensor& t : in) v.emplace_back(t, true);
      return v;
    };
    // both outputs feed the result (h1 is also the channel mix's residual)
    std::vector<Variable> a = leaves(), b = leaves();
    auto [h1a, xa] = fused(a);
    auto [h1b, xb] = apart(b);
    EXPECT_TENSORS_CLOSE(h1a.value(), h1b.value(), (testing::Tolerance{0, 0}), "h1", 1);
    EXPECT_TENSORS_CLOSE(xa.value(), xb.value(), (testing::Tolerance{0, 0}), "x", 1);
    Tensor seed = rnd(Shape{B, T, C}, 7);
    gated_residual(h1a, xa, a[2], 5).backward(seed);
    gated_residual(h1b, xb, b[2], 5).backward(seed);
    const char* names[] = {"dh", "dy", "dmod", "dweight", "dbias"};
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TENSORS_CLOSE(a[i].grad(), b[i].grad(), (testing::Tolerance{0, 0}), names[i], 1);
    testing::GradcheckOptions opt;  // central differences through a LayerNorm over 65 tokens: ~1e-9 of noise
    opt.eps = 1e-5;
    opt.rtol = 1e-5;
    opt.atol = 1e-8;
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Variable>& v) {
          auto [h1, x] = fused(v);
          return gated_residual(h1, x, v[2], 5);
        },
        in, opt))
        << "B " << B << " T " << T << " C " << C;
  }
}

TEST(ReceptanceGatedResidualLayerNormModulate, EqualsTheTwoOps) {
  // the channel mix's residual with the next block's first norm (its own mod tensor)
  for (auto [B, T, C] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 3, 5}, {1, 1, 1}, {2, 65, 12}}) {
    std::vector<Tensor> in{rnd(Shape{B, T, C}, 1, -2, 2), rnd(Shape{B, T, C}, 2, -4, 4), rnd(Shape{B, T, C}, 3),
                           rnd(Shape{B, 6 * C}, 4), rnd(Shape{C}, 5, 0.5, 1.5), rnd(Shape{C}, 6), rnd(Shape{B, 6 * C}, 7)};
    std::vector<float> sv;
    for (int64_t b = 0; b < B; ++b) sv.push_back(b % 2 ? 0.f : 1.f / 0.9f);
    Tensor scale = Tensor::from_vector(sv, Shape{B});
    // leaves: h, r, y, mod, ln weight, ln bias, the next block's mod
    auto fused = [&](const std::vector<Variable>& v) {
      return receptance_gated_residual_layernorm_modulate(v[0], v[1], v[2], v[3], 5, scale, v[4], v[5], 1e-5, v[6], 0,
                                                          1, DType::F64);
    };
    auto apart = [&](const std::vector<Variable>& v) {
      Variable out = receptance_gated_residual(v[0], v[1], v[2], v[3], 5, scale);
      return std::pair<Variable, Variable>{out, layernorm_modulate(out, v[4], v[5], 1e-5, v[6], 0, 1, DType::F64)};
    };
    auto leaves = [&] {
      std::vector<Variable> v;
      for (const Tensor& t : in) v.emplace_back(t, true);
      return v;
    };
    // both outputs feed the result (the output is also the next block's residual)
    std::vector<Variable> a = leaves(), b = leaves();
    auto [oa, xa] = fused(a);
    auto [ob, xb] = apart(b);
    EXPECT_TENSORS_CLOSE(oa.value(), ob.value(), (testing::Tolerance{0, 0}), "out", 1);
    EXPECT_TENSORS_CLOSE(xa.value(), xb.value(), (testing::Tolerance{0, 0}), "x", 1);
    Tensor seed = rnd(Shape{B, T, C}, 8);
    gated_residual(oa, xa, a[6], 2).backward(seed);
    gated_residual(ob, xb, b[6], 2).backward(seed);
    const char* names[] = {"dh", "dr", "dy", "dmod", "dweight", "dbias", "dmod (next block)"};
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TENSORS_CLOSE(a[i].grad(), b[i].grad(), (testing::Tolerance{0, 0}), names[i], 1);
  }
}

TEST(SigmoidMul, ValuesAndGradients) {
  for (Shape s : {Shape{1}, Shape{7}, Shape{2, 3, 5}}) {
    Tensor r = rnd(s, 1, -3, 3), z = rnd(s, 2);
    std::vector<double> rv = vals(r), zv = vals(z), ov = vals(sigmoid_mul(Variable(r), Variable(z)).value());
    for (size_t i = 0; i < rv.size(); ++i) ASSERT_NEAR(ov[i], zv[i] / (1 + std::exp(-rv[i])), 1e-15);
    EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return sigmoid_mul(v[0], v[1]); }, {r, z})) << s.str();
  }
}

// A Bi-RWKV-like composition (MODEL.md §1.7–1.9 without the projections): h feeds both the norm and the
// residual, mod feeds three ops, so gradients accumulate in place into shared buffers.
TEST(DrwkvOps, BlockCompositionGradients) {
  for (auto [B, gh, gw, C] : std::vector<std::tuple<int64_t, int, int, int64_t>>{{2, 2, 3, 8}, {1, 1, 1, 4}, {1, 3, 2, 12}}) {
    const int64_t T = int64_t(gh) * gw;
    std::vector<Tensor> in{rnd(Shape{B, T, C}, 1, -2, 2), rnd(Shape{C}, 2, 0.5, 1.5), rnd(Shape{C}, 3),
                           rnd(Shape{B, 6 * C}, 4), rnd(Shape{C}, 5, 0, 1), rnd(Shape{C}, 6, 0, 1)};
    Tensor scale = Tensor::from_vector(std::vector<float>(size_t(B), 1.25f), Shape{B});
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Variable>& v) {
          Variable x = layernorm_modulate(v[0], v[1], v[2], 1e-5, v[3], 0, 1, DType::F64);
          std::vector<Variable> xs = qshift_mix(x, {v[4], v[5]}, gh, gw);
          Variable z = sigmoid_mul(xs[1], xs[0]);
          Variable h1 = gated_residual(v[0], z, v[3], 2, scale);
          Variable x2 = layernorm_modulate(h1, Variable(), Variable(), 1e-5, v[3], 3, 4, DType::F64);
          return receptance_gated_residual(h1, xs[0], x2, v[3], 5);
        },
        in))
        << "B " << B << " grid " << gh << "x" << gw << " C " << C;
  }
}

TEST(DrwkvOps, BranchDtypeBf16OnTheCpu) {
  // the (f32 residual, bf16 branch) instantiations against the f64 computation on the same inputs
  const int64_t B = 2, T = 5, C = 12;
  Tensor h = testing::random_uniform(Shape{B, T, C}, DType::F32, Device::cpu(), 1, -2, 2);
  Tensor mod = testing::random_uniform(Shape{B, 3 * C}, DType::F32, Device::cpu(), 2);
  Variable y = layernorm_modulate(Variable(h), Variable(), Variable(), 1e-5, Variable(mod), 0, 1, DType::BF16);
  Variable y64 = layernorm_modulate(Variable(h.to(DType::F64)), Variable(), Variable(), 1e-5, Variable(mod.to(DType::F64)),
                                    0, 1, DType::F64);
  ASSERT_EQ(y.dtype(), DType::BF16);
  EXPECT_TENSORS_CLOSE(y.value(), y64.value(), testing::tolerance_for(DType::BF16), "layernorm_modulate bf16", 1);
  Variable out = gated_residual(Variable(h), y, Variable(mod), 2);
  Variable out64 = gated_residual(Variable(h.to(DType::F64)), Variable(y.value().to(DType::F64)),
                                  Variable(mod.to(DType::F64)), 2);
  ASSERT_EQ(out.dtype(), DType::F32);
  EXPECT_TENSORS_CLOSE(out.value(), out64.value(), testing::tolerance_for(DType::F32), "gated_residual bf16 branch", 1);
}

// ---- output head and patch orders ----------------------------------------------------------------------
struct HeadCase {
  int64_t B;
  int gh, gw;
  int64_t C;
  int P, Cout;
};

TEST(LinearDecoder, ValuesFollowTheUnpatchifyOrder) {
  for (HeadCase k : {HeadCase{2, 2, 3, 6, 2, 3}, HeadCase{1, 1, 1, 4, 1, 2}, HeadCase{1, 3, 2, 5, 2, 1}}) {
    const int64_t T = int64_t(k.gh) * k.gw, N = int64_t(k.P) * k.P * k.Cout;
    Tensor h = rnd(Shape{k.B, T, k.C}, 1, -2, 2), mod = rnd(Shape{k.B, 2 * k.C}, 2), w = rnd(Shape{N, k.C}, 3),
           b = rnd(Shape{N}, 4);
    Variable out = linear_decoder(Variable(h), Variable(mod), Variable(w), Variable(b), k.P, k.gh, k.gw, k.Cout, 1e-6);
    ASSERT_EQ(out.shape(), (Shape{k.B, k.Cout, int64_t(k.gh) * k.P, int64_t(k.gw) * k.P}));
    std::vector<double> hv = vals(h), mv = vals(mod), wv = vals(w), bv = vals(b), ov = vals(out.value());
    const int64_t H = int64_t(k.gh) * k.P, W = int64_t(k.gw) * k.P;
    for (int64_t bb = 0; bb < k.B; ++bb)
      for (int y = 0; y < k.gh; ++y)
        for (int x = 0; x < k.gw; ++x) {
          const int64_t r = bb * T + y * k.gw + x;
          double mu = 0, var = 0;
          for (int64_t c = 0; c < k.C; ++c) mu += hv[size_t(r * k.C + c)] / double(k.C);
          for (int64_t c = 0; c < k.C; ++c) var += std::pow(hv[size_t(r * k.C + c)] - mu, 2) / double(k.C);
          for (int i = 0; i < k.P; ++i)
            for (int j = 0; j < k.P; ++j)
              for (int co = 0; co < k.Cout; ++co) {
                const int64_t n = (int64_t(i) * k.P + j) * k.Cout + co;  // output order (i, j, c')
                double o = bv[size_t(n)];
                for (int64_t c = 0; c < k.C; ++c) {
                  const double z = (hv[size_t(r * k.C + c)] - mu) / std::sqrt(var + 1e-6) *
                                       (1 + mv[size_t(bb * 2 * k.C + k.C + c)]) +
                                   mv[size_t(bb * 2 * k.C + c)];
                  o += wv[size_t(n * k.C + c)] * z;
                }
                const int64_t at = ((bb * k.Cout + co) * H + y * k.P + i) * W + x * k.P + j;
                ASSERT_NEAR(ov[size_t(at)], o, 1e-12) << "b " << bb << " token (" << y << ", " << x << ") i " << i
                                                      << " j " << j << " c' " << co;
              }
        }
  }
}

TEST(LinearDecoder, GradientsMatchFiniteDifferences) {
  for (HeadCase k : {HeadCase{2, 2, 3, 6, 2, 3}, HeadCase{1, 1, 1, 4, 1, 2}, HeadCase{2, 3, 1, 8, 2, 2},
                     HeadCase{1, 2, 2, 5, 1, 3}}) {
    const int64_t T = int64_t(k.gh) * k.gw, N = int64_t(k.P) * k.P * k.Cout;
    std::vector<Tensor> in{rnd(Shape{k.B, T, k.C}, 1, -2, 2), rnd(Shape{k.B, 2 * k.C}, 2), rnd(Shape{N, k.C}, 3),
                           rnd(Shape{N}, 4)};
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Variable>& v) { return linear_decoder(v[0], v[1], v[2], v[3], k.P, k.gh, k.gw, k.Cout, 1e-6); },
        in))
        << "B " << k.B << " grid " << k.gh << "x" << k.gw << " C " << k.C << " P " << k.P << " Cout " << k.Cout;
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Variable>& v) {
          return linear_decoder(v[0], v[1], v[2], Variable(), k.P, k.gh, k.gw, k.Cout, 1e-6);
        },
        {in[0], in[1], in[2]}))
        << "no bias";
  }
}

TEST(Patchify, PatchVectorOrderIsChannelRowColumn) {
  const int64_t B = 2, Cin = 3, P = 2, gh = 2, gw = 3;
  Tensor x = rnd(Shape{B, Cin, gh * P, gw * P}, 1);
  Variable p = patchify(Variable(x), int(P));
  ASSERT_EQ(p.shape(), (Shape{B, gh * gw, Cin * P * P}));
  std::vector<double> xv = vals(x), pv = vals(p.value());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t xx = 0; xx < gw; ++xx)
        for (int64_t c = 0; c < Cin; ++c)
          for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j) {
              const double want = xv[size_t(((b * Cin + c) * gh * P + y * P + i) * gw * P + xx * P + j)];
              const double got = pv[size_t((b * gh * gw + y * gw + xx) * Cin * P * P + c * P * P + i * P + j)];
              ASSERT_EQ(got, want) << "token (" << y << ", " << xx << ") c " << c << " i " << i << " j " << j;
            }
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return patchify(v[0], 2); }, {x}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return patchify(v[0], 1); }, {rnd(Shape{1, 2, 3, 2}, 2)}));
}

// MODEL.md §1.2 / §1.11 / §6: the input patch vector is (c, i, j), the decoder's output vector (i, j, c').
// A decoder whose W_out maps input index c·P² + i·P + j to output index (i·P + j)·Cin + c reproduces the
// normalised image exactly; treating both orders as the same (W_out = identity) does not.
TEST(Patchify, RoundTripThroughTheDecoderUsesBothOrders) {
  const int64_t B = 2, Cin = 3, P = 2, gh = 2, gw = 3, D = Cin * P * P;
  Tensor img = rnd(Shape{B, Cin, gh * P, gw * P}, 5, -2, 2);
  Variable tokens = patchify(Variable(img), int(P));
  Tensor mod = Tensor::zeros(Shape{B, 2 * D}, DType::F64);  // shift 0, scale 0: z = LN(token)
  std::vector<double> perm(size_t(D * D), 0.0), identity(size_t(D * D), 0.0);
  for (int64_t c = 0; c < Cin; ++c)
    for (int64_t i = 0; i < P; ++i)
      for (int64_t j = 0; j < P; ++j) perm[size_t(((i * P + j) * Cin + c) * D + c * P * P + i * P + j)] = 1.0;
  for (int64_t k = 0; k < D; ++k) identity[size_t(k * D + k)] = 1.0;
  auto decode = [&](const std::vector<double>& w) {
    return vals(linear_decoder(tokens, Variable(mod), Variable(Tensor::from_vector(w, Shape{D, D})), Variable(), int(P),
                               int(gh), int(gw), int(Cin), 1e-6)
                    .value());
  };
  // expected: each patch of the image normalised over its Cin·P² values, in image layout
  std::vector<double> iv = vals(img), want(iv.size());
  const int64_t H = gh * P, W = gw * P;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t x = 0; x < gw; ++x) {
        auto at = [&](int64_t c, int64_t i, int64_t j) { return size_t(((b * Cin + c) * H + y * P + i) * W + x * P + j); };
        double mu = 0, var = 0;
        for (int64_t c = 0; c < Cin; ++c)
          for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j) mu += iv[at(c, i, j)] / double(D);
        for (int64_t c = 0; c < Cin; ++c)
          for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j) var += std::pow(iv[at(c, i, j)] - mu, 2) / double(D);
        for (int64_t c = 0; c < Cin; ++c)
          for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j) want[at(c, i, j)] = (iv[at(c, i, j)] - mu) / std::sqrt(var + 1e-6);
      }
  std::vector<double> got = decode(perm);
  for (size_t k = 0; k < want.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-12) << "image element " << k;
  std::vector<double> wrong = decode(identity);
  double max_diff = 0;
  for (size_t k = 0; k < want.size(); ++k) max_diff = std::max(max_diff, std::fabs(wrong[k] - want[k]));
  EXPECT_GT(max_diff, 0.1) << "the (c, i, j) and (i, j, c') orders must differ for Cin > 1, P > 1";
}

}  // namespace
}  // namespace drwkv::autograd
