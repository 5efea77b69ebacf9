// Normalisations, embedding and MSE through autograd on the CPU: backward against central finite
// differences in f64 over several shapes (odd and size-1 dimensions included), closed-form values, the
// engine's accumulation paths (a gradient slot that already holds a sum, a bound buffer of another
// dtype) and the out-of-range id failure.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/elementwise_ops.h"
#include "autograd/norm_ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::gradcheck;

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1.5, double hi = 1.5) {
  return testing::random_uniform(s, DType::F64, Device::cpu(), seed, lo, hi);
}

// Affine variants: which of weight and bias exist.
struct Affine {
  bool weight, bias;
};
const Affine kAffines[] = {{true, true}, {false, false}, {true, false}, {false, true}};

TEST(LayerNormGrad, MatchesFiniteDifferences) {
  for (Shape s : {Shape{1, 1}, Shape{1, 16}, Shape{3, 5}, Shape{2, 3, 7}, Shape{4, 1}, Shape{9}}) {
    const int64_t C = s[s.size() - 1];
    for (Affine af : kAffines) {
      Tensor x = rnd(s, 1, -1, 3);  // offset mean: the variance must not depend on E[x²] − μ²
      Tensor w = rnd(Shape{C}, 2, 0.5, 1.5), b = rnd(Shape{C}, 3);
      auto f = [af](const std::vector<Variable>& v) {
        return layer_norm(v[0], af.weight ? v[1] : Variable(), af.bias ? v[2] : Variable(), 1e-5);
      };
      EXPECT_TRUE(gradcheck(f, {x, w, b}, {}, {true, af.weight, af.bias}))
          << s.str() << " weight " << af.weight << " bias " << af.bias;
    }
  }
}

TEST(LayerNormGrad, ParameterGradientsOnly) {
  Tensor x = rnd(Shape{5, 6}, 4), w = rnd(Shape{6}, 5), b = rnd(Shape{6}, 6);
  auto f = [](const std::vector<Variable>& v) { return layer_norm(v[0], v[1], v[2], 1e-5); };
  EXPECT_TRUE(gradcheck(f, {x, w, b}, {}, {false, true, true}));
}

TEST(LayerNorm, NormalisesEachRow) {
  Tensor x = rnd(Shape{4, 33}, 7, 2, 5);
  Tensor y = layer_norm(Variable(x), Variable(), Variable(), 1e-5).value();
  std::vector<double> v = y.to_vector<double>(), xs = x.to_vector<double>();
  for (int r = 0; r < 4; ++r) {
    double m = 0, q = 0, mx = 0, qx = 0;
    for (int c = 0; c < 33; ++c) m += v[size_t(r * 33 + c)], mx += xs[size_t(r * 33 + c)];
    m /= 33, mx /= 33;
    for (int c = 0; c < 33; ++c) {
      q += (v[size_t(r * 33 + c)] - m) * (v[size_t(r * 33 + c)] - m);
      qx += (xs[size_t(r * 33 + c)] - mx) * (xs[size_t(r * 33 + c)] - mx);
    }
    EXPECT_NEAR(m, 0.0, 1e-13);
    // population variance: var(y) = var(x) / (var(x) + eps)
    EXPECT_NEAR(q / 33, (qx / 33) / (qx / 33 + 1e-5), 1e-12);
  }
}

TEST(LayerNorm, AffineClosedForm) {
  // one row [1, 2, 3]: mean 2, var 2/3
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}, Shape{1, 3});
  Tensor w = Tensor::from_vector(std::vector<double>{1, 2, 3}, Shape{3});
  Tensor b = Tensor::from_vector(std::vector<double>{0.5, 0, -1}, Shape{3});
  std::vector<double> y = layer_norm(Variable(x), Variable(w), Variable(b), 0.0).value().to_vector<double>();
  const double r = 1 / std::sqrt(2.0 / 3.0);
  EXPECT_NEAR(y[0], -r + 0.5, 1e-14);
  EXPECT_NEAR(y[1], 0.0, 1e-14);
  EXPECT_NEAR(y[2], 3 * r - 1, 1e-14);
}

