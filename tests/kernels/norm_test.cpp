// The CPU launchers of kernels/norm.h (the CPU backend and the oracle of the CUDA tests): saved
// statistics, the gradient contract (dx overwrite/accumulate/in place/absent, parameter gradients +=),
// and the f32/bf16 instantiations against f64.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/norm.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
using testing::random_uniform;

Tensor rnd64(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return random_uniform(s, DType::F64, Device::cpu(), seed, lo, hi);
}
double* p64(const Tensor& t) { return static_cast<double*>(t.data()); }

TEST(NormCpu, LayerNormStatisticsAndInPlaceForward) {
  const int64_t rows = 3, C = 10;
  Tensor x = rnd64(Shape{rows, C}, 1, 2, 6), y = Tensor::empty(Shape{rows, C}, DType::F64);
  Tensor mean = Tensor::empty(Shape{rows}, DType::F64), rstd = Tensor::empty(Shape{rows}, DType::F64);
  layernorm_forward_cpu<double>(p64(y), p64(mean), p64(rstd), p64(x), nullptr, nullptr, rows, C, 1e-5);
  std::vector<double> xv = x.to_vector<double>(), m = mean.to_vector<double>(), r = rstd.to_vector<double>();
  for (int64_t i = 0; i < rows; ++i) {
    double mu = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mu += xv[size_t(i * C + c)] / C;
    for (int64_t c = 0; c < C; ++c) var += (xv[size_t(i * C + c)] - mu) * (xv[size_t(i * C + c)] - mu) / C;
    EXPECT_NEAR(m[size_t(i)], mu, 1e-14);
    EXPECT_NEAR(r[size_t(i)], 1 / std::sqrt(var + 1e-5), 1e-12);
  }
  // y may be x
  Tensor z = x.clone();
  layernorm_forward_cpu<double>(p64(z), nullptr, nullptr, p64(z), nullptr, nullptr, rows, C, 1e-5);
  EXPECT_EQ(z.to_vector<double>(), y.to_vector<double>());
}

TEST(NormCpu, BackwardContract) {
  const int64_t rows = 4, C = 6, groups = 2;
  Tensor x = rnd64(Shape{rows, C}, 2), dy = rnd64(Shape{rows, C}, 3), w = rnd64(Shape{C}, 4), b = rnd64(Shape{C}, 5);
  Tensor y = Tensor::empty(Shape{rows, C}, DType::F64);
  Tensor mean = Tensor::empty(Shape{rows * groups}, DType::F64), rstd = Tensor::empty(Shape{rows * groups}, DType::F64);
  groupnorm_forward_cpu<double>(p64(y), p64(mean), p64(rstd), p64(x), p64(w), p64(b), rows, C, groups, 1e-5);
  auto backward = [&](double* dx, double* dw, double* db, const double* g, bool acc) {
    groupnorm_backward_cpu<double>(dx, dw, db, g, p64(x), p64(w), p64(mean), p64(rstd), rows, C, groups, acc, nullptr);
  };
  Tensor dx = Tensor::empty(Shape{rows, C}, DType::F64), dw = Tensor::zeros(Shape{C}, DType::F64),
         db = Tensor::zeros(Shape{C}, DType::F64);
  backward(p64(dx), p64(dw), p64(db), p64(dy), false);
  // dbias is Σ_rows dy
  std::vector<double> dyv = dy.to_vector<double>(), dbv = db.to_vector<double>();
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += dyv[size_t(r * C + c)];
    EXPECT_NEAR(dbv[size_t(c)], s, 1e-14);
  }
  // accumulate: dx += ..., parameter gradients always +=
  Tensor dx2 = Tensor::full(Shape{rows, C}, 1.0, DType::F64), dw2 = Tensor::full(Shape{C}, 2.0, DType::F64);
  backward(p64(dx2), p64(dw2), nullptr, p64(dy), true);
  std::vector<double> a = dx.to_vector<double>(), a2 = dx2.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a2[i], a[i] + 1.0, 1e-14);
  std::vector<double> w1 = dw.to_vector<double>(), w2 = dw2.to_vector<double>();
  for (size_t i = 0; i < w1.size(); ++i) EXPECT_NEAR(w2[i], w1[i] + 2.0, 1e-14);
  // in place (dx = dy), and no dx at all
  Tensor g = dy.clone();
  backward(p64(g), nullptr, nullptr, p64(g), false);
  EXPECT_EQ(g.to_vector<double>(), dx.to_vector<double>());
  Tensor dw3 = Tensor::zeros(Shape{C}, DType::F64);
  backward(nullptr, p64(dw3), nullptr, p64(dy), false);
  EXPECT_EQ(dw3.to_vector<double>(), dw.to_vector<double>());
}

