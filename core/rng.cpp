// Random fills (core/rng.h): dispatch to the host loop or the CUDA kernel, contiguous staging.
#include "core/rng.h"

#include "core/build_config.h"
#include "core/philox.h"
#include "core/rng_impl.h"
#include "core/stream.h"

namespace drwkv {
namespace {
enum class Dist { Uniform, Normal };

void fill(Tensor& t, Dist dist, uint64_t seed, const uint64_t* streams, int64_t rows, uint64_t offset, double mean,
          double std_dev) {
  DRWKV_ASSERT(dtype_is_float(t.dtype()), "random fill of a %s tensor", std::string(dtype_name(t.dtype())).c_str());
  Tensor target = t.is_contiguous() ? t : Tensor::empty(t.shape(), t.dtype(), t.device());
  int64_t n = target.numel();
  int64_t row_len = rows > 0 ? n / rows : n;
  rng_detail::FillArgs a{target.data(), target.dtype(), n, row_len, seed, offset, mean, std_dev,
                         dist == Dist::Normal};
  if (target.is_cuda()) {
    DRWKV_CUDA_ONLY(rng_detail::fill_cuda(a, streams, rows, current_stream(target.device()).handle()));
  } else {
    rng_detail::fill_cpu(a, streams, rows);
  }
  if (!target.shares_storage_with(t)) t.copy_(target);
}
}  // namespace

void rng_uniform_(Tensor& t, uint64_t seed, uint64_t stream, uint64_t offset) {
  fill(t, Dist::Uniform, seed, &stream, 1, offset, 0.0, 1.0);
}

void rng_normal_(Tensor& t, uint64_t seed, uint64_t stream, uint64_t offset, double mean, double std_dev) {
  fill(t, Dist::Normal, seed, &stream, 1, offset, mean, std_dev);
}

void rng_normal_rows_(Tensor& t, uint64_t seed, const std::vector<uint64_t>& row_streams) {
  DRWKV_ASSERT(t.dim() >= 1 && int64_t(row_streams.size()) == t.size(0), "rng_normal_rows_: %zu streams for %s",
               row_streams.size(), describe(t).c_str());
  fill(t, Dist::Normal, seed, row_streams.data(), int64_t(row_streams.size()), 0, 0.0, 1.0);
}

uint64_t rng_mix(std::initializer_list<uint64_t> values) {
  uint64_t h = 0x243F6A8885A308D3ull;
  for (uint64_t v : values) {
    uint64_t z = h ^ (v + 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    h = z ^ (z >> 31);
  }
  return h;
}

}  // namespace drwkv
