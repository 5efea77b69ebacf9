// Elementwise CUDA kernels against the CPU reference (computed in f64 from the same rounded inputs),
// f32 and bf16, several shapes including odd sizes and unaligned views, outputs poisoned first.
#include <gtest/gtest.h>

#include <cmath>

#include "core/stream.h"
#include "kernels/elementwise.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
using testing::poisoned;
using testing::random_uniform;
const Device kGpu = Device::cuda(0);

StreamHandle stream() { return current_stream(0).handle(); }

template <typename T>
void check_unary(int64_t n, uint64_t seed) {
  DType dt = dtype_v<T>;
  Tensor x = random_uniform(Shape{n}, DType::F32, Device::cpu(), seed, -3, 3).to(dt);
  Tensor dy = random_uniform(Shape{n}, DType::F32, Device::cpu(), seed + 1).to(dt);
  Tensor x64 = x.to(DType::F64), dy64 = dy.to(DType::F64);
  Tensor xg = x.to(kGpu), dyg = dy.to(kGpu);
  for (UnaryOp op : {UnaryOp::Sigmoid, UnaryOp::SiLU, UnaryOp::Tanh, UnaryOp::Exp, UnaryOp::Softplus,
                     UnaryOp::ReluSquared, UnaryOp::Relu, UnaryOp::Neg, UnaryOp::Square}) {
    Tensor ref = Tensor::empty(Shape{n}, DType::F64), dref = Tensor::empty(Shape{n}, DType::F64);
    unary_forward_cpu<double>(op, ref.data_ptr<double>(), x64.data_ptr<double>(), n);
    unary_backward_cpu<double>(op, dref.data_ptr<double>(), dy64.data_ptr<double>(), x64.data_ptr<double>(), nullptr, n);
    Tensor y = poisoned(Shape{n}, dt, kGpu), dx = poisoned(Shape{n}, dt, kGpu);
    unary_forward_cuda<T>(op, y.data_ptr<T>(), xg.data_ptr<T>(), n, stream());
    // ops whose derivative is a function of y get y only (x null), as the autograd op calls them; the
    // reference takes the derivative at x
    const bool from_y = unary_derivative_from_output(op);
    unary_backward_cuda<T>(op, dx.data_ptr<T>(), dyg.data_ptr<T>(), from_y ? nullptr : xg.data_ptr<T>(),
                           from_y ? y.data_ptr<T>() : nullptr, n, stream());
    std::string what = "unary op " + std::to_string(int(op)) + " n=" + std::to_string(n) + " " + std::string(dtype_name(dt));
    EXPECT_TENSORS_CLOSE(y, ref, testing::tolerance_for(dt), what + " forward", seed);
    EXPECT_TENSORS_CLOSE(dx, dref, testing::tolerance_for(dt), what + " backward", seed);
  }
}

TEST(ElementwiseGpu, UnaryMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  for (int64_t n : {1, 7, 1000, 4096 + 3, 1 << 20}) {
    check_unary<float>(n, 10 + uint64_t(n));
    check_unary<bf16>(n, 20 + uint64_t(n));
  }
}

