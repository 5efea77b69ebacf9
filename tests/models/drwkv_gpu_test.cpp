// The whole DRWKV network on the GPU: forward and backward of a tiny config match the CPU (f32), two GPU
// runs with the same seed give bitwise-identical gradients (bf16 branches, as in training), and so does a
// run with elementwise recomputation, at a lower peak of memory.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/elementwise_ops.h"
#include "autograd/tensor_math.h"
#include "core/allocator.h"
#include "core/stream.h"
#include "core/rng.h"
#include "models/diffusion.h"
#include "models/drwkv.h"
#include "models/optimizer_step.h"
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
  int64_t peak_bytes = 0;  // GPU: allocated from the store's creation to the end of backward
  double grad_sq = 0;      // grad_sum_squares
  Tensor stepped, ema;     // master values and EMA after one AdamW + EMA step (models::adamw_step)
};

// Every gradient range of the store in layout order, on the host: [padded total].
Tensor all_grads(ParameterStore& s) {
  Tensor out = Tensor::zeros(Shape{s.padded_numel()}, DType::F32);
  for (int k = 0; k < int(s.grad_segments().size()); ++k) {
    const FlatRange& r = s.grad_segments()[size_t(k)];
    out.narrow(0, r.begin, r.end - r.begin).copy_(s.segment_grads(k).to(Device::cpu()));
  }
  return out;
}

