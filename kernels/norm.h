// Normalisations over the last dimension, forward and backward: LayerNorm (MODEL.md §1.7, §1.11, §3.6),
// GroupNorm per row (RWKV-7's per-head norm, MODEL.md §3.5, §4.6 eq. 14) and per-group L2
// normalisation (the removal key κ̂, MODEL.md §3.3).
//
// Layout: x, y, dx, dy are contiguous [rows, C] of T (float, bf16; double on the CPU). Arithmetic is in
// A = acc_t<T>. Per-channel parameters (weight, bias: [C]) and saved statistics (mean, rstd) are A.
//
// LayerNorm:  y = (x − μ) · rstd ⊙ weight + bias, μ = mean over C, rstd = 1/sqrt(var + eps) with the
//             population variance computed in two passes (Σ(x − μ)², never E[x²] − μ²).
// GroupNorm:  the same per group: channels [g·L, (g+1)·L) of each row, L = C / groups; weight/bias are
//             still per channel ([C]); statistics are [rows, groups]. LayerNorm is GroupNorm with one
//             group and shares its launchers' semantics.
// L2 norm:    each group of L = group_size channels is divided by max(‖group‖₂, eps). Backward: where
//             ‖g‖ > eps, dx = (dy − y (y·dy)) / ‖g‖; elsewhere dx = dy / eps.
//
// Contracts (all launchers):
// - weight and bias are optional (nullptr = 1 and 0). mean/rstd of the forward may be nullptr (not
//   saved); the backward needs them.
// - Backward: dx is overwritten, or added to when `accumulate` (the autograd engine's in-place gradient
//   target); dx may be nullptr (not needed) and may be the same pointer as dy (in place). dweight and
//   dbias (nullable) accumulate: dweight += Σ_rows dy ⊙ x̂, dbias += Σ_rows dy, in a fixed order
//   (deterministic, no atomics).
// - Scratch: the CUDA backward of LayerNorm/GroupNorm writes per-block partial sums of the parameter
//   gradients to `scratch` (norm_backward_scratch_size(rows, C) elements of A, device memory; its
//   contents on entry do not matter). It is needed only when dweight or dbias is given; the CPU
//   launchers never touch it (nullptr is fine).
// - The CUDA launchers run on the given stream, use 16-byte accesses when C and the group length are
//   multiples of 16 / sizeof(T) and every pointer is 16-byte aligned, and keep each row in registers for
//   C up to 4096 (f32) / 8192 (bf16) with 16-byte accesses, 2048 without; longer rows, and groups the
//   register path cannot map to a power-of-two run of ≤ 32 lanes, take a slower path that re-reads x
//   from memory (kernels/norm_cuda.cuh describes both).
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

// Upper bound on the number of per-block partials the CUDA backward writes (independent of the GPU).
inline constexpr int64_t kNormMaxPartials = 1024;
// Elements of acc_t<T> the backward needs as scratch for dweight/dbias: 2·C per partial.
inline int64_t norm_backward_scratch_size(int64_t rows, int64_t C) {
  return 2 * C * std::max<int64_t>(1, std::min(rows, kNormMaxPartials));
}

// ---- LayerNorm over C --------------------------------------------------------------------------------
// y [rows, C]; mean, rstd [rows] (nullable); x [rows, C]; weight, bias [C] (nullable).
template <typename T>
void layernorm_forward_cpu(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                           const acc_t<T>* bias, int64_t rows, int64_t C, double eps);
template <typename T>
void layernorm_forward_cuda(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                            const acc_t<T>* bias, int64_t rows, int64_t C, double eps, StreamHandle s);

// dx [rows, C] (nullable; overwrite or accumulate); dweight, dbias [C] (nullable, +=); dy, x [rows, C];
// weight [C] (nullable); mean, rstd [rows] from the forward.
template <typename T>
void layernorm_backward_cpu(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                            const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                            int64_t C, bool accumulate, acc_t<T>* scratch);
template <typename T>
void layernorm_backward_cuda(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                             const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                             int64_t C, bool accumulate, acc_t<T>* scratch, StreamHandle s);

// ---- GroupNorm: `groups` groups of C / groups channels per row -----------------------------------------
// Shapes as LayerNorm, with mean, rstd [rows, groups]. C must be a multiple of groups.
template <typename T>
void groupnorm_forward_cpu(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                           const acc_t<T>* bias, int64_t rows, int64_t C, int64_t groups, double eps);
template <typename T>
void groupnorm_forward_cuda(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                            const acc_t<T>* bias, int64_t rows, int64_t C, int64_t groups, double eps, StreamHandle s);

template <typename T>
void groupnorm_backward_cpu(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                            const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                            int64_t C, int64_t groups, bool accumulate, acc_t<T>* scratch);
template <typename T>
void groupnorm_backward_cuda(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                             const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                             int64_t C, int64_t groups, bool accumulate, acc_t<T>* scratch, StreamHandle s);

// ---- L2 normalisation of each group of `group_size` channels (C a multiple of group_size) -------------
// y, x [rows, C]; y may be the same pointer as x.
template <typename T>
void l2norm_forward_cpu(T* y, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps);
template <typename T>
void l2norm_forward_cuda(T* y, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps, StreamHandle s);

// dx [rows, C] (overwrite or accumulate; may be dy); dy, x [rows, C] (x is the forward's input).
template <typename T>
void l2norm_backward_cpu(T* dx, const T* dy, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps,
                         bool accumulate);
template <typename T>
void l2norm_backward_cuda(T* dx, const T* dy, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps,
                          bool accumulate, StreamHandle s);

}  // namespace drwkv::kernels
