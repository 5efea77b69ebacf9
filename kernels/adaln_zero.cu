// CUDA adaLN-Zero kernels (kernels/adaln_zero.h).
//
// Layout (kernels/row_tiles.cuh): block (x, y) = (token block, sample); thread x owns a chunk of VW
// channels of every row (VW = 16 bytes of y on the vector path), thread y walks the block's rows. The
// per-channel values of the sample (weight, bias, shift, scale, gate) stay in registers, and the sums over
// tokens (Σ dy, Σ dy·x̂, Σ dout·y) accumulate per thread, are summed over y in shared memory and leave as
// one partial row per block; a finishing kernel adds the token blocks in a fixed order.
// Statistics are two-pass over registers (mean, then Σ (h − mean)²): no cancellation. Arithmetic that two
// kernels must form bitwise alike (the normalised rows, the gated residual's products) is spelled out with
// __f*_rn intrinsics: the compiler's multiply-add contraction could otherwise differ between template
// instantiations (the fused forward differed from the two kernels in one bf16 rounding of 12480).

// Bytes per element (N = B·T·C): layernorm_modulate forward reads h (4) and writes y (2 for bf16): 6N;
// backward reads dy (2) and h (4), writes dh (4; +4 read when accumulating): 10N; plus B·T·8 of saved
// statistics and B·⌈T/64⌉·2C·4 of partials. gated_residual forward reads h, y and writes out: 10N (with the
// receptance r: 12N); backward reads dout, y and writes dy: 8N (with r: reads r, writes dr, 12N).
// gated_residual_layernorm_modulate: forward 12N (the LayerNorm kernel with a gated-residual prologue);
// backward 16N with accumulation (the LayerNorm backward kernel forming each row of h1 from h and y and
// with a gated-residual epilogue that takes the row of dh1 from registers, in blocks of ≤ 512 threads;
// rows wider than 2048 channels form h1 in the workspace and run the two kernels).
#include <initializer_list>
#include <type_traits>

#include "kernels/adaln_zero.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"
#include "kernels/row_tiles.cuh"

