// A packed dataset opened for training or inspection: the manifest (index.json) validated against every
// shard file (docs/DATA.md "Opening a dataset").
//
// Contract: open() fails with a Status naming the file and what was expected when the manifest is
// missing or malformed, a listed shard is missing, its size differs from the manifest (truncated or
// rewritten), it is incomplete (complete != 1), its attributes, shapes or dtypes disagree with the
// manifest, or a checksum recorded in the shard differs from the manifest's. With
// OpenOptions::verify_checksums every dataset's bytes are re-hashed (slow path: `inspect --verify`).
// After a successful open, reads are thread-safe (pread, see data/shard.h). The fingerprint is the
// xxh64 of index.json's bytes (16 hex digits); checkpoints record it and the loader checks it on resume.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/format.h"
#include "data/manifest.h"
#include "data/shard.h"

namespace drwkv::data {

struct OpenOptions {
  bool verify_checksums = false;
};

class Dataset {
 public:
  static absl::StatusOr<Dataset> open(const std::string& dir, const OpenOptions& options = {});
  Dataset(Dataset&&) noexcept;
  Dataset& operator=(Dataset&&) noexcept;
  ~Dataset();

  const std::string& dir() const { return dir_; }
  const DatasetInfo& info() const { return manifest_.info; }
  const Manifest& manifest() const { return manifest_; }
  const std::string& fingerprint() const { return fingerprint_; }
  int64_t size() const { return manifest_.info.num_samples; }
  int64_t num_shards() const { return int64_t(shards_.size()); }
  const Shard& shard(int64_t k) const { return *shards_.at(size_t(k)); }

  // One row of a hot column of global sample g into dst (row_bytes(c) bytes). Thread-safe.
  absl::Status read(Column c, int64_t g, void* dst) const;
  absl::StatusOr<std::string> caption(int64_t g) const;
  // Re-hashes every dataset of every shard (what OpenOptions::verify_checksums does at open).
  absl::Status verify_checksums() const;

 private:
  Dataset() = default;
  std::string dir_;
  Manifest manifest_;
  std::string fingerprint_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace drwkv::data
