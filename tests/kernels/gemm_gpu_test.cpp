// CUDA GEMM (cuBLASLt) against the triple-loop f64 reference and against the CPU backend: every
// transpose combination, every supported dtype combination, odd and size-1 shapes, padded leading
// dims, misaligned pointers, strided and broadcast batches, bias (epilogue and f32-bias fallback),
// alpha, beta (beta = 0 on a NaN-poisoned D), TF32, plan-cache reuse and determinism; and the
// bias-gradient kernel against the CPU one.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/stream.h"
#include "kernels/gemm.h"
#include "tests/kernels/gemm_cases.h"

namespace drwkv::kernels {
namespace {
using gemm_testing::GemmCase;
const Device kGpu = Device::cuda(0);

StreamHandle stream() { return current_stream(0).handle(); }

void run_gpu(const GemmCase& c, uint64_t seed) {
  auto h = gemm_testing::make_buffers(c, seed);
  Tensor want = gemm_testing::reference(c, h);
  auto dev = h.to(kGpu);
  gemm_cuda(dev.args, stream());
  Tensor got = gemm_testing::extract(c, dev.args, dev.d);
  EXPECT_TENSORS_CLOSE(got, want, gemm_testing::gemm_tolerance(c), c.str(), seed);
  EXPECT_TRUE(gemm_testing::padding_untouched(c, dev.args, h.d, dev.d));
  // the two backends agree within the storage precision (bf16: each may be off by a rounding, and
  // the GPU's bias fallback rounds twice)
  if (!c.tf32) {
    gemm_cpu(h.args);
    testing::Tolerance tol = gemm_testing::gemm_tolerance(c);
    if (c.out == DType::BF16) tol = {2e-2, 2e-2};
    EXPECT_TENSORS_CLOSE(got, gemm_testing::extract(c, h.args, h.d), tol, c.str() + " vs gemm_cpu", seed);
  }
}

struct Types {
  DType in, out;
};
const std::vector<Types> kTypes = {{DType::F32, DType::F32}, {DType::BF16, DType::BF16}, {DType::BF16, DType::F32}};

TEST(GemmGpu, AllTransposesTypesAndShapes) {
  DRWKV_REQUIRE_GPU();
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1},   {1, 7, 3},     {5, 1, 9},     {3, 5, 7},
                                                      {17, 9, 33}, {64, 48, 32},  {127, 129, 65}, {256, 384, 1536},
                                                      {300, 1536, 384}};
  uint64_t seed = 100;
  for (auto [m, n, k] : shapes)
    for (Types t : kTypes)
      for (int tr = 0; tr < 4; ++tr) {
        GemmCase c{m, n, k};
        c.in = t.in;
        c.out = t.out;
        c.trans_a = tr & 1;
        c.trans_b = tr & 2;
        run_gpu(c, ++seed);
      }
}

TEST(GemmGpu, BiasAlphaBetaPaddingBatchesMisalignment) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 500;
  for (std::array<int64_t, 3> mnk : {std::array<int64_t, 3>{13, 11, 19}, std::array<int64_t, 3>{96, 64, 128}})
    for (Types t : kTypes)
      for (int variant = 0; variant < 8; ++variant) {
        GemmCase c{mnk[0], mnk[1], mnk[2]};
        c.in = t.in;
        c.out = t.out;
        c.trans_a = variant & 1;
        c.trans_b = (variant / 2) & 1;
        c.batch = variant < 4 ? 1 : 3;
        c.pad = variant % 3;
        c.alpha = variant % 2 ? -0.5f : 1.0f;
        c.beta = std::array<float, 3>{0.0f, 1.0f, 0.75f}[size_t(variant % 3)];
        c.broadcast_b = variant == 5;
        c.offset = variant == 6 ? 1 : 0;  // 2- or 4-byte aligned operands
        c.has_bias = variant != 1;
        c.bias = t.out;
        run_gpu(c, ++seed);
        if (t.out == DType::BF16 && c.has_bias) {  // f32 master bias with a bf16 output
          c.bias = DType::F32;
          run_gpu(c, ++seed);
        }
      }
}