namespace drwkv::kernels {
namespace {
using namespace cuda;
constexpr int64_t kTPB = kAdaLNTokensPerBlock;

// Chunk [c0, c0 + VW) of a row: vector access on the VEC path (C % VW == 0, aligned), guarded scalar
// accesses otherwise (channels ≥ C read as 0 and are not written).
template <int VW, bool VEC, typename T>
__device__ __forceinline__ void load_chunk(const T* p, int64_t c0, int64_t C, float (&v)[VW]) {
  if constexpr (VEC) {
    load_vec<VW>(p + c0, v);
  } else {
#pragma unroll
    for (int j = 0; j < VW; ++j) v[j] = c0 + j < C ? load_as<float>(p[c0 + j]) : 0.f;
  }
}
template <int VW, bool VEC, typename T>
__device__ __forceinline__ void store_chunk(T* p, int64_t c0, int64_t C, const float (&v)[VW]) {
  if constexpr (VEC) {
    store_vec<VW>(p + c0, v);
  } else {
#pragma unroll
    for (int j = 0; j < VW; ++j)
      if (c0 + j < C) p[c0 + j] = store_as<T>(v[j]);
  }
}
// An optional parameter vector: `fallback` where p is null.
template <int VW, bool VEC>
__device__ __forceinline__ void load_param(const float* p, int64_t c0, int64_t C, float fallback, float (&v)[VW]) {
  if (p) {
    load_chunk<VW, VEC>(p, c0, C, v);
  } else {
#pragma unroll
    for (int j = 0; j < VW; ++j) v[j] = fallback;
  }
}

// ---- the gated residual, element by element ---------------------------------------------------------
// Every kernel that forms these (the gated-residual kernels, and the LayerNorm kernels' prologue and
// epilogue) calls the same functions, so that fused and separate kernels agree bitwise.
// gv = s_b · gate_b over a chunk of sample b's gate (sample_scale null: s_b = 1).
template <int VW, bool VEC>
__device__ __forceinline__ void load_sample_gate(const float* gate, const float* sample_scale, int64_t b,
                                                 int64_t mod_stride, int64_t c0, int64_t C, float (&gv)[VW]) {
  const float sb = sample_scale ? sample_scale[b] : 1.f;
  load_chunk<VW, VEC>(gate + b * mod_stride, c0, C, gv);
#pragma unroll
  for (int j = 0; j < VW; ++j) gv[j] *= sb;
}
// out = h + gv · (σ(r) ·) y.
template <bool R> __device__ __forceinline__ float gated_out(float h, float gv, float y, float r) {
  if constexpr (R) y *= sigmoid_(r);
  return __fmaf_rn(gv, y, h);
}
// Backward, from d = ∂L/∂out and sr = σ(r) (R): the gate sum's term added to `sum`, dy added to `dy`, and
// dr.
template <bool R> __device__ __forceinline__ float gated_gate_term(float d, float y, float sr, float sum) {
  return R ? __fmaf_rn(__fmul_rn(d, sr), y, sum) : __fmaf_rn(d, y, sum);
}
template <bool R> __device__ __forceinline__ float gated_dy(float gv, float d, float sr, float dy) {
  return R ? __fmaf_rn(__fmul_rn(gv, d), sr, dy) : __fmaf_rn(gv, d, dy);
}
__device__ __forceinline__ float gated_dr(float gv, float d, float y, float sr) {
  return gv * d * y * sr * (1.f - sr);
}

// ---- layernorm_modulate ------------------------------------------------------------------------------
// The gated-residual prologue of gated_residual_layernorm_modulate: the row is h + s_b·gate_b ⊙ y (with
// the receptance: ⊙ σ(r) ⊙ y), written to h1 (when not null) before it is normalised.
template <typename TH, typename TY> struct GatedInput {
  TH* h1 = nullptr;
  TY* h1_rounded = nullptr;  // h1 in the branch dtype (may be null)
  const TY* y = nullptr;
  const TY* r = nullptr;  // with R
  const float* gate = nullptr;
  const float* sample_scale = nullptr;
};
// Blocks of the kernels with the receptance (forward and backward) or the gated epilogue (backward) stay
// within 512 threads: their extra registers would not fit the 64 per thread of a 1024-thread block. Rows
// wider than kGatedLayerNormBackwardFusedC channels run the separate kernels.
constexpr int kLnThreads(bool wide_registers) { return wide_registers ? 512 : 1024; }

// G: with the gated-residual prologue (`gi`); R: with its receptance.
template <typename TH, typename TY, int VW, bool VEC, bool G = false, bool R = false>
__global__ void __launch_bounds__(kLnThreads(R)) ln_modulate_forward_kernel(
    TY* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, const TH* __restrict__ h,
    const float* __restrict__ weight, const float* __restrict__ bias, const float* __restrict__ shift,
    const float* __restrict__ scale, int64_t mod_stride, int64_t tokens, int64_t C, float eps,
    GatedInput<TH, TY> gi = {}) {
  __shared__ float red[2][32];  // two alternating buffers, one value per warp
  const int64_t b = blockIdx.y, t0 = int64_t(blockIdx.x) * kTPB;
  const int64_t nrows = tokens - t0 < kTPB ? tokens - t0 : kTPB;
  const int64_t c0 = int64_t(threadIdx.x) * VW;
  const bool active = c0 < C;
  // y = (h − mean) · rstd · a + o with a = weight (1 + scale), o = bias (1 + scale) + shift
  float a[VW], o[VW];
  if (active) {
    float w[VW], bi[VW], sh[VW], sc[VW];
    load_param<VW, VEC>(weight, c0, C, 1.f, w);
    load_param<VW, VEC>(bias, c0, C, 0.f, bi);
    load_chunk<VW, VEC>(shift + b * mod_stride, c0, C, sh);
    load_chunk<VW, VEC>(scale + b * mod_stride, c0, C, sc);
#pragma unroll
    for (int j = 0; j < VW; ++j) {
      a[j] = __fmul_rn(w[j], __fadd_rn(1.f, sc[j]));
      o[j] = __fmaf_rn(bi[j], __fadd_rn(1.f, sc[j]), sh[j]);
    }
  }
  float gv[G ? VW : 1];  // s_b · gate_b
  if constexpr (G)
    if (active) load_sample_gate<VW, VEC>(gi.gate, gi.sample_scale, b, mod_stride, c0, C, gv);
  const float inv_c = 1.f / float(C);
  for (int64_t base = 0; base < nrows; base += blockDim.y) {  // same trip count in every thread
    const int64_t i = base + threadIdx.y;
    const bool valid = i < nrows;
    const int64_t row = b * tokens + t0 + i;
    float hv[VW];
    if (valid && active) {
      load_chunk<VW, VEC>(h + row * C, c0, C, hv);
      if constexpr (G) {
        float yv[VW], rv[VW];  // rv unused (and dropped by the compiler) without R
        load_chunk<VW, VEC>(gi.y + row * C, c0, C, yv);
        if constexpr (R) load_chunk<VW, VEC>(gi.r + row * C, c0, C, rv);
#pragma unroll
        for (int j = 0; j < VW; ++j) hv[j] = gated_out<R>(hv[j], gv[j], yv[j], R ? rv[j] : 0.f);
        if (gi.h1) store_chunk<VW, VEC>(gi.h1 + row * C, c0, C, hv);
        if (gi.h1_rounded) store_chunk<VW, VEC>(gi.h1_rounded + row * C, c0, C, hv);
      }
    } else {
#pragma unroll
      for (int j = 0; j < VW; ++j) hv[j] = 0.f;
    }
    float s[1] = {0.f};
#pragma unroll
    for (int j = 0; j < VW; ++j) s[0] += hv[j];
    row_sum<1, false>(s, red[0]);
    const float mu = s[0] * inv_c;
    float d[1] = {0.f};
    if (active) {
#pragma unroll
      for (int j = 0; j < VW; ++j) {
        const float e = __fsub_rn(hv[j], mu);
        if (VEC || c0 + j < C) d[0] = __fmaf_rn(e, e, d[0]);
      }
    }
    row_sum<1, false>(d, red[1]);
    const float rs = rsqrtf(__fmaf_rn(d[0], inv_c, eps));
    if (valid && active) {
      float out[VW];
#pragma unroll
      for (int j = 0; j < VW; ++j) out[j] = __fmaf_rn(__fmul_rn(__fsub_rn(hv[j], mu), rs), a[j], o[j]);
      store_chunk<VW, VEC>(y + row * C, c0, C, out);
    }
    if (valid && threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = rs;
    }
  }
}

// The gated-residual epilogue of gated_residual_layernorm_modulate's backward: from the row dout just
// formed (the gradient of the residual's output), dy = s_b·gate_b ⊙ σ(r) ⊙ dout, dr (with R), and the
// partial sums Σ dout ⊙ σ(r) ⊙ y of the gate gradient (σ(r) = 1 without R).
template <typename TY> struct GatedGrad {
  TY* dy = nullptr;
  TY* dr = nullptr;          // with R (may be null)
  const TY* y = nullptr;
  const TY* r = nullptr;     // with R
  const float* gate = nullptr;
  const float* sample_scale = nullptr;
  float* partial = nullptr;  // [b][token block][c]
  bool accumulate = false;   // dy
  bool form_row = false;     // h is the residual's input: the normalised row is h + s_b·gate_b ⊙ y (no R)
};

// dh for the block's rows; partial[b][token block][0 / 1][c] = Σ dy, Σ dy · x̂ over the block's rows.
// G: the gated-residual epilogue runs (`gg`; dh must not be null); with gg.form_row, h is the residual's
// input and the normalised row is formed again as the forward formed it. R: the epilogue's receptance.
template <typename TH, typename TY, int VW, bool VEC, bool G = false, bool R = false>
__global__ void __launch_bounds__(kLnThreads(G)) ln_modulate_backward_kernel(
    TH* __restrict__ dh, float* __restrict__ partial, const TY* __restrict__ dy, const TH* __restrict__ h,
    const float* __restrict__ mean, const float* __restrict__ rstd, const float* __restrict__ weight,
    const float* __restrict__ scale, int64_t mod_stride, int64_t tokens, int64_t C, bool accumulate,
    GatedGrad<TY> gg = {}, TH* __restrict__ dpass = nullptr) {
  constexpr int NS = G ? 3 : 2;  // column sums per channel: Σ dy, Σ dy·x̂ (, Σ dh·y)
  __shared__ float red[2][64];   // two alternating buffers, two values per warp
  extern __shared__ float col[];  // blockDim.x · blockDim.y · NS · VW (when blockDim.y > 1)
  const int64_t b = blockIdx.y, t0 = int64_t(blockIdx.x) * kTPB;
  const int64_t nrows = tokens - t0 < kTPB ? tokens - t0 : kTPB;
  const int64_t c0 = int64_t(threadIdx.x) * VW;
  const bool active = c0 < C;
  float g[VW];  // ∂LN-output/∂x̂ factor: weight (1 + scale)
  if (active) {
    float w[VW], sc[VW];
    load_param<VW, VEC>(weight, c0, C, 1.f, w);
    load_chunk<VW, VEC>(scale + b * mod_stride, c0, C, sc);
#pragma unroll
    for (int j = 0; j < VW; ++j) g[j] = __fmul_rn(w[j], __fadd_rn(1.f, sc[j]));
  } else {
#pragma unroll
    for (int j = 0; j < VW; ++j) g[j] = 0.f;
  }
  float gv[G ? VW : 1];  // s_b · gate_b
  if constexpr (G)
    if (active) load_sample_gate<VW, VEC>(gg.gate, gg.sample_scale, b, mod_stride, c0, C, gv);
  float sums[NS * VW];  // Σ dy, then Σ dy · x̂ (, then Σ dh · y)
#pragma unroll
  for (int k = 0; k < NS * VW; ++k) sums[k] = 0.f;
  const float inv_c = 1.f / float(C);
  int parity = 0;
  for (int64_t base = 0; base < nrows; base += blockDim.y) {
    const int64_t i = base + threadIdx.y;
    const bool valid = i < nrows;
    const int64_t row = b * tokens + t0 + i;
    float dyv[VW], xh[VW], out[VW], yv[G ? VW : 1], dout[G ? VW : 1], sr[VW];  // sr: σ(r) with R
    const float mu = valid ? mean[row] : 0.f, rs = valid ? rstd[row] : 0.f;
    if (valid && active) {
      // the partial sum dh accumulates into is loaded with the row, before the row reduction (one memory
      // round trip per row instead of two); so are the epilogue's operands
      float hv[VW];
      load_chunk<VW, VEC>(dy + row * C, c0, C, dyv);
      load_chunk<VW, VEC>(h + row * C, c0, C, hv);
      if constexpr (G) {
        load_chunk<VW, VEC>(gg.y + row * C, c0, C, yv);
        if constexpr (R) {
          load_chunk<VW, VEC>(gg.r + row * C, c0, C, sr);
#pragma unroll
          for (int j = 0; j < VW; ++j) sr[j] = sigmoid_(sr[j]);
        }
        if (gg.accumulate) {
          load_chunk<VW, VEC>(gg.dy + row * C, c0, C, dout);
        } else {
#pragma unroll
          for (int j = 0; j < VW; ++j) dout[j] = 0.f;
        }
      }
      if (dh != nullptr && accumulate) {
        load_chunk<VW, VEC>(dh + row * C, c0, C, out);
      } else {
#pragma unroll
        for (int j = 0; j < VW; ++j) out[j] = 0.f;
      }
      if constexpr (G && !R) {
        if (gg.form_row) {  // h1 formed again from h, exactly as the forward's prologue formed it
#pragma unroll
          for (int j = 0; j < VW; ++j) hv[j] = gated_out<false>(hv[j], gv[j], yv[j], 0.f);
        }
      }
#pragma unroll
      for (int j = 0; j < VW; ++j) xh[j] = (VEC || c0 + j < C) ? __fmul_rn(__fsub_rn(hv[j], mu), rs) : 0.f;
    } else {
#pragma unroll
      for (int j = 0; j < VW; ++j) dyv[j] = xh[j] = out[j] = 0.f;
    }
#pragma unroll
    for (int j = 0; j < VW; ++j) {
      sums[j] += dyv[j];
      sums[VW + j] = __fmaf_rn(dyv[j], xh[j], sums[VW + j]);
    }
    if (dh == nullptr) continue;  // uniform
    float s[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < VW; ++j) {
      const float d = __fmul_rn(dyv[j], g[j]);
      s[0] += d;
      s[1] = __fmaf_rn(d, xh[j], s[1]);
    }
    row_sum<2, false>(s, red[parity]);
    parity ^= 1;
    if (valid && active) {
#pragma unroll
      for (int j = 0; j < VW; ++j)
        out[j] = __fmaf_rn(rs, __fsub_rn(__fmul_rn(dyv[j], g[j]), __fmul_rn(__fmaf_rn(xh[j], s[1], s[0]), inv_c)),
                           out[j]);
      if (G && dpass != nullptr) {  // h's gradient is h1's: added to h's partial sum, dh not stored
        float pv[VW];
        load_chunk<VW, VEC>(dpass + row * C, c0, C, pv);
#pragma unroll
        for (int j = 0; j < VW; ++j) pv[j] = __fadd_rn(pv[j], out[j]);
        store_chunk<VW, VEC>(dpass + row * C, c0, C, pv);
      } else {
        store_chunk<VW, VEC>(dh + row * C, c0, C, out);
      }
      if constexpr (G) {  // the gated residual's backward with dout = this row of dh
        if constexpr (R)
          if (gg.dr) {
            float o[VW];
#pragma unroll
            for (int j = 0; j < VW; ++j) o[j] = gated_dr(gv[j], out[j], yv[j], sr[j]);
            store_chunk<VW, VEC>(gg.dr + row * C, c0, C, o);
          }
#pragma unroll
        for (int j = 0; j < VW; ++j) {
          const float sj = R ? sr[j] : 1.f;  // (sr is not set without R)
          sums[2 * VW + j] = gated_gate_term<R>(out[j], yv[j], sj, sums[2 * VW + j]);
          dout[j] = gated_dy<R>(gv[j], out[j], sj, dout[j]);
        }
        store_chunk<VW, VEC>(gg.dy + row * C, c0, C, dout);
      }
    }
  }
  if (partial == nullptr && !G) return;  // uniform
  column_sum_over_y<NS * VW>(sums, col);
  if (threadIdx.y == 0 && active) {
    const int64_t at = b * gridDim.x + blockIdx.x;
#pragma unroll
    for (int j = 0; j < VW; ++j) {
      if (!VEC && c0 + j >= C) break;
      if (partial) {
        partial[at * 2 * C + c0 + j] = sums[j];
        partial[at * 2 * C + C + c0 + j] = sums[VW + j];
      }
      if constexpr (G)
        if (gg.partial) gg.partial[at * C + c0 + j] = sums[2 * VW + j];
    }
  }
}

// Per (b, c): S1 = Σ_blocks Σ dy, S2 = Σ_blocks Σ dy·x̂ in block order; dshift += S1, dscale += w S2 + bias S1
// (Σ dy ⊙ LN(h)); per-sample affine contributions (1 + scale) S1, (1 + scale) S2 into param[b][2C].
__global__ void ln_modulate_finish_kernel(float* dshift, float* dscale, float* param, const float* partial,
                                          const float* weight, const float* bias, const float* scale,
                                          int64_t mod_stride, int64_t batch, int64_t token_blocks, int64_t C) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= batch * C) return;
  const int64_t b = idx / C, c = idx - b * C;
  float s1 = 0.f, s2 = 0.f;
  for (int64_t k = 0; k < token_blocks; ++k) {
    const float* p = partial + (b * token_blocks + k) * 2 * C;
    s1 += p[c];
    s2 += p[C + c];
  }
  const float w = weight ? weight[c] : 1.f, bi = bias ? bias[c] : 0.f;
  if (dshift) dshift[b * mod_stride + c] += s1;
  if (dscale) dscale[b * mod_stride + c] += w * s2 + bi * s1;
  if (param) {
    const float f = 1.f + scale[b * mod_stride + c];
    param[b * 2 * C + c] = f * s1;
    param[b * 2 * C + C + c] = f * s2;
  }
}

