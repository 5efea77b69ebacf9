// Optimizer entry points on the GPU against the CPU: adamw_step with the gradient scale in device
// memory (as gradient clipping produces it) and on the host, with the bf16 compute copy; ema_update;
// sum_squares staying on the device.
#include <gtest/gtest.h>

#include "autograd/optim.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
const Device kGpu = Device::cuda(0);

Tensor rnd(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0, DType dt = DType::F32) {
  return testing::random_uniform(Shape{n}, dt, Device::cpu(), seed, lo, hi);
}

TEST(AdamWStepGpu, MatchesCpuWithDeviceAndHostScale) {
  DRWKV_REQUIRE_GPU();
  const int64_t n = (1 << 18) + 13;
  AdamWConfig cfg;
  cfg.lr = 1e-3;
  cfg.weight_decay = 0.01;
  for (bool device_scale : {true, false}) {
    Tensor p = rnd(n, 1), m = rnd(n, 2, -0.01, 0.01), v = rnd(n, 3, 0.0, 1e-4);
    Tensor pg = p.to(kGpu), mg = m.to(kGpu), vg = v.to(kGpu);
    Tensor copy = testing::poisoned(Shape{n}, DType::BF16, kGpu);
    Tensor scale_host = Tensor::full(Shape{1}, 0.3, DType::F32);
    Tensor scale = device_scale ? scale_host.to(kGpu) : scale_host;
    for (int t = 1; t <= 3; ++t) {
      Tensor g = rnd(n, 10 + uint64_t(t));
      adamw_step(p, g, m, v, cfg, t, scale_host);
      adamw_step(pg, g.to(kGpu), mg, vg, cfg, t, scale, copy);
      std::string what = std::string(device_scale ? "device" : "host") + " scale, step " + std::to_string(t);
      EXPECT_TENSORS_CLOSE(pg, p, (testing::Tolerance{2e-6, 1e-7}), what + " params", 1);
      EXPECT_TENSORS_CLOSE(mg, m, (testing::Tolerance{2e-6, 5e-8}), what + " m", 1);  // f32 FMA vs host rounding where β1·m and (1−β1)·g cancel
      EXPECT_TENSORS_CLOSE(vg, v, (testing::Tolerance{2e-6, 1e-12}), what + " v", 1);
      EXPECT_TENSORS_CLOSE(copy, pg.to(DType::BF16), (testing::Tolerance{0, 0}), what + " bf16 copy", 1);
    }
  }
}

TEST(EmaUpdateGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  const int64_t n = 100003;
  Tensor e = rnd(n, 20), p = rnd(n, 21);
  Tensor eg = e.to(kGpu), pg = p.to(kGpu);
  for (int k = 0; k < 4; ++k) {
    ema_update(e, p, 0.9999);
    ema_update(eg, pg, 0.9999);
  }
  EXPECT_TENSORS_CLOSE(eg, e, (testing::Tolerance{1e-6, 1e-7}), "ema", 20);
}

TEST(SumSquaresGpu, MatchesCpuAndStaysOnDevice) {
  DRWKV_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t n : {1, 1000, 3'000'017}) {
      Tensor x = rnd(n, 30 + uint64_t(n), -1.0, 1.0, dt);
      Tensor s = sum_squares(x.to(kGpu));
      EXPECT_TRUE(s.is_cuda());
      EXPECT_EQ(s.shape(), Shape{1});
      double want = sum_squares(x).item();
      EXPECT_NEAR(s.item(), want, 1e-9 * want) << dtype_name(dt) << " n " << n;
    }
}

}  // namespace
}  // namespace drwkv::autograd
