// The scalar functions behind kernels/elementwise.h, written once for the host and the device.
#pragma once

#include <cmath>

#include "core/dtype.h"
#include "kernels/elementwise.h"

namespace drwkv::kernels {

DRWKV_HD float exp_(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return std::exp(x);
#endif
}
DRWKV_HD double exp_(double x) { return ::exp(x); }
DRWKV_HD float log1p_(float x) {
#if defined(__CUDA_ARCH__)
  return log1pf(x);
#else
  return std::log1p(x);
#endif
}
DRWKV_HD double log1p_(double x) { return ::log1p(x); }
DRWKV_HD float tanh_(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  return std::tanh(x);
#endif
}
DRWKV_HD double tanh_(double x) { return ::tanh(x); }
DRWKV_HD float sqrt_(float x) {
#if defined(__CUDA_ARCH__)
  return sqrtf(x);
#else
  return std::sqrt(x);
#endif
}
DRWKV_HD double sqrt_(double x) { return ::sqrt(x); }

template <typename A> DRWKV_HD A sigmoid_(A x) { return A(1) / (A(1) + exp_(-x)); }

template <typename A>
DRWKV_HD A unary_value(UnaryOp op, A x) {
  switch (op) {
    case UnaryOp::Sigmoid: return sigmoid_(x);
    case UnaryOp::SiLU: return x * sigmoid_(x);
    case UnaryOp::Tanh: return tanh_(x);
    case UnaryOp::Exp: return exp_(x);
    case UnaryOp::Softplus: return x > A(20) ? x : log1p_(exp_(x));
    case UnaryOp::ReluSquared: return x > A(0) ? x * x : A(0);
    case UnaryOp::Relu: return x > A(0) ? x : A(0);
    case UnaryOp::Neg: return -x;
    case UnaryOp::Square: return x * x;
  }
  return x;
}

// d f / d x at x, given y = f(x).
template <typename A>
DRWKV_HD A unary_derivative(UnaryOp op, A x, A y) {
  switch (op) {
    case UnaryOp::Sigmoid: return y * (A(1) - y);
    case UnaryOp::SiLU: {
      A s = sigmoid_(x);
      return s * (A(1) + x * (A(1) - s));
    }
    case UnaryOp::Tanh: return A(1) - y * y;
    case UnaryOp::Exp: return y;
    case UnaryOp::Softplus: return sigmoid_(x);
    case UnaryOp::ReluSquared: return x > A(0) ? A(2) * x : A(0);
    case UnaryOp::Relu: return x > A(0) ? A(1) : A(0);
    case UnaryOp::Neg: return A(-1);
    case UnaryOp::Square: return A(2) * x;
  }
  return A(0);
}

// d f / d x from y = f(x) alone, for the ops where unary_derivative_from_output(op) holds.
template <typename A>
DRWKV_HD A unary_derivative_at_output(UnaryOp op, A y) {
  switch (op) {
    case UnaryOp::Sigmoid: return y * (A(1) - y);
    case UnaryOp::Tanh: return A(1) - y * y;
    case UnaryOp::Exp: return y;
    case UnaryOp::ReluSquared: return A(2) * sqrt_(y);  // y = relu(x)² ≥ 0: 2·relu(x), 0 where x ≤ 0
    default: return A(0);
  }
}

template <typename A>
DRWKV_HD A binary_value(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
  }
  return a;
}

}  // namespace drwkv::kernels
