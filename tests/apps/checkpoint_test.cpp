// Checkpoint files: round trip, atomic publication with keep-last-N and `latest`, and the documented
// errors for corrupted, truncated and interrupted files; resume falls back past a bad newest file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "apps/checkpoint.h"
#include "tests/apps/apps_testing.h"
#include "tests/support/testing.h"

namespace drwkv::apps {
namespace {
namespace fs = std::filesystem;

Checkpoint make(int64_t step, uint64_t seed) {
  Checkpoint c;
  c.meta.step = step;
  c.meta.seed = 0xFEDCBA9876543210ull;  // above 2^63: stored without a signed wrap
  c.meta.resume_state = R"({"step":3})";
  c.meta.dataset_fingerprint = "0123456789abcdef";
  c.meta.recipe_yaml = "run:\n  name: \"x\"\n";
  c.meta.model_name = "DRWKV-test";
  c.meta.parameter_count = 21;
  for (const char* g : {"params", "ema", "optimizer/m", "optimizer/v"}) {
    c.groups[g].emplace_back("blocks.0.att.key.weight", drwkv::testing::random_normal(Shape{3, 5}, DType::F32, Device::cpu(), seed));
    c.groups[g].emplace_back("pos_embed", drwkv::testing::random_normal(Shape{6}, DType::F32, Device::cpu(), seed + 1));
  }
  return c;
}

// Flips one byte of the file at `offset` from the end.
void corrupt(const std::string& path, int64_t offset_from_end) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-offset_from_end, std::ios::end);
  char b = 0;
  f.read(&b, 1);
  f.seekp(-offset_from_end, std::ios::end);
  b = char(b ^ 0x5A);
  f.write(&b, 1);
}

TEST(Checkpoint, RoundTrip) {
  std::string dir = testing::temp_dir("ckpt_roundtrip");
  Checkpoint c = make(12, 1);
  std::string path = dir + "/a.h5";
  ASSERT_TRUE(write_checkpoint(path, c).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  std::vector<TensorReport> reports;
  Checkpoint r = read_checkpoint(path, true, &reports).value();
  EXPECT_EQ(r.meta.step, 12);
  EXPECT_EQ(r.meta.seed, 0xFEDCBA9876543210ull);
  EXPECT_EQ(r.meta.resume_state, c.meta.resume_state);
  EXPECT_EQ(r.meta.recipe_yaml, c.meta.recipe_yaml);
  EXPECT_FALSE(r.meta.code_version.empty());
  ASSERT_EQ(r.groups["ema"].size(), 2u);
  for (const char* g : {"params", "ema", "optimizer/m", "optimizer/v"})
    for (size_t i = 0; i < 2; ++i) {
      const auto& [name, t] = c.groups[g][i];
      bool found = false;
      for (const auto& [n2, t2] : r.groups[g])
        if (n2 == name) {
          found = true;
          EXPECT_EQ(t2.to_vector<float>(), t.to_vector<float>()) << g << "/" << name;
        }
      EXPECT_TRUE(found) << name;
    }
  EXPECT_EQ(reports.size(), 8u);
  for (const TensorReport& rep : reports) EXPECT_TRUE(rep.checksum_ok);
}

TEST(Checkpoint, CorruptedTruncatedAndInterruptedFilesAreRejected) {
  std::string dir = testing::temp_dir("ckpt_bad");
  std::string path = dir + "/c.h5";
  ASSERT_TRUE(write_checkpoint(path, make(5, 2)).ok());
  // a byte inside a tensor's data: find the tensor's bytes in the file, flip one, the checksum names it
  std::string data_path = dir + "/d.h5";
  fs::copy_file(path, data_path);
  uintmax_t size = fs::file_size(data_path);
  {
    Tensor t = make(5, 2).groups["ema"][0].second;  // the same values as written
    std::ifstream in(data_path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    size_t at = bytes.find(std::string(static_cast<const char*>(t.data()), t.nbytes()));
    ASSERT_NE(at, std::string::npos) << "tensor bytes not found in the file";
    corrupt(data_path, int64_t(size - at - 3));
  }
  absl::StatusOr<Checkpoint> bad = read_checkpoint(data_path, true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("blocks.0.att.key.weight fails its checksum"), std::string::npos)
      << bad.status().message();
  // truncated
  std::string trunc = dir + "/t.h5";
  fs::copy_file(path, trunc);
  fs::resize_file(trunc, size / 2);
  absl::StatusOr<Checkpoint> t = read_checkpoint(trunc, true);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(std::string(t.status().message()).find(trunc), std::string::npos) << t.status().message();
  // missing file
  EXPECT_EQ(read_checkpoint(dir + "/nope.h5").status().code(), absl::StatusCode::kNotFound);
  // not a checkpoint
  std::ofstream(dir + "/x.h5") << "hello";
  EXPECT_FALSE(read_checkpoint(dir + "/x.h5").ok());
}

TEST(Checkpoint, KeepLastLatestAndResumeFallback) {
  std::string dir = testing::temp_dir("ckpt_keep");
  for (int64_t s : {10, 20, 30, 40}) ASSERT_TRUE(save_checkpoint(dir, make(s, uint64_t(s)), 2).ok());
  EXPECT_FALSE(fs::exists(checkpoint_path(dir, 10)));
  EXPECT_FALSE(fs::exists(checkpoint_path(dir, 20)));
  EXPECT_TRUE(fs::exists(checkpoint_path(dir, 30)));
  std::ifstream latest(dir + "/latest");
  std::string name;
  std::getline(latest, name);
  EXPECT_EQ(name, "ckpt-00000040.h5");
  EXPECT_EQ(find_resume_checkpoint(dir).value(), checkpoint_path(dir, 40));
  // the newest file is damaged: resume takes the previous one and says why
  fs::resize_file(checkpoint_path(dir, 40), 100);
  std::vector<std::string> skipped;
  EXPECT_EQ(find_resume_checkpoint(dir, &skipped).value(), checkpoint_path(dir, 30));
  EXPECT_FALSE(skipped.empty());
  // a leftover .tmp from a crash is ignored
  std::ofstream(checkpoint_path(dir, 50) + ".tmp") << "partial";
  EXPECT_EQ(find_resume_checkpoint(dir).value(), checkpoint_path(dir, 30));
  EXPECT_EQ(find_resume_checkpoint(testing::temp_dir("ckpt_empty")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace drwkv::apps
