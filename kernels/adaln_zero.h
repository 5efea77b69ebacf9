// adaLN-Zero pieces of the Bi-RWKV block (MODEL.md §1.7): LayerNorm fused with the modulation, and the
// gated residual update.
//
// Shapes: h, y, out: [B, T, C] row-major. The modulation vectors are chunks of one [B, M·C] tensor `mod`:
// callers pass pointers to the first element of a chunk (mod + k·C) and `mod_stride` = M·C, the distance
// between samples; gradients go to the same places of the mod gradient (other chunks untouched).
// Types: TH = dtype of the residual stream h (and of out), TY = branch dtype (y). Instantiated on the CPU
// for (TH, TY) = (f32, f32), (f64, f64), (f32, bf16); on CUDA for (f32, f32), (f32, bf16). Parameters,
// mod, sample scales and saved statistics are acc_t<TH> (f32 master values read directly); arithmetic in
// acc_t<TH>.
//
// layernorm_modulate (LN over C with the population variance and eps, optional affine):
//   y = LN(h) ⊙ (1 + scale_b) + shift_b,    LN(h) = (h − mean) · rstd ⊙ weight + bias
//   forward writes y and mean/rstd ([B·T] acc_t); weight/bias may be null (no affine).
//   backward: dh = ∂/∂h (overwrite, or add when `accumulate`; dh may be null), and, each += and each may
//   be null: dweight, dbias ([C]); dshift, dscale (mod-gradient chunks) = Σ_t dy, Σ_t dy ⊙ LN(h).
// gated_residual:
//   out = h + s_b · gate_b ⊙ y, s_b = sample_scale[b] (drop path; null = 1). out may alias h.
//   With a receptance r (TY, like y; null = none) the branch is σ(r) ⊙ y: out = h + s_b · gate_b ⊙ σ(r) ⊙ y,
//   the channel mix's receptance gate (MODEL.md §1.9) fused into its residual update, so that σ(r) ⊙ y is
//   neither written nor kept for backward. out_rounded (TY, may be null): out rounded to the branch dtype
//   too, for a bf16 product that takes out as its operand (the long-skip projection) without a cast pass.
//   backward: dy = s_b · gate_b ⊙ σ(r) ⊙ dout (overwrite, or add when `accumulate`), dr = s_b · gate_b ⊙
//   dout ⊙ y ⊙ σ(r)(1 − σ(r)) (overwrite); dgate += s_b Σ_t dout ⊙ σ(r) ⊙ y; without r, σ(r) reads as 1
//   and dr must be null. dy, dr and dgate may each be null. dh = dout is the caller's pass-through (no
//   kernel).
// gated_residual_layernorm_modulate: h1 = gated_residual(h, (r,) y), then x = layernorm_modulate(h1) with
//   its mean/rstd, in one pass that reads h, y (and r) once and never reads h1 back: the spatial mix's
//   residual update with the channel mix's norm, or (with the receptance r) the channel mix's residual
//   update with the next block's first norm (MODEL.md §1.7–1.9). On CUDA bitwise the results of the two
//   kernels. gate and shift/scale may be chunks of different mod tensors of the same row stride. h1 must
//   not alias h; h1 may be null (not written: a recomputation of x; with r only for rows of at most
//   kGatedLayerNormBackwardFusedC channels). h1_rounded (may be null): h1 in the branch dtype as well,
//   as gated_residual's out_rounded. Bytes with an f32 h and a bf16 branch: 12N (14N with r)
//   instead of 16N (18N); 8N without h1.
//   backward: the two backwards in one pass over the rows. The normalised rows are h1 when given, or are
//   formed again from h and y (no receptance; exactly one of h, h1 is given): h1 need not be kept when
//   its backward reads h and y anyway. dh1 = ∂LN-mod/∂h1 · dx, added to dh1 when `accumulate` (the
//   gradient h1 receives from elsewhere); it is also h's gradient (the caller's pass-through). dh_pass
//   (may be null): a partial sum of h's gradient (a long skip's, say) to which dh1's rows are added in
//   the same pass, bitwise dh_pass + dh1; dh1's contents are then unspecified (CUDA does not store it).
//   dy, dr and dgate as in gated_residual_backward (dy added to when `accumulate_dy`), and dweight, dbias,
//   dshift, dscale as in layernorm_modulate_backward (each may be null; dh1 and dy may not). With an f32
//   h, a bf16 branch and accumulation: 16N bytes against 22N for the two kernels (20N / 26N with r).
// Reductions over tokens and samples are deterministic: the CUDA kernels write fixed per-block partial
// sums into `workspace` (device memory, *_workspace(...) elements of acc_t<TH>) and add them in a fixed
// order; the CPU versions ignore the workspace (it may be null). Outputs never alias inputs unless stated.
// CUDA width limit: C ≤ 8192 when C is a multiple of 8 (bf16 y) or 4 (f32 y) and the pointers are
// 16-byte aligned, C ≤ 4096 otherwise (one thread per chunk of a row).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

// Tokens of one sample handled by one CUDA block; fixes the order of the reductions over tokens.
inline constexpr int64_t kAdaLNTokensPerBlock = 64;
// Widest rows of the one-kernel gated_residual_layernorm_modulate on CUDA with a receptance (forward) and
// in backward; wider rows run the two kernels (the backward forming h1 in the workspace when needed).
inline constexpr int64_t kGatedLayerNormBackwardFusedC = 2048;

