// Host random fills (core/rng_impl.h). Compiled with -ffp-contract=off so the float64 transforms of
// core/philox.h round exactly as on the device.
#include "core/check.h"
#include "core/philox.h"
#include "core/rng_impl.h"

namespace drwkv::rng_detail {
namespace {
template <typename T>
void fill_typed(const FillArgs& a, const uint64_t* streams, int64_t rows) {
  T* out = static_cast<T*>(a.data);
  for (int64_t i = 0; i < a.n; ++i) {
    int64_t r = rows > 1 ? i / a.row_len : 0;
    uint64_t j = uint64_t(rows > 1 ? i % a.row_len : i);
    float v = a.normal ? philox::normal_at(a.seed, streams[r], a.offset, j, a.mean, a.std_dev)
                       : philox::uniform_at(a.seed, streams[r], a.offset, j);
    out[i] = store_as<T>(v);
  }
}
}  // namespace

void fill_cpu(const FillArgs& a, const uint64_t* streams, int64_t rows) {
  switch (a.dtype) {
    case DType::F32: return fill_typed<float>(a, streams, rows);
    case DType::BF16: return fill_typed<bf16>(a, streams, rows);
    case DType::F16: return fill_typed<f16>(a, streams, rows);
    case DType::F64: return fill_typed<double>(a, streams, rows);
    default: DRWKV_FAIL("random fill of a non-float tensor");
  }
}
}  // namespace drwkv::rng_detail
