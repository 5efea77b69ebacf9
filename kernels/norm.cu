// CUDA implementation of kernels/norm.h (LayerNorm, GroupNorm, per-group L2 normalisation).
//
// Register path (the fast one): a "row team" of tpr threads owns one row at a time and keeps it in
// registers: thread `lane` of the team holds the accesses k = 0..KMAX−1 at channel (k·tpr + lane)·V,
// V = 16 / sizeof(T) elements per access when everything is aligned (else V = 1). One row is read once
// and written once; mean and variance are two exact passes over the registers. A team is one warp
// (reductions by shuffles) or several warps of one block (shuffles, then shared memory). Groups of a
// GroupNorm/L2 norm are runs of `seg` lanes (L / V accesses, a power of two ≤ 32) inside one access
// slot k, reduced by xor-shuffles within the run. Blocks hold 256 / tpr teams.
//   Bytes: forward reads x and writes y (+ 8 bytes of statistics per row); backward reads x and dy and
//   writes dx (reads dx too when accumulating).
// Parameter gradients: each team accumulates Σ dy·x̂ and Σ dy over all the rows it visits in its own
// [2C] shared-memory buffer (each thread only ever touches its own channels); at the end the block adds
// its teams' buffers in team order and writes one partial [2C] to scratch; a second kernel sums the
// partials, 32 slices per column each in block order, then the slices in slice order. The backward's
// grid is one wave of resident blocks (at most kNormMaxPartials), so the summation order is fixed for a
// given GPU and shape: results are deterministic.
// Generic path (rows longer than the register path holds, unaligned group lengths): one block per
// group, three passes over global memory; parameter gradients from a separate column kernel.
#include <climits>

#include "kernels/cuda_utils.cuh"
#include "kernels/norm.h"

