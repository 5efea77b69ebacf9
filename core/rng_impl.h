// Internal to core: the random-fill loops behind core/rng.h.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::rng_detail {

struct FillArgs {
  void* data;
  DType dtype;
  int64_t n;        // elements
  int64_t row_len;  // elements per row; row r uses streams[r] (rows == 1: one stream for everything)
  uint64_t seed;
  uint64_t offset;
  double mean, std_dev;
  bool normal;
};

void fill_cpu(const FillArgs& a, const uint64_t* streams, int64_t rows);
void fill_cuda(const FillArgs& a, const uint64_t* host_streams, int64_t rows, StreamHandle stream);

}  // namespace drwkv::rng_detail
