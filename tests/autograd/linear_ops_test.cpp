// linear, linear2 and bmm on the CPU: values against plain loops, gradients against finite differences
// (f64) over leading-dim, odd and size-1 shapes, strided views (no copy) and non-collapsible views
// (copy), accumulation of several uses; weight/bias gradients accumulated in f32 into bound buffers of
// bf16 leaves; targets the GEMM cannot write (bf16 gradient of f32 weights, transposed views).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "autograd/elementwise_ops.h"
#include "autograd/linear_ops.h"
#include "autograd/shape_ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::gradcheck;

Tensor rnd(const Shape& s, uint64_t seed, DType dt = DType::F64) {
  return testing::random_uniform(s, dt, Device::cpu(), seed);
}

// y[r, j] = Σ_k x[r, k] w[j, k] (+ b[j]) over x flattened to rows, in f64.
std::vector<double> linear_reference(const Tensor& x, const Tensor& w, const Tensor& b) {
  std::vector<double> xv = x.contiguous().to_vector<double>(), wv = w.contiguous().to_vector<double>();
  std::vector<double> bv = b.defined() ? b.to_vector<double>() : std::vector<double>();
  int64_t n = w.size(0), k = w.size(1), rows = x.numel() / k;
  std::vector<double> y(size_t(rows * n));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double s = bv.empty() ? 0.0 : bv[size_t(j)];
      for (int64_t q = 0; q < k; ++q) s += xv[size_t(r * k + q)] * wv[size_t(j * k + q)];
      y[size_t(r * n + j)] = s;
    }
  return y;
}

void expect_values(const Tensor& got, const std::vector<double>& want, double tol, const std::string& what) {
  std::vector<double> g = got.contiguous().to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " element " << i;
}

TEST(Linear, ValuesMatchLoops) {
  for (Shape xs : {Shape{4}, Shape{3, 4}, Shape{2, 3, 4}, Shape{2, 1, 3, 4}})
    for (bool with_bias : {false, true}) {
      Tensor x = rnd(xs, 1), w = rnd(Shape{5, 4}, 2), b = with_bias ? rnd(Shape{5}, 3) : Tensor();
      Variable y = linear(Variable(x), Variable(w), with_bias ? Variable(b) : Variable());
      Shape want_shape = xs;
      want_shape[want_shape.size() - 1] = 5;
      EXPECT_EQ(y.shape(), want_shape);
      expect_values(y.value(), linear_reference(x, w, b), 1e-12, "linear " + xs.str());
    }
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  for (Shape xs : {Shape{1}, Shape{4}, Shape{1, 4}, Shape{3, 4}, Shape{2, 3, 4}, Shape{2, 1, 3, 1}})
    for (int64_t n : {1, 5})
      for (bool with_bias : {false, true}) {
        int64_t k = xs[xs.size() - 1];
        std::vector<Tensor> in = {rnd(xs, 10), rnd(Shape{n, k}, 11)};
        if (with_bias) in.push_back(rnd(Shape{n}, 12));
        EXPECT_TRUE(gradcheck(
            [](const std::vector<Variable>& v) { return linear(v[0], v[1], v.size() > 2 ? v[2] : Variable()); }, in))
            << xs.str() << " n " << n << (with_bias ? " bias" : "");
      }
}

