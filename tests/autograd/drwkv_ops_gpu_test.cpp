// DRWKV fused ops through the autograd engine on the GPU against the same graph on the CPU: a Bi-RWKV-like
// block composition (shared h and mod gradients accumulated in place, μ and LN gradients bound to f32
// buffers), the output head and patchify. f32 everywhere against the f64 CPU graph, and the training
// precision (f32 residual, bf16 branch) against the CPU running the same dtypes.
#include <gtest/gtest.h>

#include <tuple>

#include "autograd/drwkv_ops.h"
#include "autograd/shape_ops.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
const Device kGpu = Device::cuda(0);

Tensor rnd(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) {
  return testing::random_uniform(s, DType::F32, Device::cpu(), seed, lo, hi);
}

struct BlockShape {
  int64_t B;
  int gh, gw;
  int64_t C;
};

// Leaves: h, ln weight, ln bias, mod, μ_k, μ_r; returns the block output.
Variable block(const std::vector<Variable>& v, int gh, int gw, DType branch, const Tensor& scale) {
  Variable x = layernorm_modulate(v[0], v[1], v[2], 1e-5, v[3], 0, 1, branch);
  std::vector<Variable> xs = qshift_mix(x, {v[4], v[5]}, gh, gw);
  Variable z = sigmoid_mul(xs[1], xs[0]);
  auto [h1, x2] = gated_residual_layernorm_modulate(v[0], z, v[3], 2, scale, Variable(), Variable(), 1e-5, 3, 4, branch);
  return receptance_gated_residual(h1, xs[0], x2, v[3], 5);
}

// Runs the block on `dev` with residual dtype `th` and branch dtype `ty`; parameter gradients (weight,
// bias, μ_k, μ_r) are bound to views of one f32 (or f64) buffer pre-filled with 0.25.
std::vector<Tensor> run_block(const BlockShape& s, Device dev, DType th, DType ty, uint64_t seed) {
  const int64_t T = int64_t(s.gh) * s.gw, C = s.C;
  const DType acc = th == DType::F64 ? DType::F64 : DType::F32;
  std::vector<Tensor> in{rnd(Shape{s.B, T, C}, seed, -2, 2), rnd(Shape{C}, seed + 1, 0.5, 1.5), rnd(Shape{C}, seed + 2),
                         rnd(Shape{s.B, 6 * C}, seed + 3), rnd(Shape{C}, seed + 4, 0, 1), rnd(Shape{C}, seed + 5, 0, 1)};
  std::vector<Variable> v;
  for (size_t i = 0; i < in.size(); ++i) v.emplace_back(in[i].to(dev, i == 0 ? th : acc), true);
  Tensor flat = Tensor::full(Shape{4 * C}, 0.25, acc, dev);
  const int bound[4] = {1, 2, 4, 5};
  for (int k = 0; k < 4; ++k) v[size_t(bound[k])].bind_grad(flat.narrow(0, k * C, C));
  std::vector<float> sv;
  for (int64_t b = 0; b < s.B; ++b) sv.push_back(b % 2 ? 0.f : 1.25f);
  Variable y = block(v, s.gh, s.gw, ty, Tensor::from_vector(sv, Shape{s.B}));
  Tensor seed_grad = rnd(y.shape(), seed + 6).to(dev, th);
  y.backward(seed_grad);
  return {y.value().to(Device::cpu(), DType::F64), v[0].grad().to(Device::cpu(), DType::F64),
          v[3].grad().to(Device::cpu(), DType::F64), flat.to(Device::cpu(), DType::F64)};
}

