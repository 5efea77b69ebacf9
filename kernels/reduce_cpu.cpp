// Host reductions (kernels/reduce.h).
#include <algorithm>
#include <limits>

#include "kernels/reduce.h"

namespace drwkv::kernels {

template <typename T>
void reduce_axis_cpu(ReduceOp op, T* out, const T* x, int64_t outer, int64_t n, int64_t inner, bool accumulate) {
  using A = acc_t<T>;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* p = x + o * n * inner + i;
      A r = op == ReduceOp::Max ? -std::numeric_limits<A>::infinity() : A(0);
      for (int64_t a = 0; a < n; ++a) {
        A v = load_as<A>(p[a * inner]);
        r = op == ReduceOp::Max ? std::max(r, v) : r + v;
      }
      if (op == ReduceOp::Mean) r /= A(n);
      T* q = out + o * inner + i;
      *q = store_as<T>(accumulate ? load_as<A>(*q) + r : r);
    }
  }
}

template <typename T>
void sum_squares_cpu(double* out, const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = load_as<double>(x[i]);
    s += v * v;
  }
  *out = s;
}

#define INSTANTIATE(T)                                                                          \
  template void reduce_axis_cpu<T>(ReduceOp, T*, const T*, int64_t, int64_t, int64_t, bool); \
  template void sum_squares_cpu<T>(double*, const T*, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
