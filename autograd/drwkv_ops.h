// The DRWKV-specific fused ops (MODEL.md §1.7–1.11): quad-directional q-shift with token-shift
// interpolation, adaLN-Zero modulation and gated residual, the sigmoid gate, the fused linear decoder.
//
// Layout: token tensors are [B, T, C] with T = grid_h · grid_w tokens in row-major raster order. The
// adaLN modulation vectors come as one [B, M·C] tensor `mod` (the output of the block's adaLN Linear)
// and each op names the chunks it reads: chunk k is mod[:, k·C:(k+1)·C]. Gradients of `mod` are written
// into the matching chunks of its gradient (other chunks untouched).
// Precision: the residual stream h is f32; branch tensors (x, y, outputs of layernorm_modulate) are the
// branch dtype (bf16 on the GPU, f32 on the CPU); mod, μ and norm parameters are acc_t.
#pragma once

#include <utility>
#include <vector>

#include "autograd/recompute.h"
#include "autograd/variable.h"

namespace drwkv::autograd {

// For each μ_m ([C]): x_m = x ⊙ μ_m + Q ⊙ (1 − μ_m), Q = qshift(x) (MODEL.md §1.8 table: channel
// quarters receive the left, right, upper, lower neighbour; zero at the border). One pass over x.
// `x_again` (optional): x's recomputation, saved for backward instead of x (autograd/recompute.h); the
// same holds for the `_again` arguments below.
std::vector<Variable> qshift_mix(const Variable& x, const std::vector<Variable>& mus, int grid_h, int grid_w,
                                 RecomputedPtr x_again = nullptr);

// y = LN(h) ⊙ (1 + mod[scale_chunk]) + mod[shift_chunk], LN over C with eps; ln_weight/ln_bias optional
// ([C]); y in `out_dtype` (the branch dtype).
Variable layernorm_modulate(const Variable& h, const Variable& ln_weight, const Variable& ln_bias, double eps,
                            const Variable& mod, int shift_chunk, int scale_chunk, DType out_dtype,
                            RecomputedPtr h_again = nullptr);

// h + s_b · mod[gate_chunk] ⊙ y, in h's dtype; `sample_scale` ([B] f32, optional) is the drop-path
// factor (0 or 1/(1 − p) per sample), folded into the gate.
Variable gated_residual(const Variable& h, const Variable& y, const Variable& mod, int gate_chunk,
                        const Tensor& sample_scale = Tensor(), RecomputedPtr y_again = nullptr);

// {h1, x}: h1 = gated_residual(h, y, mod, gate_chunk, sample_scale) and x = layernorm_modulate(h1,
// ln_weight, ln_bias, eps, mod, shift_chunk, scale_chunk, out_dtype) with both values from one kernel
// that reads h and y once and never reads h1 back (the spatial residual update and the channel mix's
// norm); the values are bitwise those of the two ops. One node, whose backward is one kernel too: the
// norm's backward forms each row of h1's gradient and the residual's reads it from registers. It keeps
// h and y, not h1 (formed again in the kernel, bitwise): h1 is freed once its other consumers have run.
// Gradients equal the two ops' up to the order of the gate gradient's sums. y must be of out_dtype.
std::pair<Variable, Variable> gated_residual_layernorm_modulate(const Variable& h, const Variable& y,
                                                                const Variable& mod, int gate_chunk,
                                                                const Tensor& sample_scale, const Variable& ln_weight,
                                                                const Variable& ln_bias, double eps, int shift_chunk,
                                                                int scale_chunk, DType out_dtype);
// {out, x}: out = receptance_gated_residual(h, r, y, mod, gate_chunk, sample_scale) and x =
// layernorm_modulate(out, ln_weight, ln_bias, eps, ln_mod, shift_chunk, scale_chunk, out_dtype) from one
// kernel, forward and backward (the channel mix's residual update and the next block's first norm):
// values bitwise those of the two ops. ln_mod (the next block's modulation) must have mod's row length.
// Keeps r, y and out (the next block's input, which its own ops keep anyway). `rounded` as in
// receptance_gated_residual.
std::pair<Variable, Variable> receptance_gated_residual_layernorm_modulate(
    const Variable& h, const Variable& r, const Variable& y, const Variable& mod, int gate_chunk,
    const Tensor& sample_scale, const Variable& ln_weight, const Variable& ln_bias, double eps, const Variable& ln_mod,
    int shift_chunk, int scale_chunk, DType out_dtype, Tensor* rounded = nullptr);
// The x of gated_residual_layernorm_modulate without a graph and without writing h1 (recomputation).
Tensor gated_layernorm_modulate_value(const Tensor& h, const Tensor& y, const Tensor& mod, int gate_chunk,
                                      const Tensor& sample_scale, const Tensor& ln_weight, const Tensor& ln_bias,
                                      double eps, int shift_chunk, int scale_chunk, DType out_dtype);

// h + s_b · mod[gate_chunk] ⊙ σ(r) ⊙ y: the channel mix's receptance gate (MODEL.md §1.9) fused into its
// gated residual (r like y: branch dtype, same shape). Equal to gated_residual(h, sigmoid_mul(r, y), …)
// up to the branch dtype's rounding of σ(r) ⊙ y, which it never forms: saves r and y for backward
// (the GEMM outputs they are) instead of the gated product.
// `rounded` (optional): also receives the output in y's dtype, written by the same kernel (not part of the
// graph): the operand of a bf16 product of the output (linear2's x_rounded / s_rounded) without a cast.
Variable receptance_gated_residual(const Variable& h, const Variable& r, const Variable& y, const Variable& mod,
                                   int gate_chunk, const Tensor& sample_scale = Tensor(), Tensor* rounded = nullptr);

// σ(r) ⊙ z (same shapes and dtype).
Variable sigmoid_mul(const Variable& r, const Variable& z);

// The DRWKV output head in one pass (MODEL.md §1.11): z = LN_{eps, no affine}(h) ⊙ (1 + mod[1]) + mod[0],
// o = z W_outᵀ + b_out with W_out [P²·Cout, C], written straight into the image layout
// out[b, c', y·P + i, x·P + j] = o[b, y·grid_w + x, (i·P + j)·Cout + c']  ->  [B, Cout, grid_h·P, grid_w·P].
Variable linear_decoder(const Variable& h, const Variable& mod, const Variable& w_out, const Variable& b_out,
                        int patch, int grid_h, int grid_w, int out_channels, double eps);

// Patchify for the patch embedding (MODEL.md §1.2): [B, C, H, W] -> [B, T, C·P²] with the patch vector
// in (c, i, j) order; a layout op (its backward scatters back).
Variable patchify(const Variable& x, int patch);

}  // namespace drwkv::autograd
