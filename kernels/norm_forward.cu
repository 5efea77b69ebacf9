// CUDA forward kernels of kernels/norm.h: LayerNorm/GroupNorm (saving mean and rstd) and L2
// normalisation, on the register path or, for rows it cannot hold, the generic path (see
// kernels/norm_cuda.cuh). Bytes: read x, write y, write 8 bytes of statistics per group.
#include "kernels/norm_cuda.cuh"

namespace drwkv::kernels {
namespace {
using namespace norm_detail;

template <typename T, int V, int KMAX, Kind K>
__global__ void __launch_bounds__(kRowBlock) forward_kernel(Args<T> a) {
  extern __shared__ float red[];
  const int tpr = a.tpr, teams = blockDim.x / tpr;
  const int team = threadIdx.x / tpr, lane = threadIdx.x - team * tpr;
  const float inv_l = 1.f / float(a.L);
  // the loop bound is uniform across the block (teams past the last row idle through the reductions)
  for (int64_t base = int64_t(blockIdx.x) * teams; base < a.rows; base += int64_t(gridDim.x) * teams) {
    const int64_t row = base + team;
    const bool active = row < a.rows;
    Pack<T, V> xr[KMAX];  // the row stays in registers in its storage type
    float s[KMAX][1], mu[KMAX], rs[KMAX];
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int c = (k * tpr + lane) * V;
      xr[k] = active && c < a.C ? load_raw<T, V>(a.x + row * a.C + c) : zero_raw<T, V>();
    }
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      float t = 0.f;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float v = elem(xr[k], j);
        t += K == Kind::L2 ? v * v : v;
      }
      s[k][0] = t;
    }
    group_sums<KMAX, 1>(s, a.seg, tpr, team, lane, red);
    if constexpr (K == Kind::L2) {
#pragma unroll
      for (int k = 0; k < KMAX; ++k) {
        mu[k] = 0.f;
        rs[k] = 1.f / fmaxf(sqrtf(s[k][0]), a.eps);
      }
    } else {
      // second exact pass over the registers: Σ (x − μ)², masked to the valid channels
#pragma unroll
      for (int k = 0; k < KMAX; ++k) {
        mu[k] = s[k][0] * inv_l;
        const bool valid = active && (k * tpr + lane) * V < a.C;
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float d = elem(xr[k], j) - mu[k];
          t += d * d;
        }
        s[k][0] = valid ? t : 0.f;
      }
      group_sums<KMAX, 1>(s, a.seg, tpr, team, lane, red);
#pragma unroll
      for (int k = 0; k < KMAX; ++k) {
        rs[k] = 1.f / sqrtf(s[k][0] * inv_l + a.eps);
        const int c = (k * tpr + lane) * V;
        if (!active || c >= a.C || a.mean == nullptr) continue;
        // one writer per group: the team's lane 0 (whole row), else the first lane of each run
        if (a.seg == 0 ? (lane == 0 && k == 0) : (lane & (a.seg - 1)) == 0) {
          const int64_t i = row * a.groups + c / a.L;
          a.mean[i] = mu[k];
          a.rstd[i] = rs[k];
        }
      }
    }
#pragma unroll
    for (int k = 0; k < KMAX; ++k) {
      const int c = (k * tpr + lane) * V;
      if (!active || c >= a.C) continue;
      float o[V];
#pragma unroll
      for (int j = 0; j < V; ++j) o[j] = (elem(xr[k], j) - mu[k]) * rs[k];
      if (a.weight) {
        float w[V];
        load_params<V>(a.weight + c, w);
#pragma unroll
        for (int j = 0; j < V; ++j) o[j] *= w[j];
      }
      if (a.bias) {
        float b[V];
        load_params<V>(a.bias + c, b);
#pragma unroll
        for (int j = 0; j < V; ++j) o[j] += b[j];
      }
      store_vals<T, V>(a.out + row * a.C + c, o);
    }
  }
}

