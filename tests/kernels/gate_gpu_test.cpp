// Sigmoid gate CUDA kernels against the CPU reference (f64, same rounded inputs; the backward from the
// GPU forward's output), f32 and bf16, odd sizes and unaligned views (the scalar kernel), outputs
// poisoned first; either gradient alone.
#include <gtest/gtest.h>

#include "core/stream.h"
#include "kernels/gate.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
const Device kGpu = Device::cuda(0);
StreamHandle stream() { return current_stream(0).handle(); }
template <typename T> T* p(const Tensor& t) { return static_cast<T*>(t.data()); }

template <typename T>
void check(int64_t n, int64_t offset, uint64_t seed) {
  const DType dt = dtype_v<T>;
  auto view = [&](const Tensor& big) { return big.narrow(0, offset, n); };
  auto rnd = [&](uint64_t s, double lo, double hi) {
    return view(testing::random_uniform(Shape{n + offset}, DType::F32, Device::cpu(), s, lo, hi).to(kGpu, dt));
  };
  Tensor r = rnd(seed, -4, 4), z = rnd(seed + 1, -1, 1), g = rnd(seed + 2, -1, 1);
  Tensor r64 = r.to(Device::cpu(), DType::F64), z64 = z.to(Device::cpu(), DType::F64), g64 = g.to(Device::cpu(), DType::F64);
  Tensor o64 = Tensor::empty(Shape{n}, DType::F64), dr64 = Tensor::empty(Shape{n}, DType::F64),
         dz64 = Tensor::empty(Shape{n}, DType::F64);
  sigmoid_mul_forward_cpu<double>(p<double>(o64), p<double>(r64), p<double>(z64), n);
  Tensor o = view(testing::poisoned(Shape{n + offset}, dt, kGpu)), dr = view(testing::poisoned(Shape{n + offset}, dt, kGpu)),
         dz = view(testing::poisoned(Shape{n + offset}, dt, kGpu));
  sigmoid_mul_forward_cuda<T>(p<T>(o), p<T>(r), p<T>(z), n, stream());
  // the backward reads the forward's output: both sides from the GPU's (rounded) output
  Tensor ogpu64 = o.to(Device::cpu(), DType::F64);
  sigmoid_mul_backward_cpu<double>(p<double>(dr64), p<double>(dz64), p<double>(g64), p<double>(r64), p<double>(ogpu64), n);
  sigmoid_mul_backward_cuda<T>(p<T>(dr), p<T>(dz), p<T>(g), p<T>(r), p<T>(o), n, stream());
  const std::string what = "n " + std::to_string(n) + " offset " + std::to_string(offset) + " " + std::string(dtype_name(dt));
  const testing::Tolerance tol = testing::tolerance_for(dt);
  EXPECT_TENSORS_CLOSE(o, o64, tol, what + " out", seed);
  EXPECT_TENSORS_CLOSE(dr, dr64, tol, what + " dr", seed);
  EXPECT_TENSORS_CLOSE(dz, dz64, tol, what + " dz", seed);
  // one gradient at a time: the other output is left alone
  Tensor only = view(testing::poisoned(Shape{n + offset}, dt, kGpu));
  sigmoid_mul_backward_cuda<T>(nullptr, p<T>(only), p<T>(g), p<T>(r), p<T>(o), n, stream());
  EXPECT_TENSORS_CLOSE(only, dz64, tol, what + " dz alone", seed);
  sigmoid_mul_backward_cuda<T>(p<T>(only), nullptr, p<T>(g), p<T>(r), p<T>(o), n, stream());
  EXPECT_TENSORS_CLOSE(only, dr64, tol, what + " dr alone", seed);
}

TEST(GateGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 1;
  for (int64_t n : {1, 7, 1000, 4096 + 3, 1 << 20})
    for (int64_t offset : {0, 1}) {
      check<float>(n, offset, seed += 5);
      check<bf16>(n, offset, seed += 5);
    }
}

}  // namespace
}  // namespace drwkv::kernels
