// Gradient storage of the parameter store (models/parameter_store.h): segments allocated when backward
// reaches them and given back by zero_grads give, bitwise, the gradients and the optimizer step of one
// flat buffer; they tile the layout with zeroed padding; the gradient norm agrees.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/elementwise_ops.h"
#include "autograd/tensor_math.h"
#include "models/drwkv.h"
#include "models/optimizer_step.h"
#include "tests/models/tiny_drwkv.h"
#include "tests/support/testing.h"

namespace drwkv::models {
namespace {
using autograd::Variable;

struct Model {
  ParameterStore store;
  DrwkvModel model;
  explicit Model(int64_t segment_bytes) : model(tiny_drwkv(), store) {
    if (segment_bytes > 0) store.set_grad_segments(segment_bytes);
    store.finalize(Device::cpu(), DType::F32, 5);
    // away from the zero initialisation, so every parameter gets a gradient
    Tensor noise = testing::random_normal(store.flat_params().shape(), DType::F32, Device::cpu(), 17);
    autograd::add_(store.flat_params(), noise);
  }
  void backward(uint64_t seed) {
    DrwkvInputs in;
    const DrwkvConfig& c = model.config();
    in.x = testing::random_normal(Shape{2, c.in_channels, c.image_size, c.image_size}, DType::F32, Device::cpu(), seed);
    in.t = {3, 901};
    in.y = {1, c.num_classes};
    Variable out = model.forward(in);
    autograd::sum_all(autograd::mul(out, out)).backward();
  }
};

TEST(ParameterStore, SegmentsTileTheLayoutAndHoldNoMemoryUntilBackward) {
  Model seg(1024), flat(0);
  const auto& r = seg.store.grad_segments();
  ASSERT_GT(r.size(), 3u);
  ASSERT_EQ(flat.store.grad_segments().size(), 1u);
  // last parameters first, tiling [0, padded) downwards, every parameter in exactly one segment
  EXPECT_EQ(r.front().end, seg.store.padded_numel());
  EXPECT_EQ(r.front().last_param, seg.store.size() - 1);
  EXPECT_EQ(r.back().begin, 0);
  EXPECT_EQ(r.back().first_param, 0);
  for (size_t k = 1; k < r.size(); ++k) {
    EXPECT_EQ(r[k].end, r[k - 1].begin);
    EXPECT_EQ(r[k].last_param + 1, r[k - 1].first_param);
  }
  EXPECT_EQ(seg.store.allocated_grad_bytes(), 0);
  EXPECT_EQ(flat.store.allocated_grad_bytes(), seg.store.padded_numel() * 4);
  {
    autograd::NoGradGuard ng;
    DrwkvInputs in;
    in.x = testing::random_normal(Shape{2, 2, 6, 6}, DType::F32, Device::cpu(), 3);
    in.t = {3, 901};
    in.y = {1, 3};
    (void)seg.model.forward(in);
  }
  EXPECT_EQ(seg.store.allocated_grad_bytes(), 0);
  seg.backward(3);
  EXPECT_EQ(seg.store.allocated_grad_bytes(), seg.store.padded_numel() * 4);
  seg.store.zero_grads();
  EXPECT_EQ(seg.store.allocated_grad_bytes(), 0);
  for (int i = 0; i < seg.store.size(); ++i) EXPECT_TRUE(seg.store.var(i).grad_released()) << seg.store.info(i).name;
}

TEST(ParameterStore, SegmentedGradientsAndAdamWAreBitwiseThoseOfTheFlatBuffer) {
  Model seg(1024), flat(0);
  autograd::AdamWConfig cfg;
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  const int64_t n = flat.store.padded_numel();
  Tensor m[2], v[2], ema[2];
  for (int j = 0; j < 2; ++j) {
    m[j] = Tensor::zeros(Shape{n}, DType::F32);
    v[j] = Tensor::zeros(Shape{n}, DType::F32);
    ema[j] = flat.store.flat_params().clone();
  }
  for (int step = 1; step <= 2; ++step) {
    Model* s[2] = {&flat, &seg};
    for (int j = 0; j < 2; ++j) {
      s[j]->store.zero_grads();
      s[j]->backward(10 + step);  // two micro-batches: the second accumulates
      s[j]->backward(20 + step);
    }
    for (int i = 0; i < flat.store.size(); ++i)
      ASSERT_EQ(flat.store.grad(i).to_vector<float>(), seg.store.grad(i).to_vector<float>())
          << flat.store.info(i).name << " step " << step;
    // padding is zero in every segment, and the norm is the flat buffer's up to summation order
    double host = 0;
    for (float g : flat.store.flat_grads().to_vector<float>()) host += double(g) * g;
    for (int k = 0; k < int(seg.store.grad_segments().size()); ++k) {
      const FlatRange& r = seg.store.grad_segments()[size_t(k)];
      std::vector<float> g = seg.store.segment_grads(k).to_vector<float>();
      for (int i = r.first_param; i <= r.last_param; ++i) {
        const ParamInfo& p = seg.store.info(i);
        int64_t gap_end = i < r.last_param ? seg.store.info(i + 1).offset : r.end;
        for (int64_t e = p.offset + p.numel; e < gap_end; ++e) ASSERT_EQ(g[size_t(e - r.begin)], 0.0f) << e;
      }
    }
    EXPECT_NEAR(grad_sum_squares(seg.store), host, 1e-9 * host);
    EXPECT_NEAR(grad_sum_squares(flat.store), host, 1e-9 * host);
    for (int j = 0; j < 2; ++j) adamw_step(s[j]->store, m[j], v[j], cfg, step, Tensor(), ema[j], 0.9);
    EXPECT_EQ(flat.store.flat_params().to_vector<float>(), seg.store.flat_params().to_vector<float>());
    EXPECT_EQ(m[0].to_vector<float>(), m[1].to_vector<float>());
    EXPECT_EQ(v[0].to_vector<float>(), v[1].to_vector<float>());
    EXPECT_EQ(ema[0].to_vector<float>(), ema[1].to_vector<float>());
  }
}

TEST(ParameterStore, SegmentsUnderCheckpointedBlocksAndGradReadyHooks) {
  // every block recomputed in backward: the segments are bound inside the nested backward passes; the
  // gradients are bitwise the flat buffer's under the same checkpointing, and each parameter's grad-ready
  // hook fires once, its gradient final and its segment allocated (what the data-parallel reducer needs)
  Model seg(512), flat(0);
  seg.model.set_checkpoint_blocks(-1);
  flat.model.set_checkpoint_blocks(-1);
  std::vector<int> fired(size_t(seg.store.size()), 0);
  for (int i = 0; i < seg.store.size(); ++i) {
    autograd::Variable v = seg.store.var(i);
    v.set_grad_ready_hook([&seg, &fired, i] {
      ++fired[size_t(i)];
      EXPECT_FALSE(seg.store.var(i).grad_released()) << seg.store.info(i).name;
    });
  }
  seg.store.zero_grads();
  flat.store.zero_grads();
  seg.backward(31);
  flat.backward(31);
  for (int i = 0; i < seg.store.size(); ++i) {
    EXPECT_EQ(fired[size_t(i)], 1) << seg.store.info(i).name;
    ASSERT_EQ(flat.store.grad(i).to_vector<float>(), seg.store.grad(i).to_vector<float>()) << seg.store.info(i).name;
  }
}

TEST(ParameterStoreDeathTest, FlatGradientsOfASegmentedStoreAreAnError) {
  Model seg(1024);
  EXPECT_DEATH((void)seg.store.flat_grads(), "segments");
}

}  // namespace
}  // namespace drwkv::models