TEST(GroupNormGrad, MatchesFiniteDifferences) {
  struct Case { Shape s; int groups; };
  for (Case c : {Case{{2, 12}, 3}, Case{{3, 1, 8}, 4}, Case{{2, 6}, 6}, Case{{1, 5}, 1}, Case{{3, 2, 10}, 2}}) {
    const int64_t C = c.s[c.s.size() - 1];
    for (Affine af : kAffines) {
      Tensor x = rnd(c.s, 8, -2, 1), w = rnd(Shape{C}, 9, 0.5, 1.5), b = rnd(Shape{C}, 10);
      auto f = [af, g = c.groups](const std::vector<Variable>& v) {
        return group_norm(v[0], g, af.weight ? v[1] : Variable(), af.bias ? v[2] : Variable(), 64e-5);
      };
      EXPECT_TRUE(gradcheck(f, {x, w, b}, {}, {true, af.weight, af.bias}))
          << c.s.str() << " groups " << c.groups << " weight " << af.weight << " bias " << af.bias;
    }
  }
}

TEST(GroupNorm, OneGroupIsLayerNormAndGroupsAreIndependent) {
  Tensor x = rnd(Shape{3, 12}, 11), w = rnd(Shape{12}, 12), b = rnd(Shape{12}, 13);
  EXPECT_TENSORS_CLOSE(group_norm(Variable(x), 1, Variable(w), Variable(b), 1e-5).value(),
                       layer_norm(Variable(x), Variable(w), Variable(b), 1e-5).value(), testing::tolerance_for(DType::F64),
                       "group_norm(1) vs layer_norm", 11);
  // groups = 3: each 4-channel slice is layer-normed on its own (affine per channel)
  Tensor y = group_norm(Variable(x), 3, Variable(w), Variable(b), 1e-5).value();
  for (int g = 0; g < 3; ++g) {
    Tensor xs = x.narrow(1, 4 * g, 4).contiguous();
    Tensor ys = layer_norm(Variable(xs), Variable(w.narrow(0, 4 * g, 4).contiguous()),
                           Variable(b.narrow(0, 4 * g, 4).contiguous()), 1e-5)
                    .value();
    EXPECT_TENSORS_CLOSE(y.narrow(1, 4 * g, 4).contiguous(), ys, testing::tolerance_for(DType::F64),
                         "group " + std::to_string(g), 11);
  }
}

TEST(L2NormalizeGrad, MatchesFiniteDifferences) {
  struct Case { Shape s; int group; };
  for (Case c : {Case{{2, 8}, 4}, Case{{3, 1, 6}, 6}, Case{{1, 1}, 1}, Case{{5, 9}, 3}, Case{{7}, 7}}) {
    Tensor x = rnd(c.s, 14);
    EXPECT_TRUE(gradcheck([g = c.group](const std::vector<Variable>& v) { return l2_normalize(v[0], g, 1e-12); }, {x}))
        << c.s.str() << " group " << c.group;
  }
}

TEST(L2Normalize, UnitNormsAndTheEpsBranch) {
  // row 0: a normal group; row 1: a group whose norm (≈ 1e-3) is below eps = 0.1, so y = x / eps
  Tensor x = rnd(Shape{2, 4}, 15);
  double* p = x.data_ptr<double>();
  for (int i = 4; i < 8; ++i) p[i] *= 1e-3;
  Tensor y = l2_normalize(Variable(x), 4, 0.1).value();
  std::vector<double> v = y.to_vector<double>();
  double n0 = 0;
  for (int i = 0; i < 4; ++i) n0 += v[size_t(i)] * v[size_t(i)];
  EXPECT_NEAR(n0, 1.0, 1e-14);
  for (int i = 4; i < 8; ++i) EXPECT_NEAR(v[size_t(i)], p[i] / 0.1, 1e-16);
  // both branches differentiate correctly
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return l2_normalize(v[0], 4, 0.1); }, {x}));
}

TEST(EmbeddingGrad, MatchesFiniteDifferencesWithRepeatedIds) {
  Tensor table = rnd(Shape{5, 3}, 16);
  for (std::vector<int32_t> id_values : {std::vector<int32_t>{4, 0, 4, 2, 4, 1}, std::vector<int32_t>{3}}) {
    Shape s = id_values.size() == 6 ? Shape{2, 3} : Shape{1};
    Tensor ids = Tensor::from_vector(id_values, s);
    EXPECT_TRUE(gradcheck([ids](const std::vector<Variable>& v) { return embedding(v[0], ids); }, {table}))
        << s.str();
  }
}

