// Normalisations, embeddings and simple losses (kernels/norm.h, kernels/embed.h, kernels/loss.h).
#pragma once

#include "autograd/variable.h"

namespace drwkv::autograd {

// LayerNorm over the last dimension C: y = (x − mean) / sqrt(var + eps) ⊙ weight + bias, with the
// population variance. weight and bias ([C], acc_t of x's dtype) are optional (undefined = no affine).
Variable layer_norm(const Variable& x, const Variable& weight, const Variable& bias, double eps);

// GroupNorm over the last dimension split into `groups` groups of C/groups channels, per row (RWKV-7's
// per-head normalisation of [B, T, C] with groups = H), affine with weight/bias [C].
Variable group_norm(const Variable& x, int groups, const Variable& weight, const Variable& bias, double eps);

// Each group of `group_size` consecutive channels of the last dimension divided by max(‖group‖₂, eps).
Variable l2_normalize(const Variable& x, int group_size, double eps);

// Rows of `table` [V, C] gathered by `ids` (i32, any shape S) -> [S..., C]; backward accumulates into
// the table's gradient deterministically (fixed order, no atomics).
Variable embedding(const Variable& table, const Tensor& ids);

// mean((a − b)²) over all elements, a scalar [1].
Variable mse_loss(const Variable& a, const Variable& b);

}  // namespace drwkv::autograd