TEST(DrwkvOpsGpu, BlockCompositionMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  const char* names[] = {"output", "dh", "dmod", "bound parameter gradients"};
  for (BlockShape s : {BlockShape{2, 3, 4, 64}, BlockShape{1, 1, 1, 8}, BlockShape{3, 5, 3, 12}, BlockShape{4, 16, 16, 384}}) {
    const std::string what = "B " + std::to_string(s.B) + " grid " + std::to_string(s.gh) + "x" + std::to_string(s.gw) +
                             " C " + std::to_string(s.C);
    // f32 on the GPU against f64 on the CPU
    std::vector<Tensor> ref = run_block(s, Device::cpu(), DType::F64, DType::F64, 11);
    std::vector<Tensor> got = run_block(s, kGpu, DType::F32, DType::F32, 11);
    for (size_t k = 0; k < ref.size(); ++k)
      EXPECT_LT(testing::relative_error(got[k], ref[k]), 2e-5) << what << " f32: " << names[k];
    // training precision: the CPU runs the same dtypes, so only summation order and rounding ties differ
    std::vector<Tensor> cpu = run_block(s, Device::cpu(), DType::F32, DType::BF16, 12);
    std::vector<Tensor> gpu = run_block(s, kGpu, DType::F32, DType::BF16, 12);
    for (size_t k = 0; k < cpu.size(); ++k)
      EXPECT_LT(testing::relative_error(gpu[k], cpu[k]), 5e-3) << what << " bf16 branch: " << names[k];
  }
}

TEST(DrwkvOpsGpu, LinearDecoderAndPatchifyMatchCpu) {
  DRWKV_REQUIRE_GPU();
  for (auto [B, gh, gw, C, P, Co] : std::vector<std::tuple<int64_t, int, int, int64_t, int, int>>{
           {2, 2, 3, 64, 2, 8}, {1, 1, 1, 8, 1, 2}, {3, 4, 4, 36, 4, 8}, {4, 16, 16, 384, 2, 8}}) {
    const int64_t T = int64_t(gh) * gw, N = int64_t(P) * P * Co;
    std::vector<Tensor> in{rnd(Shape{B, T, C}, 1, -2, 2), rnd(Shape{B, 2 * C}, 2), rnd(Shape{N, C}, 3), rnd(Shape{N}, 4)};
    Tensor seed_grad = rnd(Shape{B, Co, int64_t(gh) * P, int64_t(gw) * P}, 5);
    std::vector<std::vector<Tensor>> res;
    for (Device dev : {Device::cpu(), kGpu}) {
      const DType dt = dev.is_cpu() ? DType::F64 : DType::F32;
      std::vector<Variable> v;
      for (const Tensor& t : in) v.emplace_back(t.to(dev, dt), true);
      Variable out = linear_decoder(v[0], v[1], v[2], v[3], P, gh, gw, Co, 1e-6);
      out.backward(seed_grad.to(dev, dt));
      std::vector<Tensor> r{out.value().to(Device::cpu(), DType::F64)};
      for (const Variable& x : v) r.push_back(x.grad().to(Device::cpu(), DType::F64));
      res.push_back(r);
    }
    const char* names[] = {"out", "dh", "dmod", "dW_out", "db_out"};
    for (size_t k = 0; k < res[0].size(); ++k)
      EXPECT_LT(testing::relative_error(res[1][k], res[0][k]), 2e-5)
          << "B " << B << " grid " << gh << "x" << gw << " C " << C << " P " << P << " Cout " << Co << ": " << names[k];
    // patchify: a layout op, exact on both devices
    Tensor img = rnd(Shape{B, Co, int64_t(gh) * P, int64_t(gw) * P}, 6);
    Variable pc(img, true), pg(img.to(kGpu), true);
    Variable tc = patchify(pc, P), tg = patchify(pg, P);
    EXPECT_EQ(tc.value().to_vector<float>(), tg.value().to_vector<float>());
    Tensor g = rnd(tc.shape(), 7);
    tc.backward(g);
    tg.backward(g.to(kGpu));
    EXPECT_EQ(pc.grad().to_vector<float>(), pg.grad().to_vector<float>());
  }
}

}  // namespace
}  // namespace drwkv::autograd
