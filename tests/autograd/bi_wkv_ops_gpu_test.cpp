// The bi_wkv op on the GPU (bf16/f32 activations, f32 parameters) against the same op on the CPU in
// f64: value, activation gradients, and parameter gradients accumulated into bound buffers; both variants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "autograd/bi_wkv_ops.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
const Device kGpu = Device::cuda(0);

double max_abs(const Tensor& t) {
  double m = 0.01;
  for (double x : t.to_vector<double>()) m = std::max(m, std::fabs(x));
  return m;
}

void check(BiWkvVariant variant, DType dt, int64_t B, int64_t T, int64_t C, uint64_t seed) {
  auto rnd = [](Shape s, uint64_t sd, double lo, double hi, DType round_to) {
    return testing::random_uniform(s, DType::F64, Device::cpu(), sd, lo, hi).to(round_to).to(DType::F64);
  };
  Tensor k = rnd(Shape{B, T, C}, seed, -3, 3, dt), v = rnd(Shape{B, T, C}, seed + 1, -1, 1, dt);
  Tensor gy = rnd(Shape{B, T, C}, seed + 2, -1, 1, dt);
  Tensor decay = rnd(Shape{C}, seed + 3, -5, 5, DType::F32), first = rnd(Shape{C}, seed + 4, -2.0 * T, 2.0 * T, DType::F32);
  Tensor start = rnd(Shape{C}, seed + 5, -1, 1, DType::F32);
  auto run = [&](Device dev, DType act, DType par) {
    Variable d(decay.to(dev, par), true), f(first.to(dev, par), true), kv(k.to(dev, act), true), vv(v.to(dev, act), true);
    // clones: on the CPU `to` may return `start` itself, and the two gradients must not share a buffer
    d.bind_grad(start.to(dev, par).clone());
    f.bind_grad(start.to(dev, par).clone());
    Variable y = bi_wkv(d, f, kv, vv, variant);
    y.backward(gy.to(dev, act));
    return std::vector<Tensor>{y.value(), kv.grad(), vv.grad(), d.grad(), f.grad()};
  };
  std::vector<Tensor> want = run(Device::cpu(), DType::F64, DType::F64), got = run(kGpu, dt, DType::F32);
  const char* names[] = {"y", "dk", "dv", "ddecay", "dfirst"};
  for (size_t i = 0; i < want.size(); ++i) {
    double rtol = dt == DType::BF16 && i < 3 ? 8e-3 : 0.0;
    testing::Tolerance tol{rtol, 1e-4 * max_abs(want[i])};
    EXPECT_TENSORS_CLOSE(got[i].to(Device::cpu()), want[i], tol,
                         std::string(names[i]) + " variant " + std::to_string(int(variant)) + " " +
                             std::string(dtype_name(dt)) + " T=" + std::to_string(T),
                         seed);
  }
}

TEST(BiWkvOpGpu, MatchesCpuF64) {
  DRWKV_REQUIRE_GPU();
  for (BiWkvVariant variant : {BiWkvVariant::Exact, BiWkvVariant::OfficialCompat})
    for (DType dt : {DType::F32, DType::BF16})
      for (int64_t T : {1, 37, 256}) check(variant, dt, 2, T, 40, 11 + uint64_t(T));
}

}  // namespace
}  // namespace drwkv::autograd
