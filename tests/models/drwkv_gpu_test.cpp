// The whole DRWKV network on the GPU: forward and backward of a tiny config match the CPU (f32), and two
// GPU runs with the same seed give bitwise-identical gradients (bf16 branches, as in training).
#include <gtest/gtest.h>

#include "autograd/elementwise_ops.h"
#include "autograd/tensor_math.h"
#include "core/rng.h"
#include "models/diffusion.h"
#include "models/drwkv.h"
#include "tests/support/testing.h"

namespace drwkv::models {
namespace {
using autograd::Variable;

DrwkvConfig tiny() {
  DrwkvConfig c;
  c.depth = 5;
  c.width = 64;
  c.patch = 2;
  c.in_channels = 3;
  c.image_size = 10;  // 5×5 tokens
  c.num_classes = 7;
  return c;
}

struct Result {
  Tensor out, grads;
};

// forward + backward of Σ proj ⊙ out after moving the weights off their zero initialisation
Result run(Device dev, DType compute, uint64_t seed) {
  DrwkvConfig c = tiny();
  ParameterStore s;
  DrwkvModel m(c, s);
  s.finalize(dev, compute, seed);
  Tensor noise = Tensor::empty(s.flat_params().shape(), DType::F32, dev);
  rng_normal_(noise, seed, 3, 0, 0.0, 0.05);
  autograd::add_(s.flat_params(), noise);
  s.refresh_compute_copy();
  DrwkvInputs in;
  in.x = testing::random_normal(Shape{4, c.in_channels, c.image_size, c.image_size}, DType::F32, dev, seed + 1);
  in.t = {0, 10, 500, 999};
  in.y = {0, 3, 6, 7};
  in.drop_path_keys = {1, 2, 3, 4};
  in.seed = seed;
  Variable out = m.forward(in);
  Tensor proj = testing::random_normal(out.shape(), DType::F32, dev, seed + 2);
  autograd::sum_all(autograd::mul(out, Variable(proj))).backward();
  return {out.value().to(Device::cpu()), s.flat_grads().to(Device::cpu())};
}

TEST(DrwkvGpu, F32ForwardAndBackwardMatchTheCpu) {
  DRWKV_REQUIRE_GPU();
  Result cpu = run(Device::cpu(), DType::F32, 21), gpu = run(Device::cuda(0), DType::F32, 21);
  EXPECT_LT(testing::relative_error(gpu.out, cpu.out), 1e-4);
  EXPECT_LT(testing::relative_error(gpu.grads, cpu.grads), 1e-3);
}

TEST(DrwkvGpu, Bf16GradientsAreCloseAndBitwiseReproducible) {
  DRWKV_REQUIRE_GPU();
  Result cpu = run(Device::cpu(), DType::F32, 31);
  Result a = run(Device::cuda(0), DType::BF16, 31), b = run(Device::cuda(0), DType::BF16, 31);
  EXPECT_LT(testing::relative_error(a.out, cpu.out), 3e-2);
  EXPECT_LT(testing::relative_error(a.grads, cpu.grads), 5e-2);
  EXPECT_EQ(a.grads.to_vector<float>(), b.grads.to_vector<float>()) << "two runs with the same seed differ";
  EXPECT_EQ(a.out.to_vector<float>(), b.out.to_vector<float>());
}

}  // namespace
}  // namespace drwkv::models
