// CUDA linear decoder (kernels/linear_decoder.h).
//
// The LayerNorm is folded into the product so that h is read once. With d = h − K (K = the row's first
// element: a pivot inside the row's range, so that the one-pass variance Σ d²/C − (Σ d/C)² and the
// difference below lose accuracy only as (mean − K)²/var, not as mean²/var), W'_b = W ⊙ (1 + scale_b),
// u_b = Σ_c W'_b[:, c] and v_b = b_out + W shift_b:
//     o = rstd · (Σ_c d_c W'_b[:, c] − (mean − K) · u_b) + v_b
// so one pass over h gives Σ d, Σ d² (the statistics) and the tile product Σ d W'ᵀ together (SGEMM-style
// tiles in shared memory, FMAs on CUDA cores: N ≤ 128 is too small for tensor cores to pay off).
// The backward needs, per row, Σ_c g_c and Σ_c g_c x̂_c with g = dz ⊙ (1 + scale); both collapse to
// N-long dot products: Σ_c g_c = do · u_b and Σ_c g_c x̂_c = do · (o − v_b), o being the forward output.
// That leaves one pass over h for dh, dW, d(shift), d(scale): blocks own a 32-channel slice and whole
// samples, so d(shift)/d(scale) are complete per block, and dW leaves as one partial per sample group.
// Bytes (f32 h, N outputs, R = B·T rows): forward reads 4RC + writes 4RN (+8R statistics); backward reads
// 4RC (h) + 8RN (dout, out) and writes 4RC (dh) plus O(RN + groups·N·C) of workspace traffic.
#include <type_traits>

#include "kernels/linear_decoder.h"
#include "kernels/row_tiles.cuh"

