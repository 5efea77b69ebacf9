// Packers: turn source data into a drwkv dataset directory (docs/DATA.md "Packing").
//
// - pack_fmnist: Debian's Fashion-MNIST (gzip IDX, 28×28 u8, 10 classes) -> image dataset [1, P, P],
//   zero-padded and centred to P×P (P = 32 by default; P = 28 keeps the original size).
// - pack_npy: precomputed latents from .npy (one [N, C, h, w] file or a directory of [C, h, w] files,
//   sorted by name; f16/f32/f64) with optional labels [N], latent_flip and source ids -> latent dataset
//   stored f16 (default) or bf16. f16 input stored as f16 is copied bit for bit; other inputs are rounded
//   to nearest even. The latents are stored as given: the scale factor is recorded, not applied.
// - pack_text: a packed dataset + text embeddings [N, L, Dq] (+ lengths [N], optional tokens [N, L],
//   pooled [N, Dp], captions one per line) -> a new dataset with the text attached (shards are
//   write-once, so the result goes to a new directory and gets a new fingerprint).
// Every input is validated up front (shapes, counts, ranges) with messages naming the file.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/h5.h"

namespace drwkv::data {

// Samples per shard aiming at ~256 MiB shards: clamp(256 MiB / bytes_per_sample, 1024, 65536),
// rounded down to a multiple of 1024.
int64_t default_shard_size(int64_t bytes_per_sample);

struct FmnistOptions {
  std::string input = "/usr/share/datasets/fashion-mnist";
  std::string split = "train";  // train | test
  std::string out;
  int pad = 32;                 // output side (>= 28)
  int64_t shard_size = 0;       // 0 = default_shard_size
};
// Returns the dataset fingerprint.
absl::StatusOr<std::string> pack_fmnist(const FmnistOptions& o);

struct NpyPackOptions {
  std::string latents;      // file [N, C, h, w] or directory of [C, h, w] files
  std::string labels;       // optional .npy [N] of integers (-1 = none)
  std::string latent_flip;  // optional, same form as `latents`
  std::string ids;          // optional .npy [N] of non-negative integers (source ids; default: g)
  std::string out;
  Elem dtype = Elem::F16;   // F16 or BF16
  double scale_factor = 0.18215;
  std::string encoder = "unspecified";
  int64_t num_classes = -1;  // -1: max(label) + 1 (0 without labels)
  int64_t shard_size = 0;
  std::string source;
};
absl::StatusOr<std::string> pack_npy(const NpyPackOptions& o);

struct TextPackOptions {
  std::string dataset;   // packed input dataset directory
  std::string emb;       // .npy [N, L, Dq] f16/f32
  std::string len;       // .npy [N] integers in [0, L]
  std::string tokens;    // optional .npy [N, L] integers (i32 range)
  std::string pooled;    // optional .npy [N, Dp] f16/f32
  std::string captions;  // optional UTF-8 text file, N lines
  std::string out;
  Elem dtype = Elem::F16;
  std::string encoder = "unspecified";
  std::string prefix;    // e.g. "<|endoftext|>" when the extraction prepended it (MODEL.md §4.5 #5)
};
absl::StatusOr<std::string> pack_text(const TextPackOptions& o);

}  // namespace drwkv::data
