// CUDA implementation of kernels/loss.h. Forward: a fixed grid (a function of n only) of 256-thread
// blocks, each thread summing (a − b)² over a grid-stride of 16-byte packs, block sums to out[1..], then
// one block adds them in block order. Bytes: reads a and b once. Backward: one elementwise pass
// (reads a, b, writes da and/or db).
#include "kernels/cuda_utils.cuh"
#include "kernels/loss.h"

namespace drwkv::kernels {
namespace {
using namespace cuda;

constexpr int kThreads = 256;

// V elements per access (kPack<T> on the aligned path, else 1); the n % V tail goes to the first threads.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads) mse_partial_kernel(float* partial, const T* a, const T* b, int64_t n) {
  __shared__ float red[32];
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t np = n / V;
  float s = 0.f;
  for (int64_t p = tid; p < np; p += stride) {
    const Pack<T, V> pa = load_pack<T, V>(a + p * V), pb = load_pack<T, V>(b + p * V);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const float d = load_as<float>(pa.v[j]) - load_as<float>(pb.v[j]);
      s += d * d;
    }
  }
  for (int64_t i = np * V + tid; i < n; i += stride) {
    const float d = load_as<float>(a[i]) - load_as<float>(b[i]);
    s += d * d;
  }
  s = block_sum(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void mse_finish_kernel(float* out, const float* partial, int parts, int64_t n) {
  __shared__ float red[32];
  float s = 0.f;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) s += partial[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) out[0] = s / float(n);
}

template <typename T, int V>
__global__ void __launch_bounds__(kThreads) mse_backward_kernel(T* da, T* db, const float* dloss, const T* a,
                                                                const T* b, int64_t n, bool acc_a, bool acc_b) {
  const float k = 2.f * dloss[0] / float(n);
  const int64_t np = n / V, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < np; p += stride) {
    const Pack<T, V> pa = load_pack<T, V>(a + p * V), pb = load_pack<T, V>(b + p * V);
    float g[V];
#pragma unroll
    for (int j = 0; j < V; ++j) g[j] = k * (load_as<float>(pa.v[j]) - load_as<float>(pb.v[j]));
    if (da) {
      Pack<T, V> o = acc_a ? load_pack<T, V>(da + p * V) : Pack<T, V>{};
#pragma unroll
      for (int j = 0; j < V; ++j) o.v[j] = store_as<T>(acc_a ? load_as<float>(o.v[j]) + g[j] : g[j]);
      store_pack<T, V>(da + p * V, o);
    }
    if (db) {
      Pack<T, V> o = acc_b ? load_pack<T, V>(db + p * V) : Pack<T, V>{};
#pragma unroll
      for (int j = 0; j < V; ++j) o.v[j] = store_as<T>(acc_b ? load_as<float>(o.v[j]) - g[j] : -g[j]);
      store_pack<T, V>(db + p * V, o);
    }
  }
  for (int64_t i = np * V + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const float g = k * (load_as<float>(a[i]) - load_as<float>(b[i]));
    if (da) da[i] = store_as<T>(acc_a ? load_as<float>(da[i]) + g : g);
    if (db) db[i] = store_as<T>(acc_b ? load_as<float>(db[i]) - g : -g);
  }
}

bool aligned_all(std::initializer_list<const void*> ptrs) {
  for (const void* q : ptrs)
    if (q && !aligned16(q)) return false;
  return true;
}
}  // namespace

template <typename T>
void mse_forward_cuda(acc_t<T>* out, const T* a, const T* b, int64_t n, StreamHandle s) {
  DRWKV_ASSERT(n > 0, "mse_forward: n = %lld", (long long)n);
  constexpr int P = kPack<T>;
  // the grid depends on n only (not on the GPU or on alignment), which fixes the summation order
  const int blocks = int(std::min<int64_t>(kMsePartials, std::max<int64_t>(1, (n / P + kThreads - 1) / kThreads)));
  if (aligned_all({a, b})) {
    mse_partial_kernel<T, P><<<blocks, kThreads, 0, to_cuda(s)>>>(out + 1, a, b, n);
  } else {
    mse_partial_kernel<T, 1><<<blocks, kThreads, 0, to_cuda(s)>>>(out + 1, a, b, n);
  }
  CUDA_CHECK_LAUNCH();
  mse_finish_kernel<<<1, 1024, 0, to_cuda(s)>>>(out, out + 1, blocks, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void mse_backward_cuda(T* da, T* db, const acc_t<T>* dloss, const T* a, const T* b, int64_t n, bool accumulate_a,
                       bool accumulate_b, StreamHandle s) {
  DRWKV_ASSERT(n > 0, "mse_backward: n = %lld", (long long)n);
  if (!da && !db) return;
  constexpr int P = kPack<T>;
  if (aligned_all({da, db, a, b})) {
    mse_backward_kernel<T, P><<<grid_size((n + P - 1) / P, kThreads), kThreads, 0, to_cuda(s)>>>(
        da, db, dloss, a, b, n, accumulate_a, accumulate_b);
  } else {
    mse_backward_kernel<T, 1><<<grid_size(n, kThreads), kThreads, 0, to_cuda(s)>>>(da, db, dloss, a, b, n, accumulate_a,
                                                                                     accumulate_b);
  }
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                     \
  template void mse_forward_cuda<T>(float*, const T*, const T*, int64_t, StreamHandle); \
  template void mse_backward_cuda<T>(T*, T*, const float*, const T*, const T*, int64_t, bool, bool, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
