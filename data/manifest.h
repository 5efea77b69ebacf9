// index.json, the dataset manifest (docs/DATA.md "Manifest"; DATA.md "a dataset-level index.json lists
// shards with sample counts, sizes and checksums; its hash is the dataset fingerprint").
//
// Contract: manifest_json() is deterministic (same facts -> same bytes); parse_manifest() is strict:
// every required key present with the right JSON type, the format name and version known, the shard
// list consistent with N and S (file names, counts, first indices). Fingerprint = hex xxh64 of the exact
// bytes of index.json as stored.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "data/format.h"
#include "data/json.h"

namespace drwkv::data {

struct ShardRecord {
  std::string file;   // name inside the dataset directory
  int64_t samples = 0;
  int64_t first = 0;  // global index of row 0
  int64_t bytes = 0;  // file size
  std::vector<std::pair<std::string, std::string>> checksums;  // dataset path -> 16 hex digits (xxh64)
};

struct Manifest {
  DatasetInfo info;
  std::vector<ShardRecord> shards;
  std::string writer = kWriterName;
  std::string writer_version = kWriterVersion;
};

Json manifest_json(const Manifest& m);
// `where` is the manifest's path, used in every message.
absl::StatusOr<Manifest> parse_manifest(std::string_view text, const std::string& where);
std::string fingerprint_of(std::string_view manifest_bytes);

}  // namespace drwkv::data