struct AddToAffineGradients {
  float* dweight;
  float* dbias;
  int64_t C;
  __device__ void operator()(int64_t col, float s) const {
    if (col < C) {
      if (dbias) dbias[col] += s;
    } else if (dweight) {
      dweight[col - C] += s;
    }
  }
};

// ---- gated residual ----------------------------------------------------------------------------------
// Rows in flight per thread in the forward: 4, or 2 with the receptance (with 4 it took 142 registers,
// one block of 240 threads per SM: 61% of copy at C = 384 in bf16, against 88% with 2)
template <bool R> constexpr int kGatedRows = R ? 2 : 4;

// R: with the receptance r (the branch is σ(r) ⊙ y).
template <typename TH, typename TY, int VW, bool R>
__global__ void gated_forward_kernel(TH* out, TY* __restrict__ out_rounded, const TH* h, const TY* __restrict__ y,
                                     const TY* __restrict__ r,
                                     const float* __restrict__ gate, int64_t mod_stride,
                                     const float* __restrict__ sample_scale, int64_t tokens, int64_t C) {
  const int64_t b = blockIdx.y, t0 = int64_t(blockIdx.x) * kTPB;
  const int64_t nrows = tokens - t0 < kTPB ? tokens - t0 : kTPB;
  for (int64_t c0 = int64_t(threadIdx.x) * VW; c0 < C; c0 += int64_t(blockDim.x) * VW) {
    float gv[VW];
    load_sample_gate<VW, true>(gate, sample_scale, b, mod_stride, c0, C, gv);
    // kGatedRows<R> rows per step, all loaded before any is stored: out may alias h (so the compiler may not
    // move a load above an earlier store itself), and each element is read before it is written, by one
    // thread
    for (int64_t i0 = threadIdx.y; i0 < nrows; i0 += kGatedRows<R> * int64_t(blockDim.y)) {
      float hv[kGatedRows<R>][VW], yv[kGatedRows<R>][VW], rv[kGatedRows<R>][VW];  // rv: with R
#pragma unroll
      for (int u = 0; u < kGatedRows<R>; ++u) {
        const int64_t i = i0 + u * int64_t(blockDim.y), at = (b * tokens + t0 + i) * C + c0;
        if (i < nrows) {
          load_vec<VW>(h + at, hv[u]);
          load_vec<VW>(y + at, yv[u]);
          if constexpr (R) load_vec<VW>(r + at, rv[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < kGatedRows<R>; ++u) {
        const int64_t i = i0 + u * int64_t(blockDim.y), at = (b * tokens + t0 + i) * C + c0;
        if (i < nrows) {
#pragma unroll
          for (int j = 0; j < VW; ++j) hv[u][j] = gated_out<R>(hv[u][j], gv[j], yv[u][j], R ? rv[u][j] : 0.f);
          store_vec<VW>(out + at, hv[u]);
          if (out_rounded) store_vec<VW>(out_rounded + at, hv[u]);
        }
      }
    }
  }
}

// dy (and dr) for the block's rows; partial[b][token block][c] = Σ dout · σ(r) · y over them.
template <typename TH, typename TY, int VW, bool R>
__global__ void gated_backward_kernel(TY* __restrict__ dy, TY* __restrict__ dr, float* __restrict__ partial,
                                      const TH* __restrict__ dout, const TY* __restrict__ y,
                                      const TY* __restrict__ r, const float* __restrict__ gate, int64_t mod_stride,
                                      const float* __restrict__ sample_scale, int64_t tokens, int64_t C,
                                      bool accumulate) {
  extern __shared__ float col[];  // blockDim.x · blockDim.y · VW (when blockDim.y > 1)
  const int64_t b = blockIdx.y, t0 = int64_t(blockIdx.x) * kTPB;
  const int64_t nrows = tokens - t0 < kTPB ? tokens - t0 : kTPB;
  for (int64_t base = 0; base < C; base += int64_t(blockDim.x) * VW) {  // same trip count in every thread
    const int64_t c0 = base + int64_t(threadIdx.x) * VW;
    const bool active = c0 < C;
    float acc[VW];
#pragma unroll
    for (int j = 0; j < VW; ++j) acc[j] = 0.f;
    if (active) {
      float gv[VW];
      load_sample_gate<VW, true>(gate, sample_scale, b, mod_stride, c0, C, gv);
      for (int64_t i = threadIdx.y; i < nrows; i += blockDim.y) {
        const int64_t at = (b * tokens + t0 + i) * C + c0;
        float dv[VW], sr[VW], yv[VW];
        load_vec<VW>(dout + at, dv);
        if (partial || R) load_vec<VW>(y + at, yv);
        if constexpr (R) {
          load_vec<VW>(r + at, sr);
#pragma unroll
          for (int j = 0; j < VW; ++j) sr[j] = sigmoid_(sr[j]);
        } else {
#pragma unroll
          for (int j = 0; j < VW; ++j) sr[j] = 1.f;
        }
        if (partial) {
#pragma unroll
          for (int j = 0; j < VW; ++j) acc[j] = gated_gate_term<R>(dv[j], yv[j], sr[j], acc[j]);
        }
        if constexpr (R)
          if (dr) {
            float o[VW];
#pragma unroll
            for (int j = 0; j < VW; ++j) o[j] = gated_dr(gv[j], dv[j], yv[j], sr[j]);
            store_vec<VW>(dr + at, o);
          }
        if (dy) {
          float o[VW];
          if (accumulate) {
            load_vec<VW>(dy + at, o);
          } else {
#pragma unroll
            for (int j = 0; j < VW; ++j) o[j] = 0.f;
          }
#pragma unroll
          for (int j = 0; j < VW; ++j) o[j] = gated_dy<R>(gv[j], dv[j], sr[j], o[j]);
          store_vec<VW>(dy + at, o);
        }
      }
    }
    if (partial == nullptr) continue;  // uniform
    column_sum_over_y<VW>(acc, col);
    if (threadIdx.y == 0 && active) {
      float* p = partial + (b * gridDim.x + blockIdx.x) * C;
#pragma unroll
      for (int j = 0; j < VW; ++j) p[c0 + j] = acc[j];
    }
  }
}

// dgate[b, c] += s_b Σ_blocks partial[b][k][c], blocks in order.
__global__ void gated_finish_kernel(float* dgate, const float* partial, const float* sample_scale, int64_t mod_stride,
                                    int64_t batch, int64_t token_blocks, int64_t C) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= batch * C) return;
  const int64_t b = idx / C, c = idx - b * C;
  float s = 0.f;
  for (int64_t k = 0; k < token_blocks; ++k) s += partial[(b * token_blocks + k) * C + c];
  dgate[b * mod_stride + c] += (sample_scale ? sample_scale[b] : 1.f) * s;
}

// ---- launch helpers ----------------------------------------------------------------------------------
int64_t token_blocks(int64_t tokens) { return (tokens + kTPB - 1) / kTPB; }

void check_args(int64_t batch, int64_t tokens, int64_t C, int64_t mod_stride) {
  DRWKV_ASSERT(batch >= 0 && tokens >= 0 && C > 0 && mod_stride >= C, "adaLN: B %lld, T %lld, C %lld, mod stride %lld",
               (long long)batch, (long long)tokens, (long long)C, (long long)mod_stride);
  DRWKV_ASSERT(batch < 65536, "adaLN CUDA kernels: batch %lld exceeds the grid limit", (long long)batch);
}

// True when every given pointer is 16-byte aligned (null pointers pass).
bool all_aligned(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return false;
  return true;
}

// The vector path of the LayerNorm kernels: C a multiple of 4 and 16-byte aligned pointers.
bool ln_vec(int64_t C, int64_t mod_stride, std::initializer_list<const void*> ptrs) {
  return C % 4 == 0 && mod_stride % 4 == 0 && all_aligned(ptrs);
}

// Chunk width: 16 bytes of TY (8 bf16) unless 4 elements fill whole warps where 8 would not (C = 384 in
// bf16: 48 chunks of 8 leave 16 of 64 threads idle, 96 chunks of 4 fill 3 warps). One thread per chunk:
// the row must fit in 1024 threads.
template <typename TY, typename F>
void ln_dispatch(bool vec, int64_t C, F&& f) {
  constexpr int P = kPack<TY>;
  if (vec && P == 8 && C % 8 == 0 && ((C / 8) % 32 == 0 || (C / 4) % 32 != 0 || C / 4 > 1024)) {
    DRWKV_ASSERT(C <= 1024 * 8, "layernorm_modulate CUDA: C %lld too wide", (long long)C);
    f(std::integral_constant<int, P>{}, std::true_type{});
  } else if (vec) {
    DRWKV_ASSERT(C <= 1024 * 4, "layernorm_modulate CUDA: C %lld too wide", (long long)C);
    f(std::integral_constant<int, 4>{}, std::true_type{});
  } else {
    DRWKV_ASSERT(C <= 1024 * 4, "layernorm_modulate CUDA: C %lld too wide for the unaligned path", (long long)C);
    f(std::integral_constant<int, 4>{}, std::false_type{});
  }
}

// The gated-residual kernels: 16 bytes of TY per chunk on the vector path (else one element), with or
// without the receptance.
template <typename TY, typename F>
void gated_dispatch(bool vec, bool receptance, F&& f) {
  auto with_r = [&](auto vw) {
    if (receptance)
      f(vw, std::true_type{});
    else
      f(vw, std::false_type{});
  };
  if (vec)
    with_r(std::integral_constant<int, kPack<TY>>{});
  else
    with_r(std::integral_constant<int, 1>{});
}

// The LayerNorm-modulate forward kernel, with the gated-residual prologue when G (and its receptance
// when R).
template <bool G, bool R, typename TH, typename TY>
void launch_ln_modulate_forward(bool vec, TY* y, float* mean, float* rstd, const TH* h, const float* weight,
                                const float* bias, const float* shift, const float* scale, int64_t mod_stride,
                                int64_t batch, int64_t tokens, int64_t C, double eps, const GatedInput<TH, TY>& gi,
                                StreamHandle s) {
  ln_dispatch<TY>(vec, C, [&](auto vw, auto v) {
    constexpr int VW = decltype(vw)::value;
    constexpr bool VEC = decltype(v)::value;
    const int max_x = kLnThreads(R);
    DRWKV_ASSERT((C + VW - 1) / VW <= max_x, "layernorm_modulate_forward_cuda: C %lld too wide", (long long)C);
    RowBlock rb = row_block(C, VW, max_x, true, int(kTPB));
    dim3 grid{unsigned(token_blocks(tokens)), unsigned(batch)};
    ln_modulate_forward_kernel<TH, TY, VW, VEC, G, R><<<grid, dim3(rb.x, rb.y), 0, to_cuda(s)>>>(
        y, mean, rstd, h, weight, bias, shift, scale, mod_stride, tokens, C, float(eps), gi);
    CUDA_CHECK_LAUNCH();
  });
}
}  // namespace

