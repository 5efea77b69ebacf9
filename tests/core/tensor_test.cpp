// Tensor views, copies and conversions on the host.
#include <gtest/gtest.h>

#include <numeric>

#include "core/tensor.h"
#include "tests/support/testing.h"

namespace drwkv {
namespace {

std::vector<float> iota(int64_t n, float start = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(Tensor, CreateAndRead) {
  Tensor t = Tensor::from_vector(iota(6), Shape{2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.strides(), (Shape{3, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.to_vector<float>(), iota(6));
  EXPECT_EQ(Tensor::full(Shape{3}, 2.5, DType::F32).to_vector<float>(), (std::vector<float>{2.5f, 2.5f, 2.5f}));
  EXPECT_EQ(Tensor::zeros(Shape{2}, DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{0, 0}));
}

TEST(Tensor, TransposeAndContiguous) {
  Tensor t = Tensor::from_vector(iota(6), Shape{2, 3});
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_TRUE(tt.shares_storage_with(t));
  EXPECT_EQ(tt.contiguous().to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(Tensor, PermuteSliceSelect) {
  Tensor t = Tensor::from_vector(iota(24, 0), Shape{2, 3, 4});
  Tensor p = t.permute({2, 0, 1});  // [4, 2, 3]
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  std::vector<float> v = p.contiguous().to_vector<float>();
  // p[k][i][j] = t[i][j][k] = 12 i + 4 j + k
  EXPECT_EQ(v[size_t(1 * 6 + 1 * 3 + 2)], 12.0f + 8.0f + 1.0f);
  Tensor s = t.slice(2, 1, 4, 2);  // k in {1, 3}
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.contiguous().to_vector<float>()[3], 4.0f + 3.0f);  // [0,1,1] -> 4 + 3
  Tensor sel = t.select(1, 2);  // [2, 4]
  EXPECT_EQ(sel.contiguous().to_vector<float>(), (std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23}));
  Tensor neg = t.slice(-1, -2, 4);
  EXPECT_EQ(neg.shape(), (Shape{2, 3, 2}));
}

TEST(Tensor, ChunkExpandSqueeze) {
  Tensor t = Tensor::from_vector(iota(12), Shape{2, 6});
  std::vector<Tensor> c = t.chunk(3, 1);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[1].contiguous().to_vector<float>(), (std::vector<float>{3, 4, 9, 10}));
  Tensor row = Tensor::from_vector(iota(3), Shape{1, 3});
  Tensor e = row.expand(Shape{2, 2, 3});
  EXPECT_EQ(e.stride(0), 0);
  EXPECT_EQ(e.stride(1), 0);
  EXPECT_EQ(e.contiguous().to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(row.squeeze(0).shape(), (Shape{3}));
  EXPECT_EQ(row.unsqueeze(2).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(t.view(Shape{3, -1}).shape(), (Shape{3, 4}));
  EXPECT_EQ(t.transpose(0, 1).reshape(Shape{12}).to_vector<float>()[1], 7.0f);
  EXPECT_EQ(t.flatten().shape(), (Shape{12}));
}

TEST(Tensor, CopyIntoStridedDestination) {
  Tensor dst = Tensor::zeros(Shape{3, 4}, DType::F32);
  Tensor src = Tensor::from_vector(iota(6), Shape{3, 2});
  dst.slice(1, 1, 3).copy_(src);
  EXPECT_EQ(dst.to_vector<float>(), (std::vector<float>{0, 1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0}));
  dst.slice(1, 0, 1).fill_(-1.0);
  EXPECT_EQ(dst.to_vector<float>()[4], -1.0f);
}

TEST(Tensor, DtypeConversions) {
  Tensor t = Tensor::from_vector(std::vector<float>{1.0f, -2.5f, 3.00390625f}, Shape{3});
  EXPECT_EQ(t.to(DType::BF16).to_vector<float>(), (std::vector<float>{1.0f, -2.5f, 3.0f}));
  EXPECT_EQ(t.to(DType::F64).to_vector<double>()[2], 3.00390625);
  EXPECT_EQ(t.to(DType::I32).to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3}));
  Tensor u = Tensor::from_vector(std::vector<uint8_t>{0, 128, 255}, Shape{3});
  EXPECT_EQ(u.to(DType::F32).to_vector<float>(), (std::vector<float>{0, 128, 255}));
  // non-contiguous source with conversion
  Tensor m = Tensor::from_vector(iota(6), Shape{2, 3}).transpose(0, 1).to(DType::F64);
  EXPECT_EQ(m.to_vector<double>(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
}

TEST(Tensor, PrintsSmallTensors) {
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, Shape{2, 2});
  EXPECT_EQ(t.str(), "f32[2, 2] cpu {1, 2; 3, 4}");
  EXPECT_EQ(Tensor::empty(Shape{100}, DType::F32).str(8), "f32[100] cpu");
}

TEST(Tensor, ComparisonHelperReportsTheElement) {
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, Shape{2, 2});
  Tensor b = Tensor::from_vector(std::vector<float>{1, 2, 3.5f, 4}, Shape{2, 2});
  ::testing::AssertionResult r = testing::tensors_close(a, b, {1e-6, 1e-6}, "demo", 7);
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("[1, 0]: got 3, expected 3.5"), std::string::npos) << r.message();
  EXPECT_NE(std::string(r.message()).find("seed 7"), std::string::npos);
  EXPECT_TRUE(testing::tensors_close(a, a, {0, 0}, "same", 0));
  Tensor nan = testing::poisoned(Shape{2, 2}, DType::F32, Device::cpu());
  EXPECT_FALSE(testing::tensors_close(nan, a, {1, 1}, "nan", 0));
}

}  // namespace
}  // namespace drwkv
