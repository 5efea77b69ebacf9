// CUDA AdamW and EMA updates (kernels/optim.h): one grid-stride launch over the whole flat buffer,
// memory-bound, so each thread moves 8 elements per iteration with 16-byte loads and stores.
#include "kernels/cuda_utils.cuh"
#include "kernels/optim.h"

namespace drwkv::kernels {
namespace {
using cuda::grid_size;

constexpr int kVec = 8;  // elements per thread and iteration: two 16-byte f32 packs, one 16-byte bf16 pack
constexpr int kThreads = 256;

struct AdamWConsts {
  float beta1, beta2, c1, c2, eps, decay_factor, step_size, sqrt_bc2;
  float ema_decay, ema_c;  // ema = ema_decay · ema + ema_c · p, as ema_cuda
};

AdamWConsts consts(const AdamWStep& h) {
  return {h.beta1, h.beta2, 1.0f - h.beta1, 1.0f - h.beta2, h.eps, h.decay_factor, h.step_size, h.sqrt_bc2,
          h.ema_decay, 1.0f - h.ema_decay};
}

__device__ __forceinline__ float adamw_one(const AdamWConsts& k, float g, float& m, float& v, float p) {
  m = k.beta1 * m + k.c1 * g;
  v = k.beta2 * v + k.c2 * g * g;
  p *= k.decay_factor;
  return p - k.step_size * m / (sqrtf(v) / k.sqrt_bc2 + k.eps);
}

__device__ __forceinline__ float ema_one(float decay, float c, float e, float p) { return decay * e + c * p; }

// The whole update of element i through scalar accesses (the vector kernel's tail, unaligned buffers).
__device__ __forceinline__ void adamw_element(int64_t i, float* params, const float* grads, float* m, float* v,
                                              bf16* copy, float* ema, const AdamWConsts& k, float scale) {
  float mi = m[i], vi = v[i];
  const float p = adamw_one(k, grads[i] * scale, mi, vi, params[i]);
  m[i] = mi;
  v[i] = vi;
  params[i] = p;
  if (copy) copy[i] = bf16(p);
  if (ema) ema[i] = ema_one(k.ema_decay, k.ema_c, ema[i], p);
}

__device__ __forceinline__ float load_scale(float host_scale, const float* ptr) {
  return ptr ? host_scale * *ptr : host_scale;
}

__global__ void adamw_vec_kernel(float* __restrict__ params, const float* __restrict__ grads, float* __restrict__ m,
                                 float* __restrict__ v, bf16* __restrict__ copy, float* __restrict__ ema, int64_t n,
                                 AdamWConsts k, float host_scale, const float* __restrict__ scale_ptr) {
  const float scale = load_scale(host_scale, scale_ptr);
  const int64_t packs = n / kVec;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < packs; q += stride) {
    const int64_t i = q * kVec;
    using F4 = cuda::Pack<float, 4>;
    F4 p4[2], g4[2], m4[2], v4[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      p4[h] = cuda::load_pack<float, 4>(params + i + 4 * h);
      g4[h] = cuda::load_pack<float, 4>(grads + i + 4 * h);
      m4[h] = cuda::load_pack<float, 4>(m + i + 4 * h);
      v4[h] = cuda::load_pack<float, 4>(v + i + 4 * h);
    }
    cuda::Pack<bf16, kVec> c;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      float& p = p4[j / 4].v[j % 4];
      p = adamw_one(k, g4[j / 4].v[j % 4] * scale, m4[j / 4].v[j % 4], v4[j / 4].v[j % 4], p);
      c.v[j] = bf16(p);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      cuda::store_pack<float, 4>(params + i + 4 * h, p4[h]);
      cuda::store_pack<float, 4>(m + i + 4 * h, m4[h]);
      cuda::store_pack<float, 4>(v + i + 4 * h, v4[h]);
    }
    if (copy) cuda::store_pack<bf16, kVec>(copy + i, c);
    if (ema) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        F4 e4 = cuda::load_pack<float, 4>(ema + i + 4 * h);
#pragma unroll
        for (int j = 0; j < 4; ++j) e4.v[j] = ema_one(k.ema_decay, k.ema_c, e4.v[j], p4[h].v[j]);
        cuda::store_pack<float, 4>(ema + i + 4 * h, e4);
      }
    }
  }
  // the n % 8 tail
  for (int64_t i = packs * kVec + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride)
    adamw_element(i, params, grads, m, v, copy, ema, k, scale);
}

__global__ void adamw_scalar_kernel(float* params, const float* grads, float* m, float* v, bf16* copy, float* ema,
                                    int64_t n, AdamWConsts k, float host_scale, const float* scale_ptr) {
  const float scale = load_scale(host_scale, scale_ptr);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    adamw_element(i, params, grads, m, v, copy, ema, k, scale);
}

__global__ void ema_vec_kernel(float* __restrict__ ema, const float* __restrict__ params, int64_t n, float decay, float c) {
  const int64_t packs = n / kVec;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < packs; q += stride) {
    const int64_t i = q * kVec;
    using F4 = cuda::Pack<float, 4>;
    F4 e4[2], p4[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      e4[h] = cuda::load_pack<float, 4>(ema + i + 4 * h);
      p4[h] = cuda::load_pack<float, 4>(params + i + 4 * h);
    }
#pragma unroll
    for (int j = 0; j < kVec; ++j) e4[j / 4].v[j % 4] = ema_one(decay, c, e4[j / 4].v[j % 4], p4[j / 4].v[j % 4]);
#pragma unroll
    for (int h = 0; h < 2; ++h) cuda::store_pack<float, 4>(ema + i + 4 * h, e4[h]);
  }
  for (int64_t i = packs * kVec + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride)
    ema[i] = ema_one(decay, c, ema[i], params[i]);
}

__global__ void ema_scalar_kernel(float* ema, const float* params, int64_t n, float decay, float c) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    ema[i] = ema_one(decay, c, ema[i], params[i]);
}
}  // namespace

void adamw_cuda(float* params, const float* grads, float* m, float* v, bf16* copy, int64_t n, const AdamWStep& h,
                const float* grad_scale_ptr, StreamHandle s, float* ema) {
  if (n == 0) return;
  AdamWConsts k = consts(h);
  bool aligned = cuda::aligned16(params) && cuda::aligned16(grads) && cuda::aligned16(m) && cuda::aligned16(v) &&
                 (copy == nullptr || cuda::aligned16(copy)) && (ema == nullptr || cuda::aligned16(ema));
  if (aligned) {
    adamw_vec_kernel<<<grid_size((n + kVec - 1) / kVec, kThreads), kThreads, 0, to_cuda(s)>>>(
        params, grads, m, v, copy, ema, n, k, h.grad_scale, grad_scale_ptr);
  } else {
    adamw_scalar_kernel<<<grid_size(n, kThreads), kThreads, 0, to_cuda(s)>>>(params, grads, m, v, copy, ema, n,
                                                                            k, h.grad_scale, grad_scale_ptr);
  }
  CUDA_CHECK_LAUNCH();
}

void ema_cuda(float* ema, const float* params, int64_t n, float decay, StreamHandle s) {
  if (n == 0) return;
  const float c = 1.0f - decay;
  if (cuda::aligned16(ema) && cuda::aligned16(params)) {
    ema_vec_kernel<<<grid_size((n + kVec - 1) / kVec, kThreads), kThreads, 0, to_cuda(s)>>>(ema, params, n, decay, c);
  } else {
    ema_scalar_kernel<<<grid_size(n, kThreads), kThreads, 0, to_cuda(s)>>>(ema, params, n, decay, c);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace drwkv::kernels