TEST(LinearGroup, EqualsOneLinearEachAndPassesGradcheck) {
  // three layers of one shape (a block's K, V, R), with and without recomputed inputs; values and every
  // gradient bitwise those of three linear() calls (the CPU runs the group's products one by one)
  for (Shape xs : {Shape{1, 1}, Shape{2, 3, 4}, Shape{5, 7}}) {
    const int64_t k = xs[xs.size() - 1], n = 6;
    std::vector<Tensor> in;
    for (int i = 0; i < 3; ++i) in.push_back(rnd(xs, 20 + uint64_t(i)));
    for (int i = 0; i < 3; ++i) in.push_back(rnd(Shape{n, k}, 30 + uint64_t(i)));
    for (bool recompute : {false, true}) {
      auto group = [&](const std::vector<Variable>& v) {
        std::function<Tensor(int)> again;
        if (recompute) again = [v](int i) { return v[size_t(i)].value(); };
        std::vector<Variable> ys = linear_group({v[0], v[1], v[2]}, {v[3], v[4], v[5]}, again);
        // distinct weights per output, so that every gradient is distinguishable
        return add(add(ys[0], scale_shift(ys[1], 2.0)), scale_shift(ys[2], -3.0));
      };
      auto apart = [&](const std::vector<Variable>& v) {
        return add(add(linear(v[0], v[3]), scale_shift(linear(v[1], v[4]), 2.0)), scale_shift(linear(v[2], v[5]), -3.0));
      };
      std::vector<Variable> a, b;
      for (const Tensor& t : in) {
        a.emplace_back(t, true);
        b.emplace_back(t, true);
      }
      Variable ya = group(a), yb = apart(b);
      EXPECT_TENSORS_CLOSE(ya.value(), yb.value(), (testing::Tolerance{0, 0}), "values " + xs.str(), 1);
      Tensor seed = rnd(ya.shape(), 40);
      ya.backward(seed);
      yb.backward(seed);
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_TENSORS_CLOSE(a[i].grad(), b[i].grad(), (testing::Tolerance{0, 0}),
                             "gradient " + std::to_string(i) + " " + xs.str(), 1);
      EXPECT_TRUE(gradcheck(group, in)) << xs.str() << (recompute ? " recomputed" : "");
    }
  }
}

TEST(Linear, StridedAndNonCollapsibleViews) {
  // x a slice of a wider tensor (rows strided, no copy); x a transposed view (copied); W a slice
  Tensor wide = rnd(Shape{2, 3, 7}, 20), w = rnd(Shape{5, 9}, 21), b = rnd(Shape{5}, 22);
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Variable>& v) { return linear(slice(v[0], 2, 1, 4), slice(v[1], 1, 3, 4), v[2]); },
      {wide, w, b}));
  Tensor xt = rnd(Shape{4, 3}, 23);
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Variable>& v) { return linear(transpose(v[0], 0, 1), slice(v[1], 1, 0, 4), v[2]); },
      {xt, w, b}));
  // the strided x gives the same values as its contiguous copy
  Tensor xs = wide.narrow(2, 1, 4), ws = w.narrow(1, 3, 4);
  expect_values(linear(Variable(xs), Variable(ws), Variable(b)).value(), linear_reference(xs, ws, b), 1e-12,
                "strided linear");
}

TEST(Linear, SeveralUsesAccumulate) {
  // the same x, W and b used twice: the second contribution is added by the GEMM (beta = 1)
  Tensor x1 = rnd(Shape{3, 4}, 30), x2 = rnd(Shape{3, 4}, 31), w = rnd(Shape{2, 4}, 32), b = rnd(Shape{2}, 33);
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Variable>& v) { return add(linear(v[0], v[2], v[3]), linear(v[1], v[2], v[3])); },
      {x1, x2, w, b}));
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Variable>& v) { return add(linear(v[0], v[1], v[2]), linear(v[0], v[1])); }, {x1, w, b}));
}

