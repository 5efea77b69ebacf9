// Cutting a table of parameters laid out in one flat buffer into contiguous ranges of bounded size,
// last registered parameter first (backward produces the gradients of the last layers first). The
// gradient reducer's buckets and the parameter store's gradient segments are such ranges.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace drwkv {

struct FlatSlot {
  int64_t offset = 0;  // elements from the start of the flat buffer
  int64_t numel = 0;
};

struct FlatRange {
  int64_t begin = 0, end = 0;  // element range of the flat buffer
  int first_param = 0;         // registration indices [first_param, last_param]
  int last_param = 0;
};

// Ranges in backward order (the last registered parameters first): consecutive parameters join a range
// while it stays within max_bytes; a parameter larger than that is a range of its own. A range spans
// its parameters and the alignment gaps between them. Pure; checks that the table is in registration
// order at increasing, non-overlapping offsets.
std::vector<FlatRange> plan_flat_ranges(std::span<const FlatSlot> params, int64_t element_size, int64_t max_bytes);

}  // namespace drwkv