template <typename TH, typename TY>
void layernorm_modulate_forward_cuda(TY* y, acc_t<TH>* mean, acc_t<TH>* rstd, const TH* h, const acc_t<TH>* weight,
                                     const acc_t<TH>* bias, const acc_t<TH>* shift, const acc_t<TH>* scale,
                                     int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C, double eps,
                                     StreamHandle s) {
  check_args(batch, tokens, C, mod_stride);
  if (batch * tokens == 0) return;
  const bool vec = ln_vec(C, mod_stride, {y, h, weight, bias, shift, scale});
  launch_ln_modulate_forward<false, false>(vec, y, mean, rstd, h, weight, bias, shift, scale, mod_stride, batch,
                                           tokens, C, eps, GatedInput<TH, TY>{}, s);
}

template <typename TH, typename TY>
void gated_residual_layernorm_modulate_forward_cuda(TH* h1, TY* h1_rounded, TY* x, acc_t<TH>* mean, acc_t<TH>* rstd, const TH* h,
                                                    const TY* y, const TY* r, const acc_t<TH>* gate,
                                                    const acc_t<TH>* sample_scale, const acc_t<TH>* weight,
                                                    const acc_t<TH>* bias, const acc_t<TH>* shift,
                                                    const acc_t<TH>* scale, int64_t mod_stride, int64_t batch,
                                                    int64_t tokens, int64_t C, double eps, StreamHandle s) {
  check_args(batch, tokens, C, mod_stride);
  DRWKV_ASSERT(static_cast<const void*>(h1) != static_cast<const void*>(h),
               "gated_residual_layernorm_modulate_forward_cuda: h1 aliases h");
  if (batch * tokens == 0) return;
  if (r && C > kGatedLayerNormBackwardFusedC) {  // wider than the receptance kernel's blocks: the two kernels
    DRWKV_ASSERT(h1, "gated_residual_layernorm_modulate_forward_cuda: rows of %lld channels with a receptance need h1",
                 (long long)C);
    gated_residual_forward_cuda<TH, TY>(h1, h1_rounded, h, y, r, gate, mod_stride, sample_scale, batch, tokens, C, s);
    layernorm_modulate_forward_cuda<TH, TY>(x, mean, rstd, h1, weight, bias, shift, scale, mod_stride, batch, tokens, C,
                                            eps, s);
    return;
  }
  const bool vec = ln_vec(C, mod_stride, {x, h, h1, h1_rounded, y, r, gate, weight, bias, shift, scale});
  const GatedInput<TH, TY> gi{h1, h1_rounded, y, r, gate, sample_scale};
  if (r)
    launch_ln_modulate_forward<true, true>(vec, x, mean, rstd, h, weight, bias, shift, scale, mod_stride, batch, tokens,
                                           C, eps, gi, s);
  else
    launch_ln_modulate_forward<true, false>(vec, x, mean, rstd, h, weight, bias, shift, scale, mod_stride, batch,
                                            tokens, C, eps, gi, s);
}

