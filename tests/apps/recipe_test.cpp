// Recipe parsing: defaults, types, ranges, unknown keys, line numbers, --set overrides, round trip.
#include <gtest/gtest.h>

#include <filesystem>

#include "apps/model_setup.h"
#include "apps/recipe.h"
#include "models/drwkv.h"

namespace drwkv::apps {
namespace {

const char* kGood = R"(run:
  name: demo
  max_steps: 100
model:
  config: custom
  depth: 3
  width: 64
  in_channels: 1
  num_classes: 10
data:
  path: /tmp/ds
train:
  global_batch: 32
  micro_batch: 8
optimizer:
  lr: 2.0e-4
sample:
  labels: [0, 1, 2]
)";

testing::AssertionResult fails_with(const std::string& yaml, const std::string& needle,
                                    const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<Recipe> r = parse_recipe(yaml, "x.yaml", overrides);
  if (r.ok()) return testing::AssertionFailure() << "parsed, expected an error containing: " << needle;
  std::string msg(r.status().message());
  if (msg.find(needle) == std::string::npos)
    return testing::AssertionFailure() << "message '" << msg << "' lacks '" << needle << "'";
  return testing::AssertionSuccess();
}

TEST(Recipe, ParsesValuesAndKeepsDefaults) {
  Recipe r = parse_recipe(kGood, "x.yaml").value();
  EXPECT_EQ(r.run.name, "demo");
  EXPECT_EQ(r.run.max_steps, 100);
  EXPECT_EQ(r.model.width, 64);
  EXPECT_DOUBLE_EQ(r.optimizer.lr, 2e-4);
  EXPECT_DOUBLE_EQ(r.ema.decay, 0.9999);  // default
  EXPECT_EQ(r.sample.labels, (std::vector<int64_t>{0, 1, 2}));
}

TEST(Recipe, ErrorsNameFileLineAndKey) {
  EXPECT_TRUE(fails_with("run:\n  nmae: x\ndata:\n  path: p\n", "x.yaml:2: unknown key 'run.nmae'"));
  EXPECT_TRUE(fails_with("run:\n  name: x\nmodle:\n  depth: 3\n", "x.yaml:3: unknown section 'modle'"));
  EXPECT_TRUE(fails_with("data:\n  path: p\ntrain:\n  global_batch: abc\n", "x.yaml:4: key 'train.global_batch' must be an integer, got 'abc'"));
  EXPECT_TRUE(fails_with("data:\n  path: p\ntrain:\n  global_batch: 2.5\n", "must be an integer"));
  EXPECT_TRUE(fails_with("data:\n  path: p\nema:\n  decay: 1.5\n", "x.yaml:4: key 'ema.decay' = 1.5 is outside [0, 1]"));
  EXPECT_TRUE(fails_with("data:\n  path: p\nmodel:\n  bi_wkv: fast\n", "is not one of: exact, official_compat"));
  EXPECT_TRUE(fails_with("data:\n  path: p\nsample:\n  labels: 3\n", "must be a list of integers"));
  EXPECT_TRUE(fails_with("data: [\n", "YAML syntax error"));
  EXPECT_TRUE(fails_with("run:\n  name: x\n", "data.path is required"));
  EXPECT_TRUE(fails_with("data:\n  path: p\ntrain:\n  global_batch: 10\n  micro_batch: 4\n", "multiple of train.micro_batch"));
}

TEST(Recipe, CheckpointBlocksAreCheckedAgainstTheModel) {
  Recipe r = parse_recipe(kGood, "x.yaml", {"model.checkpoint_blocks=2"}).value();
  EXPECT_EQ(r.model.checkpoint_blocks, 2);
  EXPECT_TRUE(build_model(r, Device::cpu(), DType::F32).ok());
  // depth 3: 2·⌊3/2⌋ + 1 = 3 blocks
  Recipe too_many = parse_recipe(kGood, "x.yaml", {"model.checkpoint_blocks=4"}).value();
  absl::StatusOr<ModelBundle> b = build_model(too_many, Device::cpu(), DType::F32);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(std::string(b.status().message()).find("model.checkpoint_blocks = 4, but"), std::string::npos)
      << b.status();
  EXPECT_TRUE(fails_with(kGood, "are both set", {"model.checkpoint_blocks=1", "model.activation_checkpointing=true"}));
  EXPECT_TRUE(fails_with(kGood, "key 'model.checkpoint_blocks' = -1 is outside", {"model.checkpoint_blocks=-1"}));
}

TEST(Recipe, RecomputeElementwiseIsABoolean) {
  EXPECT_FALSE(parse_recipe(kGood, "x.yaml").value().model.recompute_elementwise);
  Recipe r = parse_recipe(kGood, "x.yaml", {"model.recompute_elementwise=true", "model.checkpoint_blocks=1"}).value();
  EXPECT_TRUE(r.model.recompute_elementwise);
  absl::StatusOr<ModelBundle> b = build_model(r, Device::cpu(), DType::F32);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->model->recompute_elementwise());
  EXPECT_TRUE(b->model->checkpointed(b->config.num_blocks() - 1));  // one block: the last
  EXPECT_TRUE(fails_with(kGood, "model.recompute_elementwise", {"model.recompute_elementwise=some"}));
}

TEST(Recipe, OverridesApplyWithTheSameChecks) {
  Recipe r = parse_recipe(kGood, "x.yaml", {"optimizer.lr=3e-4", "model.depth=7", "sample.labels=[4,5]", "run.name=other"}).value();
  EXPECT_DOUBLE_EQ(r.optimizer.lr, 3e-4);
  EXPECT_EQ(r.model.depth, 7);
  EXPECT_EQ(r.sample.labels, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(r.run.name, "other");
  EXPECT_TRUE(fails_with(kGood, "unknown key 'optimizer.learning_rate'", {"optimizer.learning_rate=1"}));
  EXPECT_TRUE(fails_with(kGood, "expected key=value", {"optimizer.lr"}));
  EXPECT_TRUE(fails_with(kGood, "--set model.depth=0: key 'model.depth' = 0 is outside", {"model.depth=0"}));
}

TEST(Recipe, ResolvedYamlRoundTrips) {
  Recipe r = parse_recipe(kGood, "x.yaml").value();
  std::string y = to_yaml(r);
  Recipe again = parse_recipe(y, "resolved").value();
  EXPECT_EQ(to_yaml(again), y);
  EXPECT_DOUBLE_EQ(again.optimizer.lr, 2e-4);
  EXPECT_NE(y.find("max_nonfinite_steps"), std::string::npos) << "defaults must be printed too";
}

// Every recipe we ship parses, validates and names a model that can be configured.
TEST(ShippedRecipes, EveryRecipeLoadsAndDescribesAModel) {
  namespace fs = std::filesystem;
  int seen = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(fs::path(DRWKV_SOURCE_DIR) / "recipes")) {
    if (e.path().extension() != ".yaml") continue;
    ++seen;
    absl::StatusOr<Recipe> r = load_recipe(e.path().string());
    ASSERT_TRUE(r.ok()) << r.status();
    absl::StatusOr<models::DrwkvConfig> c = model_config(*r);
    ASSERT_TRUE(c.ok()) << e.path() << ": " << c.status();
    EXPECT_GT(models::drwkv_parameter_count(*c), 0) << e.path();
    EXPECT_EQ(r->train.global_batch % r->train.micro_batch, 0) << e.path();
  }
  EXPECT_GE(seen, 4) << "recipes/ should hold the demo and the ImageNet recipes";
}

}  // namespace
}  // namespace drwkv::apps
