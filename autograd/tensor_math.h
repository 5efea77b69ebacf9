// Non-differentiable tensor functions used by the engine, the optimizer and the trainer (they run the
// kernel families on Tensors; no graph is recorded).
#pragma once

#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace drwkv::autograd {

// t in `dtype` (t itself when it already is one): the conversion runs as a profiler range "cast", so
// that every dtype conversion of activations and gradients shows in the step breakdown.
Tensor converted(const Tensor& t, DType dtype);
// dst += src (same shape; src converted to dst's dtype if needed).
void add_(Tensor& dst, const Tensor& src);
// Numpy-style broadcast description of operands (each broadcastable to `out`) for the kernels.
kernels::Broadcast make_broadcast(const Shape& out, std::initializer_list<const Tensor*> operands);
// The broadcast shape of two shapes (numpy rules); fails with both shapes in the message.
Shape broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace drwkv::autograd
