// Tensor copies, conversions and fills on a CUDA device against the host.
#include <gtest/gtest.h>

#include "core/tensor.h"
#include "tests/support/testing.h"

namespace drwkv {
namespace {
const Device kGpu = Device::cuda(0);

TEST(TensorGpu, RoundTripAndStridedCopies) {
  DRWKV_REQUIRE_GPU();
  for (uint64_t seed : {1u, 2u}) {
    Tensor h = testing::random_uniform(Shape{3, 5, 7}, DType::F32, Device::cpu(), seed);
    Tensor d = h.to(kGpu);
    EXPECT_TRUE(d.is_cuda());
    EXPECT_EQ(d.to(Device::cpu()).to_vector<float>(), h.to_vector<float>());
    // strided views copied on the device match the same views copied on the host
    Tensor dp = d.permute({2, 0, 1}).contiguous();
    EXPECT_EQ(dp.to_vector<float>(), h.permute({2, 0, 1}).contiguous().to_vector<float>());
    Tensor ds = d.slice(1, 1, 5, 2).contiguous();
    EXPECT_EQ(ds.to_vector<float>(), h.slice(1, 1, 5, 2).contiguous().to_vector<float>());
    // host -> strided device destination
    Tensor dst = testing::poisoned(Shape{7, 3, 5}, DType::F32, kGpu);
    dst.copy_(h.permute({2, 0, 1}));
    EXPECT_EQ(dst.to_vector<float>(), h.permute({2, 0, 1}).contiguous().to_vector<float>());
  }
}

TEST(TensorGpu, ConversionsMatchHost) {
  DRWKV_REQUIRE_GPU();
  Tensor h = testing::random_uniform(Shape{1031}, DType::F32, Device::cpu(), 3, -300.0, 300.0);
  for (DType to : {DType::BF16, DType::F16, DType::F64, DType::I32, DType::I64}) {
    Tensor viaHost = h.to(to).to(DType::F64);
    Tensor viaGpu = h.to(kGpu).to(to).to(Device::cpu()).to(DType::F64);
    EXPECT_EQ(viaGpu.to_vector<double>(), viaHost.to_vector<double>()) << dtype_name(to);
  }
}

TEST(TensorGpu, FillAndZero) {
  DRWKV_REQUIRE_GPU();
  Tensor d = testing::poisoned(Shape{4, 6}, DType::BF16, kGpu);
  d.slice(1, 0, 3).fill_(1.5);
  d.slice(1, 3, 6).zero_();
  std::vector<float> v = d.to_vector<float>();
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 6; ++c) EXPECT_EQ(v[size_t(r * 6 + c)], c < 3 ? 1.5f : 0.0f);
}

}  // namespace
}  // namespace drwkv
