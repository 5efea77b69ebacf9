// CPU GEMM backend (BLAS) against the triple-loop f64 reference, over every transpose combination,
// the supported dtype combinations, odd and size-1 shapes, padded leading dims, strided and
// broadcast batches, bias, alpha and beta (beta = 0 on a NaN-poisoned D); and the bias-gradient
// column sums against plain sums.
#include <gtest/gtest.h>

#include "kernels/gemm.h"
#include "tests/kernels/gemm_cases.h"

namespace drwkv::kernels {
namespace {
using gemm_testing::GemmCase;

void run_cpu(const GemmCase& c, uint64_t seed) {
  auto h = gemm_testing::make_buffers(c, seed);
  Tensor want = gemm_testing::reference(c, h);
  Tensor before = h.d.clone();
  gemm_cpu(h.args);
  EXPECT_TENSORS_CLOSE(gemm_testing::extract(c, h.args, h.d), want, gemm_testing::gemm_tolerance(c), c.str(), seed);
  EXPECT_TRUE(gemm_testing::padding_untouched(c, h.args, before, h.d));
}

struct Types {
  DType in, out;
};

TEST(GemmCpu, AllTransposesTypesAndShapes) {
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {3, 5, 7}, {17, 9, 33}, {64, 48, 32}};
  const std::vector<Types> types = {{DType::F32, DType::F32}, {DType::BF16, DType::BF16}, {DType::BF16, DType::F32},
                                    {DType::F64, DType::F64}};
  uint64_t seed = 100;
  for (auto [m, n, k] : shapes)
    for (Types t : types)
      for (int tr = 0; tr < 4; ++tr) {
        GemmCase c{m, n, k};
        c.in = t.in;
        c.out = t.out;
        c.trans_a = tr & 1;
        c.trans_b = tr & 2;
        run_cpu(c, ++seed);
      }
}

TEST(GemmCpu, BiasAlphaBetaPaddingBatches) {
  uint64_t seed = 500;
  const std::vector<Types> types = {{DType::F32, DType::F32}, {DType::BF16, DType::BF16}, {DType::BF16, DType::F32},
                                    {DType::F64, DType::F64}};
  for (Types t : types)
    for (int variant = 0; variant < 6; ++variant) {
      GemmCase c{13, 11, 19};
      c.in = t.in;
      c.out = t.out;
      c.trans_a = variant & 1;
      c.trans_b = (variant / 2) & 1;
      c.batch = variant < 3 ? 1 : 3;
      c.pad = variant % 3;
      c.alpha = variant % 2 ? -0.5f : 1.0f;
      c.beta = std::array<float, 3>{0.0f, 1.0f, 0.75f}[size_t(variant % 3)];
      c.broadcast_b = variant == 5;
      c.offset = variant == 4 ? 1 : 0;
      c.has_bias = variant != 1;
      c.bias = t.out;
      run_cpu(c, ++seed);
      if (t.out == DType::BF16) {  // f32 master bias with a bf16 output
        c.bias = DType::F32;
        run_cpu(c, ++seed);
      }
    }
}

TEST(GemmCpu, WeightGradientAccumulatesIntoF32) {
  // dW (n × k) += dYᵀ X with bf16 dY [m, n] and X [m, k] into an f32 buffer, twice
  GemmCase c{24, 40, 300};  // here m = out rows (n of the layer), k = tokens
  c.trans_a = true;
  c.in = DType::BF16;
  c.out = DType::F32;
  c.beta = 1.0f;
  run_cpu(c, 900);
}

TEST(GemmCpu, RejectsUnsupportedTypes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // BLAS may have started threads
  GemmArgs g;
  g.m = g.n = g.k = 2;
  g.lda = g.ldb = g.ldd = 2;
  float buf[4] = {1, 2, 3, 4};
  g.a = g.b = buf;
  g.d = buf;
  g.a_dtype = g.b_dtype = DType::F32;
  g.d_dtype = DType::BF16;  // f32 inputs give f32 outputs only
  EXPECT_DEATH(gemm_cpu(g), "not supported");
  g.d_dtype = DType::F32;
  g.b_dtype = DType::BF16;
  EXPECT_DEATH(gemm_cpu(g), "A is f32 but B is bf16");
  g.b_dtype = DType::F32;
  g.ldb = 1;
  EXPECT_DEATH(gemm_cpu(g), "ldb");
}

template <typename T>
void check_bias_grad(int64_t rows, int64_t n, bool accumulate, uint64_t seed) {
  using A = acc_t<T>;
  Tensor dy = testing::random_uniform(Shape{rows, n}, dtype_v<T>, Device::cpu(), seed);
  Tensor init = testing::random_uniform(Shape{n}, dtype_v<A>, Device::cpu(), seed + 1);
  std::vector<double> y = dy.to_vector<double>(), want = init.to_vector<double>();
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += y[size_t(r * n + j)];
    want[size_t(j)] = accumulate ? want[size_t(j)] + s : s;
  }
  Tensor db = accumulate ? init.clone() : testing::poisoned(Shape{n}, dtype_v<A>, Device::cpu());
  bias_grad_cpu<T>(db.data_ptr<A>(), dy.data_ptr<T>(), rows, n, accumulate, nullptr);
  testing::Tolerance tol = dtype_v<A> == DType::F64 ? testing::Tolerance{1e-12, 1e-12}
                                                     : testing::Tolerance{1e-5, 1e-6 * double(rows)};
  EXPECT_TENSORS_CLOSE(db, Tensor::from_vector(want, Shape{n}), tol,
                       "bias_grad " + std::string(dtype_name(dtype_v<T>)) + " rows " + std::to_string(rows) +
                           " n " + std::to_string(n) + (accumulate ? " acc" : ""),
                       seed);
}

TEST(BiasGradCpu, ColumnSums) {
  uint64_t seed = 1000;
  for (int64_t rows : {0, 1, 7, 255, 256, 257, 1000})
    for (int64_t n : {1, 5, 64, 384})
      for (bool acc : {false, true}) {
        check_bias_grad<float>(rows, n, acc, ++seed);
        check_bias_grad<bf16>(rows, n, acc, ++seed);
        check_bias_grad<double>(rows, n, acc, ++seed);
      }
}

}  // namespace
}  // namespace drwkv::kernels
