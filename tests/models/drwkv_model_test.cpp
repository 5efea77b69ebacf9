// The whole DRWKV network on the CPU: zero output at initialisation (adaLN-Zero + zero decoder), non-zero
// after one optimizer step, and a finite-difference spot check of the gradients of the whole model in f64.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/elementwise_ops.h"
#include "autograd/optim.h"
#include "core/rng.h"
#include "models/drwkv.h"
#include "tests/models/tiny_drwkv.h"
#include "tests/support/testing.h"

namespace drwkv::models {
namespace {
using autograd::Variable;

DrwkvInputs inputs(const DrwkvConfig& c, DType dt, uint64_t seed) {
  DrwkvInputs in;
  in.x = testing::random_normal(Shape{2, c.in_channels, c.image_size, c.image_size}, dt, Device::cpu(), seed);
  in.t = {3, 901};
  in.y = {1, c.num_classes};  // one real class and the null class
  return in;
}

// Moves every parameter away from its (partly zero) initialisation so every path carries gradient.
void perturb(ParameterStore& s, uint64_t seed) {
  Tensor noise = Tensor::empty(s.flat_params().shape(), s.flat_params().dtype());
  rng_normal_(noise, seed, 77, 0, 0.0, 0.3);
  Tensor p = s.flat_params().to(DType::F64);
  std::vector<double> a = p.to_vector<double>(), b = noise.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  s.flat_params().copy_(Tensor::from_vector(a, s.flat_params().shape()));
  s.refresh_compute_copy();
}

TEST(DrwkvModel, OutputIsExactlyZeroAtInitialisationAndNotAfterAStep) {
  DrwkvConfig c = tiny_drwkv();
  ParameterStore s;
  DrwkvModel m(c, s);
  s.finalize(Device::cpu(), DType::F32, 1);
  Variable out = m.forward(inputs(c, DType::F32, 2));
  EXPECT_EQ(out.shape(), (Shape{2, 2 * c.in_channels, c.image_size, c.image_size}));
  for (float v : out.value().to_vector<float>()) ASSERT_EQ(v, 0.0f);
  // one AdamW step on the gradient of a simple objective makes the output non-zero
  autograd::sum_all(out).backward();
  Tensor m1 = Tensor::zeros(s.flat_params().shape(), DType::F32), v1 = m1.clone();
  autograd::AdamWConfig cfg;
  cfg.lr = 1e-2;
  autograd::adamw_step(s.flat_params(), s.flat_grads(), m1, v1, cfg, 1);
  Variable out2 = m.forward(inputs(c, DType::F32, 2));
  double max_abs = 0;
  for (float v : out2.value().to_vector<float>()) max_abs = std::max<double>(max_abs, std::fabs(v));
  EXPECT_GT(max_abs, 1e-4);
}

TEST(DrwkvModel, GradientsPassAFiniteDifferenceSpotCheck) {
  DrwkvConfig c = tiny_drwkv();
  c.drop_path = 0.0;
  ParameterStore s;
  DrwkvModel m(c, s);
  s.finalize(Device::cpu(), DType::F64, 3);
  perturb(s, 4);
  DrwkvInputs in = inputs(c, DType::F64, 5);
  Tensor proj = testing::random_normal(Shape{2, 2 * c.in_channels, c.image_size, c.image_size}, DType::F64, Device::cpu(), 6);
  auto objective = [&] {
    Variable out = m.forward(in);
    return autograd::sum_all(autograd::mul(out, Variable(proj)));
  };
  s.zero_grads();
  objective().backward();
  Tensor grads = s.flat_grads().clone();
  // every parameter tensor: its first, middle and last element
  int checked = 0, bad = 0;
  std::string report;
  autograd::NoGradGuard ng;
  for (const ParamInfo& p : s.infos()) {
    for (int64_t e : {int64_t(0), p.numel / 2, p.numel - 1}) {
      int64_t idx = p.offset + e;
      double* w = s.flat_params().data_ptr<double>() + idx;
      double orig = *w, h = 1e-6;
      *w = orig + h;
      double lp = objective().value().item();
      *w = orig - h;
      double lm = objective().value().item();
      *w = orig;
      double numeric = (lp - lm) / (2 * h), analytic = grads.data_ptr<double>()[idx];
      ++checked;
      if (std::fabs(numeric - analytic) > 1e-6 + 1e-5 * std::fabs(numeric)) {
        ++bad;
        if (bad < 6) report += p.name + "[" + std::to_string(e) + "]: analytic " + std::to_string(analytic) + " numeric " + std::to_string(numeric) + "\n";
      }
    }
  }
  EXPECT_EQ(bad, 0) << bad << " of " << checked << " gradient entries differ:\n" << report;
  EXPECT_GT(checked, 60);
}

TEST(DrwkvModel, CheckpointedBlocksGiveTheSameGradients) {
  DrwkvConfig c = tiny_drwkv();
  ParameterStore s;
  DrwkvModel m(c, s);
  s.finalize(Device::cpu(), DType::F64, 7);
  perturb(s, 8);
  DrwkvInputs in = inputs(c, DType::F64, 9);
  in.drop_path_keys = {11, 12};
  in.seed = 5;
  autograd::sum_all(m.forward(in)).backward();
  Tensor plain = s.flat_grads().clone();
  s.zero_grads();
  const int nb = c.num_blocks();
  for (int n : {1, 2, nb}) {  // some blocks, spread over the depth; every block
    s.zero_grads();
    m.set_checkpoint_blocks(n);
    autograd::sum_all(m.forward(in)).backward();
    EXPECT_TRUE(testing::tensors_close(s.flat_grads(), plain, {1e-12, 1e-14},
                                       "gradients with " + std::to_string(n) + " checkpointed blocks", 7));
  }
}

TEST(DrwkvModel, ElementwiseRecomputationGivesBitwiseTheSameGradients) {
  for (DType dt : {DType::F64, DType::F32}) {
    DrwkvConfig c = tiny_drwkv();
    ParameterStore s;
    DrwkvModel m(c, s);
    s.finalize(Device::cpu(), dt, 7);
    perturb(s, 8);
    DrwkvInputs in = inputs(c, dt, 9);
    in.drop_path_keys = {11, 12};
    in.seed = 5;
    // alone, and with checkpointed blocks (which keep nothing to recompute; checkpointing itself changes
    // the order in which leaf gradients add up, so each is compared with the same checkpointing)
    for (int n : {0, 2}) {
      m.set_checkpoint_blocks(n);
      Tensor out[2], grads[2];
      for (int again = 0; again < 2; ++again) {
        m.set_recompute_elementwise(again == 1);
        s.zero_grads();
        Variable y = m.forward(in);
        out[again] = y.value().clone();
        autograd::sum_all(y).backward();
        grads[again] = s.flat_grads().clone();
      }
      const std::string what = std::string(dtype_name(dt)) + ", " + std::to_string(n) + " checkpointed blocks";
      EXPECT_TRUE(testing::tensors_close(out[1], out[0], {0, 0}, "output, " + what, 1));
      EXPECT_TRUE(testing::tensors_close(grads[1], grads[0], {0, 0}, "gradients, " + what, 7));
    }
  }
}

TEST(DrwkvModel, ResetGradientsAreOverwrittenNotCleared) {
  // zero_grads() leaves the buffer as it is (here: NaN) and every op's first contribution overwrites
  // its parameter's slice; compared with a buffer cleared first, over two accumulated backward calls
  for (DType dt : {DType::F64, DType::F32}) {
    DrwkvConfig c = tiny_drwkv();
    ParameterStore s;
    DrwkvModel m(c, s);
    s.finalize(Device::cpu(), dt, 7);
    perturb(s, 8);
    DrwkvInputs in = inputs(c, dt, 9), in2 = inputs(c, dt, 10);
    in.drop_path_keys = in2.drop_path_keys = {11, 12};
    auto two_passes = [&] {
      autograd::sum_all(m.forward(in)).backward();
      autograd::sum_all(m.forward(in2)).backward();
      return s.flat_grads().clone();
    };
    s.flat_grads().zero_();
    Tensor cleared = two_passes();
    for (int i = 0; i < s.size(); ++i) s.grad(i).fill_(std::nan(""));  // (the alignment gaps stay zero)
    s.zero_grads();
    Tensor reset = two_passes();
    EXPECT_TRUE(testing::tensors_close(reset, cleared, {0, 0}, "gradients, " + std::string(dtype_name(dt)), 7));
  }
}

TEST(DrwkvModel, CheckpointBlocksPicksThatManyBlocksSpreadOverTheDepth) {
  DrwkvConfig c = tiny_drwkv();
  c.depth = 12;  // 13 blocks
  ParameterStore s;
  DrwkvModel m(c, s);
  const int nb = c.num_blocks();
  ASSERT_EQ(nb, 13);
  for (int n = -1; n <= nb + 2; ++n) {
    m.set_checkpoint_blocks(n);
    std::vector<int> picked;
    for (int l = 0; l < nb; ++l)
      if (m.checkpointed(l)) picked.push_back(l);
    const size_t want = n < 0 || n > nb ? size_t(nb) : size_t(n);
    ASSERT_EQ(picked.size(), want) << n << " blocks asked";
    // no two picked blocks closer than ⌊nb / n⌋ apart
    for (size_t i = 1; i < picked.size(); ++i) EXPECT_GE(picked[i] - picked[i - 1], nb / int(want)) << n;
  }
  m.set_activation_checkpointing(false);
  for (int l = 0; l < nb; ++l) EXPECT_FALSE(m.checkpointed(l));
}

}  // namespace
}  // namespace drwkv::models