TEST(NormCpu, L2BackwardInPlaceAndAccumulate) {
  const int64_t rows = 3, C = 8, gs = 4;
  Tensor x = rnd64(Shape{rows, C}, 6), dy = rnd64(Shape{rows, C}, 7);
  Tensor dx = Tensor::empty(Shape{rows, C}, DType::F64);
  l2norm_backward_cpu<double>(p64(dx), p64(dy), p64(x), rows, C, gs, 1e-12, false);
  Tensor g = dy.clone();
  l2norm_backward_cpu<double>(p64(g), p64(g), p64(x), rows, C, gs, 1e-12, true);  // g = dy + dx
  std::vector<double> a = dx.to_vector<double>(), b = g.to_vector<double>(), d = dy.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i] + d[i], 1e-14);
  // the gradient is orthogonal to y within each group (y·dx = 0 where ‖g‖ > eps)
  Tensor y = Tensor::empty(Shape{rows, C}, DType::F64);
  l2norm_forward_cpu<double>(p64(y), p64(x), rows, C, gs, 1e-12);
  std::vector<double> yv = y.to_vector<double>();
  for (int64_t s = 0; s < rows * C / gs; ++s) {
    double dot = 0;
    for (int64_t i = 0; i < gs; ++i) dot += yv[size_t(s * gs + i)] * a[size_t(s * gs + i)];
    EXPECT_NEAR(dot, 0.0, 1e-13);
  }
}

// The f32 and bf16 instantiations agree with f64 on the same (rounded) inputs.
template <typename T>
void check_precision(uint64_t seed) {
  const DType dt = dtype_v<T>;
  const int64_t rows = 5, C = 24, groups = 3;
  Tensor x = random_uniform(Shape{rows, C}, dt, Device::cpu(), seed, -1, 3);
  Tensor dy = random_uniform(Shape{rows, C}, dt, Device::cpu(), seed + 1);
  Tensor w = random_uniform(Shape{C}, DType::F32, Device::cpu(), seed + 2), b = random_uniform(Shape{C}, DType::F32, Device::cpu(), seed + 3);
  auto run = [&](auto tag, const Tensor& xs, const Tensor& dys, const Tensor& ws, const Tensor& bs) {
    using U = decltype(tag);
    using B = acc_t<U>;
    const DType ud = dtype_v<U>, bd = dtype_v<B>;
    Tensor y = Tensor::empty(Shape{rows, C}, ud), dx = Tensor::empty(Shape{rows, C}, ud);
    Tensor m = Tensor::empty(Shape{rows * groups}, bd), r = Tensor::empty(Shape{rows * groups}, bd);
    Tensor dw = Tensor::zeros(Shape{C}, bd), db = Tensor::zeros(Shape{C}, bd);
    groupnorm_forward_cpu<U>(y.data_ptr<U>(), m.data_ptr<B>(), r.data_ptr<B>(), xs.data_ptr<U>(), ws.data_ptr<B>(),
                             bs.data_ptr<B>(), rows, C, groups, 1e-5);
    groupnorm_backward_cpu<U>(dx.data_ptr<U>(), dw.data_ptr<B>(), db.data_ptr<B>(), dys.data_ptr<U>(), xs.data_ptr<U>(),
                              ws.data_ptr<B>(), m.data_ptr<B>(), r.data_ptr<B>(), rows, C, groups, false, nullptr);
    return std::vector<Tensor>{y, dx, dw, db};
  };
  std::vector<Tensor> got = run(T{}, x, dy, w, b);
  std::vector<Tensor> ref = run(double{}, x.to(DType::F64), dy.to(DType::F64), w.to(DType::F64), b.to(DType::F64));
  const char* names[] = {"y", "dx", "dweight", "dbias"};
  for (int i = 0; i < 4; ++i) {
    // y and dx are rounded to T; the parameter gradients are f32 sums
    const testing::Tolerance tol = i < 2 ? testing::tolerance_for(dt) : testing::Tolerance{1e-5, 1e-5};
    EXPECT_TENSORS_CLOSE(got[size_t(i)], ref[size_t(i)], tol, std::string(names[i]) + " " + std::string(dtype_name(dt)), seed);
  }
}

TEST(NormCpu, F32AndBf16AgreeWithF64) {
  check_precision<float>(10);
  check_precision<bf16>(20);
}

}  // namespace
}  // namespace drwkv::kernels
