// CUDA kernels of kernels/embed.h and kernels/loss.h against their CPU launchers: f32 and bf16, odd and
// size-1 sizes, repeated ids, poisoned outputs; the table gradient must equal the CPU's bit for bit
// (both add the same terms in the same order); MSE is deterministic; out-of-range ids stop the kernel.
#include <gtest/gtest.h>

#include <cmath>

#include "core/stream.h"
#include "kernels/embed.h"
#include "kernels/loss.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
using testing::poisoned;
using testing::random_uniform;
const Device kGpu = Device::cuda(0);
const testing::Tolerance kExact = {0, 0};

StreamHandle stream() { return current_stream(0).handle(); }

// n ids in [0, R) drawn with many repeats (and R − 1 always present).
Tensor make_ids(int64_t n, int64_t R, uint64_t seed) {
  std::vector<double> u = random_uniform(Shape{n}, DType::F64, Device::cpu(), seed, 0, 1).to_vector<double>();
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t(std::min<double>(double(R - 1), std::floor(u[size_t(i)] * double(R))));
  ids[size_t(n / 2)] = int32_t(R - 1);
  return Tensor::from_vector(ids, Shape{n});
}

template <typename T>
void check_embedding(int64_t n, int64_t R, int64_t C, uint64_t seed) {
  const DType dt = dtype_v<T>;
  const std::string what = std::string(dtype_name(dt)) + " n " + std::to_string(n) + " rows " + std::to_string(R) +
                           " C " + std::to_string(C);
  Tensor table = random_uniform(Shape{R, C}, dt, Device::cpu(), seed);
  Tensor ids = make_ids(n, R, seed + 1);
  Tensor dout = random_uniform(Shape{n, C}, dt, Device::cpu(), seed + 2);
  Tensor dt0 = random_uniform(Shape{R, C}, DType::F32, Device::cpu(), seed + 3);

  Tensor out_ref = Tensor::empty(Shape{n, C}, dt), dtab_ref = Tensor::empty(Shape{R, C}, DType::F32),
         dacc_ref = dt0.clone();
  embedding_forward_cpu<T>(out_ref.data_ptr<T>(), table.data_ptr<T>(), ids.data_ptr<int32_t>(), n, R, C);
  embedding_backward_cpu<T>(dtab_ref.data_ptr<float>(), dout.data_ptr<T>(), ids.data_ptr<int32_t>(), n, R, C, false,
                            nullptr);
  embedding_backward_cpu<T>(dacc_ref.data_ptr<float>(), dout.data_ptr<T>(), ids.data_ptr<int32_t>(), n, R, C, true,
                            nullptr);

  Tensor tg = table.to(kGpu), ig = ids.to(kGpu), dg = dout.to(kGpu);
  Tensor out = poisoned(Shape{n, C}, dt, kGpu);
  embedding_forward_cuda<T>(out.data_ptr<T>(), tg.data_ptr<T>(), ig.data_ptr<int32_t>(), n, R, C, stream());
  EXPECT_TENSORS_CLOSE(out, out_ref, kExact, what + " forward", seed);

  Tensor scratch = Tensor::empty(Shape{int64_t(embedding_backward_scratch_bytes_cuda(n, R))}, DType::U8, kGpu);
  Tensor dtab = poisoned(Shape{R, C}, DType::F32, kGpu), dacc = dt0.to(kGpu);
  embedding_backward_cuda<T>(dtab.data_ptr<float>(), dg.data_ptr<T>(), ig.data_ptr<int32_t>(), n, R, C, false,
                             scratch.data(), stream());
  embedding_backward_cuda<T>(dacc.data_ptr<float>(), dg.data_ptr<T>(), ig.data_ptr<int32_t>(), n, R, C, true,
                             scratch.data(), stream());
  EXPECT_TENSORS_CLOSE(dtab, dtab_ref, kExact, what + " table gradient", seed);
  EXPECT_TENSORS_CLOSE(dacc, dacc_ref, kExact, what + " table gradient accumulated", seed);
}

TEST(EmbedGpu, MatchesCpuExactly) {
  DRWKV_REQUIRE_GPU();
  struct Case { int64_t n, R, C; };
  uint64_t seed = 10;
  for (Case c : {Case{1, 1, 1}, Case{13, 7, 5}, Case{256, 1001, 384}, Case{256, 1001, 1152}, Case{5000, 3, 8},
                 Case{4099, 50000, 17}, Case{64, 2, 1536}}) {
    check_embedding<float>(c.n, c.R, c.C, seed++);
    check_embedding<bf16>(c.n, c.R, c.C, seed++);
  }
}