TEST(Linear2, ValuesAndGradients) {
  for (Shape lead : {Shape{1}, Shape{3}, Shape{2, 3}})
    for (bool with_bias : {false, true}) {
      Shape xs = lead, ss = lead;
      xs.push_back(4);
      ss.push_back(3);
      // W = [W1 | W2] as views of one [5, 7] weight (MODEL.md §1.10), and as separate leaves
      std::vector<Tensor> in = {rnd(xs, 40), rnd(ss, 41), rnd(Shape{5, 7}, 42)};
      if (with_bias) in.push_back(rnd(Shape{5}, 43));
      auto f = [](const std::vector<Variable>& v) {
        return linear2(v[0], slice(v[2], 1, 0, 4), v[1], slice(v[2], 1, 4, 3), v.size() > 3 ? v[3] : Variable());
      };
      EXPECT_TRUE(gradcheck(f, in)) << lead.str() << (with_bias ? " bias" : "");
      std::vector<Tensor> sep = {in[0], rnd(Shape{5, 4}, 44), in[1], rnd(Shape{5, 3}, 45)};
      if (with_bias) sep.push_back(in[3]);
      EXPECT_TRUE(gradcheck(
          [](const std::vector<Variable>& v) { return linear2(v[0], v[1], v[2], v[3], v.size() > 4 ? v[4] : Variable()); },
          sep));
      // value: a linear over the concatenation [x, s] with W
      Tensor cat;
      Variable y;
      {
        NoGradGuard ng;
        y = f({Variable(in[0]), Variable(in[1]), Variable(in[2]), with_bias ? Variable(in[3]) : Variable()});
        cat = concat({Variable(in[0]), Variable(in[1])}, -1).value();
      }
      expect_values(y.value(), linear_reference(cat, in[2], with_bias ? in[3] : Tensor()), 1e-12, "linear2 value");
    }
}

TEST(Bmm, ValuesAndGradientsAllTransposes) {
  for (auto [batch, m, k, n] : std::vector<std::array<int64_t, 4>>{{1, 1, 1, 1}, {1, 3, 4, 2}, {3, 2, 5, 4}, {2, 1, 3, 1}})
    for (int tr = 0; tr < 4; ++tr) {
      bool ta = tr & 1, tb = tr & 2;
      Tensor a = rnd(ta ? Shape{batch, k, m} : Shape{batch, m, k}, 50);
      Tensor b = rnd(tb ? Shape{batch, n, k} : Shape{batch, k, n}, 51);
      auto f = [ta, tb](const std::vector<Variable>& v) { return bmm(v[0], v[1], ta, tb); };
      EXPECT_TRUE(gradcheck(f, {a, b})) << "batch " << batch << " m " << m << " k " << k << " n " << n << " t" << ta << tb;
      // values
      Variable c = f({Variable(a), Variable(b)});
      ASSERT_EQ(c.shape(), (Shape{batch, m, n}));
      std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), want(size_t(batch * m * n));
      for (int64_t q = 0; q < batch; ++q)
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t p = 0; p < k; ++p)
              s += av[size_t(q * m * k + (ta ? p * m + i : i * k + p))] * bv[size_t(q * k * n + (tb ? j * k + p : p * n + j))];
            want[size_t((q * m + i) * n + j)] = s;
          }
      expect_values(c.value(), want, 1e-12, "bmm value");
    }
  // a transposed view as an operand (copied) and a batch-broadcast operand (stride 0, not copied)
  Tensor a = rnd(Shape{3, 4, 2}, 52), b = rnd(Shape{1, 4, 5}, 53);
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Variable>& v) { return bmm(permute(v[0], {0, 2, 1}), v[1], false, false); },
      {a, rnd(Shape{3, 4, 5}, 54)}));
  Variable c = bmm(Variable(a), Variable(b.expand(Shape{3, 4, 5})), true, false);
  Variable c_ref = bmm(Variable(a), Variable(b.expand(Shape{3, 4, 5}).contiguous()), true, false);
  expect_values(c.value(), c_ref.value().to_vector<double>(), 1e-12, "bmm broadcast operand");
}

