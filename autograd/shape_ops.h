// Differentiable views and layout changes: reshape, permute, slice, concat, split. Views share storage
// with their input (no copy) when the layout allows; gradients flow back through the inverse layout.
#pragma once

#include <vector>

#include "autograd/variable.h"

namespace drwkv::autograd {

Variable reshape(const Variable& x, const Shape& shape);
Variable permute(const Variable& x, const std::vector<int>& order);
Variable transpose(const Variable& x, int a, int b);
Variable contiguous(const Variable& x);
Variable slice(const Variable& x, int axis, int64_t start, int64_t length);
// Concatenation along `axis` (inputs equal elsewhere); backward hands each input its slice.
Variable concat(const std::vector<Variable>& xs, int axis);
// The inverse of concat: pieces of the given lengths along `axis` (one multi-output node).
std::vector<Variable> split(const Variable& x, const std::vector<int64_t>& lengths, int axis);
// Changes dtype (e.g. bf16 branch output into the f32 residual stream); the gradient converts back.
Variable cast(const Variable& x, DType dtype);

}  // namespace drwkv::autograd
