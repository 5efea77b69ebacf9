// Views and layout ops: values and finite-difference gradients.
#include <gtest/gtest.h>

#include "autograd/elementwise_ops.h"
#include "autograd/shape_ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::gradcheck;
Tensor rnd(const Shape& s, uint64_t seed) { return testing::random_uniform(s, DType::F64, Device::cpu(), seed); }

TEST(ShapeOps, Gradients) {
  Tensor x = rnd(Shape{2, 3, 4}, 1), y = rnd(Shape{2, 2, 4}, 2);
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return reshape(v[0], Shape{6, 4}); }, {x}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return contiguous(permute(v[0], {2, 0, 1})); }, {x}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return mul(transpose(v[0], 0, 2), transpose(v[0], 0, 2)); }, {x}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return add(slice(v[0], 1, 1, 2), slice(v[0], 1, 0, 2)); }, {x}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return concat({v[0], v[1], v[0]}, 1); }, {x, y}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) {
    auto p = split(v[0], {1, 2, 1}, -1);
    return concat({mul(p[2], p[0]), p[1]}, 2);  // p[1] feeds two places, nothing is unused
  }, {x}));
  EXPECT_TRUE(gradcheck([](const std::vector<Variable>& v) { return split(v[0], {3, 1}, 2)[1]; }, {x}));  // unused piece
}

TEST(ShapeOps, ConcatValues) {
  Variable a(Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, Shape{2, 2}));
  Variable b(Tensor::from_vector(std::vector<float>{5, 6}, Shape{2, 1}));
  EXPECT_EQ(concat({a, b}, 1).value().to_vector<float>(), (std::vector<float>{1, 2, 5, 3, 4, 6}));
  EXPECT_EQ(cast(a, DType::BF16).dtype(), DType::BF16);
}

}  // namespace
}  // namespace drwkv::autograd