namespace {
// The LayerNorm-modulate backward (with the gated-residual epilogue when G) and its finishing kernels.
// Workspace: the norm's partials and per-sample affine sums, then (G) the gate's partials.
template <bool G, bool R, typename TH, typename TY>
void launch_ln_modulate_backward(TH* dh, float* dweight, float* dbias, float* dshift, float* dscale, const TY* dy,
                                 const TH* h, const float* mean, const float* rstd, const float* weight,
                                 const float* bias, const float* scale, int64_t mod_stride, int64_t batch,
                                 int64_t tokens, int64_t C, bool accumulate, float* workspace, GatedGrad<TY> gg,
                                 float* dgate, StreamHandle s, TH* dpass = nullptr) {
  const bool sums = dweight || dbias || dshift || dscale;
  DRWKV_ASSERT((!sums && !dgate) || workspace, "layernorm_modulate_backward_cuda: parameter gradients need the workspace");
  const int64_t tb = token_blocks(tokens);
  float* partial = sums ? workspace : nullptr;
  float* param = (dweight || dbias) ? workspace + batch * tb * 2 * C : nullptr;
  if (G) gg.partial = dgate ? workspace + layernorm_modulate_workspace(batch, tokens, C) : nullptr;
  const bool vec = ln_vec(C, mod_stride, {dy, h, dh, dpass, weight, scale, gg.dy, gg.dr, gg.y, gg.r, gg.gate});
  cudaStream_t st = to_cuda(s);
  ln_dispatch<TY>(vec, C, [&](auto vw, auto v) {
    constexpr int VW = decltype(vw)::value;
    constexpr bool VEC = decltype(v)::value;
    constexpr int NS = G ? 3 : 2;
    const int max_x = kLnThreads(G);
    DRWKV_ASSERT((C + VW - 1) / VW <= max_x, "layernorm_modulate_backward_cuda: C %lld too wide", (long long)C);
    RowBlock rb = row_block(C, VW, max_x, true, int(kTPB));
    size_t smem = rb.y > 1 ? size_t(rb.x) * rb.y * NS * VW * sizeof(float) : 0;
    dim3 grid{unsigned(tb), unsigned(batch)};
    ln_modulate_backward_kernel<TH, TY, VW, VEC, G, R><<<grid, dim3(rb.x, rb.y), smem, st>>>(
        dh, partial, dy, h, mean, rstd, weight, scale, mod_stride, tokens, C, accumulate, gg, dpass);
    CUDA_CHECK_LAUNCH();
  });
  const int64_t n = batch * C;
  if (G && dgate) {
    gated_finish_kernel<<<unsigned((n + 255) / 256), 256, 0, st>>>(dgate, gg.partial, gg.sample_scale, mod_stride,
                                                                   batch, tb, C);
    CUDA_CHECK_LAUNCH();
  }
  if (!sums) return;
  ln_modulate_finish_kernel<<<unsigned((n + 255) / 256), 256, 0, st>>>(dshift, dscale, param, partial, weight, bias,
                                                                       scale, mod_stride, batch, tb, C);
  CUDA_CHECK_LAUNCH();
  if (param) launch_column_sum(static_cast<const float*>(param), batch, 2 * C, AddToAffineGradients{dweight, dbias, C}, st);
}
}  // namespace

