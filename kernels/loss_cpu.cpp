// Host implementation of kernels/loss.h (CPU backend and test oracle): the sum of squares in f64.
#include "core/check.h"
#include "kernels/loss.h"

namespace drwkv::kernels {

template <typename T>
void mse_forward_cpu(acc_t<T>* out, const T* a, const T* b, int64_t n) {
  DRWKV_ASSERT(n > 0, "mse_forward: n = %lld", (long long)n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = load_as<double>(a[i]) - load_as<double>(b[i]);
    s += d * d;
  }
  out[0] = acc_t<T>(s / double(n));
}

template <typename T>
void mse_backward_cpu(T* da, T* db, const acc_t<T>* dloss, const T* a, const T* b, int64_t n, bool accumulate_a,
                      bool accumulate_b) {
  using A = acc_t<T>;
  DRWKV_ASSERT(n > 0, "mse_backward: n = %lld", (long long)n);
  const A k = A(2) * dloss[0] / A(n);
  for (int64_t i = 0; i < n; ++i) {
    const A g = k * (load_as<A>(a[i]) - load_as<A>(b[i]));  // both read before da/db (may alias) change
    if (da) da[i] = store_as<T>(accumulate_a ? load_as<A>(da[i]) + g : g);
    if (db) db[i] = store_as<T>(accumulate_b ? load_as<A>(db[i]) - g : -g);
  }
}

#define INSTANTIATE(T)                                                          \
  template void mse_forward_cpu<T>(acc_t<T>*, const T*, const T*, int64_t); \
  template void mse_backward_cpu<T>(T*, T*, const acc_t<T>*, const T*, const T*, int64_t, bool, bool);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
