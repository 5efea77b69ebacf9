// End-to-end training on the CPU with real shards and checkpoints: exact resume, gradient accumulation
// equivalence, the stop after consecutive non-finite steps, and a falling loss on Fashion-MNIST.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "apps/checkpoint.h"
#include "apps/trainer.h"
#include "data/json.h"
#include "data/pack.h"
#include "tests/apps/apps_testing.h"
#include "tests/support/testing.h"

namespace drwkv::apps {
namespace {
namespace fs = std::filesystem;

const TensorGroup& group(const Checkpoint& c, const char* g) { return c.groups.at(g); }

void expect_bitwise_equal(const Checkpoint& a, const Checkpoint& b) {
  for (const char* g : {"params", "ema", "optimizer/m", "optimizer/v"}) {
    ASSERT_EQ(group(a, g).size(), group(b, g).size());
    for (size_t i = 0; i < group(a, g).size(); ++i)
      ASSERT_EQ(group(a, g)[i].second.to_vector<float>(), group(b, g)[i].second.to_vector<float>())
          << g << "/" << group(a, g)[i].first;
  }
  EXPECT_EQ(a.meta.resume_state, b.meta.resume_state);
}

TEST(TrainE2E, ResumeContinuesBitForBit) {
  std::string data = testing::temp_dir("e2e_resume_data");
  testing::write_toy_dataset(data, 40, 1);
  // 8 steps straight
  Recipe straight = testing::toy_recipe(data, testing::temp_dir("e2e_straight"));
  ASSERT_TRUE(train(straight).ok());
  // 4 steps, stop, resume automatically for the next 4
  Recipe half = testing::toy_recipe(data, testing::temp_dir("e2e_half"));
  half.run.max_steps = 4;
  ASSERT_TRUE(train(half).ok());
  half.run.max_steps = 8;
  half.checkpoint.resume = "auto";
  TrainSummary s = train(half).value();
  EXPECT_EQ(s.steps, 8);
  Checkpoint a = read_checkpoint(checkpoint_path(straight.run.out_dir + "/checkpoints", 8)).value();
  Checkpoint b = read_checkpoint(checkpoint_path(half.run.out_dir + "/checkpoints", 8)).value();
  expect_bitwise_equal(a, b);
}

TEST(TrainE2E, GradientAccumulationMatchesOneBigBatch) {
  std::string data = testing::temp_dir("e2e_accum_data");
  testing::write_toy_dataset(data, 24, 2);
  Recipe big = testing::toy_recipe(data, testing::temp_dir("e2e_big"));
  big.run.max_steps = 1;
  Recipe small = testing::toy_recipe(data, testing::temp_dir("e2e_small"));
  small.run.max_steps = 1;
  small.train.micro_batch = 1;  // 8 micro-batches of 1
  ASSERT_TRUE(train(big).ok());
  ASSERT_TRUE(train(small).ok());
  Checkpoint a = read_checkpoint(checkpoint_path(big.run.out_dir + "/checkpoints", 1)).value();
  Checkpoint b = read_checkpoint(checkpoint_path(small.run.out_dir + "/checkpoints", 1)).value();
  for (size_t i = 0; i < group(a, "params").size(); ++i)
    EXPECT_TRUE(drwkv::testing::tensors_close(group(b, "params")[i].second, group(a, "params")[i].second, {1e-5, 1e-7},
                                             group(a, "params")[i].first, 2));
  // and the step really moved the weights: at initialisation only the zero-initialised output head has a
  // gradient (adaLN-Zero), so its second moment must be non-zero
  bool moved = false;
  for (const auto& [name, t] : group(a, "optimizer/v"))
    if (name == "final_layer.linear.weight")
      for (float v : t.to_vector<float>()) moved = moved || v > 0;
  EXPECT_TRUE(moved);
}

TEST(TrainE2E, NonFiniteStepsAreSkippedThenTheRunStops) {
  std::string data = testing::temp_dir("e2e_nan_data");
  testing::write_toy_dataset(data, 16, 3, /*with_nan_latents=*/true);
  Recipe r = testing::toy_recipe(data, testing::temp_dir("e2e_nan"));
  r.optimizer.max_nonfinite_steps = 3;
  absl::StatusOr<TrainSummary> s = train(r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("3 consecutive steps had non-finite"), std::string::npos)
      << s.status().message();
}

TEST(TrainE2E, LossFallsOnFashionMnist) {
  const std::string src = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(src + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  std::string data = testing::temp_dir("e2e_fmnist_data");
  data::FmnistOptions po;
  po.input = src;
  po.split = "test";
  po.out = data;
  ASSERT_TRUE(data::pack_fmnist(po).ok());
  std::string yaml = "run:\n  out_dir: " + testing::temp_dir("e2e_fmnist") + "\n  max_steps: 120\n  device: cpu\n" +
                     "model:\n  depth: 3\n  width: 32\n  patch: 4\n  in_channels: 1\n  image_size: 32\n  num_classes: 10\n" +
                     "data:\n  path: " + data + "\n" + "train:\n  global_batch: 32\n  micro_batch: 32\n" +
                     "optimizer:\n  lr: 1.0e-3\n" + "checkpoint:\n  every_steps: 0\n" + "log:\n  every_steps: 20\n" +
                     "sample:\n  every_steps: 0\n";
  Recipe r = parse_recipe(yaml, "fmnist_e2e.yaml").value();
  ASSERT_TRUE(train(r).ok());
  std::ifstream metrics(r.run.out_dir + "/metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(metrics, line);) {
    data::Json j = data::Json::parse(line, "metrics").value();
    losses.push_back(j.find("mse")->as_double());
  }
  ASSERT_GE(losses.size(), 5u);
  EXPECT_LT(losses.back(), 0.7 * losses.front()) << "first interval " << losses.front() << ", last " << losses.back();
}

}  // namespace
}  // namespace drwkv::apps