namespace drwkv::kernels {
namespace {
using namespace cuda;

constexpr int kThreads = 256;
constexpr int kRows = 64;     // forward: tokens per block
constexpr int kKC = 32;       // forward: channels per shared-memory stage
constexpr int kLd = kKC + 4;  // stage row stride in floats: 16-byte rows, conflict-free float4 reads

// uv[b][0][n] = Σ_c W[n, c] (1 + scale_b[c]),  uv[b][1][n] = b_out[n] + Σ_c W[n, c] shift_b[c]; zero for n ≥ N.
__global__ void decoder_uv_kernel(float* __restrict__ uv, const float* __restrict__ mod, const float* __restrict__ weight,
                                  const float* __restrict__ bias, int64_t C, int N, int NP) {
  const int64_t b = blockIdx.x;
  const float* shift = mod + b * 2 * C;
  const float* scale = shift + C;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int n = warp; n < NP; n += warps) {
    float u = 0.f, v = 0.f;
    if (n < N)
      for (int64_t c = lane; c < C; c += 32) {
        const float w = weight[int64_t(n) * C + c];
        u += w * (1.f + scale[c]);
        v += w * shift[c];
      }
    u = warp_sum(u);
    v = warp_sum(v);
    if (lane == 0) {
      uv[(b * 2) * NP + n] = u;
      uv[(b * 2 + 1) * NP + n] = n < N ? v + (bias ? bias[n] : 0.f) : 0.f;
    }
  }
}

// ---- forward -----------------------------------------------------------------------------------------
// Thread tile of the product: TR rows × TN outputs; outputs nt + k·NTN, rows rt + i·NTR (strided so that
// the eight threads of a quarter-warp read eight consecutive W' rows: conflict-free with kLd = 36).
template <int NP>
struct FwdTile {
  static constexpr int TN = NP == 32 ? 4 : 8;
  static constexpr int NTN = NP / TN;
  static constexpr int NTR = kThreads / NTN;
  static constexpr int TR = kRows / NTR;
};

template <typename T, int NP, bool VEC>
__global__ void __launch_bounds__(kThreads) decoder_forward_kernel(T* __restrict__ out, float* __restrict__ mean,
                                                                   float* __restrict__ rstd, const T* __restrict__ h,
                                                                   const float* __restrict__ mod,
                                                                   const float* __restrict__ weight,
                                                                   const float* __restrict__ uv, DecoderDims d,
                                                                   float eps) {
  using Tile = FwdTile<NP>;
  constexpr int kStage = (kRows + NP) * kLd, kOut = kRows * (NP + 1);
  __shared__ __align__(16) float smem[kStage > kOut ? kStage : kOut];
  __shared__ float piv[kRows], smu[kRows], srs[kRows];
  float* sh_h = smem;               // [kRows][kLd]: h − pivot
  float* sh_w = smem + kRows * kLd;  // [NP][kLd]: W'

  const int tid = threadIdx.x;
  const int64_t tokens = d.tokens(), C = d.C, b = blockIdx.y, t0 = int64_t(blockIdx.x) * kRows;
  const int N = int(d.n_out());
  const int nrows = int(tokens - t0 < kRows ? tokens - t0 : kRows);
  const int64_t row0 = b * tokens + t0;
  const float* scale = mod + b * 2 * C + C;

  if (tid < kRows) piv[tid] = tid < nrows ? load_as<float>(h[(row0 + tid) * C]) : 0.f;
  __syncthreads();

  // staging of h: kLanes consecutive threads cover one row of the stage, LW elements each
  constexpr int LW = VEC ? 4 : 1;
  constexpr int kLanes = kKC / LW;
  constexpr int kLoads = kRows * kKC / (kThreads * LW);
  constexpr int kRowStep = kThreads / kLanes;
  const int lrow = tid / kLanes, lcol = (tid % kLanes) * LW;
  float ssum[kLoads], ssq[kLoads];
#pragma unroll
  for (int k = 0; k < kLoads; ++k) ssum[k] = ssq[k] = 0.f;
  float acc[Tile::TR][Tile::TN];
#pragma unroll
  for (int i = 0; i < Tile::TR; ++i)
#pragma unroll
    for (int k = 0; k < Tile::TN; ++k) acc[i][k] = 0.f;
  const int nt = tid % Tile::NTN, rt = tid / Tile::NTN;

  for (int64_t cb = 0; cb < C; cb += kKC) {
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int r = lrow + k * kRowStep;
      const int64_t c = cb + lcol;  // VEC: C % 4 == 0, so c < C covers the whole group of 4
      float v[LW];
      if (r < nrows && c < C) {
        load_vec<LW>(h + (row0 + r) * C + c, v);
#pragma unroll
        for (int j = 0; j < LW; ++j) v[j] -= piv[r];
      } else {
#pragma unroll
        for (int j = 0; j < LW; ++j) v[j] = 0.f;
      }
#pragma unroll
      for (int j = 0; j < LW; ++j) {
        ssum[k] += v[j];
        ssq[k] += v[j] * v[j];
      }
      store_vec<LW>(sh_h + r * kLd + lcol, v);
    }
    for (int e = tid; e < NP * (kKC / LW); e += kThreads) {
      const int n = e / (kKC / LW), cc = (e % (kKC / LW)) * LW;
      const int64_t c = cb + cc;
      float w[LW];
      if (n < N && c < C) {
        float sc[LW];
        load_vec<LW>(weight + int64_t(n) * C + c, w);
        load_vec<LW>(scale + c, sc);
#pragma unroll
        for (int j = 0; j < LW; ++j) w[j] *= 1.f + sc[j];
      } else {
#pragma unroll
        for (int j = 0; j < LW; ++j) w[j] = 0.f;
      }
      store_vec<LW>(sh_w + n * kLd + cc, w);
    }
    __syncthreads();
#pragma unroll
    for (int cc = 0; cc < kKC; cc += 4) {
      float4 hv[Tile::TR], wv[Tile::TN];
#pragma unroll
      for (int i = 0; i < Tile::TR; ++i) hv[i] = *reinterpret_cast<const float4*>(sh_h + (rt + i * Tile::NTR) * kLd + cc);
#pragma unroll
      for (int k = 0; k < Tile::TN; ++k) wv[k] = *reinterpret_cast<const float4*>(sh_w + (nt + k * Tile::NTN) * kLd + cc);
#pragma unroll
      for (int i = 0; i < Tile::TR; ++i)
#pragma unroll
        for (int k = 0; k < Tile::TN; ++k) {
          float a = acc[i][k];
          a = fmaf(hv[i].x, wv[k].x, a);
          a = fmaf(hv[i].y, wv[k].y, a);
          a = fmaf(hv[i].z, wv[k].z, a);
          a = fmaf(hv[i].w, wv[k].w, a);
          acc[i][k] = a;
        }
    }
    __syncthreads();  // the stage is rewritten next round (and reused for the output tile after the loop)
  }

