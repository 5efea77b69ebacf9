// CUDA random fills (core/rng_impl.h): one thread per element, numbers identical to the host's.
#include <cuda_runtime.h>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "core/philox.h"
#include "core/rng_impl.h"

namespace drwkv::rng_detail {
namespace {
template <typename T>
__global__ void fill_kernel(T* out, int64_t n, int64_t row_len, const uint64_t* streams, uint64_t single_stream,
                            bool per_row, uint64_t seed, uint64_t offset, double mean, double std_dev, bool normal) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t stream = per_row ? streams[i / row_len] : single_stream;
    uint64_t j = uint64_t(per_row ? i % row_len : i);
    float v = normal ? philox::normal_at(seed, stream, offset, j, mean, std_dev) : philox::uniform_at(seed, stream, offset, j);
    out[i] = store_as<T>(v);
  }
}

template <typename T>
void launch(const FillArgs& a, const uint64_t* dev_streams, uint64_t single, bool per_row, cudaStream_t s) {
  int64_t blocks = (a.n + 255) / 256;
  if (blocks > 65535 * 16) blocks = 65535 * 16;
  fill_kernel<T><<<unsigned(blocks), 256, 0, s>>>(static_cast<T*>(a.data), a.n, a.row_len, dev_streams, single,
                                                   per_row, a.seed, a.offset, a.mean, a.std_dev, a.normal);
  CUDA_CHECK_LAUNCH();
}
}  // namespace

void fill_cuda(const FillArgs& a, const uint64_t* host_streams, int64_t rows, StreamHandle stream) {
  if (a.n == 0) return;
  cudaStream_t s = to_cuda(stream);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  uint64_t* dev_streams = nullptr;
  bool per_row = rows > 1;
  if (per_row) {
    dev_streams = static_cast<uint64_t*>(cuda_allocate(device, size_t(rows) * 8));
    CUDA_CHECK(cudaMemcpyAsync(dev_streams, host_streams, size_t(rows) * 8, cudaMemcpyHostToDevice, s));
  }
  switch (a.dtype) {
    case DType::F32: launch<float>(a, dev_streams, host_streams[0], per_row, s); break;
    case DType::BF16: launch<bf16>(a, dev_streams, host_streams[0], per_row, s); break;
    case DType::F16: launch<f16>(a, dev_streams, host_streams[0], per_row, s); break;
    case DType::F64: launch<double>(a, dev_streams, host_streams[0], per_row, s); break;
    default: DRWKV_FAIL("random fill of a non-float tensor");
  }
  // pageable-source copies are staged before cudaMemcpyAsync returns, and the block returns to this
  // stream's free list, so later work on the stream is ordered after the kernel
  if (dev_streams) cuda_release(device, dev_streams);
}
}  // namespace drwkv::rng_detail
