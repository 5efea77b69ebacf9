// xxHash64 (Yann Collet's non-cryptographic 64-bit hash), written from its published specification.
// Used for the per-dataset checksums stored in shards and in index.json, and for the dataset
// fingerprint (xxh64 of the index.json bytes) that checkpoints record (docs/DATA.md, DATA.md "Shards").
//
// Contract: Xxh64 is a streaming hasher; any split of the input into update() calls gives the same
// digest as one call over the concatenation. Seed 0 everywhere in the format. Checksums are written as
// 16 lower-case hex digits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace drwkv::data {

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t bytes);
  uint64_t digest() const;

 private:
  uint64_t v_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char buf_[32];
  size_t buffered_ = 0;
};

uint64_t xxh64(const void* data, size_t bytes, uint64_t seed = 0);

// 16 lower-case hex digits, and back (nullopt unless exactly 16 hex digits).
std::string hex64(uint64_t v);
std::optional<uint64_t> parse_hex64(std::string_view s);

}  // namespace drwkv::data
