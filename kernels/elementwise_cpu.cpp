// Host implementation of kernels/elementwise.h (the CPU backend and the test oracle).
#include "core/check.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace drwkv::kernels {

bool Broadcast::dense(int operands) const {
  int64_t expected = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1) {
      for (int k = 0; k < operands; ++k)
        if (stride[k][d] != expected) return false;
    }
    expected *= shape[d];
  }
  return true;
}

namespace {
// Calls f(i, off0, off1, off2) for every output element i (row-major) with the operands' offsets.
template <typename F>
void for_each(const Broadcast& bc, F&& f) {
  int64_t n = bc.numel();
  if (n == 0) return;
  if (bc.ndim == 0) {
    f(int64_t(0), int64_t(0), int64_t(0), int64_t(0));
    return;
  }
  int64_t idx[Broadcast::kMaxDims] = {};
  int64_t off[3] = {0, 0, 0};
  int last = bc.ndim - 1;
  for (int64_t i = 0; i < n;) {
    for (int64_t j = 0; j < bc.shape[last]; ++j, ++i)
      f(i, off[0] + j * bc.stride[0][last], off[1] + j * bc.stride[1][last], off[2] + j * bc.stride[2][last]);
    for (int d = last - 1; d >= 0; --d) {
      ++idx[d];
      for (int k = 0; k < 3; ++k) off[k] += bc.stride[k][d];
      if (idx[d] < bc.shape[d]) break;
      for (int k = 0; k < 3; ++k) off[k] -= bc.stride[k][d] * bc.shape[d];
      idx[d] = 0;
    }
  }
}
}  // namespace

template <typename T>
void unary_forward_cpu(UnaryOp op, T* y, const T* x, int64_t n) {
  using A = acc_t<T>;
  for (int64_t i = 0; i < n; ++i) y[i] = store_as<T>(unary_value<A>(op, load_as<A>(x[i])));
}

template <typename T>
void unary_backward_cpu(UnaryOp op, T* dx, const T* dy, const T* x, const T* y, int64_t n) {
  using A = acc_t<T>;
  if (unary_derivative_from_output(op) && y) {
    for (int64_t i = 0; i < n; ++i)
      dx[i] = store_as<T>(load_as<A>(dy[i]) * unary_derivative_at_output<A>(op, load_as<A>(y[i])));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    A xv = load_as<A>(x[i]);
    A yv = y ? load_as<A>(y[i]) : unary_value<A>(op, xv);
    dx[i] = store_as<T>(load_as<A>(dy[i]) * unary_derivative<A>(op, xv, yv));
  }
}

template <typename T>
void binary_cpu(BinaryOp op, T* out, const T* a, const T* b, const Broadcast& bc) {
  using A = acc_t<T>;
  for_each(bc, [&](int64_t i, int64_t oa, int64_t ob, int64_t) {
    out[i] = store_as<T>(binary_value<A>(op, load_as<A>(a[oa]), load_as<A>(b[ob])));
  });
}

template <typename T>
void scale_shift_cpu(T* y, const T* x, double alpha, double beta, int64_t n) {
  using A = acc_t<T>;
  for (int64_t i = 0; i < n; ++i) y[i] = store_as<T>(A(alpha) * load_as<A>(x[i]) + A(beta));
}

template <typename T>
void lerp_cpu(T* out, const T* a, const T* b, const T* w, const Broadcast& bc) {
  using A = acc_t<T>;
  for_each(bc, [&](int64_t i, int64_t oa, int64_t ob, int64_t ow) {
    A av = load_as<A>(a[oa]);
    out[i] = store_as<T>(av + (load_as<A>(b[ob]) - av) * load_as<A>(w[ow]));
  });
}

template <typename T>
void addcmul_cpu(T* out, const T* a, const T* b, const T* c, double s, const Broadcast& bc) {
  using A = acc_t<T>;
  for_each(bc, [&](int64_t i, int64_t oa, int64_t ob, int64_t oc) {
    out[i] = store_as<T>(load_as<A>(a[oa]) + A(s) * load_as<A>(b[ob]) * load_as<A>(c[oc]));
  });
}

#define INSTANTIATE(T)                                                                                  \
  template void unary_forward_cpu<T>(UnaryOp, T*, const T*, int64_t);                                   \
  template void unary_backward_cpu<T>(UnaryOp, T*, const T*, const T*, const T*, int64_t);              \
  template void binary_cpu<T>(BinaryOp, T*, const T*, const T*, const Broadcast&);                      \
  template void scale_shift_cpu<T>(T*, const T*, double, double, int64_t);                              \
  template void lerp_cpu<T>(T*, const T*, const T*, const T*, const Broadcast&);                        \
  template void addcmul_cpu<T>(T*, const T*, const T*, const T*, double, const Broadcast&);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