TEST(Linear, Bf16WeightGradientAccumulatesInF32BoundBuffer) {
  // bf16 x and W, f32 bias; W's and b's gradients bound to views of one f32 flat buffer
  const int64_t n = 9, k = 12;
  Tensor x = rnd(Shape{5, 7, k}, 60, DType::BF16);
  Tensor flat = rnd(Shape{200}, 61, DType::F32);  // nonzero "earlier" gradient values
  Tensor initial = flat.clone();
  Variable w(rnd(Shape{n, k}, 62, DType::BF16), true, "w");
  Variable b(rnd(Shape{n}, 63, DType::F32), true, "b");
  w.bind_grad(flat.narrow(0, 10, n * k).view(Shape{n, k}));
  b.bind_grad(flat.narrow(0, 150, n));
  Tensor seed = rnd(Shape{5, 7, n}, 64, DType::BF16);
  for (int step = 0; step < 2; ++step) linear(Variable(x), w, b).backward(seed);
  // reference from the bf16 values, in f64: dW = Σ dyᵀ x, db = Σ dy, twice
  std::vector<double> xv = x.to_vector<double>(), dy = seed.to_vector<double>(), want = initial.to_vector<double>();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t q = 0; q < k; ++q) {
      double s = 0;
      for (int64_t r = 0; r < 35; ++r) s += dy[size_t(r * n + j)] * xv[size_t(r * k + q)];
      want[size_t(10 + j * k + q)] += 2 * s;
    }
    double s = 0;
    for (int64_t r = 0; r < 35; ++r) s += dy[size_t(r * n + j)];
    want[size_t(150 + j)] += 2 * s;
  }
  // f32 accumulation: far tighter than a bf16 round trip of the sums (~4e-3 relative) could meet
  EXPECT_TENSORS_CLOSE(flat, Tensor::from_vector(want, Shape{200}), (testing::Tolerance{2e-6, 2e-6}),
                       "bound f32 gradient buffer (elements outside the views must be unchanged)", 60);
  EXPECT_EQ(w.grad().data(), flat.narrow(0, 10, 1).data());  // still the bound view
}

TEST(Linear, EmptyTokenSet) {
  // no rows: an empty output; dW and db are empty sums (zero when fresh, unchanged when bound)
  Tensor x = Tensor::empty(Shape{0, 4}, DType::F64), seed = Tensor::empty(Shape{0, 3}, DType::F64);
  Variable w(rnd(Shape{3, 4}, 80), true), b(rnd(Shape{3}, 81), true), xv(x, true);
  Variable y = linear(xv, w, b);
  EXPECT_EQ(y.shape(), (Shape{0, 3}));
  y.backward(seed);
  EXPECT_EQ(w.grad().to_vector<double>(), std::vector<double>(12, 0.0));
  EXPECT_EQ(b.grad().to_vector<double>(), std::vector<double>(3, 0.0));
  EXPECT_EQ(xv.grad().shape(), (Shape{0, 4}));
  Tensor bound = rnd(Shape{3, 4}, 82), before = bound.clone();
  Variable w2(rnd(Shape{3, 4}, 83), true);
  w2.bind_grad(bound);
  linear(Variable(x), w2).backward(seed);
  EXPECT_EQ(bound.to_vector<double>(), before.to_vector<double>());
}

TEST(Linear, GradientTargetsTheGemmCannotWrite) {
  // f32 weight with a bf16 gradient buffer, and a weight gradient bound to a transposed view
  Tensor x = rnd(Shape{6, 4}, 70, DType::F32), seed = rnd(Shape{6, 3}, 71, DType::F32);
  std::vector<double> xv = x.to_vector<double>(), dy = seed.to_vector<double>();
  std::vector<double> dw(12, 0.0);
  for (int64_t j = 0; j < 3; ++j)
    for (int64_t q = 0; q < 4; ++q)
      for (int64_t r = 0; r < 6; ++r) dw[size_t(j * 4 + q)] += dy[size_t(r * 3 + j)] * xv[size_t(r * 4 + q)];

  Variable w1(rnd(Shape{3, 4}, 72, DType::F32), true);
  Tensor g16 = Tensor::zeros(Shape{3, 4}, DType::BF16);
  w1.bind_grad(g16);
  linear(Variable(x), w1).backward(seed);
  expect_values(g16, dw, 1e-2, "bf16 gradient of an f32 weight");

  Variable w2(rnd(Shape{3, 4}, 73, DType::F32), true);
  Tensor store = Tensor::zeros(Shape{4, 3}, DType::F32);
  w2.bind_grad(store.transpose(0, 1));
  linear(Variable(x), w2).backward(seed);
  linear(Variable(x), w2).backward(seed);
  std::vector<double> twice(dw);
  for (double& v : twice) v *= 2;
  expect_values(store.transpose(0, 1), twice, 1e-5, "gradient bound to a transposed view");
}

}  // namespace
}  // namespace drwkv::autograd