  // statistics: butterfly over the kLanes consecutive lanes that loaded each row
#pragma unroll
  for (int k = 0; k < kLoads; ++k) {
#pragma unroll
    for (int o = 1; o < kLanes; o <<= 1) {
      ssum[k] += __shfl_xor_sync(0xffffffffu, ssum[k], o);
      ssq[k] += __shfl_xor_sync(0xffffffffu, ssq[k], o);
    }
  }
  if (tid % kLanes == 0) {
    const float inv_c = 1.f / float(C);
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int r = lrow + k * kRowStep;
      if (r < nrows) {
        const float md = ssum[k] * inv_c;
        const float var = fmaxf(ssq[k] * inv_c - md * md, 0.f);
        smu[r] = piv[r] + md;
        srs[r] = rsqrtf(var + eps);
      }
    }
  }
  __syncthreads();

  float* so = smem;  // [kRows][NP + 1] output tile
  const float* u = uv + b * 2 * NP;
  const float* v = u + NP;
#pragma unroll
  for (int i = 0; i < Tile::TR; ++i) {
    const int r = rt + i * Tile::NTR;
    if (r >= nrows) continue;
    const float rs = srs[r], md = smu[r] - piv[r];
#pragma unroll
    for (int k = 0; k < Tile::TN; ++k) {
      const int n = nt + k * Tile::NTN;
      so[r * (NP + 1) + n] = rs * (acc[i][k] - md * u[n]) + v[n];
    }
  }
  if (tid < nrows) {
    mean[row0 + tid] = smu[tid];
    rstd[row0 + tid] = srs[tid];
  }
  __syncthreads();
  // scatter into the image in the order (c', i, token, j): consecutive tokens of an image row are
  // consecutive addresses
  const int P = d.patch, Co = d.out_channels;
  const int total = Co * P * nrows * P;
  for (int e = tid; e < total; e += kThreads) {
    int q = e;
    const int j = q % P;
    q /= P;
    const int tl = q % nrows;
    q /= nrows;
    const int i = q % P, co = q / P;
    const int n = (i * P + j) * Co + co;
    out[decoder_out_index(d, b, t0 + tl, n)] = store_as<T>(so[tl * (NP + 1) + n]);
  }
}

// ---- backward ----------------------------------------------------------------------------------------
constexpr int kGradRows = 64;  // rows per block of the row-gradient kernel

// Per row r: do_tok[r][n] = dout at output n (gathered from the image; zero for n ≥ N),
// rowsum[r] = (do · u_b, do · (o − v_b)); db_part[block][n] = Σ over the block's rows of do.
template <typename T, int NP>
__global__ void __launch_bounds__(kThreads) decoder_rowgrad_kernel(float* __restrict__ do_tok, float* __restrict__ rowsum,
                                                                   float* __restrict__ db_part, const T* __restrict__ dout,
                                                                   const T* __restrict__ out, const float* __restrict__ uv,
                                                                   DecoderDims d) {
  constexpr int NG = NP / 32;
  __shared__ float red[kThreads / 32][NP];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tokens = d.tokens(), rows = d.batch * tokens;
  const int N = int(d.n_out());
  float dbacc[NG];
#pragma unroll
  for (int k = 0; k < NG; ++k) dbacc[k] = 0.f;
  for (int q = warp; q < kGradRows; q += kThreads / 32) {
    const int64_t r = int64_t(blockIdx.x) * kGradRows + q;
    if (r >= rows) break;  // uniform over the warp
    const int64_t b = r / tokens, t = r - b * tokens;
    const float* u = uv + b * 2 * NP;
    const float* v = u + NP;
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int k = 0; k < NG; ++k) {
      const int n = lane + 32 * k;
      float g = 0.f;
      if (n < N) {
        const int64_t at = decoder_out_index(d, b, t, n);
        g = load_as<float>(dout[at]);
        s1 += g * u[n];
        s2 += g * (load_as<float>(out[at]) - v[n]);
      }
      do_tok[r * NP + n] = g;
      dbacc[k] += g;
    }
    s1 = warp_sum(s1);
    s2 = warp_sum(s2);
    if (lane == 0) {
      rowsum[2 * r] = s1;
      rowsum[2 * r + 1] = s2;
    }
  }
