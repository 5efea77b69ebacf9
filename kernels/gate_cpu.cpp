// Host sigmoid gate (kernels/gate.h).
#include <cmath>

#include "kernels/elementwise_math.h"
#include "kernels/gate.h"

namespace drwkv::kernels {

template <typename T>
void sigmoid_mul_forward_cpu(T* out, const T* r, const T* z, int64_t n) {
  using A = acc_t<T>;
  for (int64_t i = 0; i < n; ++i) out[i] = store_as<T>(sigmoid_(load_as<A>(r[i])) * load_as<A>(z[i]));
}

template <typename T>
void sigmoid_mul_backward_cpu(T* dr, T* dz, const T* dout, const T* r, const T* out, int64_t n) {
  using A = acc_t<T>;
  for (int64_t i = 0; i < n; ++i) {
    const A s = sigmoid_(load_as<A>(r[i])), g = load_as<A>(dout[i]);
    if (dr) dr[i] = store_as<T>(g * load_as<A>(out[i]) * (A(1) - s));
    if (dz) dz[i] = store_as<T>(g * s);
  }
}

#define INSTANTIATE(T)                                                               \
  template void sigmoid_mul_forward_cpu<T>(T*, const T*, const T*, int64_t);        \
  template void sigmoid_mul_backward_cpu<T>(T*, T*, const T*, const T*, const T*, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
