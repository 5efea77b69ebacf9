// drwkv_train under mpirun on the CPU (MPI backend): every rank ends with bit-identical weights, the
// result matches one process with the same global batch (float tolerance: per-rank partial sums are
// averaged in another order), and a run resumed with another number of ranks continues exactly where it
// stopped (same data position, same result as an uninterrupted run within tolerance). ZeRO-1 (sharded
// AdamW moments) gives bitwise the same weights, EMA and optimizer state as replicated AdamW, and its
// checkpoints resume on another number of ranks, with or without sharding.
// usage (ctest): apps_train_dist_test PATH/TO/drwkv_train
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "apps/checkpoint.h"
#include "tests/apps/apps_testing.h"
#include "tests/support/testing.h"

namespace drwkv::apps {
namespace {
namespace fs = std::filesystem;
std::string g_train;

// `extra`: lines appended to the dist section; `grad_clip` < 0 keeps the default.
std::string write_recipe(const std::string& dir, const std::string& data, const std::string& out, int steps,
                         const std::string& extra = "", double grad_clip = -1) {
  std::string path = dir + "/recipe.yaml";
  std::ofstream f(path);
  f << "run:\n  out_dir: " << out << "\n  max_steps: " << steps << "\n  device: cpu\n"
    << "model:\n  depth: 3\n  width: 16\n  patch: 2\n  in_channels: 1\n  image_size: 8\n  num_classes: 4\n"
    << "data:\n  path: " << data << "\n  threads: 1\n"
    << "train:\n  global_batch: 12\n  micro_batch: 2\n"
    << "optimizer:\n  lr: 1.0e-3\n" << (grad_clip >= 0 ? "  grad_clip: " + std::to_string(grad_clip) + "\n" : "")
    << "checkpoint:\n  every_steps: 2\n  resume: auto\n"
    << "log:\n  every_steps: 2\n" << "sample:\n  every_steps: 0\n" << "dist:\n  backend: mpi\n" << extra;
  return path;
}

int run(int ranks, const std::string& recipe, const std::string& log) {
  std::string cmd = ranks == 1 ? g_train + " " + recipe
                               : "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np " +
                                     std::to_string(ranks) + " " + g_train + " " + recipe;
  return std::system((cmd + " > " + log + " 2>&1").c_str());
}

Checkpoint final(const std::string& out, int64_t step) {
  return read_checkpoint(checkpoint_path(out + "/checkpoints", step)).value();
}

void expect_close(const Checkpoint& a, const Checkpoint& b, const char* what) {
  for (size_t i = 0; i < a.groups.at("params").size(); ++i)
    EXPECT_TRUE(drwkv::testing::tensors_close(b.groups.at("params")[i].second, a.groups.at("params")[i].second,
                                             {2e-4, 2e-6}, std::string(what) + " " + a.groups.at("params")[i].first, 0));
}

TEST(TrainDist, RanksAgreeAndMatchOneProcess) {
  std::string dir = testing::temp_dir("dist_train"), data = dir + "/data";
  testing::write_toy_dataset(data, 48, 5);
  std::string one = dir + "/one", two = dir + "/two", three = dir + "/three";
  ASSERT_EQ(run(1, write_recipe(dir, data, one, 6), dir + "/one.log"), 0);
  for (auto [n, out] : {std::pair{2, two}, std::pair{3, three}}) {
    std::string log = dir + "/np" + std::to_string(n) + ".log";
    ASSERT_EQ(run(n, write_recipe(dir, data, out, 6), log), 0) << "see " << log;
    std::ifstream f(log);
    std::string text((std::istreambuf_iterator<char>(f)), {});
    EXPECT_NE(text.find("weights are bit-identical on all " + std::to_string(n) + " ranks"), std::string::npos) << log;
    expect_close(final(one, 6), final(out, 6), ("np" + std::to_string(n)).c_str());
  }
}

TEST(TrainDist, ResumeWithAnotherNumberOfRanks) {
  std::string dir = testing::temp_dir("dist_resume"), data = dir + "/data";
  testing::write_toy_dataset(data, 48, 6);
  std::string straight = dir + "/straight", switched = dir + "/switched";
  ASSERT_EQ(run(1, write_recipe(dir, data, straight, 6), dir + "/straight.log"), 0);
  ASSERT_EQ(run(2, write_recipe(dir, data, switched, 3), dir + "/first.log"), 0);   // 3 steps on 2 ranks
  ASSERT_EQ(run(3, write_recipe(dir, data, switched, 6), dir + "/second.log"), 0);  // resume auto on 3 ranks
  Checkpoint a = final(straight, 6), b = final(switched, 6);
  EXPECT_EQ(a.meta.resume_state, b.meta.resume_state) << "the data position must not depend on the ranks";
  expect_close(a, b, "resumed on 3 ranks");
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// Sharding the optimizer changes where each element's AdamW update runs, not its inputs: the MPI
// backend's reduce-scatter sums each element in rank order exactly as its all-reduce does, so with
// clipping off (the sharded norm is summed in another order) everything must agree bit for bit.
TEST(TrainDist, Zero1MatchesReplicatedOptimizerBitwise) {
  std::string dir = testing::temp_dir("dist_zero1"), data = dir + "/data";
  testing::write_toy_dataset(data, 48, 7);
  for (int n : {2, 3}) {
    std::string plain = dir + "/plain" + std::to_string(n), sharded = dir + "/zero" + std::to_string(n);
    std::string log = dir + "/zero" + std::to_string(n) + ".log";
    ASSERT_EQ(run(n, write_recipe(dir, data, plain, 4, "", 0), plain + ".log"), 0) << "see " << plain << ".log";
    ASSERT_EQ(run(n, write_recipe(dir, data, sharded, 4, "  zero1: true\n", 0), log), 0) << "see " << log;
    std::string text = read_text(log);
    EXPECT_NE(text.find("ZeRO-1 over " + std::to_string(n) + " ranks: AdamW moments"), std::string::npos) << log;
    EXPECT_NE(text.find("weights are bit-identical on all " + std::to_string(n) + " ranks"), std::string::npos) << log;
    Checkpoint a = final(plain, 4), b = final(sharded, 4);
    for (const char* group : {"params", "ema", "optimizer/m", "optimizer/v"}) {
      ASSERT_EQ(a.groups.at(group).size(), b.groups.at(group).size()) << group;
      for (size_t i = 0; i < a.groups.at(group).size(); ++i)
        EXPECT_TRUE(drwkv::testing::tensors_close(b.groups.at(group)[i].second, a.groups.at(group)[i].second, {0, 0},
                                                 "np" + std::to_string(n) + " " + group + " " + a.groups.at(group)[i].first, 0));
    }
  }
}

TEST(TrainDist, Zero1CheckpointResumesOnAnotherNumberOfRanks) {
  std::string dir = testing::temp_dir("dist_zero1_resume"), data = dir + "/data";
  testing::write_toy_dataset(data, 48, 8);
  std::string straight = dir + "/straight", switched = dir + "/switched";
  ASSERT_EQ(run(1, write_recipe(dir, data, straight, 6), dir + "/straight.log"), 0);
  ASSERT_EQ(run(2, write_recipe(dir, data, switched, 3, "  zero1: true\n"), dir + "/first.log"), 0);
  ASSERT_EQ(run(3, write_recipe(dir, data, switched, 6, "  zero1: true\n"), dir + "/second.log"), 0)
      << "see " << dir << "/second.log";
  EXPECT_NE(read_text(dir + "/second.log").find("resumed from"), std::string::npos);
  Checkpoint a = final(straight, 6), b = final(switched, 6);
  EXPECT_EQ(a.meta.resume_state, b.meta.resume_state);
  expect_close(a, b, "ZeRO-1, 2 ranks then 3");
}

}  // namespace
}  // namespace drwkv::apps

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PATH/TO/drwkv_train\n", argv[0]);
    return 2;
  }
  drwkv::apps::g_train = argv[1];
  return RUN_ALL_TESTS();
}
