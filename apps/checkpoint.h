// Checkpoints: one HDF5 file per checkpoint holding model weights, EMA weights, optimizer state, the
// step, the data position, the resolved recipe, the dataset fingerprint and the code version, with an
// xxh64 checksum per tensor that is verified on load. The format is documented in docs/CHECKPOINT.md.
//
// Writing is atomic: NAME.tmp is written, flushed, fsynced, renamed to NAME and the directory fsynced,
// so a crash at any moment leaves the previous checkpoint intact; a `latest` pointer file is replaced
// the same way; keep-last-N prunes older files. `resume auto` takes the newest checkpoint that verifies.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace drwkv::apps {

struct CheckpointMeta {
  int64_t step = 0;                // optimizer steps taken
  int64_t nonfinite_streak = 0;    // consecutive skipped steps at save time
  uint64_t seed = 0;
  std::string resume_state;        // the data loader position (JSON)
  std::string dataset_fingerprint;
  std::string recipe_yaml;         // resolved recipe
  std::string model_name;
  std::string code_version;
  std::string created;             // local time of writing
  int64_t world_size = 1;
  int64_t parameter_count = 0;
};

// Tensor groups: "params", "ema", "optimizer/m", "optimizer/v"; each maps names to host f32 tensors.
using TensorGroup = std::vector<std::pair<std::string, Tensor>>;

struct Checkpoint {
  CheckpointMeta meta;
  std::map<std::string, TensorGroup> groups;
};

inline constexpr const char* kCheckpointFormat = "drwkv-checkpoint";
inline constexpr int kCheckpointVersion = 1;

// Writes `ckpt` to `path` atomically (see above).
absl::Status write_checkpoint(const std::string& path, const Checkpoint& ckpt);

struct TensorReport {
  std::string group, name;
  Shape shape;
  std::string dtype;
  int64_t bytes = 0;
  double min = 0, max = 0, mean = 0, std = 0;
  bool checksum_ok = false;
};

// Reads a checkpoint; with `verify` every checksum and the structure are checked (an error names the
// file and the tensor). `load_tensors = false` reads only the metadata and the per-tensor reports.
absl::StatusOr<Checkpoint> read_checkpoint(const std::string& path, bool verify = true,
                                           std::vector<TensorReport>* reports = nullptr, bool load_tensors = true);

// Checkpoint management in a run directory: checkpoints are <dir>/ckpt-<step, 8 digits>.h5 and
// <dir>/latest names the newest one.
std::string checkpoint_path(const std::string& dir, int64_t step);
// Writes the checkpoint for `step`, updates `latest` and keeps the newest `keep_last` checkpoints.
absl::Status save_checkpoint(const std::string& dir, const Checkpoint& ckpt, int64_t keep_last);
// The newest checkpoint in `dir` that verifies (following `latest` first); NotFound if there is none.
absl::StatusOr<std::string> find_resume_checkpoint(const std::string& dir, std::vector<std::string>* skipped = nullptr);

// The code version compiled into this build (git describe, or "unknown").
std::string code_version();

}  // namespace drwkv::apps