TEST(GemmGpu, WeightGradientShapesAccumulateIntoF32) {
  DRWKV_REQUIRE_GPU();
  // dW [n_out, k_in] += dYᵀ X over many tokens: the reduction dimension is long (split-K territory)
  for (auto [nout, kin, tokens] : std::vector<std::array<int64_t, 3>>{{24, 40, 300}, {384, 96, 4096}, {33, 17, 9999}}) {
    GemmCase c{nout, kin, tokens};
    c.trans_a = true;
    c.in = DType::BF16;
    c.out = DType::F32;
    c.beta = 1.0f;
    run_gpu(c, 900 + uint64_t(nout));
    c.out = DType::BF16;  // bf16 output with a long reduction: partial sums must stay f32
    c.beta = 0.0f;
    run_gpu(c, 950 + uint64_t(nout));
  }
}

TEST(GemmGpu, Tf32IsOptIn) {
  DRWKV_REQUIRE_GPU();
  GemmCase c{200, 300, 512};
  c.tf32 = true;
  c.has_bias = true;
  run_gpu(c, 1234);  // TF32 tolerance
  c.tf32 = false;
  // exact f32 arithmetic: two orders of magnitude tighter than TF32 reaches with k = 512
  auto h = gemm_testing::make_buffers(c, 1235);
  Tensor want = gemm_testing::reference(c, h);
  auto dev = h.to(kGpu);
  gemm_cuda(dev.args, stream());
  EXPECT_LT(testing::relative_error(gemm_testing::extract(c, dev.args, dev.d), want), 1e-5);  // TF32: ~1e-3
}

TEST(GemmGpu, CachedPlansAreReusedDeterministically) {
  DRWKV_REQUIRE_GPU();
  GemmCase c{512, 768, 384};
  c.in = DType::BF16;
  c.out = DType::BF16;
  c.has_bias = true;
  c.bias = DType::F32;
  GemmCase other{64, 64, 64};
  auto h = gemm_testing::make_buffers(c, 77);
  auto ho = gemm_testing::make_buffers(other, 78).to(kGpu);
  auto first = h.to(kGpu);
  gemm_cuda(first.args, stream());
  for (int rep = 0; rep < 3; ++rep) {
    gemm_cuda(ho.args, stream());  // another key in between
    auto again = h.to(kGpu);
    gemm_cuda(again.args, stream());
    EXPECT_EQ(again.d.to_vector<float>(), first.d.to_vector<float>()) << "repetition " << rep;
  }
}

TEST(GemmGpu, GroupsMatchOneGemmEach) {
  // gemm_group_cuda (one pointer-array launch) against gemm_cpu product by product: operands in separate
  // allocations, odd sizes, every transpose, bf16 → bf16 / f32 and f32, beta 0 on NaN-poisoned outputs
  // and beta 1, 1 to kMaxGemmGroup products
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 3000;
  for (auto [m, n, k, count] : std::vector<std::array<int64_t, 4>>{{1, 1, 1, 1}, {7, 5, 3, 3}, {127, 65, 129, 3},
                                                                    {64, 96, 384, 8}, {300, 384, 384, 2}})
    for (Types t : kTypes)
      for (int tr = 0; tr < 4; ++tr)
        for (float beta : {0.0f, 1.0f}) {
          GemmArgs g;
          g.m = m;
          g.n = n;
          g.k = k;
          g.trans_a = tr & 1;
          g.trans_b = tr & 2;
          g.a_dtype = g.b_dtype = t.in;
          g.d_dtype = t.out;
          g.lda = g.trans_a ? m : k;
          g.ldb = g.trans_b ? k : n;
          g.ldd = n;
          g.beta = beta;
          const std::string what = "group of " + std::to_string(count) + " m" + std::to_string(m) + " n" +
                                   std::to_string(n) + " k" + std::to_string(k) + " t" + std::to_string(tr) + " " +
                                   std::string(dtype_name(t.in)) + "→" + std::string(dtype_name(t.out)) +
                                   " beta " + std::to_string(beta);
          std::vector<Tensor> a, b, d, want;
          GemmGroup dev, host;
          dev.count = host.count = int(count);
          for (int64_t i = 0; i < count; ++i) {
            a.push_back(testing::random_uniform(Shape{m * k}, t.in, kGpu, ++seed));
            b.push_back(testing::random_uniform(Shape{k * n}, t.in, kGpu, ++seed));
            d.push_back(beta == 0.0f ? testing::poisoned(Shape{m * n}, t.out, kGpu)
                                     : testing::random_uniform(Shape{m * n}, t.out, kGpu, ++seed));
            want.push_back(d.back().to(Device::cpu()));
            Tensor ha = a.back().to(Device::cpu()), hb = b.back().to(Device::cpu());
            a.push_back(ha);  // kept alive with the device copies
            b.push_back(hb);
            host.a[i] = ha.data();
            host.b[i] = hb.data();
            host.d[i] = want.back().data();
            dev.a[i] = a[a.size() - 2].data();
            dev.b[i] = b[b.size() - 2].data();
            dev.d[i] = d.back().data();
          }
          gemm_group_cuda(g, dev, stream());
          gemm_group_cpu(g, host);
          testing::Tolerance tol = t.out == DType::BF16 ? testing::Tolerance{2e-2, 2e-2}
                                   : t.in == DType::BF16 ? testing::Tolerance{1e-3, 1e-3}
                                                         : testing::Tolerance{1e-4, 1e-4};
          for (int64_t i = 0; i < count; ++i)
            EXPECT_TENSORS_CLOSE(d[size_t(i)].to(Device::cpu()), want[size_t(i)], tol,
                                 what + ", product " + std::to_string(i), seed);
        }
}