namespace drwkv::kernels {
namespace {
using namespace cuda;

enum class Kind : uint8_t { Standardize, L2 };  // (x − μ)·rstd [affine] | x / max(‖x‖, eps)

constexpr int kRowBlock = 256;      // threads per block of the register path
constexpr int kRedFloats = 64;      // shared floats per team for two simultaneous reductions
constexpr int kGenericThreads = 256;

// Arguments of both directions; pointers a direction does not use are null.
template <typename T>
struct Args {
  T* out;               // forward: y; backward: dx (nullable)
  const T* x;
  const T* dy;          // backward only
  const float* weight;  // [C] or null
  const float* bias;    // [C] or null (forward only)
  float* mean;          // [rows, groups]: written by the forward (nullable), read by the backward
  float* rstd;
  float* partial;       // backward: [gridDim.x, 2C] parameter-gradient partials, or null
  int64_t rows;
  int C;
  int L;                // channels per group
  int groups;
  int tpr;              // threads per row team (register path)
  int seg;              // 0: the row is one group; else lanes per group (power of two ≤ 32)
  float eps;
  bool accumulate;      // backward: dx += instead of dx =
};

template <typename T, int V>
__device__ __forceinline__ void load_vals(const T* p, float (&v)[V]) {
  if constexpr (V == 1) {
    v[0] = load_as<float>(p[0]);
  } else {
    Pack<T, V> pk = load_pack<T, V>(p);
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = load_as<float>(pk.v[j]);
  }
}

template <typename T, int V>
__device__ __forceinline__ void store_vals(T* p, const float (&v)[V]) {
  if constexpr (V == 1) {
    p[0] = store_as<T>(v[0]);
  } else {
    Pack<T, V> pk;
#pragma unroll
    for (int j = 0; j < V; ++j) pk.v[j] = store_as<T>(v[j]);
    store_pack<T, V>(p, pk);
  }
}

// V consecutive f32 parameters (16-byte aligned when V > 1).
template <int V>
__device__ __forceinline__ void load_params(const float* p, float (&v)[V]) {
  if constexpr (V == 1) {
    v[0] = p[0];
  } else {
#pragma unroll
    for (int q = 0; q < V; q += 4) {
      float4 f = *reinterpret_cast<const float4*>(p + q);
      v[q] = f.x, v[q + 1] = f.y, v[q + 2] = f.z, v[q + 3] = f.w;
    }
  }
}

// Replaces each s[k][q] by the sum over its group: over the whole team when seg == 0 (then every slot k
// gets the row total), else over the run of `seg` lanes sharing slot k's group. Every thread of the
// block must call it (it may synchronise the block). `red` holds kRedFloats per team.
template <int KMAX, int NQ>
__device__ __forceinline__ void group_sums(float (&s)[KMAX][NQ], int seg, int tpr, int team, int lane, float* red) {
  if (seg == 0) {
    float t[NQ];
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      t[q] = 0.f;
#pragma unroll
      for (int k = 0; k < KMAX; ++k) t[q] += s[k][q];
      t[q] = warp_sum(t[q]);
    }
    if (tpr > 32) {  // several warps per team: combine the warp totals in warp order
      float* r = red + team * kRedFloats;
      __syncthreads();  // the previous call's readers are done with `red`
      if ((lane & 31) == 0) {
#pragma unroll
        for (int q = 0; q < NQ; ++q) r[q * 32 + (lane >> 5)] = t[q];
      }
      __syncthreads();
#pragma unroll
      for (int q = 0; q < NQ; ++q) {
        float u = 0.f;
        for (int w = 0; w < (tpr >> 5); ++w) u += r[q * 32 + w];
        t[q] = u;
      }
    }
#pragma unroll
    for (int k = 0; k < KMAX; ++k)
#pragma unroll
      for (int q = 0; q < NQ; ++q) s[k][q] = t[q];
  } else {
#pragma unroll
    for (int k = 0; k < KMAX; ++k)
#pragma unroll
      for (int q = 0; q < NQ; ++q)
        for (int o = seg >> 1; o > 0; o >>= 1) s[k][q] += __shfl_xor_sync(0xffffffffu, s[k][q], o);
  }
}

// Element j of a register pack, in f32.
template <typename T, int V>
__device__ __forceinline__ float elem(const Pack<T, V>& p, int j) {
  return load_as<float>(p.v[j]);
}

template <typename T, int V>
__device__ __forceinline__ Pack<T, V> load_raw(const T* p) {
  if constexpr (V == 1) {
    Pack<T, 1> r;
    r.v[0] = p[0];
    return r;
  } else {
    return load_pack<T, V>(p);
  }
}

template <typename T, int V>
__device__ __forceinline__ Pack<T, V> zero_raw() {
  Pack<T, V> r;
#pragma unroll
  for (int j = 0; j < V; ++j) r.v[j] = store_as<T>(0.f);
  return r;
}

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

// ---- generic path: one block per group, statistics and output from global memory ------------------------
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

// ---- launch planning -------------------------------------------------------------------------------------
struct Plan {
  bool reg = false;  // register path usable
  int v = 1, kmax = 0, tpr = 0, teams = 1, seg = 0;
};

// Accesses per thread instantiated for each access width (elements per thread = v · kmax ≤ 32).
constexpr int kKmaxVec[3] = {1, 2, 4};
constexpr int kKmaxScalar[2] = {4, 8};

// `warp_elems`: most elements per thread worth holding to keep a row in one warp (the backward holds x
// and dy, so it allows fewer than the forward before the register count cuts occupancy).
template <typename T>
Plan make_plan(int64_t C, int64_t L, int64_t groups, bool aligned, int warp_elems) {
  constexpr int P = kPack<T>;
  Plan p;
  p.v = aligned && C % P == 0 && L % P == 0 ? P : 1;
  const int64_t np = C / p.v, sp = L / p.v;
  if (groups > 1) {
    if (sp > 32 || (sp & (sp - 1)) != 0) return p;  // a group must be an aligned run of lanes in a warp
    p.seg = int(sp);
  }
  const int* ks = p.v == 1 ? kKmaxScalar : kKmaxVec;
  const int nk = p.v == 1 ? 2 : 3;
  auto tpr_for = [&](int k) { return (((np + k - 1) / k) + 31) / 32 * 32; };
  // 1. a warp per row (no block synchronisation) with at most warp_elems elements per thread;
  // 2. else the fewest registers with ≥ 2 rows per block; 3. else a row per block of ≤ 256 threads.
  int kmax = 0;
  for (int i = 0; i < nk && !kmax; ++i)
    if (tpr_for(ks[i]) == 32 && ks[i] * p.v <= warp_elems) kmax = ks[i];
  for (int64_t limit : {int64_t(kRowBlock / 2), int64_t(kRowBlock)})
    for (int i = 0; i < nk && !kmax; ++i)
      if (tpr_for(ks[i]) <= limit) kmax = ks[i];
  if (!kmax) return p;
  p.reg = true;
  p.kmax = kmax;
  p.tpr = int(tpr_for(kmax));
  p.teams = std::max(1, kRowBlock / p.tpr);
  return p;
}

template <typename T, Kind K>
using KernelFn = void (*)(Args<T>);

template <typename T, Kind K, bool Forward>
KernelFn<T, K> pick_kernel(const Plan& p) {
  constexpr int P = kPack<T>;
  auto fn = [](auto v, auto k) -> KernelFn<T, K> {
    if constexpr (Forward) return forward_kernel<T, decltype(v)::value, decltype(k)::value, K>;
    else return backward_kernel<T, decltype(v)::value, decltype(k)::value, K>;
  };
  using std::integral_constant;
  if (p.v == P) {
    switch (p.kmax) {
      case 1: return fn(integral_constant<int, P>{}, integral_constant<int, 1>{});
      case 2: return fn(integral_constant<int, P>{}, integral_constant<int, 2>{});
      case 4: return fn(integral_constant<int, P>{}, integral_constant<int, 4>{});
    }
  } else {
    switch (p.kmax) {
      case 4: return fn(integral_constant<int, 1>{}, integral_constant<int, 4>{});
      case 8: return fn(integral_constant<int, 1>{}, integral_constant<int, 8>{});
    }
  }
  DRWKV_FAIL("norm: no kernel for v %d kmax %d", p.v, p.kmax);
}

bool aligned_all(std::initializer_list<const void*> ptrs) {
  for (const void* q : ptrs)
    if (q && !aligned16(q)) return false;
  return true;
}

template <typename T>
Args<T> make_args(int64_t rows, int64_t C, int64_t groups, double eps, const char* op) {
  DRWKV_ASSERT(rows >= 0 && C > 0 && C <= INT_MAX && groups > 0 && C % groups == 0,
               "%s: rows %lld, C %lld, groups %lld", op, (long long)rows, (long long)C, (long long)groups);
  Args<T> a{};
  a.rows = rows;
  a.C = int(C);
  a.groups = int(groups);
  a.L = int(C / groups);
  a.eps = float(eps);
  return a;
}

unsigned capped_grid(int64_t blocks) { return unsigned(std::min<int64_t>(std::max<int64_t>(blocks, 1), INT_MAX)); }

template <typename T, Kind K>
void launch_forward(Args<T> a, StreamHandle s) {
  if (a.rows == 0) return;
  const Plan p = make_plan<T>(a.C, a.L, a.groups, aligned_all({a.out, a.x, a.weight, a.bias}), 32);
  if (p.reg) {
    a.tpr = p.tpr;
    a.seg = p.seg;
    const size_t smem = size_t(p.teams) * kRedFloats * sizeof(float);
    pick_kernel<T, K, true>(p)<<<capped_grid((a.rows + p.teams - 1) / p.teams), p.tpr * p.teams, smem, to_cuda(s)>>>(a);
  } else {
    const int threads = int(std::min<int64_t>(kGenericThreads, (a.L + 31) / 32 * 32));
    forward_generic_kernel<T, K><<<capped_grid(a.rows * a.groups), threads, 0, to_cuda(s)>>>(a);
  }
  CUDA_CHECK_LAUNCH();
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
    KernelFn<T, K> fn = pick_kernel<T, K, false>(p);
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
void groupnorm_forward_cuda(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                            const acc_t<T>* bias, int64_t rows, int64_t C, int64_t groups, double eps, StreamHandle s) {
  Args<T> a = make_args<T>(rows, C, groups, eps, "groupnorm_forward");
  a.out = y, a.x = x, a.weight = weight, a.bias = bias, a.mean = mean, a.rstd = rstd;
  DRWKV_ASSERT((mean == nullptr) == (rstd == nullptr), "groupnorm_forward: give both mean and rstd, or neither");
  launch_forward<T, Kind::Standardize>(a, s);
}

template <typename T>
void groupnorm_backward_cuda(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                             const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                             int64_t C, int64_t groups, bool accumulate, acc_t<T>* scratch, StreamHandle s) {
  Args<T> a = make_args<T>(rows, C, groups, 0.0, "groupnorm_backward");
  a.out = dx, a.x = x, a.dy = dy, a.weight = weight;
  a.mean = const_cast<float*>(mean), a.rstd = const_cast<float*>(rstd);  // read only in the backward
  a.accumulate = accumulate;
  launch_backward<T, Kind::Standardize>(a, dweight, dbias, scratch, s);
}

template <typename T>
void layernorm_forward_cuda(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                            const acc_t<T>* bias, int64_t rows, int64_t C, double eps, StreamHandle s) {
  groupnorm_forward_cuda<T>(y, mean, rstd, x, weight, bias, rows, C, 1, eps, s);
}

template <typename T>
void layernorm_backward_cuda(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                             const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                             int64_t C, bool accumulate, acc_t<T>* scratch, StreamHandle s) {
  groupnorm_backward_cuda<T>(dx, dweight, dbias, dy, x, weight, mean, rstd, rows, C, 1, accumulate, scratch, s);
}

template <typename T>
void l2norm_forward_cuda(T* y, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps, StreamHandle s) {
  DRWKV_ASSERT(group_size > 0, "l2norm_forward: group_size %lld", (long long)group_size);
  Args<T> a = make_args<T>(rows, C, C / group_size, eps, "l2norm_forward");
  a.out = y, a.x = x;
  launch_forward<T, Kind::L2>(a, s);
}

template <typename T>
void l2norm_backward_cuda(T* dx, const T* dy, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps,
                          bool accumulate, StreamHandle s) {
  DRWKV_ASSERT(group_size > 0, "l2norm_backward: group_size %lld", (long long)group_size);
  Args<T> a = make_args<T>(rows, C, C / group_size, eps, "l2norm_backward");
  a.out = dx, a.x = x, a.dy = dy, a.accumulate = accumulate;
  launch_backward<T, Kind::L2>(a, nullptr, nullptr, nullptr, s);
}

#define INSTANTIATE(T)                                                                                           \
  template void layernorm_forward_cuda<T>(T*, float*, float*, const T*, const float*, const float*, int64_t,     \
                                          int64_t, double, StreamHandle);                                       \
  template void layernorm_backward_cuda<T>(T*, float*, float*, const T*, const T*, const float*, const float*,   \
                                           const float*, int64_t, int64_t, bool, float*, StreamHandle);         \
  template void groupnorm_forward_cuda<T>(T*, float*, float*, const T*, const float*, const float*, int64_t,     \
                                          int64_t, int64_t, double, StreamHandle);                              \
  template void groupnorm_backward_cuda<T>(T*, float*, float*, const T*, const T*, const float*, const float*,   \
                                           const float*, int64_t, int64_t, int64_t, bool, float*, StreamHandle); \
  template void l2norm_forward_cuda<T>(T*, const T*, int64_t, int64_t, int64_t, double, StreamHandle);           \
  template void l2norm_backward_cuda<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, double, bool, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
