// Differentiable elementwise ops with numpy broadcasting (kernels/elementwise.h), and reductions
// (kernels/reduce.h). Gradients of broadcast operands are summed over the broadcast dimensions.
#pragma once

#include "autograd/variable.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace drwkv::autograd {

Variable unary(kernels::UnaryOp op, const Variable& x);
inline Variable sigmoid(const Variable& x) { return unary(kernels::UnaryOp::Sigmoid, x); }
inline Variable silu(const Variable& x) { return unary(kernels::UnaryOp::SiLU, x); }
inline Variable tanh(const Variable& x) { return unary(kernels::UnaryOp::Tanh, x); }
inline Variable exp(const Variable& x) { return unary(kernels::UnaryOp::Exp, x); }
inline Variable softplus(const Variable& x) { return unary(kernels::UnaryOp::Softplus, x); }
inline Variable relu_squared(const Variable& x) { return unary(kernels::UnaryOp::ReluSquared, x); }
inline Variable relu(const Variable& x) { return unary(kernels::UnaryOp::Relu, x); }
inline Variable square(const Variable& x) { return unary(kernels::UnaryOp::Square, x); }

Variable binary(kernels::BinaryOp op, const Variable& a, const Variable& b);
inline Variable add(const Variable& a, const Variable& b) { return binary(kernels::BinaryOp::Add, a, b); }
inline Variable sub(const Variable& a, const Variable& b) { return binary(kernels::BinaryOp::Sub, a, b); }
inline Variable mul(const Variable& a, const Variable& b) { return binary(kernels::BinaryOp::Mul, a, b); }
inline Variable div(const Variable& a, const Variable& b) { return binary(kernels::BinaryOp::Div, a, b); }

// alpha * x + beta
Variable scale_shift(const Variable& x, double alpha, double beta = 0.0);
// a + (b - a) * w, broadcasting
Variable lerp(const Variable& a, const Variable& b, const Variable& w);
// a + s * b * c, broadcasting
Variable addcmul(const Variable& a, const Variable& b, const Variable& c, double s);

// Reductions along `axis` (negative counts from the end); keepdim keeps it with size 1.
Variable sum(const Variable& x, int axis, bool keepdim = false);
Variable mean(const Variable& x, int axis, bool keepdim = false);
Variable sum_all(const Variable& x);
Variable mean_all(const Variable& x);

// Tensor-level helpers shared by op files.
// Sums g over the dimensions along which `shape` was broadcast to g's shape.
Tensor sum_to_shape(const Tensor& g, const Shape& shape);
// Elementwise binary op on tensors with broadcasting (no graph).
Tensor binary_tensor(kernels::BinaryOp op, const Tensor& a, const Tensor& b);
// Reduction of a contiguous tensor along one axis (no graph).
Tensor reduce_tensor(kernels::ReduceOp op, const Tensor& x, int axis, bool keepdim);

}  // namespace drwkv::autograd