#pragma unroll
  for (int k = 0; k < NG; ++k) red[warp][lane + 32 * k] = dbacc[k];
  __syncthreads();
  for (int n = threadIdx.x; n < NP; n += kThreads) {
    float s = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) s += red[w][n];
    db_part[int64_t(blockIdx.x) * NP + n] = s;
  }
}

// Block (slice, group): channels c = 32·slice + lane of the samples of one group. Warp w = s·NG + g owns
// outputs [32g, 32g + 32) (its W column slice in registers, its dW partial in registers) and the rows
// s, s + S, ... of each TC-token chunk. With one output group (N ≤ 32, the DRWKV heads with P = 2) a warp
// has the whole dz of its rows and writes dh at once: one barrier per chunk, the staging buffers being
// double-buffered. With NG > 1 the partial dz go through shared memory (phase A), and phase B sums them
// over the groups in order and writes dh, one row per warp. Each warp also sums d(shift), d(scale) of its
// rows; they are added over the warps in order when a sample ends.
template <int NG>
struct BwdTile {
  static constexpr int NP = 32 * NG, S = 8 / NG;
  static constexpr int TC = NG == 4 ? 32 : 64;  // tokens per chunk (shared memory stays under 48 KiB)
  static constexpr int RPW = TC / S;             // rows per warp and chunk
  static constexpr int kStage = TC * NP + TC * 4;  // do rows, then (mean, rstd, Σ g, Σ g x̂) per row
  static constexpr int kMain = NG == 1 ? 2 * kStage : kStage + TC * NP + TC * 32;  // + dz partials, x̂
  static constexpr int kRed = 8 * 32 * 32;
  static constexpr int kSmem = kMain > kRed ? kMain : kRed;
};