// The child process (gtest's threadsafe death-test style re-runs the binary) initialises CUDA itself.
// The kernel's report (id and position) goes to stdout with the device printf buffer; the death is the
// next CUDA_CHECK reporting the device-side assertion on stderr.
TEST(EmbedGpuDeathTest, OutOfRangeIdStopsTheKernel) {
  DRWKV_REQUIRE_GPU();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto run = [](int32_t bad) {
    Tensor table = Tensor::zeros(Shape{4, 8}, DType::F32, kGpu);
    Tensor ids = Tensor::from_vector(std::vector<int32_t>{0, bad, 1}, Shape{3}, kGpu);
    Tensor out = Tensor::empty(Shape{3, 8}, DType::F32, kGpu);
    embedding_forward_cuda<float>(out.data_ptr<float>(), table.data_ptr<float>(), ids.data_ptr<int32_t>(), 3, 4, 8,
                                  stream());
    current_stream(0).synchronize();
  };
  EXPECT_DEATH(run(4), "cudaErrorAssert");
  EXPECT_DEATH(run(-3), "cudaErrorAssert");
}

template <typename T>
void check_mse(int64_t n, uint64_t seed) {
  const DType dt = dtype_v<T>;
  const std::string what = std::string(dtype_name(dt)) + " mse n " + std::to_string(n);
  Tensor a = random_uniform(Shape{n}, dt, Device::cpu(), seed, -2, 2), b = random_uniform(Shape{n}, dt, Device::cpu(), seed + 1);
  Tensor da0 = random_uniform(Shape{n}, dt, Device::cpu(), seed + 2);
  Tensor a64 = a.to(DType::F64), b64 = b.to(DType::F64);
  std::vector<double> loss_ref(kMseBuffer);
  mse_forward_cpu<double>(loss_ref.data(), a64.data_ptr<double>(), b64.data_ptr<double>(), n);
  const double g = 0.75;
  Tensor da_ref = da0.to(DType::F64), db_ref = Tensor::empty(Shape{n}, DType::F64);
  mse_backward_cpu<double>(da_ref.data_ptr<double>(), db_ref.data_ptr<double>(), &g, a64.data_ptr<double>(),
                           b64.data_ptr<double>(), n, true, false);

  Tensor ag = a.to(kGpu), bg = b.to(kGpu);
  Tensor out = poisoned(Shape{kMseBuffer}, DType::F32, kGpu), out2 = poisoned(Shape{kMseBuffer}, DType::F32, kGpu);
  mse_forward_cuda<T>(out.data_ptr<float>(), ag.data_ptr<T>(), bg.data_ptr<T>(), n, stream());
  mse_forward_cuda<T>(out2.data_ptr<float>(), ag.data_ptr<T>(), bg.data_ptr<T>(), n, stream());
  const double got = out.slice(0, 0, 1).item(), again = out2.slice(0, 0, 1).item();
  EXPECT_NEAR(got, loss_ref[0], 2e-6 * loss_ref[0]) << what;
  EXPECT_EQ(got, again) << what << ": not deterministic";

  Tensor gg = Tensor::full(Shape{1}, g, DType::F32, kGpu);
  Tensor da = da0.to(kGpu), db = poisoned(Shape{n}, dt, kGpu);
  mse_backward_cuda<T>(da.data_ptr<T>(), db.data_ptr<T>(), gg.data_ptr<float>(), ag.data_ptr<T>(), bg.data_ptr<T>(), n,
                       true, false, stream());
  const testing::Tolerance tol = dt == DType::F32 ? testing::Tolerance{1e-5, 1e-7} : testing::tolerance_for(dt);
  EXPECT_TENSORS_CLOSE(da, da_ref, tol, what + " da accumulated", seed);
  EXPECT_TENSORS_CLOSE(db, db_ref, tol, what + " db", seed);
  // misaligned operands take the scalar path
  if (n > 1) {
    Tensor out3 = poisoned(Shape{kMseBuffer}, DType::F32, kGpu);
    mse_forward_cuda<T>(out3.data_ptr<float>(), ag.data_ptr<T>() + 1, bg.data_ptr<T>() + 1, n - 1, stream());
    double want = 0;
    std::vector<double> av = a64.to_vector<double>(), bv = b64.to_vector<double>();
    for (int64_t i = 1; i < n; ++i) want += (av[size_t(i)] - bv[size_t(i)]) * (av[size_t(i)] - bv[size_t(i)]);
    want /= double(n - 1);
    EXPECT_NEAR(out3.slice(0, 0, 1).item(), want, 2e-6 * want) << what << " misaligned";
  }
}

TEST(LossGpu, MseMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 50;
  for (int64_t n : {1, 7, 1000, 4099, 1 << 20, 10'000'019}) {
    check_mse<float>(n, seed++);
    check_mse<bf16>(n, seed++);
  }
}

}  // namespace
}  // namespace drwkv::kernels