TEST(Embedding, GathersRowsAndAccumulatesPerRowInOrder) {
  Tensor table = Tensor::from_vector(std::vector<double>{0, 1, 10, 11, 20, 21}, Shape{3, 2});
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{2, 0, 2}, Shape{3});
  Variable t(table, true);
  Variable out = embedding(t, ids);
  EXPECT_EQ(out.shape(), (Shape{3, 2}));
  EXPECT_EQ(out.value().to_vector<double>(), (std::vector<double>{20, 21, 0, 1, 20, 21}));
  out.backward(Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, Shape{3, 2}));
  // row 1 is never selected: its gradient is 0 (overwritten, not left uninitialised)
  EXPECT_EQ(t.grad().to_vector<double>(), (std::vector<double>{3, 4, 0, 0, 6, 8}));
}

TEST(Embedding, OutOfRangeIdFailsWithItsPosition) {
  Tensor table = rnd(Shape{4, 2}, 17);
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{1, 4}, Shape{2});
  EXPECT_DEATH(embedding(Variable(table), ids), "id 4 at position 1 is outside the table of 4 rows");
  Tensor neg = Tensor::from_vector(std::vector<int32_t>{-1}, Shape{1});
  EXPECT_DEATH(embedding(Variable(table), neg), "id -1 at position 0");
}

TEST(MseLossGrad, MatchesFiniteDifferences) {
  for (Shape s : {Shape{1}, Shape{7}, Shape{2, 3, 4}, Shape{1, 5, 1}}) {
    Tensor a = rnd(s, 18), b = rnd(s, 19);
    EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return mse_loss(v[0], v[1]); }, {a, b})) << s.str();
  }
}

TEST(MseLoss, ValueAndSameOperand) {
  Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, Shape{2, 2});
  Tensor b = Tensor::from_vector(std::vector<double>{0, 2, 5, 1}, Shape{2, 2});
  Variable loss = mse_loss(Variable(a), Variable(b));
  EXPECT_EQ(loss.shape(), (Shape{1}));
  EXPECT_DOUBLE_EQ(loss.value().item(), (1.0 + 0 + 4 + 9) / 4);
  // both operands the same leaf: the two gradient contributions cancel exactly
  Variable x(a, true);
  mse_loss(x, x).backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
}

TEST(NormOps, AccumulateIntoAnExistingGradientAndIntoBoundBuffers) {
  // x feeds two layer norms, so the second backward adds into x's gradient (accumulate path); the
  // weight's gradient is bound to a slice of a flat f64 buffer (in place, +=); x's to an f32 buffer
  // (a dtype the kernel does not write: converted through a temporary).
  Tensor xv = rnd(Shape{3, 5}, 20), w1 = rnd(Shape{5}, 21), w2 = rnd(Shape{5}, 22);
  auto f = [](const std::vector<Variable>& v) {
    return add(layer_norm(v[0], v[1], Variable(), 1e-5), group_norm(v[0], 1, v[2], Variable(), 1e-5));
  };
  EXPECT_TRUE(gradcheck(f, {xv, w1, w2}));

  Tensor seed = rnd(Shape{3, 5}, 23);
  Variable x(xv, true), wa(w1, true), wb(w2, true);
  f({x, wa, wb}).backward(seed.clone());
  Tensor gx = x.grad(), gw = wa.grad();

  Tensor flat = Tensor::full(Shape{9}, 0.25, DType::F64);
  Tensor gx32 = Tensor::full(Shape{3, 5}, 0.5, DType::F32);
  Variable x2(xv, true), wa2(w1, true), wb2(w2, true);
  x2.bind_grad(gx32);
  wa2.bind_grad(flat.slice(0, 2, 7));
  f({x2, wa2, wb2}).backward(seed.clone());
  std::vector<double> fv = flat.to_vector<double>(), gwv = gw.to_vector<double>();
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(fv[size_t(i)], 0.25 + (i >= 2 && i < 7 ? gwv[size_t(i - 2)] : 0.0), 1e-14) << i;
  std::vector<double> g32 = gx32.to_vector<double>(), gxv = gx.to_vector<double>();
  for (size_t i = 0; i < g32.size(); ++i) EXPECT_NEAR(g32[i], 0.5 + gxv[i], 1e-6) << i;
}

}  // namespace
}  // namespace drwkv::autograd
