// Contiguous ranges of a flat parameter layout (core/flat_ranges.h).
#include "core/flat_ranges.h"

#include "core/check.h"

namespace drwkv {

std::vector<FlatRange> plan_flat_ranges(std::span<const FlatSlot> params, int64_t element_size, int64_t max_bytes) {
  DRWKV_ASSERT(max_bytes > 0 && element_size > 0, "ranges of %lld bytes, elements of %lld bytes",
               (long long)max_bytes, (long long)element_size);
  for (size_t i = 0; i < params.size(); ++i) {
    DRWKV_ASSERT(params[i].numel > 0 && params[i].offset >= 0, "parameter %zu: offset %lld, numel %lld", i,
                 (long long)params[i].offset, (long long)params[i].numel);
    DRWKV_ASSERT(i == 0 || params[i].offset >= params[i - 1].offset + params[i - 1].numel,
                 "parameter %zu starts at %lld, inside parameter %zu [%lld, %lld): the table must be in "
                 "registration order at increasing offsets",
                 i, (long long)params[i].offset, i - 1, (long long)params[i - 1].offset,
                 (long long)(params[i - 1].offset + params[i - 1].numel));
  }
  std::vector<FlatRange> out;
  for (int i = int(params.size()) - 1; i >= 0; --i) {
    const FlatSlot& p = params[size_t(i)];
    if (!out.empty()) {
      FlatRange& r = out.back();
      // the range grows downwards: [p.offset, r.end)
      if ((r.end - p.offset) * element_size <= max_bytes) {
        r.begin = p.offset;
        r.first_param = i;
        continue;
      }
    }
    out.push_back(FlatRange{p.offset, p.offset + p.numel, i, i});
  }
  return out;
}

}  // namespace drwkv
