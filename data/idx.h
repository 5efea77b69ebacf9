// Reader of gzip-compressed IDX files (the MNIST / Fashion-MNIST distribution format, as installed by
// Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist/).
//
// IDX: a 4-byte big-endian magic 0x000008NN (0x08 = unsigned byte data, NN = number of dimensions),
// NN big-endian u32 dimension sizes, then the u8 data in C order. Contract: read_idx_gz() checks the
// magic (u8 data and the expected dimension count), that the data is exactly product(dims) bytes (no
// truncation, no trailing bytes) and returns a Status naming the file otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace drwkv::data {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

absl::StatusOr<IdxArray> read_idx_gz(const std::string& path, int expected_rank);

}  // namespace drwkv::data
