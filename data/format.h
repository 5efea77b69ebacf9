// The drwkv dataset format, version 1 (docs/DATA.md): names, dataset-level facts, and the mapping of a
// global sample index to its shard and row.
//
// A dataset is a directory: shard files `shard-KKKKK-of-NNNNN.h5` (one HDF5 file each, write-once) and
// `index.json` (the manifest; its xxh64 is the dataset fingerprint). Every shard holds S samples except
// the last; global sample g lives in shard g / S, row g % S (DATA.md "Shards": no lookup table).
// DatasetInfo is the set of facts the manifest and every shard's root attributes agree on; a reader
// rebuilds it from each shard and compares it with the manifest's copy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/h5.h"

namespace drwkv::data {

inline constexpr const char* kShardFormat = "drwkv-shard";
inline constexpr const char* kManifestFormat = "drwkv-dataset";
inline constexpr int64_t kFormatVersion = 1;
inline constexpr const char* kManifestFile = "index.json";
inline constexpr const char* kWriterName = "drwkv_data";
inline constexpr const char* kWriterVersion = "0.1.0";
inline constexpr const char* kPixelNormalisation = "pixels: x/127.5 - 1";
inline constexpr const char* kLatentNormalisation = "latents: used as stored (already scaled by latent_scale_factor)";

enum class SampleKind : uint8_t { Image, Latent };
const char* sample_kind_name(SampleKind k);  // "image" / "latent"

// The per-row columns of a shard, in file order. X is `image` or `latent` depending on the kind.
enum class Column : uint8_t { X, XFlip, Label, SampleId, TextEmb, TextLen, TextTokens, TextPooled };
inline constexpr int kNumColumns = 8;
// HDF5 dataset path of a column for a dataset kind: "image", "latent", "latent_flip", "label",
// "sample_id", "text/emb", "text/len", "text/tokens", "text/pooled".
const char* column_name(Column c, SampleKind kind);
// Root attribute holding a dataset's checksum: "xxh64_" + path with '/' -> '_' ("xxh64_text_emb").
std::string checksum_attr(const std::string& dataset_path);
inline constexpr const char* kCaptionBytes = "text/caption_bytes";
inline constexpr const char* kCaptionOffsets = "text/caption_offsets";

// Facts shared by the manifest and every shard.
struct DatasetInfo {
  SampleKind kind = SampleKind::Image;
  Elem x_elem = Elem::U8;  // u8 for images; f16 (default) or bf16 for latents
  int64_t channels = 0, height = 0, width = 0;
  int64_t num_samples = 0;  // N
  int64_t shard_size = 0;   // S
  int64_t num_classes = 0;  // labels in [0, num_classes) or -1; 0 = unconditional (all -1)
  double latent_scale_factor = 1.0;
  std::string normalisation;       // kPixelNormalisation or kLatentNormalisation
  std::string image_encoder = "none";
  bool has_latent_flip = false;    // latents only: exact flip augmentation stored per sample

  bool has_text = false;
  int64_t text_len = 0;  // L (text/emb is [S, L, Dq], text/tokens [S, L])
  int64_t text_dim = 0;  // Dq
  Elem text_elem = Elem::F16;
  bool has_tokens = false;
  int64_t pooled_dim = 0;  // 0 = no text/pooled
  bool has_captions = false;
  std::string text_encoder = "none";
  std::string text_prefix;  // string prepended before tokenisation (MODEL.md §4.5 #5), recorded only

  std::string source;  // free text: where the samples came from

  int64_t shard_count() const { return shard_size > 0 ? (num_samples + shard_size - 1) / shard_size : 0; }
  int64_t shard_samples(int64_t k) const;
  std::string shard_file(int64_t k) const;  // "shard-00003-of-00008.h5"
  // Shape of one row of a column (without the leading S); empty for scalar columns.
  std::vector<int64_t> row_shape(Column c) const;
  Elem column_elem(Column c) const;
  bool has_column(Column c) const;
  int64_t row_bytes(Column c) const;
  // Hot columns present in this dataset, in file order.
  std::vector<Column> columns() const;
  // Every dataset path present (hot columns, then the caption datasets): the checksummed set.
  std::vector<std::string> dataset_paths() const;

  // Internal consistency (positive sizes, dtype matching the kind, ...): `where` prefixes messages.
  absl::Status validate(const std::string& where) const;
};

// Differences between two infos as "field: a vs b" lines (empty when equal), for manifest/shard checks.
std::vector<std::string> info_differences(const DatasetInfo& a, const DatasetInfo& b);

}  // namespace drwkv::data
