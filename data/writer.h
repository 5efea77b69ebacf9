// Writing a dataset: samples are appended one at a time, buffered one shard at a time, and each full
// shard is written as one HDF5 file (docs/DATA.md "Shard file"); finish() writes index.json.
//
// Contract (DATA.md "Shards", "Writer"):
// - The sample count N and every dataset fact are fixed up front (DatasetInfo): shard k holds rows
//   [k·S, min((k+1)·S, N)), so the first shard can be written before the last sample is seen.
// - Each shard is written to NAME.tmp, closed, fsynced, renamed, then the directory is fsynced; the
//   `complete = 1` root attribute is written last inside the file. index.json is published the same
//   way after the last shard. A failed or interrupted pack leaves no index.json, so Dataset::open rejects
//   the directory instead of reading a partial dataset.
// - The output directory must not already hold a dataset (index.json): shards are write-once.
// - Hot datasets are contiguous and unfiltered (so a reader can pread rows); captions are chunked and
//   deflate-compressed (cold path). Every dataset gets an xxh64 checksum of its raw bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data/format.h"
#include "data/manifest.h"

namespace drwkv::data {

// One sample's rows; pointers refer to row_bytes(column) bytes in the dataset's element type.
struct SampleInput {
  const void* x = nullptr;       // [C, H, W]: u8 pixels or f16/bf16 latents (bits as stored)
  const void* x_flip = nullptr;  // [C, H, W]: required when info.has_latent_flip
  int32_t label = -1;            // -1 = none, else [0, num_classes)
  uint64_t sample_id = 0;        // stable id of the sample in its source
  const void* text_emb = nullptr;        // [L, Dq] f16/bf16 bits, required with text
  int64_t text_len = 0;                  // valid tokens, 0..L
  const int32_t* text_tokens = nullptr;  // [L], required when info.has_tokens
  const void* text_pooled = nullptr;     // [Dp], required when pooled_dim > 0
  std::string_view caption;              // UTF-8, stored when info.has_captions
};

class DatasetWriter {
 public:
  // Validates `info`, creates `dir` if needed and refuses a directory that already holds index.json.
  static absl::StatusOr<std::unique_ptr<DatasetWriter>> create(const std::string& dir, DatasetInfo info);
  ~DatasetWriter();

  // Appends the next sample (global index = number of samples added so far); writes a shard when full.
  absl::Status add(const SampleInput& s);
  // Checks that exactly N samples were added, writes index.json; returns the fingerprint.
  absl::StatusOr<std::string> finish();

  const DatasetInfo& info() const { return info_; }
  int64_t added() const { return added_; }

 private:
  DatasetWriter(std::string dir, DatasetInfo info);
  absl::Status flush_shard();

  std::string dir_;
  DatasetInfo info_;
  int64_t added_ = 0;
  std::vector<std::vector<unsigned char>> columns_;  // per Column, the current shard's rows
  std::vector<std::string> captions_;
  std::vector<ShardRecord> records_;
  bool finished_ = false;
};

// Writes one complete shard file for rows [first, first + samples) of the dataset. `columns[c]` holds
// samples × row_bytes(c) bytes for each present column; `captions` holds `samples` strings when the
// dataset has captions. Used by DatasetWriter; exposed for tests that need hand-made (e.g. corrupt)
// shards.
absl::StatusOr<ShardRecord> write_shard(const std::string& dir, const DatasetInfo& info, int64_t shard_index,
                                        const std::vector<std::vector<unsigned char>>& columns,
                                        const std::vector<std::string>& captions);

}  // namespace drwkv::data
