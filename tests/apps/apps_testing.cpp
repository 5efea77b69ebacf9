// Helpers for the apps tests (tests/apps/apps_testing.h).
#include "tests/apps/apps_testing.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include "core/philox.h"
#include "core/status.h"
#include "data/writer.h"

namespace drwkv::apps::testing {
namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("drwkv_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string write_toy_dataset(const std::string& dir, int64_t n, uint64_t seed, bool with_nan_latents) {
  data::DatasetInfo info;
  info.kind = with_nan_latents ? data::SampleKind::Latent : data::SampleKind::Image;
  info.x_elem = with_nan_latents ? data::Elem::F16 : data::Elem::U8;
  info.channels = 1;
  info.height = info.width = 8;
  info.num_samples = n;
  info.num_classes = 4;
  info.shard_size = 16;
  info.normalisation = with_nan_latents ? data::kLatentNormalisation : data::kPixelNormalisation;
  auto writer = value_or_die(data::DatasetWriter::create(dir, info));
  for (int64_t g = 0; g < n; ++g) {
    int32_t label = int32_t(g % 4);
    std::vector<uint8_t> px(64);
    std::vector<uint16_t> lat(64);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        bool in = (y / 4) * 2 + (x / 4) == label;
        float u = philox::uniform_at(seed, uint64_t(g), 0, uint64_t(y * 8 + x));
        px[size_t(y * 8 + x)] = uint8_t(std::lround((in ? 200.0f : 30.0f) + 40.0f * u));
        float lv = with_nan_latents && g % 2 == 0 ? std::numeric_limits<float>::quiet_NaN() : (in ? 1.0f : -1.0f) + u;
        lat[size_t(y * 8 + x)] = f16::from_float(lv);
      }
    data::SampleInput s;
    s.x = with_nan_latents ? static_cast<const void*>(lat.data()) : static_cast<const void*>(px.data());
    s.label = label;
    s.sample_id = uint64_t(g);
    ok_or_die(writer->add(s));
  }
  return value_or_die(writer->finish());
}

Recipe toy_recipe(const std::string& data_dir, const std::string& out_dir) {
  std::string yaml = "run:\n  out_dir: " + out_dir + "\n  max_steps: 8\n  device: cpu\n" +
                     "model:\n  depth: 3\n  width: 16\n  patch: 2\n  in_channels: 1\n  image_size: 8\n  num_classes: 4\n" +
                     "data:\n  path: " + data_dir + "\n  threads: 2\n" +
                     "train:\n  global_batch: 8\n  micro_batch: 8\n" +
                     "optimizer:\n  lr: 1.0e-3\n" +
                     "checkpoint:\n  every_steps: 4\n" + "log:\n  every_steps: 2\n" + "sample:\n  every_steps: 0\n";
  return value_or_die(parse_recipe(yaml, "toy.yaml"));
}

}  // namespace drwkv::apps::testing