template <typename T, int NG>
__global__ void __launch_bounds__(kThreads, 2) decoder_backward_kernel(
    T* __restrict__ dh, float* __restrict__ dmod, float* __restrict__ dw_part, const T* __restrict__ h,
    const float* __restrict__ mean, const float* __restrict__ rstd, const float* __restrict__ do_tok,
    const float* __restrict__ rowsum, const float* __restrict__ mod, const float* __restrict__ weight, DecoderDims d,
    int64_t samples_per_group, bool accumulate) {
  using Tile = BwdTile<NG>;
  constexpr int NP = Tile::NP, S = Tile::S, TC = Tile::TC, RPW = Tile::RPW;
  __shared__ __align__(16) float smem[Tile::kSmem];
  __shared__ float sflush[8][2][32];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = warp % NG, s = warp / NG;
  const int64_t C = d.C, tokens = d.tokens();
  const int N = int(d.n_out());
  const int64_t c = int64_t(blockIdx.x) * 32 + lane;
  const bool cv = c < C;
  const float inv_c = 1.f / float(C);
  float wr[32], acc[32];
#pragma unroll
  for (int k = 0; k < 32; ++k) {
    const int n = 32 * g + k;
    wr[k] = (cv && n < N) ? weight[int64_t(n) * C + c] : 0.f;
    acc[k] = 0.f;
  }
  int buf = 0;  // staging buffer (NG == 1 alternates two)
  const int64_t b0 = int64_t(blockIdx.y) * samples_per_group;
  const int64_t b1 = b0 + samples_per_group < d.batch ? b0 + samples_per_group : d.batch;
  for (int64_t b = b0; b < b1; ++b) {
    const float sc1 = cv ? 1.f + mod[b * 2 * C + C + c] : 1.f;
    const float shv = cv ? mod[b * 2 * C + c] : 0.f;
    float ash = 0.f, asc = 0.f;
    for (int64_t tc0 = 0; tc0 < tokens; tc0 += TC) {
      const int nr = int(tokens - tc0 < TC ? tokens - tc0 : TC);
      const int64_t row0 = b * tokens + tc0;
      // the warp's h values first: their latency overlaps the staging below
      float hv[RPW];
#pragma unroll
      for (int q = 0; q < RPW; ++q) {
        const int tl = s + q * S;
        hv[q] = (cv && tl < nr) ? load_as<float>(h[(row0 + tl) * C + c]) : 0.f;
      }
      float* sdo = smem + buf * Tile::kStage;  // [TC][NP]
      float* srow = sdo + TC * NP;              // [TC][4]
      for (int e = threadIdx.x; e < TC * NP / 4; e += kThreads) {
        const int tl = e / (NP / 4), q = e % (NP / 4);
        float4 val = make_float4(0.f, 0.f, 0.f, 0.f);
        if (tl < nr) val = reinterpret_cast<const float4*>(do_tok + (row0 + tl) * NP)[q];
        reinterpret_cast<float4*>(sdo + tl * NP)[q] = val;
      }
      if (threadIdx.x < TC) {
        const int tl = threadIdx.x;
        const bool ok = tl < nr;
        srow[tl * 4 + 0] = ok ? mean[row0 + tl] : 0.f;
        srow[tl * 4 + 1] = ok ? rstd[row0 + tl] : 0.f;
        srow[tl * 4 + 2] = ok ? rowsum[2 * (row0 + tl)] : 0.f;
        srow[tl * 4 + 3] = ok ? rowsum[2 * (row0 + tl) + 1] : 0.f;
      }
      __syncthreads();
      float* sdz = smem + Tile::kStage;  // NG > 1: [TC][NG][32]
      float* sxh = sdz + TC * NP;         // NG > 1: [TC][32]
#pragma unroll
      for (int q = 0; q < RPW; ++q) {
        const int tl = s + q * S;
        if (tl >= nr) break;  // uniform over the warp
        const float xh = cv ? (hv[q] - srow[tl * 4]) * srow[tl * 4 + 1] : 0.f;
        const float z = cv ? xh * sc1 + shv : 0.f;
        const float4* dp = reinterpret_cast<const float4*>(sdo + tl * NP + 32 * g);
        float dz = 0.f;
#pragma unroll
        for (int k4 = 0; k4 < 8; ++k4) {
          const float4 dv = dp[k4];
          dz = fmaf(dv.x, wr[4 * k4 + 0], dz);
          dz = fmaf(dv.y, wr[4 * k4 + 1], dz);
          dz = fmaf(dv.z, wr[4 * k4 + 2], dz);
          dz = fmaf(dv.w, wr[4 * k4 + 3], dz);
          acc[4 * k4 + 0] = fmaf(dv.x, z, acc[4 * k4 + 0]);
          acc[4 * k4 + 1] = fmaf(dv.y, z, acc[4 * k4 + 1]);
          acc[4 * k4 + 2] = fmaf(dv.z, z, acc[4 * k4 + 2]);
          acc[4 * k4 + 3] = fmaf(dv.w, z, acc[4 * k4 + 3]);
        }
        if constexpr (NG == 1) {
          ash += dz;
          asc += dz * xh;
          if (dh != nullptr && cv) {
            const int64_t at = (row0 + tl) * C + c;
            float val = srow[tl * 4 + 1] * (dz * sc1 - (srow[tl * 4 + 2] + xh * srow[tl * 4 + 3]) * inv_c);
            if (accumulate) val += load_as<float>(dh[at]);
            dh[at] = store_as<T>(val);
          }
        } else {
          sdz[(tl * NG + g) * 32 + lane] = dz;
          if (g == 0) sxh[tl * 32 + lane] = xh;
        }
      }
      if constexpr (NG == 1) {
        // the next chunk stages into the other buffer; its barrier orders this chunk's reads before the
        // chunk after next rewrites this one
        buf ^= 1;
      } else {
        __syncthreads();
        for (int tl = warp; tl < nr; tl += 8) {  // phase B: one row per warp
          float dz = 0.f;
#pragma unroll
          for (int q = 0; q < NG; ++q) dz += sdz[(tl * NG + q) * 32 + lane];
          const float xh = sxh[tl * 32 + lane];
          ash += dz;
          asc += dz * xh;
          if (dh != nullptr && cv) {
            const int64_t at = (row0 + tl) * C + c;
            float val = srow[tl * 4 + 1] * (dz * sc1 - (srow[tl * 4 + 2] + xh * srow[tl * 4 + 3]) * inv_c);
            if (accumulate) val += load_as<float>(dh[at]);
            dh[at] = store_as<T>(val);
          }
        }
        __syncthreads();  // staging, dz partials and x̂ are rewritten by the next chunk
      }
    }
    sflush[warp][0][lane] = ash;
    sflush[warp][1][lane] = asc;
    __syncthreads();
    if (warp == 0 && cv && dmod != nullptr) {
      float a = 0.f, q = 0.f;
      for (int w = 0; w < 8; ++w) {
        a += sflush[w][0][lane];
        q += sflush[w][1][lane];
      }
      dmod[b * 2 * C + c] += a;
      dmod[b * 2 * C + C + c] += q;
    }
    __syncthreads();
  }
  if (dw_part == nullptr) return;  // uniform
  float* red = smem;  // [8 warps][32][32]; free: every warp has passed the barriers of the last flush
#pragma unroll
  for (int k = 0; k < 32; ++k) red[(warp * 32 + k) * 32 + lane] = acc[k];
  __syncthreads();
  for (int e = threadIdx.x; e < NP * 32; e += kThreads) {
    const int n = e / 32, l = e % 32, gq = n / 32, k = n % 32;
    float sum = 0.f;
    for (int q = 0; q < S; ++q) sum += red[((q * NG + gq) * 32 + k) * 32 + l];
    const int64_t col = int64_t(blockIdx.x) * 32 + l;
    if (n < N && col < C) dw_part[(int64_t(blockIdx.y) * N + n) * C + col] = sum;
  }
}