template <typename TH, typename TY>
void layernorm_modulate_backward_cuda(TH* dh, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
                                      acc_t<TH>* dscale, const TY* dy, const TH* h, const acc_t<TH>* mean,
                                      const acc_t<TH>* rstd, const acc_t<TH>* weight, const acc_t<TH>* bias,
                                      const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens,
                                      int64_t C, bool accumulate, acc_t<TH>* workspace, StreamHandle s) {
  check_args(batch, tokens, C, mod_stride);
  if (batch * tokens == 0) return;
  launch_ln_modulate_backward<false, false>(dh, dweight, dbias, dshift, dscale, dy, h, mean, rstd, weight, bias,
                                            scale, mod_stride, batch, tokens, C, accumulate, workspace,
                                            GatedGrad<TY>{}, nullptr, s);
}

template <typename TH, typename TY>
void gated_residual_layernorm_modulate_backward_cuda(
    TH* dh1, TH* dh_pass, TY* dy, TY* dr, acc_t<TH>* dgate, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
    acc_t<TH>* dscale, const TY* dx, const TH* h, const TH* h1, const acc_t<TH>* mean, const acc_t<TH>* rstd,
    const TY* y, const TY* r, const acc_t<TH>* gate, const acc_t<TH>* sample_scale, const acc_t<TH>* weight,
    const acc_t<TH>* bias, const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C,
    bool accumulate, bool accumulate_dy, acc_t<TH>* workspace, StreamHandle s) {
  check_args(batch, tokens, C, mod_stride);
  check_gated_residual_layernorm_modulate_backward(dh1, dh_pass, dy, dr, h, h1, r);
  if (batch * tokens == 0) return;
  static_assert(kGatedLayerNormBackwardFusedC <= kLnThreads(true) * 4, "every chunk width fits");
  if (C > kGatedLayerNormBackwardFusedC) {  // rows wider than the fused kernel's blocks: (h1,) the two kernels
    DRWKV_ASSERT(workspace, "gated_residual_layernorm_modulate_backward_cuda: no workspace");
    float* gated_ws = workspace + layernorm_modulate_workspace(batch, tokens, C);
    const TH* rows = h1;
    if (!rows) {
      TH* formed = reinterpret_cast<TH*>(gated_ws + gated_residual_workspace(batch, tokens, C));
      gated_residual_forward_cuda<TH, TY>(formed, nullptr, h, y, nullptr, gate, mod_stride, sample_scale, batch, tokens,
                                          C, s);
      rows = formed;
    }
    layernorm_modulate_backward_cuda<TH, TY>(dh1, dweight, dbias, dshift, dscale, dx, rows, mean, rstd, weight, bias,
                                             scale, mod_stride, batch, tokens, C, accumulate, workspace, s);
    gated_residual_backward_cuda<TH, TY>(dy, dr, dgate, dh1, y, r, gate, mod_stride, sample_scale, batch, tokens, C,
                                         accumulate_dy, gated_ws, s);
    if (dh_pass) {
      Broadcast flat;
      flat.ndim = 1;
      flat.shape[0] = batch * tokens * C;
      for (int k = 0; k < 3; ++k) flat.stride[k][0] = 1;
      binary_cuda<TH>(BinaryOp::Add, dh_pass, dh_pass, dh1, flat, s);
    }
    return;
  }
  GatedGrad<TY> gg;
  gg.dy = dy;
  gg.dr = dr;
  gg.y = y;
  gg.r = r;
  gg.gate = gate;
  gg.sample_scale = sample_scale;
  gg.accumulate = accumulate_dy;
  gg.form_row = h != nullptr;
  const TH* rows = h ? h : h1;
  if (r)
    launch_ln_modulate_backward<true, true>(dh1, dweight, dbias, dshift, dscale, dx, rows, mean, rstd, weight, bias,
                                            scale, mod_stride, batch, tokens, C, accumulate, workspace, gg, dgate, s,
                                            dh_pass);
  else
    launch_ln_modulate_backward<true, false>(dh1, dweight, dbias, dshift, dscale, dx, rows, mean, rstd, weight, bias,
                                             scale, mod_stride, batch, tokens, C, accumulate, workspace, gg, dgate, s,
                                             dh_pass);
}

