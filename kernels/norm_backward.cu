// CUDA backward kernels of kernels/norm.h: dx of LayerNorm/GroupNorm and of L2 normalisation, and the
// deterministic parameter gradients (see kernels/norm_cuda.cuh). Bytes: read x and dy, write dx (read it
// too when accumulating), read 8 bytes of statistics per group; the per-block partials add 2 · 4C bytes
// written and read per block.
#include "kernels/norm_cuda.cuh"

namespace drwkv::kernels {
namespace {
using namespace norm_detail;

// p[0..V) += v in shared memory; 16-byte accesses when V is a multiple of 4 (p is then 16-byte aligned),
// which keeps a warp's consecutive packs free of bank conflicts.
template <int V>
__device__ __forceinline__ void shared_add(float* p, const float (&v)[V]) {
  if constexpr (V % 4 == 0) {
#pragma unroll
    for (int q = 0; q < V; q += 4) {
      float4* f = reinterpret_cast<float4*>(p + q);
      float4 t = *f;
      t.x += v[q], t.y += v[q + 1], t.z += v[q + 2], t.w += v[q + 3];
      *f = t;
    }
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) p[j] += v[j];
  }
}

// Shared memory of the backward: kRedFloats per team for the reductions, then (parameter gradients)
// one [2C] accumulator per team: Σ dy·x̂ in [0, C), Σ dy in [C, 2C). Each thread updates only its own
// channels of its own team's accumulator, so no two threads ever touch the same word until the end.
template <typename T, int V, int KMAX, Kind K>
__global__ void __launch_bounds__(kRowBlock) backward_kernel(Args<T> a) {
  extern __shared__ float smem[];
  const int tpr = a.tpr, teams = blockDim.x / tpr;
  const int team = threadIdx.x / tpr, lane = threadIdx.x - team * tpr;
  const float inv_l = 1.f / float(a.L);
  const bool params = K == Kind::Standardize && a.partial != nullptr;
  float* acc = smem + teams * kRedFloats;
  if (params) {
    for (int i = threadIdx.x; i < teams * 2 * a.C; i += blockDim.x) acc[i] = 0.f;
    __syncthreads();
  }
  float* acc_w = acc + team * 2 * a.C;
  float* acc_b = acc_w + a.C;

  for (int64_t base = int64_t(blockIdx.x) * teams; base < a.rows; base += int64_t(gridDim.x) * teams) {
    const int64_t row = base + team;
    const bool active = row < a.rows;
    Pack<T, V> xr[KMAX], dr[KMAX];
    float s[KMAX][2], mu[KMAX], rs[KMAX];
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int c = (k * tpr + lane) * V;
      const bool valid = active && c < a.C;
      xr[k] = valid ? load_raw<T, V>(a.x + row * a.C + c) : zero_raw<T, V>();
      dr[k] = valid ? load_raw<T, V>(a.dy + row * a.C + c) : zero_raw<T, V>();
      mu[k] = rs[k] = 0.f;
      if (K == Kind::Standardize && valid) {
        const int64_t i = row * a.groups + c / a.L;
        mu[k] = a.mean[i];
        rs[k] = a.rstd[i];
      }
    }
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int c = (k * tpr + lane) * V;
      const bool valid = active && c < a.C;
      float s0 = 0.f, s1 = 0.f;
      if constexpr (K == Kind::Standardize) {
        float w[V];
        if (a.weight && valid) {
          load_params<V>(a.weight + c, w);
        } else {
#pragma unroll
          for (int j = 0; j < V; ++j) w[j] = 1.f;
        }
        float pw[V], pb[V];  // this row's dy·x̂ and dy (zero on invalid slots: dy was zeroed)
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float d = elem(dr[k], j), xh = (elem(xr[k], j) - mu[k]) * rs[k];
          s0 += d * w[j];
          s1 += d * w[j] * xh;
          pw[j] = d * xh;
          pb[j] = d;
        }
        if (params && valid) {
          shared_add<V>(acc_w + c, pw);
          shared_add<V>(acc_b + c, pb);
        }
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float x = elem(xr[k], j);
          s0 += x * x;
          s1 += x * elem(dr[k], j);
        }
      }
      s[k][0] = s0, s[k][1] = s1;
    }
    group_sums<KMAX, 2>(s, a.seg, tpr, team, lane, smem);
    if (a.out == nullptr) continue;
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int c = (k * tpr + lane) * V;
      if (!active || c >= a.C) continue;
      float o[V];
      if constexpr (K == Kind::Standardize) {
        float w[V];
        if (a.weight) {
          load_params<V>(a.weight + c, w);
        } else {
#pragma unroll
          for (int j = 0; j < V; ++j) w[j] = 1.f;
        }
        const float m1 = s[k][0] * inv_l, m2 = s[k][1] * inv_l;
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float xh = (elem(xr[k], j) - mu[k]) * rs[k];
          o[j] = rs[k] * (elem(dr[k], j) * w[j] - m1 - xh * m2);
        }
      } else {
        const float n = sqrtf(s[k][0]);
        const bool normed = n > a.eps;
        const float inv = normed ? 1.f / n : 1.f / a.eps;
        const float proj = normed ? s[k][1] * inv * inv : 0.f;
#pragma unroll
        for (int j = 0; j < V; ++j) o[j] = inv * (elem(dr[k], j) - elem(xr[k], j) * proj);
      }
      T* p = a.out + row * a.C + c;
      if (a.accumulate) {  // dy of these elements is already in registers, so dx may alias dy
        float old[V];
        load_vals<T, V>(p, old);
#pragma unroll
        for (int j = 0; j < V; ++j) o[j] += old[j];
      }
      store_vals<T, V>(p, o);
    }
  }

  if (!params) return;  // uniform across the block
  __syncthreads();
  // the block's partial: team accumulators added in team order
  float* dst = a.partial + int64_t(blockIdx.x) * 2 * a.C;
  for (int i = threadIdx.x; i < 2 * a.C; i += blockDim.x) {
    float t = 0.f;
    for (int r = 0; r < teams; ++r) t += acc[r * 2 * a.C + i];
    dst[i] = t;
  }
}

