// CUDA implementation of kernels/embed.h.
// Forward: one block per position (grid-stride), threads copy 16-byte packs of the selected row.
// Bytes: reads n·C table elements (rows repeat in cache for repeated ids) and writes n·C.
// Backward: positions are sorted by id with a stable radix sort over the bits the table needs (positions
// of one id stay in increasing order), then the first block of each run of equal ids sums its run's
// dout rows for 128 channels in that order and writes or adds the sum into dtable. No float atomics.
#include <cub/device/device_radix_sort.cuh>

#include <bit>
#include <climits>

#include "kernels/cuda_utils.cuh"
#include "kernels/embed.h"

namespace drwkv::kernels {
namespace {
using namespace cuda;

constexpr int kThreads = 128;

// Out-of-range ids stop the kernel with a device-side assertion (kept in release builds, unlike
// assert()), after printing what was wrong; the caller's next CUDA_CHECK reports cudaErrorAssert.
__device__ __forceinline__ bool id_ok(int32_t id, int64_t pos, int64_t table_rows, bool report) {
  if (id >= 0 && id < table_rows) return true;
  if (report) {
    printf("drwkv embedding: id %d at position %lld is outside the table of %lld rows\n", id, (long long)pos,
           (long long)table_rows);
    __assert_fail("embedding id in [0, table_rows)", __FILE__, __LINE__, __func__);
  }
  return false;
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) forward_kernel(T* out, const T* table, const int32_t* ids, int64_t n,
                                                           int64_t table_rows, int64_t C) {
  const int64_t packs = C / V;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t id = ids[i];
    if (!id_ok(id, i, table_rows, threadIdx.x == 0)) continue;  // the others never touch the table
    const T* src = table + int64_t(id) * C;
    T* dst = out + i * C;
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
      if constexpr (V == 1) dst[p] = src[p];
      else store_pack<T, V>(dst + p * V, load_pack<T, V>(src + p * V));
    }
  }
}

// Validates the ids and writes the positions 0..n−1 that the sort carries along.
__global__ void prepare_kernel(int32_t* positions, const int32_t* ids, int64_t n, int64_t table_rows) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    id_ok(ids[i], i, table_rows, true);
    positions[i] = int32_t(i);
  }
}

// Block (j, y): if sorted entry j starts a run of equal ids, sums dout over the run for channels
// [128·y, 128·y + 128) in run order (= position order) and adds the sum to dtable.
template <typename T>
__global__ void __launch_bounds__(kThreads) run_sums_kernel(float* dtable, const T* dout, const uint32_t* keys,
                                                            const int32_t* positions, int64_t n, int64_t C) {
  const int64_t j = blockIdx.x;
  const uint32_t key = keys[j];
  if (j > 0 && keys[j - 1] == key) return;
  const int64_t c = int64_t(blockIdx.y) * kThreads + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int64_t i = j; i < n && keys[i] == key; ++i) s += load_as<float>(dout[int64_t(positions[i]) * C + c]);
  dtable[int64_t(key) * C + c] += s;
}

struct ScratchLayout {
  size_t keys = 0, pos_in = 0, pos_out = 0, temp = 0, temp_bytes = 0, total = 0;
};

size_t round_up(size_t x) { return (x + 255) / 256 * 256; }

int key_bits(int64_t table_rows) { return std::max(1, int(std::bit_width(uint64_t(std::max<int64_t>(table_rows - 1, 1))))); }

ScratchLayout layout(int64_t n, int64_t table_rows) {
  DRWKV_ASSERT(n >= 0 && n < INT_MAX && table_rows > 0 && table_rows <= INT_MAX,
               "embedding backward: n %lld, table rows %lld", (long long)n, (long long)table_rows);
  ScratchLayout l;
  size_t temp = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp, static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), int(n), 0, key_bits(table_rows)));
  l.keys = 0;
  l.pos_in = l.keys + round_up(size_t(n) * sizeof(uint32_t));
  l.pos_out = l.pos_in + round_up(size_t(n) * sizeof(int32_t));
  l.temp = l.pos_out + round_up(size_t(n) * sizeof(int32_t));
  l.temp_bytes = temp;
  l.total = l.temp + round_up(temp);
  return l;
}
}  // namespace

size_t embedding_backward_scratch_bytes_cuda(int64_t n, int64_t table_rows) { return layout(n, table_rows).total; }

template <typename T>
void embedding_forward_cuda(T* out, const T* table, const int32_t* ids, int64_t n, int64_t table_rows, int64_t C,
                            StreamHandle s) {
  DRWKV_ASSERT(n >= 0 && C > 0 && table_rows > 0, "embedding_forward: n %lld, C %lld, table rows %lld", (long long)n,
               (long long)C, (long long)table_rows);
  if (n == 0) return;
  constexpr int P = kPack<T>;
  const unsigned blocks = unsigned(std::min<int64_t>(n, INT_MAX));
  if (C % P == 0 && aligned16(out) && aligned16(table)) {
    forward_kernel<T, P><<<blocks, kThreads, 0, to_cuda(s)>>>(out, table, ids, n, table_rows, C);
  } else {
    forward_kernel<T, 1><<<blocks, kThreads, 0, to_cuda(s)>>>(out, table, ids, n, table_rows, C);
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void embedding_backward_cuda(acc_t<T>* dtable, const T* dout, const int32_t* ids, int64_t n, int64_t table_rows,
                             int64_t C, bool accumulate, void* scratch, StreamHandle s) {
  DRWKV_ASSERT(C > 0 && C / kThreads < 65535, "embedding_backward: C %lld", (long long)C);
  const ScratchLayout l = layout(n, table_rows);
  if (!accumulate) CUDA_CHECK(cudaMemsetAsync(dtable, 0, size_t(table_rows * C) * sizeof(float), to_cuda(s)));
  if (n == 0) return;
  DRWKV_ASSERT(scratch, "embedding_backward: scratch of embedding_backward_scratch_bytes_cuda() bytes needed");
  char* base = static_cast<char*>(scratch);
  auto* keys = reinterpret_cast<uint32_t*>(base + l.keys);
  auto* pos_in = reinterpret_cast<int32_t*>(base + l.pos_in);
  auto* pos_out = reinterpret_cast<int32_t*>(base + l.pos_out);
  prepare_kernel<<<grid_size(n, 256), 256, 0, to_cuda(s)>>>(pos_in, ids, n, table_rows);
  CUDA_CHECK_LAUNCH();
  // valid ids are non-negative, so their u32 bit patterns sort like the ids
  size_t temp_bytes = l.temp_bytes;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(base + l.temp, temp_bytes, reinterpret_cast<const uint32_t*>(ids), keys,
                                             pos_in, pos_out, int(n), 0, key_bits(table_rows), to_cuda(s)));
  dim3 grid(unsigned(n), unsigned((C + kThreads - 1) / kThreads));
  run_sums_kernel<T><<<grid, kThreads, 0, to_cuda(s)>>>(dtable, dout, keys, pos_out, n, C);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                          \
  template void embedding_forward_cuda<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, StreamHandle); \
  template void embedding_backward_cuda<T>(float*, const T*, const int32_t*, int64_t, int64_t, int64_t, bool, void*, \
                                           StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