template <typename TH, typename TY>
void gated_residual_forward_cuda(TH* out, TY* out_rounded, const TH* h, const TY* y, const TY* r,
                                 const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale, int64_t batch,
                                 int64_t tokens, int64_t C, StreamHandle s) {
  check_args(batch, tokens, C, mod_stride);
  if (batch * tokens == 0) return;
  dim3 grid{unsigned(token_blocks(tokens)), unsigned(batch)};
  constexpr int P = kPack<TY>;
  const bool vec = C % P == 0 && mod_stride % 4 == 0 && all_aligned({out, out_rounded, h, y, r, gate});
  gated_dispatch<TY>(vec, r != nullptr, [&](auto vw, auto rt) {
    constexpr int VW = decltype(vw)::value;
    RowBlock rb = row_block(C, VW, 256, false, int(kTPB));
    gated_forward_kernel<TH, TY, VW, decltype(rt)::value><<<grid, dim3(rb.x, rb.y), 0, to_cuda(s)>>>(
        out, out_rounded, h, y, r, gate, mod_stride, sample_scale, tokens, C);
    CUDA_CHECK_LAUNCH();
  });
}

template <typename TH, typename TY>
void gated_residual_backward_cuda(TY* dy, TY* dr, acc_t<TH>* dgate, const TH* dout, const TY* y, const TY* r,
                                  const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale,
                                  int64_t batch, int64_t tokens, int64_t C, bool accumulate, acc_t<TH>* workspace,
                                  StreamHandle s) {
  check_args(batch, tokens, C, mod_stride);
  DRWKV_ASSERT(r || !dr, "gated_residual_backward_cuda: dr without a receptance");
  if (batch * tokens == 0) return;
  DRWKV_ASSERT(!dgate || workspace, "gated_residual_backward_cuda: the gate gradient needs the workspace");
  const int64_t tb = token_blocks(tokens);
  float* partial = dgate ? workspace : nullptr;
  dim3 grid{unsigned(tb), unsigned(batch)};
  cudaStream_t st = to_cuda(s);
  constexpr int P = kPack<TY>;
  const bool vec = C % P == 0 && mod_stride % 4 == 0 && all_aligned({dy, dr, dout, y, r, gate});
  gated_dispatch<TY>(vec, r != nullptr, [&](auto vw, auto rt) {
    constexpr int VW = decltype(vw)::value;
    RowBlock rb = row_block(C, VW, 256, false, int(kTPB));
    size_t smem = rb.y > 1 ? size_t(rb.x) * rb.y * VW * sizeof(float) : 0;
    gated_backward_kernel<TH, TY, VW, decltype(rt)::value><<<grid, dim3(rb.x, rb.y), smem, st>>>(
        dy, dr, partial, dout, y, r, gate, mod_stride, sample_scale, tokens, C, accumulate);
    CUDA_CHECK_LAUNCH();
  });
  if (!dgate) return;
  const int64_t n = batch * C;
  gated_finish_kernel<<<unsigned((n + 255) / 256), 256, 0, st>>>(dgate, partial, sample_scale, mod_stride, batch, tb, C);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(TH, TY)                                                                                        \
  template void layernorm_modulate_forward_cuda<TH, TY>(TY*, acc_t<TH>*, acc_t<TH>*, const TH*, const acc_t<TH>*,  \
                                                        const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*,      \
                                                        int64_t, int64_t, int64_t, int64_t, double, StreamHandle); \
  template void layernorm_modulate_backward_cuda<TH, TY>(                                                          \
      TH*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, const TY*, const TH*, const acc_t<TH>*,                 \
      const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, int64_t, int64_t, int64_t, int64_t,  \
      bool, acc_t<TH>*, StreamHandle);                                                                             \
  template void gated_residual_layernorm_modulate_forward_cuda<TH, TY>(                                           \
      TH*, TY*, TY*, acc_t<TH>*, acc_t<TH>*, const TH*, const TY*, const TY*, const acc_t<TH>*, const acc_t<TH>*,        \
      const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, int64_t, int64_t, int64_t, int64_t,   \
      double, StreamHandle);                                                                                       \
  template void gated_residual_forward_cuda<TH, TY>(TH*, TY*, const TH*, const TY*, const TY*, const acc_t<TH>*, \
                                                    int64_t, const acc_t<TH>*, int64_t, int64_t, int64_t,          \
                                                    StreamHandle);                                                 \
  template void gated_residual_backward_cuda<TH, TY>(TY*, TY*, acc_t<TH>*, const TH*, const TY*, const TY*,        \
                                                     const acc_t<TH>*, int64_t, const acc_t<TH>*, int64_t, int64_t, \
                                                     int64_t, bool, acc_t<TH>*, StreamHandle);                      \
  template void gated_residual_layernorm_modulate_backward_cuda<TH, TY>(                                          \
      TH*, TH*, TY*, TY*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, const TY*, const TH*,         \
      const TH*, const acc_t<TH>*, const acc_t<TH>*, const TY*, const TY*, const acc_t<TH>*, const acc_t<TH>*,      \
      const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, int64_t, int64_t, int64_t, int64_t, bool, bool,         \
      acc_t<TH>*, StreamHandle);
INSTANTIATE(float, float)
INSTANTIATE(float, bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
