// The periodic broadcast path of kernels/elementwise.cu (operands that are dense or a contiguous trailing
// block repeated over the leading dims, e.g. a [C] weight over [B, T, C]) against the CPU oracle in f64:
// f32 and bf16, the broadcast operand in each position, periods that do and do not allow 16-byte packs
// (the latter fall back to the generic path), outputs poisoned.
#include <gtest/gtest.h>

#include "core/stream.h"
#include "kernels/elementwise.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
const Device kGpu = Device::cuda(0);

Broadcast broadcast_of(const Shape& out, const std::vector<Shape>& shapes) {
  Broadcast bc;
  bc.ndim = out.size();
  for (int d = 0; d < out.size(); ++d) bc.shape[d] = out[d];
  for (size_t k = 0; k < shapes.size(); ++k) {
    const Shape& s = shapes[k];
    Shape st = s.contiguous_strides();
    const int lead = out.size() - s.size();
    for (int d = 0; d < out.size(); ++d) bc.stride[k][d] = d < lead || s[d - lead] == 1 ? 0 : st[d - lead];
  }
  return bc;
}

template <typename T>
void check(const Shape& out, const std::vector<Shape>& shapes, uint64_t seed) {
  const DType dt = dtype_v<T>;
  const StreamHandle s = current_stream(0).handle();
  const Broadcast bc = broadcast_of(out, shapes);
  std::vector<Tensor> host, h64, dev;
  for (size_t k = 0; k < 3; ++k) {
    host.push_back(testing::random_uniform(shapes[k], dt, Device::cpu(), seed + k, 0.5, 2));
    h64.push_back(host.back().to(DType::F64));
    dev.push_back(host.back().to(kGpu));
  }
  auto p64 = [&](int k) { return h64[size_t(k)].data_ptr<double>(); };
  auto pd = [&](int k) { return dev[size_t(k)].data_ptr<T>(); };
  std::string what = std::string(dtype_name(dt)) + " out " + out.str() + " operands " + shapes[0].str() +
                     shapes[1].str() + shapes[2].str();
  Tensor ref = Tensor::empty(out, DType::F64);
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Mul, BinaryOp::Div}) {
    Tensor y = testing::poisoned(out, dt, kGpu);
    binary_cpu<double>(op, ref.data_ptr<double>(), p64(0), p64(1), bc);
    binary_cuda<T>(op, y.data_ptr<T>(), pd(0), pd(1), bc, s);
    EXPECT_TENSORS_CLOSE(y, ref, testing::tolerance_for(dt), what + " binary " + std::to_string(int(op)), seed);
  }
  Tensor y = testing::poisoned(out, dt, kGpu);
  lerp_cpu<double>(ref.data_ptr<double>(), p64(0), p64(1), p64(2), bc);
  lerp_cuda<T>(y.data_ptr<T>(), pd(0), pd(1), pd(2), bc, s);
  EXPECT_TENSORS_CLOSE(y, ref, testing::tolerance_for(dt), what + " lerp", seed);
  y = testing::poisoned(out, dt, kGpu);
  addcmul_cpu<double>(ref.data_ptr<double>(), p64(0), p64(1), p64(2), -0.3, bc);
  addcmul_cuda<T>(y.data_ptr<T>(), pd(0), pd(1), pd(2), -0.3, bc, s);
  EXPECT_TENSORS_CLOSE(y, ref, testing::tolerance_for(dt), what + " addcmul", seed);
}

TEST(ElementwiseGpu, PeriodicBroadcastMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 1;
  const Shape big{7, 33, 384};
  const std::vector<std::vector<Shape>> cases = {
      {{7, 33, 384}, {7, 33, 384}, {384}},        // lerp with a [C] weight
      {{384}, {7, 33, 384}, {7, 33, 384}},        // broadcast operand first
      {{7, 33, 384}, {33, 384}, {1, 1, 384}},     // [T, C] and [1, 1, C] blocks
      {{7, 33, 384}, {1, 33, 384}, {7, 33, 384}},
  };
  for (const auto& c : cases) {
    check<float>(big, c, seed++);
    check<bf16>(big, c, seed++);
  }
  // C = 12: f32 packs fit the period, bf16 packs (8) do not (generic path); C = 1536 over 2 rows
  check<float>(Shape{5, 12}, {{5, 12}, {12}, {5, 12}}, seed++);
  check<bf16>(Shape{5, 12}, {{5, 12}, {12}, {5, 12}}, seed++);
  check<float>(Shape{2, 1536}, {{2, 1536}, {2, 1536}, {1536}}, seed++);
  check<bf16>(Shape{2, 1536}, {{2, 1536}, {2, 1536}, {1536}}, seed++);
  // a broadcast in the middle is not periodic: generic path
  check<float>(Shape{3, 4, 8}, {{3, 1, 8}, {3, 4, 8}, {8}}, seed++);
}

}  // namespace
}  // namespace drwkv::kernels