template <typename T>
void check_bias_grad(int64_t rows, int64_t n, bool accumulate, int64_t offset, uint64_t seed) {
  using A = acc_t<T>;
  // dy starts `offset` elements into its buffer: offset 1 takes the unvectorised path
  Tensor buf = testing::random_uniform(Shape{offset + rows * n}, dtype_v<T>, Device::cpu(), seed);
  Tensor init = testing::random_uniform(Shape{n}, DType::F32, Device::cpu(), seed + 1);
  Tensor want = accumulate ? init.to(DType::F64) : Tensor::empty(Shape{n}, DType::F64);
  Tensor dy64 = buf.to(DType::F64);
  bias_grad_cpu<double>(want.data_ptr<double>(), dy64.data_ptr<double>() + offset, rows, n, accumulate, nullptr);
  Tensor dbuf = buf.to(kGpu);
  Tensor db = accumulate ? init.to(kGpu) : testing::poisoned(Shape{n}, DType::F32, kGpu);
  Tensor scratch = testing::poisoned(Shape{std::max<int64_t>(1, bias_grad_scratch_size(rows, n))}, DType::F32, kGpu);
  bias_grad_cuda<T>(db.data_ptr<A>(), dbuf.data_ptr<T>() + offset, rows, n, accumulate, scratch.data_ptr<A>(),
                    stream());
  EXPECT_TENSORS_CLOSE(db, want, (testing::Tolerance{1e-5, 1e-6 * double(rows)}),
                       "bias_grad_cuda " + std::string(dtype_name(dtype_v<T>)) + " rows " + std::to_string(rows) +
                           " n " + std::to_string(n) + " offset " + std::to_string(offset) + (accumulate ? " acc" : ""),
                       seed);
}

TEST(BiasGradGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 2000;
  for (int64_t rows : {0, 1, 7, 255, 256, 257, 4099})
    for (int64_t n : {1, 5, 8, 64, 384, 1000})
      for (bool acc : {false, true})
        for (int64_t offset : {0, 1}) {
          check_bias_grad<float>(rows, n, acc, offset, ++seed);
          check_bias_grad<bf16>(rows, n, acc, offset, ++seed);
        }
  check_bias_grad<bf16>(65536, 384, true, 0, 99);  // a training step's token count
}

TEST(BiasGradGpu, IsDeterministic) {
  DRWKV_REQUIRE_GPU();
  Tensor dy = testing::random_normal(Shape{65536, 1536}, DType::BF16, kGpu, 5);
  Tensor scratch = Tensor::empty(Shape{bias_grad_scratch_size(65536, 1536)}, DType::F32, kGpu);
  Tensor a = Tensor::empty(Shape{1536}, DType::F32, kGpu), b = Tensor::empty(Shape{1536}, DType::F32, kGpu);
  bias_grad_cuda<bf16>(a.data_ptr<float>(), dy.data_ptr<bf16>(), 65536, 1536, false, scratch.data_ptr<float>(), stream());
  bias_grad_cuda<bf16>(b.data_ptr<float>(), dy.data_ptr<bf16>(), 65536, 1536, false, scratch.data_ptr<float>(), stream());
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
}

}  // namespace
}  // namespace drwkv::kernels