// Generic path: one block per group; statistics and output from global memory (three passes).
template <typename T, Kind K>
__global__ void __launch_bounds__(kGenericThreads) forward_generic_kernel(Args<T> a) {
  __shared__ float red[32];
  const int64_t groups_total = a.rows * a.groups;
  for (int64_t gi = blockIdx.x; gi < groups_total; gi += gridDim.x) {
    const int64_t row = gi / a.groups;
    const int g0 = int(gi - row * a.groups) * a.L;
    const T* xs = a.x + row * a.C + g0;
    float s = 0.f;
    for (int i = threadIdx.x; i < a.L; i += blockDim.x) {
      const float v = load_as<float>(xs[i]);
      s += K == Kind::L2 ? v * v : v;
    }
    s = block_sum(s, red);
    float mu = 0.f, rs;
    if constexpr (K == Kind::L2) {
      rs = 1.f / fmaxf(sqrtf(s), a.eps);
    } else {
      mu = s / float(a.L);
      float q = 0.f;
      for (int i = threadIdx.x; i < a.L; i += blockDim.x) {
        const float d = load_as<float>(xs[i]) - mu;
        q += d * d;
      }
      q = block_sum(q, red);
      rs = 1.f / sqrtf(q / float(a.L) + a.eps);
      if (threadIdx.x == 0 && a.mean) a.mean[gi] = mu, a.rstd[gi] = rs;
    }
    T* ys = a.out + row * a.C + g0;
    for (int i = threadIdx.x; i < a.L; i += blockDim.x) {
      float o = (load_as<float>(xs[i]) - mu) * rs;
      if (a.weight) o *= a.weight[g0 + i];
      if (a.bias) o += a.bias[g0 + i];
      ys[i] = store_as<T>(o);
    }
  }
}

template <typename T, Kind K>
void (*forward_kernel_for(const Plan& p))(Args<T>) {
  return dispatch_plan<T>(p, [](auto v, auto k) -> void (*)(Args<T>) {
    return forward_kernel<T, decltype(v)::value, decltype(k)::value, K>;
  });
}

template <typename T, Kind K>
void launch_forward(Args<T> a, StreamHandle s) {
  if (a.rows == 0) return;
  const Plan p = make_plan<T>(a.C, a.L, a.groups, aligned_all({a.out, a.x, a.weight, a.bias}), 32);
  if (p.reg) {
    a.tpr = p.tpr;
    a.seg = p.seg;
    const size_t smem = size_t(p.teams) * kRedFloats * sizeof(float);
    forward_kernel_for<T, K>(p)<<<capped_grid((a.rows + p.teams - 1) / p.teams), p.tpr * p.teams, smem, to_cuda(s)>>>(a);
  } else {
    const int threads = int(std::min<int64_t>(kGenericThreads, (a.L + 31) / 32 * 32));
    forward_generic_kernel<T, K><<<capped_grid(a.rows * a.groups), threads, 0, to_cuda(s)>>>(a);
  }
  CUDA_CHECK_LAUNCH();
}
}  // namespace

template <typename T>
void groupnorm_forward_cuda(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                            const acc_t<T>* bias, int64_t rows, int64_t C, int64_t groups, double eps, StreamHandle s) {
  Args<T> a = make_args<T>(rows, C, groups, eps, "groupnorm_forward");
  a.out = y, a.x = x, a.weight = weight, a.bias = bias, a.mean = mean, a.rstd = rstd;
  DRWKV_ASSERT((mean == nullptr) == (rstd == nullptr), "groupnorm_forward: give both mean and rstd, or neither");
  launch_forward<T, Kind::Standardize>(a, s);
}

template <typename T>
void layernorm_forward_cuda(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                            const acc_t<T>* bias, int64_t rows, int64_t C, double eps, StreamHandle s) {
  groupnorm_forward_cuda<T>(y, mean, rstd, x, weight, bias, rows, C, 1, eps, s);
}

template <typename T>
void l2norm_forward_cuda(T* y, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps, StreamHandle s) {
  DRWKV_ASSERT(group_size > 0, "l2norm_forward: group_size %lld", (long long)group_size);
  Args<T> a = make_args<T>(rows, C, C / group_size, eps, "l2norm_forward");
  a.out = y, a.x = x;
  launch_forward<T, Kind::L2>(a, s);
}

#define INSTANTIATE(T)                                                                                       \
  template void layernorm_forward_cuda<T>(T*, float*, float*, const T*, const float*, const float*, int64_t, \
                                          int64_t, double, StreamHandle);                                   \
  template void groupnorm_forward_cuda<T>(T*, float*, float*, const T*, const float*, const float*, int64_t, \
                                          int64_t, int64_t, double, StreamHandle);                          \
  template void l2norm_forward_cuda<T>(T*, const T*, int64_t, int64_t, int64_t, double, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
