// Shared pieces of the CUDA norm kernels (kernels/norm_forward.cu, kernels/norm_backward.cu; contract in
// kernels/norm.h): kernel arguments, register-pack helpers, the in-team group reduction and the launch
// plan. Include only from those two files.
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
#pragma once

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <type_traits>

#include "kernels/cuda_utils.cuh"
#include "kernels/norm.h"

namespace drwkv::kernels::norm_detail {
using namespace cuda;

enum class Kind : uint8_t { Standardize, L2 };  // (x − μ)·rstd [affine] | x / max(‖x‖, eps)

inline constexpr int kRowBlock = 256;      // threads per block of the register path
inline constexpr int kRedFloats = 64;      // shared floats per team for two simultaneous reductions
inline constexpr int kGenericThreads = 256;

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


// ---- launch planning -------------------------------------------------------------------------------------
struct Plan {
  bool reg = false;  // register path usable
  int v = 1, kmax = 0, tpr = 0, teams = 1, seg = 0;
};

// Accesses per thread instantiated for each access width (elements per thread = v · kmax ≤ 32).
inline constexpr int kKmaxVec[3] = {1, 2, 4};
inline constexpr int kKmaxScalar[2] = {4, 8};

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

// Calls make(std::integral_constant<int, V>, std::integral_constant<int, KMAX>) for the plan's
// instantiated access shape and returns its result (a kernel pointer).
template <typename T, typename Make>
auto dispatch_plan(const Plan& p, Make make) {
  constexpr int P = kPack<T>;
  using std::integral_constant;
  if (p.v == P) {
    switch (p.kmax) {
      case 1: return make(integral_constant<int, P>{}, integral_constant<int, 1>{});
      case 2: return make(integral_constant<int, P>{}, integral_constant<int, 2>{});
      case 4: return make(integral_constant<int, P>{}, integral_constant<int, 4>{});
    }
  } else {
    switch (p.kmax) {
      case 4: return make(integral_constant<int, 1>{}, integral_constant<int, 4>{});
      case 8: return make(integral_constant<int, 1>{}, integral_constant<int, 8>{});
    }
  }
  DRWKV_FAIL("norm: no kernel for v %d kmax %d", p.v, p.kmax);
}

inline bool aligned_all(std::initializer_list<const void*> ptrs) {
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

inline unsigned capped_grid(int64_t blocks) {
  return unsigned(std::min<int64_t>(std::max<int64_t>(blocks, 1), INT_MAX));
}

}  // namespace drwkv::kernels::norm_detail