struct AddTo {
  float* dst;
  int64_t limit;  // columns ≥ limit are padding
  __device__ void operator()(int64_t col, float s) const {
    if (col < limit) dst[col] += s;
  }
};

template <typename F>
void dispatch_np(int64_t np, F&& f) {
  switch (np) {
    case 32: f(std::integral_constant<int, 32>{}); return;
    case 64: f(std::integral_constant<int, 64>{}); return;
    default: f(std::integral_constant<int, 128>{}); return;
  }
}

void check_dims(const DecoderDims& d) {
  DRWKV_ASSERT(d.batch >= 0 && d.grid_h > 0 && d.grid_w > 0 && d.C > 0 && d.patch > 0 && d.out_channels > 0,
               "linear decoder: B %lld, grid %dx%d, C %lld, P %d, Cout %d", (long long)d.batch, d.grid_h, d.grid_w,
               (long long)d.C, d.patch, d.out_channels);
  DRWKV_ASSERT(d.n_out() <= kDecoderMaxOut, "linear decoder CUDA: P²·Cout = %lld > %lld", (long long)d.n_out(),
               (long long)kDecoderMaxOut);
  DRWKV_ASSERT(d.batch < 65536, "linear decoder CUDA: batch %lld exceeds the grid limit", (long long)d.batch);
}
}  // namespace

