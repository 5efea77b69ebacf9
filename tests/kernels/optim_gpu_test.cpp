// CUDA AdamW and EMA against the CPU kernels over several steps: odd lengths (vector body and tail),
// misaligned buffers (scalar path), bf16 copy on and off (poisoned before each call), gradient scale
// from the host and from device memory.
#include <gtest/gtest.h>

#include "core/stream.h"
#include "kernels/optim.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
const Device kGpu = Device::cuda(0);

Tensor rnd(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return testing::random_uniform(Shape{n}, DType::F32, Device::cpu(), seed, lo, hi);
}

// Buffers of n + offset elements; the kernels see them from element `offset` on.
struct State {
  Tensor p, m, v;
};

void check_adamw(int64_t n, int64_t offset, bool with_copy, bool with_ptr, uint64_t seed) {
  const int64_t len = n + offset;
  State cpu{rnd(len, seed), rnd(len, seed + 1, -0.1, 0.1), rnd(len, seed + 2, 0.0, 0.01)};
  State gpu{cpu.p.to(kGpu), cpu.m.to(kGpu), cpu.v.to(kGpu)};
  Tensor copy_cpu = Tensor::empty(Shape{len}, DType::BF16);
  Tensor scale_host = Tensor::full(Shape{1}, 0.75, DType::F32), scale_dev = scale_host.to(kGpu);
  const std::string what = "adamw n " + std::to_string(n) + " offset " + std::to_string(offset) +
                           (with_copy ? " copy" : "") + (with_ptr ? " device scale" : "");
  for (int t = 1; t <= 3; ++t) {
    Tensor g = rnd(len, seed + 10 + uint64_t(t), -3.0, 3.0), gg = g.to(kGpu);
    Tensor copy_gpu = testing::poisoned(Shape{len}, DType::BF16, kGpu);
    AdamWStep h = adamw_step_constants(1e-2, 0.9, 0.999, 1e-8, 0.05, t, 0.5);
    adamw_cpu(cpu.p.data_ptr<float>() + offset, g.data_ptr<float>() + offset, cpu.m.data_ptr<float>() + offset,
              cpu.v.data_ptr<float>() + offset, with_copy ? copy_cpu.data_ptr<bf16>() + offset : nullptr, n, h,
              with_ptr ? scale_host.data_ptr<float>() : nullptr);
    adamw_cuda(gpu.p.data_ptr<float>() + offset, gg.data_ptr<float>() + offset, gpu.m.data_ptr<float>() + offset,
               gpu.v.data_ptr<float>() + offset, with_copy ? copy_gpu.data_ptr<bf16>() + offset : nullptr, n, h,
               with_ptr ? scale_dev.data_ptr<float>() : nullptr, current_stream(0).handle());
    // device FMA contraction vs host: a few ulps
    const testing::Tolerance tol{2e-6, 1e-7};
    std::string step = what + " step " + std::to_string(t);
    EXPECT_TENSORS_CLOSE(gpu.p, cpu.p, tol, step + " params", seed);
    EXPECT_TENSORS_CLOSE(gpu.m, cpu.m, tol, step + " m", seed);
    EXPECT_TENSORS_CLOSE(gpu.v, cpu.v, tol, step + " v", seed);
    if (with_copy) {
      // every element written (no NaN left), each the bf16 rounding of the new parameter
      Tensor got = copy_gpu.narrow(0, offset, n), want = gpu.p.narrow(0, offset, n).to(DType::BF16);
      EXPECT_TENSORS_CLOSE(got, want, (testing::Tolerance{0, 0}), step + " bf16 copy", seed);
    }
  }
}

TEST(AdamWGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 1;
  for (int64_t n : {1, 7, 8, 9, 1023, (1 << 20) + 3})
    for (int64_t offset : {0, 1})
      for (bool copy : {false, true})
        for (bool ptr : {false, true}) check_adamw(n, offset, copy, ptr, seed += 20);
}

TEST(AdamWGpu, FusedEmaMatchesCpuEmaAfterTheStep) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 900;
  for (int64_t n : {1, 9, 4097, (1 << 20) + 3})
    for (int64_t offset : {0, 1}) {  // offset 1: the unaligned (scalar) kernel
      const int64_t len = n + offset;
      State cpu{rnd(len, ++seed), rnd(len, ++seed, -0.1, 0.1), rnd(len, ++seed, 0.0, 0.01)};
      State gpu{cpu.p.to(kGpu), cpu.m.to(kGpu), cpu.v.to(kGpu)};
      Tensor e = rnd(len, ++seed), eg = e.to(kGpu);
      for (int t = 1; t <= 3; ++t) {
        Tensor g = rnd(len, ++seed, -3.0, 3.0), gg = g.to(kGpu);
        AdamWStep h = adamw_step_constants(1e-2, 0.9, 0.999, 1e-8, 0.05, t);
        h.ema_decay = 0.999f;
        adamw_cpu(cpu.p.data_ptr<float>() + offset, g.data_ptr<float>() + offset, cpu.m.data_ptr<float>() + offset,
                  cpu.v.data_ptr<float>() + offset, nullptr, n, h, nullptr);
        ema_cpu(e.data_ptr<float>() + offset, cpu.p.data_ptr<float>() + offset, n, h.ema_decay);
        adamw_cuda(gpu.p.data_ptr<float>() + offset, gg.data_ptr<float>() + offset, gpu.m.data_ptr<float>() + offset,
                   gpu.v.data_ptr<float>() + offset, nullptr, n, h, nullptr, current_stream(0).handle(),
                   eg.data_ptr<float>() + offset);
      }
      const std::string what = "fused ema n " + std::to_string(n) + " offset " + std::to_string(offset);
      EXPECT_TENSORS_CLOSE(gpu.p, cpu.p, (testing::Tolerance{2e-6, 1e-7}), what + " params", seed);
      EXPECT_TENSORS_CLOSE(eg, e, (testing::Tolerance{2e-6, 1e-7}), what + " ema", seed);
    }
}

TEST(EmaGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 500;
  for (int64_t n : {1, 7, 8, 9, 4097, (1 << 20) + 5})
    for (int64_t offset : {0, 1})
      for (double decay : {0.0, 0.9999}) {
        Tensor e = rnd(n + offset, ++seed), p = rnd(n + offset, ++seed);
        Tensor eg = e.to(kGpu), pg = p.to(kGpu);
        for (int k = 0; k < 3; ++k) {
          ema_cpu(e.data_ptr<float>() + offset, p.data_ptr<float>() + offset, n, float(decay));
          ema_cuda(eg.data_ptr<float>() + offset, pg.data_ptr<float>() + offset, n, float(decay),
                   current_stream(0).handle());
        }
        EXPECT_TENSORS_CLOSE(eg, e, (testing::Tolerance{1e-6, 1e-7}),
                             "ema n " + std::to_string(n) + " offset " + std::to_string(offset), seed);
      }
}

}  // namespace
}  // namespace drwkv::kernels
