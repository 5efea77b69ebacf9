// Reduction kernels on the GPU against the CPU reference, including odd sizes and accumulation.
#include <gtest/gtest.h>

#include "core/stream.h"
#include "kernels/reduce.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
const Device kGpu = Device::cuda(0);

template <typename T>
void check(int64_t outer, int64_t n, int64_t inner, uint64_t seed) {
  DType dt = dtype_v<T>;
  Tensor x = testing::random_uniform(Shape{outer, n, inner}, DType::F32, Device::cpu(), seed).to(dt);
  Tensor x64 = x.to(DType::F64), xg = x.to(kGpu);
  StreamHandle s = current_stream(0).handle();
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max}) {
    for (bool acc : {false, true}) {
      Tensor init = testing::random_uniform(Shape{outer, inner}, DType::F32, Device::cpu(), seed + 7).to(dt);
      Tensor ref = init.to(DType::F64);
      reduce_axis_cpu<double>(op, ref.data_ptr<double>(), x64.data_ptr<double>(), outer, n, inner, acc);
      Tensor out = acc ? init.to(kGpu) : testing::poisoned(Shape{outer, inner}, dt, kGpu);
      reduce_axis_cuda<T>(op, out.data_ptr<T>(), xg.data_ptr<T>(), outer, n, inner, acc, s);
      testing::Tolerance tol = testing::tolerance_for(dt);
      if (dt == DType::F32) tol = {1e-5, 1e-5 * double(n)};
      EXPECT_TENSORS_CLOSE(out, ref, tol, "reduce op " + std::to_string(int(op)) + (acc ? " acc" : ""), seed);
    }
  }
  // global sum of squares
  Tensor buf = Tensor::empty(Shape{kSumSquaresBuffer}, DType::F64, kGpu);
  sum_squares_cuda<T>(buf.data_ptr<double>(), xg.data_ptr<T>(), x.numel(), s);
  double got = buf.slice(0, 0, 1).item(), want = 0;
  std::vector<double> host(kSumSquaresBuffer);
  sum_squares_cpu<double>(host.data(), x64.data_ptr<double>(), x.numel());
  want = host[0];
  EXPECT_NEAR(got, want, 1e-9 * want);
}

TEST(ReduceGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  for (auto [o, n, i] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {7, 33, 1}, {3, 1000, 5}, {256, 384, 1}, {1, 65537, 1}, {4, 17, 384}}) {
    check<float>(o, n, i, 1);
    check<bf16>(o, n, i, 2);
  }
}

TEST(ReduceGpu, SumSquaresIsDeterministic) {
  DRWKV_REQUIRE_GPU();
  Tensor x = testing::random_normal(Shape{10'000'019}, DType::F32, kGpu, 3);
  Tensor a = Tensor::empty(Shape{kSumSquaresBuffer}, DType::F64, kGpu), b = Tensor::empty(Shape{kSumSquaresBuffer}, DType::F64, kGpu);
  sum_squares_cuda<float>(a.data_ptr<double>(), x.data_ptr<float>(), x.numel(), current_stream(0).handle());
  sum_squares_cuda<float>(b.data_ptr<double>(), x.data_ptr<float>(), x.numel(), current_stream(0).handle());
  EXPECT_EQ(a.slice(0, 0, 1).item(), b.slice(0, 0, 1).item());
}

}  // namespace
}  // namespace drwkv::kernels