template <typename T>
void linear_decoder_forward_cuda(T* out, acc_t<T>* mean, acc_t<T>* rstd, const T* h, const acc_t<T>* mod,
                                 const acc_t<T>* weight, const acc_t<T>* bias, const DecoderDims& d, double eps,
                                 acc_t<T>* workspace, StreamHandle s) {
  check_dims(d);
  if (d.batch == 0) return;
  DRWKV_ASSERT(workspace, "linear_decoder_forward_cuda: needs the workspace");
  cudaStream_t st = to_cuda(s);
  const int64_t np = decoder_padded_out(d.n_out());
  float* uv = workspace;
  decoder_uv_kernel<<<unsigned(d.batch), kThreads, 0, st>>>(uv, mod, weight, bias, d.C, int(d.n_out()), int(np));
  CUDA_CHECK_LAUNCH();
  const bool vec = d.C % 4 == 0 && aligned_to(h, 4 * sizeof(T)) && aligned16(weight) && aligned16(mod);
  dim3 grid{unsigned((d.tokens() + kRows - 1) / kRows), unsigned(d.batch)};
  dispatch_np(np, [&](auto npc) {
    constexpr int NP = decltype(npc)::value;
    if (vec)
      decoder_forward_kernel<T, NP, true><<<grid, kThreads, 0, st>>>(out, mean, rstd, h, mod, weight, uv, d, float(eps));
    else
      decoder_forward_kernel<T, NP, false><<<grid, kThreads, 0, st>>>(out, mean, rstd, h, mod, weight, uv, d, float(eps));
    CUDA_CHECK_LAUNCH();
  });
}

template <typename T>
void linear_decoder_backward_cuda(T* dh, acc_t<T>* dmod, acc_t<T>* dweight, acc_t<T>* dbias, const T* dout,
                                  const T* out, const T* h, const acc_t<T>* mean, const acc_t<T>* rstd,
                                  const acc_t<T>* mod, const acc_t<T>* weight, const acc_t<T>* bias,
                                  const DecoderDims& d, bool accumulate, acc_t<T>* workspace, StreamHandle s) {
  check_dims(d);
  if (d.batch == 0 || (!dh && !dmod && !dweight && !dbias)) return;
  DRWKV_ASSERT(workspace, "linear_decoder_backward_cuda: needs the workspace");
  cudaStream_t st = to_cuda(s);
  const int64_t N = d.n_out(), np = decoder_padded_out(N), rows = d.batch * d.tokens();
  const int64_t row_blocks = (rows + kGradRows - 1) / kGradRows;
  const DecoderGroups groups = decoder_groups(d.batch, d.C);
  float* uv = workspace;
  float* do_tok = uv + d.batch * 2 * np;
  float* rowsum = do_tok + rows * np;
  float* db_part = rowsum + rows * 2;
  float* dw_part = db_part + row_blocks * np;

  decoder_uv_kernel<<<unsigned(d.batch), kThreads, 0, st>>>(uv, mod, weight, bias, d.C, int(N), int(np));
  CUDA_CHECK_LAUNCH();
  dispatch_np(np, [&](auto npc) {
    constexpr int NP = decltype(npc)::value;
    decoder_rowgrad_kernel<T, NP><<<unsigned(row_blocks), kThreads, 0, st>>>(do_tok, rowsum, db_part, dout, out, uv, d);
    CUDA_CHECK_LAUNCH();
    if (dh || dmod || dweight) {
      dim3 grid{unsigned((d.C + 31) / 32), unsigned(groups.groups)};
      decoder_backward_kernel<T, NP / 32><<<grid, kThreads, 0, st>>>(dh, dmod, dweight ? dw_part : nullptr, h, mean, rstd,
                                                                    do_tok, rowsum, mod, weight, d,
                                                                    groups.samples_per_group, accumulate);
      CUDA_CHECK_LAUNCH();
    }
  });
  if (dweight) launch_column_sum(static_cast<const float*>(dw_part), groups.groups, N * d.C, AddTo{dweight, N * d.C}, st);
  if (dbias) launch_column_sum(static_cast<const float*>(db_part), row_blocks, np, AddTo{dbias, N}, st);
}

#define INSTANTIATE(T)                                                                                         \
  template void linear_decoder_forward_cuda<T>(T*, acc_t<T>*, acc_t<T>*, const T*, const acc_t<T>*,            \
                                               const acc_t<T>*, const acc_t<T>*, const DecoderDims&, double,     \
                                               acc_t<T>*, StreamHandle);                                         \
  template void linear_decoder_backward_cuda<T>(T*, acc_t<T>*, acc_t<T>*, acc_t<T>*, const T*, const T*,       \
                                                const T*, const acc_t<T>*, const acc_t<T>*, const acc_t<T>*,    \
                                                const acc_t<T>*, const acc_t<T>*, const DecoderDims&, bool,     \
                                                acc_t<T>*, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
