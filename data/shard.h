// One shard file opened for reading (docs/DATA.md "Reading"; DATA.md "Reader: open read-only once per
// process; resolve each contiguous dataset's file offset once; serve rows with pread").
//
// Contract:
// - open() validates the file on its own, without a manifest: root attributes present with the right
//   types, format name/version, `complete` = 1, sample count and first global index consistent with the
//   shard index, every dataset of the layout present with the expected element type and shape, hot
//   datasets contiguous, unfiltered and inside the file. Errors name the file, the dataset or attribute
//   and what was expected.
// - After open() the HDF5 file is closed again; hot rows are read with pread on a plain descriptor, so
//   read_rows() is safe from any number of threads and never takes HDF5's global lock. Captions (cold,
//   compressed) are read through HDF5, one call at a time.
// - Checksums are verified only on request (verify_checksums: reads the whole file).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "data/format.h"

namespace drwkv::data {

class Shard {
 public:
  static absl::StatusOr<std::unique_ptr<Shard>> open(const std::string& path);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  const std::string& path() const { return path_; }
  // Dataset facts as recorded by this shard's attributes and dataset shapes.
  const DatasetInfo& info() const { return info_; }
  int64_t index() const { return index_; }
  int64_t samples() const { return samples_; }
  int64_t first() const { return first_; }
  int64_t file_bytes() const { return file_bytes_; }
  // Dataset path -> checksum (16 hex digits) from the root attributes, in dataset order.
  const std::vector<std::pair<std::string, std::string>>& checksums() const { return checksums_; }
  // Every root attribute rendered as text (for `drwkv_data inspect`).
  const std::vector<std::pair<std::string, std::string>>& attributes() const { return attributes_; }

  // Copies rows [row, row + count) of a hot column into `dst` (count × row_bytes bytes). Thread-safe.
  absl::Status read_rows(Column c, int64_t row, int64_t count, void* dst) const;
  absl::StatusOr<std::string> caption(int64_t row) const;
  // xxh64 of one dataset's bytes as they are in the file.
  absl::StatusOr<std::string> compute_checksum(const std::string& dataset_path) const;
  // Recomputes every dataset's checksum and compares it with the attribute.
  absl::Status verify_checksums() const;

 private:
  Shard() = default;
  absl::Status load(const std::string& path);

  std::string path_;
  int fd_ = -1;
  DatasetInfo info_;
  int64_t index_ = 0, samples_ = 0, first_ = 0, file_bytes_ = 0;
  int64_t offsets_[kNumColumns] = {};  // file offset of each present hot column
  std::vector<uint64_t> caption_offsets_;  // samples + 1 entries when the shard has captions
  std::vector<std::pair<std::string, std::string>> checksums_;
  std::vector<std::pair<std::string, std::string>> attributes_;
  mutable std::mutex h5_mu_;  // cold-path HDF5 reads
};

}  // namespace drwkv::data