// forward + backward of Σ proj ⊙ out after moving the weights off their zero initialisation
// garbage_grads: the gradient buffer holds NaN and is reset (zero_grads) rather than cleared; with
// segments (segment_bytes > 0) they are then released, and allocated again during backward.
Result run(Device dev, DType compute, uint64_t seed, bool recompute = false, int batch = 4, bool garbage_grads = false,
           int64_t segment_bytes = 0) {
  DrwkvConfig c = tiny();
  int64_t before = 0;
  if (dev.is_cuda()) {
    current_stream(0).synchronize();
    cuda_allocator_reset_peak(0);
    before = cuda_allocator_stats(0).current_bytes;
  }
  ParameterStore s;
  DrwkvModel m(c, s);
  m.set_recompute_elementwise(recompute);
  if (segment_bytes > 0) s.set_grad_segments(segment_bytes);
  s.finalize(dev, compute, seed);
  Tensor noise = Tensor::empty(s.flat_params().shape(), DType::F32, dev);
  rng_normal_(noise, seed, 3, 0, 0.0, 0.05);
  autograd::add_(s.flat_params(), noise);
  s.refresh_compute_copy();
  if (garbage_grads) {  // (the alignment gaps too, for segments: they are zeroed when allocated)
    for (int k = 0; k < int(s.grad_segments().size()); ++k) {
      Tensor g = s.segment_grads(k);
      if (segment_bytes > 0) {
        g.fill_(std::nan(""));
      } else {
        const FlatRange& r = s.grad_segments()[size_t(k)];
        for (int i = r.first_param; i <= r.last_param; ++i) s.grad(i).fill_(std::nan(""));
      }
    }
    s.zero_grads();
  }
  DrwkvInputs in;
  in.x = testing::random_normal(Shape{batch, c.in_channels, c.image_size, c.image_size}, DType::F32, dev, seed + 1);
  for (int i = 0; i < batch; ++i) {
    in.t.push_back((i * 331) % 1000);
    in.y.push_back(i % 8);
    in.drop_path_keys.push_back(uint64_t(i) + 1);
  }
  in.seed = seed;
  Variable out = m.forward(in);
  Tensor proj = testing::random_normal(out.shape(), DType::F32, dev, seed + 2);
  autograd::sum_all(autograd::mul(out, Variable(proj))).backward();
  Result r;
  if (dev.is_cuda()) r.peak_bytes = cuda_allocator_stats(0).peak_bytes - before;
  r.out = out.value().to(Device::cpu());
  r.grads = all_grads(s);
  r.grad_sq = grad_sum_squares(s);
  Tensor mom = Tensor::zeros(s.flat_params().shape(), DType::F32, dev), var = mom.clone(), ema = s.flat_params().clone();
  autograd::AdamWConfig cfg;
  cfg.weight_decay = 0.05;
  adamw_step(s, mom, var, cfg, 1, Tensor(), ema, 0.99);
  r.stepped = s.flat_params().to(Device::cpu());
  r.ema = ema.to(Device::cpu());
  return r;
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

TEST(DrwkvGpu, ResetGradientsAreOverwrittenNotCleared) {
  // the GEMMs write weight gradients with beta = 0 after zero_grads(): over a NaN-filled buffer the
  // result is the cleared buffer's, bitwise
  DRWKV_REQUIRE_GPU();
  Result cleared = run(Device::cuda(0), DType::BF16, 51);
  Result reset = run(Device::cuda(0), DType::BF16, 51, false, 4, /*garbage_grads=*/true);
  EXPECT_EQ(cleared.grads.to_vector<float>(), reset.grads.to_vector<float>());
}

TEST(DrwkvGpu, GradientSegmentsGiveTheFlatBuffersGradientsWithoutItsMemory) {
  // segments filled with NaN, released, allocated again during backward (the caching allocator hands the
  // same blocks back): gradients bitwise those of a cleared flat buffer, alignment gaps zero
  DRWKV_REQUIRE_GPU();
  const int batch = 64;
  Result flat = run(Device::cuda(0), DType::BF16, 61, false, batch);
  Result seg = run(Device::cuda(0), DType::BF16, 61, false, batch, /*garbage_grads=*/true, /*segment_bytes=*/4096);
  EXPECT_EQ(flat.grads.to_vector<float>(), seg.grads.to_vector<float>());
  EXPECT_EQ(flat.out.to_vector<float>(), seg.out.to_vector<float>());
  // the optimizer step range by range: bitwise the flat buffer's; the norm up to summation order
  EXPECT_EQ(flat.stepped.to_vector<float>(), seg.stepped.to_vector<float>());
  EXPECT_EQ(flat.ema.to_vector<float>(), seg.ema.to_vector<float>());
  double host = 0;
  for (float g : seg.grads.to_vector<float>()) host += double(g) * g;
  EXPECT_NEAR(seg.grad_sq, host, 1e-9 * host);
  EXPECT_NEAR(flat.grad_sq, host, 1e-9 * host);
  // the flat buffer is held through forward; the segments appear as backward frees activations: at least
  // half of the gradient bytes must come off the peak
  const double grad_bytes = 4.0 * double(flat.grads.numel());
  EXPECT_LT(double(seg.peak_bytes), double(flat.peak_bytes) - 0.5 * grad_bytes)
      << "peak " << seg.peak_bytes << " bytes with segments, " << flat.peak_bytes << " with a flat buffer";
}

TEST(DrwkvGpu, ElementwiseRecomputationGivesTheSameGradientsInLessMemory) {
  DRWKV_REQUIRE_GPU();
  const int batch = 64;  // activations well above the parameters and their gradients
  Result kept = run(Device::cuda(0), DType::BF16, 41, false, batch);
  Result again = run(Device::cuda(0), DType::BF16, 41, true, batch);
  EXPECT_EQ(kept.out.to_vector<float>(), again.out.to_vector<float>());
  EXPECT_EQ(kept.grads.to_vector<float>(), again.grads.to_vector<float>()) << "recomputed values differ";
  // it drops the two LayerNorm-modulate outputs of every block (bf16 [batch, tokens, width] each); at
  // least half of that must show in the peak
  const DrwkvConfig c = tiny();
  const double dropped = 2.0 * c.num_blocks() * batch * c.tokens() * c.width * 2;
  EXPECT_LT(double(again.peak_bytes), double(kept.peak_bytes) - 0.5 * dropped)
      << "peak " << again.peak_bytes << " bytes with recomputation, " << kept.peak_bytes << " without";
}

}  // namespace
}  // namespace drwkv::models
