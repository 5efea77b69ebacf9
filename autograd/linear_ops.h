// Linear layers and matrix products over the GEMM family (kernels/gemm.h).
//
// linear: y = x Wᵀ + b with x [..., K], W [N, K] (row-major, "out × in" as MODEL.md stores Linear
// weights), b [N] (optional), y [..., N] in x's dtype. On the GPU x and W are bf16 (W being the bf16
// compute copy of an f32 master weight whose gradient is bound to an f32 buffer) or both f32; the
// GEMM accumulates in f32. b has x's dtype, or is f32 with bf16 x (an f32 master bias read directly).
// Backward: dx = dy W (overwrite or accumulate, whichever the engine asks), dW += dyᵀ x written
// straight into W's gradient buffer (f32) by the GEMM (beta = 1), with no intermediate weight-gradient
// tensor, and db += Σ dy by a deterministic column-sum kernel into b's (f32) gradient buffer.
// Operands that are row-strided views (slices, chunks) are used in place; other layouts are copied.
#pragma once

#include <functional>
#include <vector>

#include "autograd/variable.h"

namespace drwkv::autograd {

Variable linear(const Variable& x, const Variable& weight, const Variable& bias = Variable());

// linear() that does not keep x for its backward: the weight gradient calls `recompute_x`, which must
// return x's value again (from tensors other ops keep anyway: a token-shift mix from its input, an
// activation from its pre-activation, a gate from its operands). Trades one cheap elementwise pass for
// not storing x, which is most of a block's activation memory.
Variable linear_recompute(const Variable& x, const Variable& weight, std::function<Tensor()> recompute_x,
                          const Variable& bias = Variable());

// Several linear layers of one shape without bias, y_i = x_i W_iᵀ (i < n ≤ kernels::kMaxGemmGroup; every
// x_i of one shape and dtype, every W_i of one shape), each product pass as one grouped GEMM
// (kernels::gemm_group; a pass falls back to one GEMM per layer when its operands or gradient buffers
// do not share a layout or accumulation, and the weight gradients do when they have fewer than 2^20
// elements, where grouping measured slower): a block's K, V, R projections. With `recompute_x` the x_i are
// not kept: the weight gradients call recompute_x(i) for them, as linear_recompute does.
std::vector<Variable> linear_group(const std::vector<Variable>& xs, const std::vector<Variable>& weights,
                                   std::function<Tensor(int)> recompute_x = nullptr);

// y = x W1ᵀ + s W2ᵀ + b: a Linear over the concatenation [x, s] without materialising it (DRWKV's
// long-skip fusion, MODEL.md §1.10: W = [W1 | W2], W1 and W2 views of one [N, 2K] weight). Two GEMMs
// into y (the second with beta = 1): a bf16 y is rounded after each, ≤ 2 bf16 ulps in all.
// x and s may be f32 with bf16 weights (the f32 residual stream into a bf16 projection): they are
// rounded to bf16 for the GEMMs (and kept so for the weight gradients), y and the bias are f32, and
// the GEMMs write dx, ds in f32 straight into their gradients, so no cast of the inputs, the output or
// the gradients is recorded. x_rounded / s_rounded (optional): x / s already rounded to the weights'
// dtype by the op that formed them (receptance_gated_residual's `rounded`), used instead of rounding
// again; they must be exactly that rounding.
Variable linear2(const Variable& x, const Variable& w1, const Variable& s, const Variable& w2,
                 const Variable& bias = Variable(), const Tensor& x_rounded = Tensor(),
                 const Tensor& s_rounded = Tensor());

// Batched matrix product c[b] = op(a[b]) op(b[b]) for 3-D operands (op = transpose when asked).
Variable bmm(const Variable& a, const Variable& b, bool transpose_a = false, bool transpose_b = false);

}  // namespace drwkv::autograd
