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

TEST(TensorGpu, ConversionsOfViewsAtAnyAlignmentAndLength) {
  // the device converts whole aligned packs of 8 and the rest one by one: lengths around the pack size,
  // source and destination views starting off a pack boundary, both directions of each pair
  DRWKV_REQUIRE_GPU();
  const std::vector<std::pair<DType, DType>> pairs = {{DType::F32, DType::BF16}, {DType::BF16, DType::F32},
                                                      {DType::F32, DType::F64},  {DType::F64, DType::F32},
                                                      {DType::BF16, DType::F64}, {DType::I32, DType::F32}};
  uint64_t seed = 40;
  for (auto [from, to] : pairs)
    for (int64_t n : {1, 7, 8, 9, 1031, 65536 + 5})
      for (int64_t src_off : {0, 1, 8})
        for (int64_t dst_off : {0, 3}) {
          Tensor h = testing::random_uniform(Shape{n + src_off}, DType::F32, Device::cpu(), ++seed, -300.0, 300.0)
                         .to(from)
                         .narrow(0, src_off, n);
          Tensor want = h.to(to).to(DType::F64);
          Tensor dst = testing::poisoned(Shape{n + dst_off}, to, kGpu);
          Tensor view = dst.narrow(0, dst_off, n);
          view.copy_(h.to(kGpu));
          std::string what = std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)) + " n " +
                             std::to_string(n) + " offsets " + std::to_string(src_off) + "/" + std::to_string(dst_off);
          EXPECT_EQ(view.to(Device::cpu()).to(DType::F64).to_vector<double>(), want.to_vector<double>()) << what;
          // a device source view off its pack boundary, converted into a fresh tensor
          Tensor dev_src = testing::random_uniform(Shape{n + src_off}, DType::F32, Device::cpu(), ++seed, -300.0, 300.0)
                               .to(from);
          Tensor got = dev_src.to(kGpu).narrow(0, src_off, n).to(to);
          EXPECT_EQ(got.to(Device::cpu()).to(DType::F64).to_vector<double>(),
                    dev_src.narrow(0, src_off, n).to(to).to(DType::F64).to_vector<double>())
              << what << " (fresh destination)";
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