int64_t layernorm_modulate_workspace(int64_t batch, int64_t tokens, int64_t C);
int64_t gated_residual_workspace(int64_t batch, int64_t tokens, int64_t C);
int64_t gated_residual_layernorm_modulate_backward_workspace(int64_t batch, int64_t tokens, int64_t C);
// The pointer contract of gated_residual_layernorm_modulate_backward (both backends check it): dh1 and dy
// given, exactly one of h and h1, no h with a receptance, dr only with one, dh_pass not dh1.
void check_gated_residual_layernorm_modulate_backward(const void* dh1, const void* dh_pass, const void* dy,
                                                      const void* dr, const void* h, const void* h1, const void* r);

template <typename TH, typename TY>
void layernorm_modulate_forward_cpu(TY* y, acc_t<TH>* mean, acc_t<TH>* rstd, const TH* h, const acc_t<TH>* weight,
                                    const acc_t<TH>* bias, const acc_t<TH>* shift, const acc_t<TH>* scale,
                                    int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C, double eps);
template <typename TH, typename TY>
void layernorm_modulate_forward_cuda(TY* y, acc_t<TH>* mean, acc_t<TH>* rstd, const TH* h, const acc_t<TH>* weight,
                                     const acc_t<TH>* bias, const acc_t<TH>* shift, const acc_t<TH>* scale,
                                     int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C, double eps,
                                     StreamHandle s);

template <typename TH, typename TY>
void layernorm_modulate_backward_cpu(TH* dh, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
                                     acc_t<TH>* dscale, const TY* dy, const TH* h, const acc_t<TH>* mean,
                                     const acc_t<TH>* rstd, const acc_t<TH>* weight, const acc_t<TH>* bias,
                                     const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens,
                                     int64_t C, bool accumulate, acc_t<TH>* workspace);
template <typename TH, typename TY>
void layernorm_modulate_backward_cuda(TH* dh, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
                                      acc_t<TH>* dscale, const TY* dy, const TH* h, const acc_t<TH>* mean,
                                      const acc_t<TH>* rstd, const acc_t<TH>* weight, const acc_t<TH>* bias,
                                      const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens,
                                      int64_t C, bool accumulate, acc_t<TH>* workspace, StreamHandle s);

template <typename TH, typename TY>
void gated_residual_forward_cpu(TH* out, TY* out_rounded, const TH* h, const TY* y, const TY* r,
                                const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale,
                                int64_t batch, int64_t tokens, int64_t C);
template <typename TH, typename TY>
void gated_residual_forward_cuda(TH* out, TY* out_rounded, const TH* h, const TY* y, const TY* r,
                                 const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale,
                                 int64_t batch, int64_t tokens, int64_t C, StreamHandle s);

template <typename TH, typename TY>
void gated_residual_layernorm_modulate_forward_cpu(
    TH* h1, TY* h1_rounded, TY* x, acc_t<TH>* mean, acc_t<TH>* rstd, const TH* h, const TY* y, const TY* r,
    const acc_t<TH>* gate, const acc_t<TH>* sample_scale, const acc_t<TH>* weight, const acc_t<TH>* bias,
    const acc_t<TH>* shift, const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C,
    double eps);
template <typename TH, typename TY>
void gated_residual_layernorm_modulate_forward_cuda(
    TH* h1, TY* h1_rounded, TY* x, acc_t<TH>* mean, acc_t<TH>* rstd, const TH* h, const TY* y, const TY* r,
    const acc_t<TH>* gate, const acc_t<TH>* sample_scale, const acc_t<TH>* weight, const acc_t<TH>* bias,
    const acc_t<TH>* shift, const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C,
    double eps, StreamHandle s);
template <typename TH, typename TY>
void gated_residual_layernorm_modulate_backward_cpu(
    TH* dh1, TH* dh_pass, TY* dy, TY* dr, acc_t<TH>* dgate, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
    acc_t<TH>* dscale, const TY* dx, const TH* h, const TH* h1, const acc_t<TH>* mean, const acc_t<TH>* rstd,
    const TY* y, const TY* r, const acc_t<TH>* gate, const acc_t<TH>* sample_scale, const acc_t<TH>* weight,
    const acc_t<TH>* bias, const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C,
    bool accumulate, bool accumulate_dy, acc_t<TH>* workspace);
template <typename TH, typename TY>
void gated_residual_layernorm_modulate_backward_cuda(
    TH* dh1, TH* dh_pass, TY* dy, TY* dr, acc_t<TH>* dgate, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
    acc_t<TH>* dscale, const TY* dx, const TH* h, const TH* h1, const acc_t<TH>* mean, const acc_t<TH>* rstd,
    const TY* y, const TY* r, const acc_t<TH>* gate, const acc_t<TH>* sample_scale, const acc_t<TH>* weight,
    const acc_t<TH>* bias, const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C,
    bool accumulate, bool accumulate_dy, acc_t<TH>* workspace, StreamHandle s);
template <typename TH, typename TY>
void gated_residual_backward_cpu(TY* dy, TY* dr, acc_t<TH>* dgate, const TH* dout, const TY* y, const TY* r,
                                 const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale,
                                 int64_t batch, int64_t tokens, int64_t C, bool accumulate, acc_t<TH>* workspace);
template <typename TH, typename TY>
void gated_residual_backward_cuda(TY* dy, TY* dr, acc_t<TH>* dgate, const TH* dout, const TY* y, const TY* r,
                                  const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale,
                                  int64_t batch, int64_t tokens, int64_t C, bool accumulate, acc_t<TH>* workspace,
                                  StreamHandle s);

}  // namespace drwkv::kernels
