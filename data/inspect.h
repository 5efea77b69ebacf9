// `drwkv_data inspect`: a report on a packed dataset directory or a single shard file — layout, facts,
// shards, root attributes, per-channel statistics of the stored values over an evenly spaced sample,
// label histogram over all samples, checksum status (docs/DATA.md "Inspecting").
//
// Contract: opening is the full validation of Dataset::open / Shard::open; with `verify` every checksum
// is recomputed and a mismatch is an error (the caller exits non-zero). Statistics are computed on the
// stored values (u8 pixels 0..255, latents as stored), in f64.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/json.h"

namespace drwkv::data {

struct InspectOptions {
  bool verify = false;
  int64_t stats_samples = 1024;  // rows used for the per-channel statistics
};

// The report as a JSON object; render_inspect() turns it into text.
absl::StatusOr<Json> inspect(const std::string& path, const InspectOptions& options);
std::string render_inspect(const Json& report);

}  // namespace drwkv::data