template <typename T>
void check_binary(Shape sa, Shape sb, Shape out, uint64_t seed) {
  DType dt = dtype_v<T>;
  Tensor a = random_uniform(sa, DType::F32, Device::cpu(), seed).to(dt);
  Tensor b = random_uniform(sb, DType::F32, Device::cpu(), seed + 1, 0.5, 2).to(dt);
  Broadcast bc;
  bc.ndim = out.size();
  Tensor ea = a.expand(out), eb = b.expand(out);
  for (int d = 0; d < out.size(); ++d) {
    bc.shape[d] = out[d];
    bc.stride[0][d] = ea.stride(d);
    bc.stride[1][d] = eb.stride(d);
  }
  Tensor a64 = a.to(DType::F64), b64 = b.to(DType::F64), ag = a.to(kGpu), bg = b.to(kGpu);
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div}) {
    Tensor ref = Tensor::empty(out, DType::F64);
    binary_cpu<double>(op, ref.data_ptr<double>(), a64.data_ptr<double>(), b64.data_ptr<double>(), bc);
    Tensor y = poisoned(out, dt, kGpu);
    binary_cuda<T>(op, y.data_ptr<T>(), ag.data_ptr<T>(), bg.data_ptr<T>(), bc, stream());
    EXPECT_TENSORS_CLOSE(y, ref, testing::tolerance_for(dt), "binary " + std::to_string(int(op)) + " " + sa.str() + sb.str(), seed);
  }
  // lerp and addcmul with the same broadcast pattern (third operand = a)
  bc.stride[2][0] = 0;
  for (int d = 0; d < out.size(); ++d) bc.stride[2][d] = ea.stride(d);
  Tensor ref = Tensor::empty(out, DType::F64), y = poisoned(out, dt, kGpu);
  lerp_cpu<double>(ref.data_ptr<double>(), a64.data_ptr<double>(), b64.data_ptr<double>(), a64.data_ptr<double>(), bc);
  lerp_cuda<T>(y.data_ptr<T>(), ag.data_ptr<T>(), bg.data_ptr<T>(), ag.data_ptr<T>(), bc, stream());
  EXPECT_TENSORS_CLOSE(y, ref, testing::tolerance_for(dt), "lerp " + sa.str() + sb.str(), seed);
  addcmul_cpu<double>(ref.data_ptr<double>(), a64.data_ptr<double>(), b64.data_ptr<double>(), a64.data_ptr<double>(), 0.3, bc);
  addcmul_cuda<T>(y.data_ptr<T>(), ag.data_ptr<T>(), bg.data_ptr<T>(), ag.data_ptr<T>(), 0.3, bc, stream());
  EXPECT_TENSORS_CLOSE(y, ref, testing::tolerance_for(dt), "addcmul " + sa.str() + sb.str(), seed);
}

TEST(ElementwiseGpu, BinaryBroadcastMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  struct Case { Shape a, b, out; };
  for (Case c : {Case{{1000}, {1000}, {1000}}, Case{{33, 17}, {17}, {33, 17}}, Case{{5, 1, 7}, {1, 3, 1}, {5, 3, 7}},
                 Case{{256, 384}, {256, 384}, {256, 384}}, Case{{1}, {9}, {9}}}) {
    check_binary<float>(c.a, c.b, c.out, 3);
    check_binary<bf16>(c.a, c.b, c.out, 4);
  }
}

TEST(ElementwiseGpu, UnalignedPointersTakeTheScalarPath) {
  DRWKV_REQUIRE_GPU();
  Tensor x = random_uniform(Shape{1001}, DType::F32, Device::cpu(), 5);
  Tensor xg = x.to(kGpu);
  Tensor y = poisoned(Shape{1001}, DType::F32, kGpu);
  // offset by one element: 4-byte aligned, not 16
  unary_forward_cuda<float>(UnaryOp::Square, y.data_ptr<float>() + 1, xg.data_ptr<float>() + 1, 1000, stream());
  std::vector<float> got = y.to_vector<float>(), in = x.to_vector<float>();
  for (int i = 1; i < 1001; ++i) ASSERT_FLOAT_EQ(got[size_t(i)], in[size_t(i)] * in[size_t(i)]) << i;
  EXPECT_TRUE(std::isnan(got[0]));  // untouched
  Tensor s = poisoned(Shape{1000}, DType::F32, kGpu);
  scale_shift_cuda<float>(s.data_ptr<float>(), xg.data_ptr<float>() + 1, 2.0, -1.0, 1000, stream());
  std::vector<float> sv = s.to_vector<float>();
  for (int i = 0; i < 1000; ++i) ASSERT_FLOAT_EQ(sv[size_t(i)], 2 * in[size_t(i + 1)] - 1) << i;
}

}  // namespace
}  // namespace drwkv::kernels