// dweight[c] += Σ_g partial[g][c], dbias[c] += Σ_g partial[g][C + c]: block (32, 32) covers 32 of the 2C
// columns; slice y sums g = y, y + 32, ... in order, then slice sums are added in slice order.
__global__ void finish_partials_kernel(float* dweight, float* dbias, const float* partial, int parts, int C) {
  __shared__ float tile[32][33];
  const int col = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (col < 2 * C)
    for (int g = threadIdx.y; g < parts; g += 32) s += partial[int64_t(g) * 2 * C + col];
  tile[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || col >= 2 * C) return;
  float t = 0.f;
  for (int i = 0; i < 32; ++i) t += tile[i][threadIdx.x];
  if (col < C) {
    if (dweight) dweight[col] += t;
  } else if (dbias) {
    dbias[col - C] += t;
  }
}

// Generic path: one block per group; sums and dx from global memory.
template <typename T, Kind K>
__global__ void __launch_bounds__(kGenericThreads) backward_generic_kernel(Args<T> a) {
  __shared__ float red[32];
  const int64_t groups_total = a.rows * a.groups;
  for (int64_t gi = blockIdx.x; gi < groups_total; gi += gridDim.x) {
    const int64_t row = gi / a.groups;
    const int g0 = int(gi - row * a.groups) * a.L;
    const T* xs = a.x + row * a.C + g0;
    const T* ds = a.dy + row * a.C + g0;
    const float mu = K == Kind::Standardize ? a.mean[gi] : 0.f;
    const float rstd = K == Kind::Standardize ? a.rstd[gi] : 0.f;
    float s0 = 0.f, s1 = 0.f;
    for (int i = threadIdx.x; i < a.L; i += blockDim.x) {
      const float x = load_as<float>(xs[i]), d = load_as<float>(ds[i]);
      if constexpr (K == Kind::Standardize) {
        const float g = a.weight ? d * a.weight[g0 + i] : d;
        s0 += g;
        s1 += g * (x - mu) * rstd;
      } else {
        s0 += x * x;
        s1 += x * d;
      }
    }
    s0 = block_sum(s0, red);
    s1 = block_sum(s1, red);
    float inv = 0.f, proj = 0.f;
    if constexpr (K == Kind::L2) {
      const float n = sqrtf(s0);
      inv = n > a.eps ? 1.f / n : 1.f / a.eps;
      proj = n > a.eps ? s1 * inv * inv : 0.f;
    }
    T* out = a.out + row * a.C + g0;
    // each element is read (dy) and written (dx) by the same thread: dx may alias dy
    for (int i = threadIdx.x; i < a.L; i += blockDim.x) {
      const float x = load_as<float>(xs[i]), d = load_as<float>(ds[i]);
      float o;
      if constexpr (K == Kind::Standardize) {
        const float g = a.weight ? d * a.weight[g0 + i] : d;
        o = rstd * (g - s0 / float(a.L) - (x - mu) * rstd * s1 / float(a.L));
      } else {
        o = inv * (d - x * proj);
      }
      if (a.accumulate) o += load_as<float>(out[i]);
      out[i] = store_as<T>(o);
    }
  }
}

