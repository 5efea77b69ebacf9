// Elementwise and broadcast operations, forward and backward.
//
// Unary ops y = f(x) over n contiguous elements; backward writes dx = dy * f'(x) (overwrites dx, may
// alias dy). Where f' is a function of y alone (unary_derivative_from_output: sigmoid, tanh, exp,
// squared ReLU, whose 2·relu(x) = 2·√y) a backward given y reads y only and x may be null, so the
// autograd op keeps only y (which the next op often keeps anyway); otherwise it reads x, and y when
// given. Binary ops out = a (op) b with numpy broadcasting described by a Broadcast (shapes and element
// strides, stride 0 on broadcast dims); their gradients are elementwise products computed by the same
// ops plus a reduction over the broadcast dims (kernels/reduce.h). Scalar ops: y = alpha * x + beta.
// lerp: out = a + (b - a) * w; addcmul: out = a + s * b * c.
//
// Types: T is float, bf16 (CUDA) or double (CPU oracle); arithmetic in acc_t<T>. The CUDA versions
// use 16-byte vector accesses when every operand is contiguous and aligned.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

enum class UnaryOp : uint8_t { Sigmoid, SiLU, Tanh, Exp, Softplus, ReluSquared, Relu, Neg, Square };
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div };

constexpr bool unary_derivative_from_output(UnaryOp op) {
  return op == UnaryOp::Sigmoid || op == UnaryOp::Tanh || op == UnaryOp::Exp || op == UnaryOp::ReluSquared;
}

// Numpy-style broadcast of up to three operands to an output shape (row-major), strides in elements.
struct Broadcast {
  static constexpr int kMaxDims = 8;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[3][kMaxDims] = {};  // operand k's stride along each output dim (0 = broadcast)
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  // True when every operand is laid out contiguously like the output (no broadcast).
  bool dense(int operands) const;
};

template <typename T> void unary_forward_cpu(UnaryOp op, T* y, const T* x, int64_t n);
template <typename T> void unary_backward_cpu(UnaryOp op, T* dx, const T* dy, const T* x, const T* y, int64_t n);
template <typename T> void unary_forward_cuda(UnaryOp op, T* y, const T* x, int64_t n, StreamHandle s);
template <typename T>
void unary_backward_cuda(UnaryOp op, T* dx, const T* dy, const T* x, const T* y, int64_t n, StreamHandle s);

// out (contiguous, shape bc.shape) = a op b; operands 0 = a, 1 = b.
template <typename T> void binary_cpu(BinaryOp op, T* out, const T* a, const T* b, const Broadcast& bc);
template <typename T> void binary_cuda(BinaryOp op, T* out, const T* a, const T* b, const Broadcast& bc, StreamHandle s);

// y = alpha * x + beta over n contiguous elements (y may alias x).
template <typename T> void scale_shift_cpu(T* y, const T* x, double alpha, double beta, int64_t n);
template <typename T> void scale_shift_cuda(T* y, const T* x, double alpha, double beta, int64_t n, StreamHandle s);

// out = a + (b - a) * w (operands 0, 1, 2 = a, b, w).
template <typename T> void lerp_cpu(T* out, const T* a, const T* b, const T* w, const Broadcast& bc);
template <typename T> void lerp_cuda(T* out, const T* a, const T* b, const T* w, const Broadcast& bc, StreamHandle s);

// out = a + s * b * c (operands 0, 1, 2 = a, b, c).
template <typename T> void addcmul_cpu(T* out, const T* a, const T* b, const T* c, double s, const Broadcast& bc);
template <typename T>
void addcmul_cuda(T* out, const T* a, const T* b, const T* c, double s, const Broadcast& bc, StreamHandle stream);

}  // namespace drwkv::kernels
