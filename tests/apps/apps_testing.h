// Helpers for the apps tests: temporary directories, small synthetic datasets written through the real
// data writer, and a recipe for a tiny model.
#pragma once

#include <cstdint>
#include <string>

#include "apps/recipe.h"

namespace drwkv::apps::testing {

// A fresh directory under the system temp dir (removed by the caller or left for inspection).
std::string temp_dir(const std::string& name);
// `n` 8×8 single-channel u8 images of 4 classes: class c has a bright square in quadrant c plus noise.
std::string write_toy_dataset(const std::string& dir, int64_t n, uint64_t seed, bool with_nan_latents = false);
// A recipe for a tiny CPU model on the toy dataset (depth 3, width 16, patch 2), constant lr.
Recipe toy_recipe(const std::string& data_dir, const std::string& out_dir);

}  // namespace drwkv::apps::testing