// Parameter-gradient partials of the generic path: partial[part] over rows [rows·part/P, rows·(part+1)/P);
// block (32, 8) covers 32 channels, its 8 row slices combined in slice order.
template <typename T>
__global__ void param_partials_generic_kernel(float* partial, const T* dy, const T* x, const float* mean,
                                              const float* rstd, int64_t rows, int C, int L, int groups) {
  __shared__ float tw[8][33], tb[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int64_t parts = gridDim.y, part = blockIdx.y;
  const int64_t r0 = rows * part / parts, r1 = rows * (part + 1) / parts;
  float sw = 0.f, sb = 0.f;
  if (c < C) {
    const int g = c / L;
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const float d = load_as<float>(dy[r * C + c]);
      const float xh = (load_as<float>(x[r * C + c]) - mean[r * groups + g]) * rstd[r * groups + g];
      sw += d * xh;
      sb += d;
    }
  }
  tw[threadIdx.y][threadIdx.x] = sw;
  tb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  float w = 0.f, b = 0.f;
  for (int i = 0; i < 8; ++i) w += tw[i][threadIdx.x], b += tb[i][threadIdx.x];
  partial[part * 2 * C + c] = w;
  partial[part * 2 * C + C + c] = b;
}

template <typename T, Kind K>
void (*backward_kernel_for(const Plan& p))(Args<T>) {
  return dispatch_plan<T>(p, [](auto v, auto k) -> void (*)(Args<T>) {
    return backward_kernel<T, decltype(v)::value, decltype(k)::value, K>;
  });
}

// Backward of both kinds; parameter gradients (Standardize only) when dweight or dbias is given.
template <typename T, Kind K>
void launch_backward(Args<T> a, float* dweight, float* dbias, float* scratch, StreamHandle s) {
  if (a.rows == 0) return;
  const bool params = K == Kind::Standardize && (dweight || dbias);
  DRWKV_ASSERT(!params || scratch, "norm backward: parameter gradients need scratch (norm_backward_scratch_size)");
  const Plan p = make_plan<T>(a.C, a.L, a.groups, aligned_all({a.out, a.x, a.dy, a.weight}), 16);
  int parts = 0;
  if (p.reg) {
    a.tpr = p.tpr;
    a.seg = p.seg;
    a.partial = params ? scratch : nullptr;
    const int threads = p.tpr * p.teams;
    // ≤ 64 KiB: teams · 2C ≤ (256 / tpr) · 2 · tpr · 32 floats
    const size_t smem = size_t(p.teams) * (kRedFloats + (params ? 2 * size_t(a.C) : 0)) * sizeof(float);
    void (*fn)(Args<T>) = backward_kernel_for<T, K>(p);
    if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    int64_t blocks = (a.rows + p.teams - 1) / p.teams;
    if (params) {  // one wave of resident blocks, each summing many rows into its partial
      int device = 0, sms = 0, per_sm = 0;
      CUDA_CHECK(cudaGetDevice(&device));
      CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
      CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, threads, smem));
      blocks = std::min<int64_t>({blocks, int64_t(std::max(per_sm, 1)) * sms, kNormMaxPartials});
      parts = int(blocks);
    }
    fn<<<capped_grid(blocks), threads, smem, to_cuda(s)>>>(a);
    CUDA_CHECK_LAUNCH();
  } else {
    if (params) {  // before dx is written: dx may alias dy
      parts = int(std::min<int64_t>(a.rows, kNormMaxPartials));
      dim3 grid(unsigned((a.C + 31) / 32), unsigned(parts));
      param_partials_generic_kernel<T><<<grid, dim3(32, 8), 0, to_cuda(s)>>>(scratch, a.dy, a.x, a.mean, a.rstd, a.rows,
                                                                              a.C, a.L, a.groups);
      CUDA_CHECK_LAUNCH();
    }
    if (a.out) {
      const int threads = int(std::min<int64_t>(kGenericThreads, (a.L + 31) / 32 * 32));
      backward_generic_kernel<T, K><<<capped_grid(a.rows * a.groups), threads, 0, to_cuda(s)>>>(a);
      CUDA_CHECK_LAUNCH();
    }
  }
  if (params) {
    finish_partials_kernel<<<unsigned((2 * int64_t(a.C) + 31) / 32), dim3(32, 32), 0, to_cuda(s)>>>(dweight, dbias, scratch,
                                                                                                   parts, a.C);
    CUDA_CHECK_LAUNCH();
  }
}
}  // namespace

template <typename T>
void groupnorm_backward_cuda(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                             const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                             int64_t C, int64_t groups, bool accumulate, acc_t<T>* scratch, StreamHandle s) {
  Args<T> a = make_args<T>(rows, C, groups, 0.0, "groupnorm_backward");
  DRWKV_ASSERT(mean && rstd, "groupnorm_backward: needs the forward's mean and rstd");
  a.out = dx, a.x = x, a.dy = dy, a.weight = weight;
  a.mean = const_cast<float*>(mean), a.rstd = const_cast<float*>(rstd);  // read only in the backward
  a.accumulate = accumulate;
  launch_backward<T, Kind::Standardize>(a, dweight, dbias, scratch, s);
}

template <typename T>
void layernorm_backward_cuda(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                             const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                             int64_t C, bool accumulate, acc_t<T>* scratch, StreamHandle s) {
  groupnorm_backward_cuda<T>(dx, dweight, dbias, dy, x, weight, mean, rstd, rows, C, 1, accumulate, scratch, s);
}

template <typename T>
void l2norm_backward_cuda(T* dx, const T* dy, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps,
                          bool accumulate, StreamHandle s) {
  DRWKV_ASSERT(group_size > 0, "l2norm_backward: group_size %lld", (long long)group_size);
  Args<T> a = make_args<T>(rows, C, C / group_size, eps, "l2norm_backward");
  a.out = dx, a.x = x, a.dy = dy, a.accumulate = accumulate;
  launch_backward<T, Kind::L2>(a, nullptr, nullptr, nullptr, s);
}

#define INSTANTIATE(T)                                                                                          \
  template void layernorm_backward_cuda<T>(T*, float*, float*, const T*, const T*, const float*, const float*,  \
                                           const float*, int64_t, int64_t, bool, float*, StreamHandle);        \
  template void groupnorm_backward_cuda<T>(T*, float*, float*, const T*, const T*, const float*, const float*,  \
                                           const float*, int64_t, int64_t, int64_t, bool, float*, StreamHandle); \
  template void l2norm_backward_cuda<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, double, bool, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
