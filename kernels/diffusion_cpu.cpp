// Host implementation of kernels/diffusion.h (the CPU backend and the test oracle).
#include <cmath>

#include "kernels/diffusion.h"
#include "kernels/diffusion_math.h"

namespace drwkv::kernels {
using namespace diffusion_math;

template <typename T>
void diffusion_q_sample_cpu(T* xt, const T* x0, const T* eps, const acc_t<T>* coef, int64_t B, int64_t CP) {
  using A = acc_t<T>;
  for (int64_t b = 0; b < B; ++b) {
    const A* c = coef + b * kCoefs;
    for (int64_t i = b * CP; i < (b + 1) * CP; ++i) xt[i] = store_as<T>(c[0] * load_as<A>(x0[i]) + c[1] * load_as<A>(eps[i]));
  }
}

template <typename T>
void diffusion_loss_forward_cpu(acc_t<T>* terms, const T* out, const T* x0, const T* xt, const T* eps,
                                const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned) {
  using A = acc_t<T>;
  const int64_t Cout = learned ? 2 * C : C;
  for (int64_t b = 0; b < B; ++b) {
    const A* c = coef + b * kCoefs;
    double mse = 0, vb = 0;  // float64 sums on the host oracle
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t p = 0; p < P; ++p) {
        A m = 0, v = 0;
        loss_element_terms(out, x0, xt, eps, c, (b * C + ch) * P + p, (b * Cout + ch) * P + p,
                           (b * Cout + C + ch) * P + p, learned, &m, &v);
        mse += double(m);
        vb += double(v);
      }
    double n = double(C * P);
    terms[2 * b] = A(mse / n);
    terms[2 * b + 1] = A(vb / n / std::log(2.0));
  }
}

template <typename T>
void diffusion_loss_backward_cpu(T* dout, const acc_t<T>* g, const T* out, const T* x0, const T* xt, const T* eps,
                                 const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned) {
  using A = acc_t<T>;
  const int64_t Cout = learned ? 2 * C : C;
  const A inv_n = A(1) / A(C * P);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t p = 0; p < P; ++p)
        loss_element_backward(dout, out, x0, xt, eps, coef + b * kCoefs, g[b], (b * C + ch) * P + p,
                              (b * Cout + ch) * P + p, (b * Cout + C + ch) * P + p, learned, inv_n);
}

template <typename T>
void diffusion_ddpm_step_cpu(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                             bool learned) {
  using A = acc_t<T>;
  const int64_t Cout = learned ? 2 * C : C;
  for (int64_t b = 0; b < B; ++b) {
    const A* c = coef + b * kCoefs;
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t p = 0; p < P; ++p) {
        int64_t i = (b * C + ch) * P + p;
        x[i] = store_as<T>(ddpm_element(x, out, z, c, i, (b * Cout + ch) * P + p, (b * Cout + C + ch) * P + p, learned));
      }
  }
}

template <typename T>
void diffusion_ddim_step_cpu(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                             int64_t out_channels) {
  using A = acc_t<T>;
  for (int64_t b = 0; b < B; ++b) {
    const A* c = coef + b * kCoefs;
    A sigma = c[10], ap = c[9];
    A dir = std::sqrt(std::max(A(0), A(1) - ap - sigma * sigma));
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t p = 0; p < P; ++p) {
        int64_t i = (b * C + ch) * P + p;
        A xv = load_as<A>(x[i]);
        A eh = load_as<A>(out[(b * out_channels + ch) * P + p]);
        A x0 = c[2] * xv - c[3] * eh;
        A e2 = (c[2] * xv - x0) / c[3];
        x[i] = store_as<T>(x0 * std::sqrt(ap) + dir * e2 + c[11] * sigma * load_as<A>(z[i]));
      }
  }
}

template <typename T>
void diffusion_cfg_cpu(T* out, int64_t n, int64_t Cout, int64_t P, int64_t guided, double scale) {
  using A = acc_t<T>;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < guided; ++ch)
      for (int64_t p = 0; p < P; ++p) {
        int64_t ic = (b * Cout + ch) * P + p, iu = ((b + n) * Cout + ch) * P + p;
        A ec = load_as<A>(out[ic]), eu = load_as<A>(out[iu]);
        T g = store_as<T>(eu + A(scale) * (ec - eu));
        out[ic] = g;
        out[iu] = g;
      }
}

#define INSTANTIATE(T)                                                                                          \
  template void diffusion_q_sample_cpu<T>(T*, const T*, const T*, const acc_t<T>*, int64_t, int64_t);            \
  template void diffusion_loss_forward_cpu<T>(acc_t<T>*, const T*, const T*, const T*, const T*, const acc_t<T>*, \
                                              int64_t, int64_t, int64_t, bool);                                \
  template void diffusion_loss_backward_cpu<T>(T*, const acc_t<T>*, const T*, const T*, const T*, const T*,      \
                                               const acc_t<T>*, int64_t, int64_t, int64_t, bool);              \
  template void diffusion_ddpm_step_cpu<T>(T*, const T*, const T*, const acc_t<T>*, int64_t, int64_t, int64_t, bool); \
  template void diffusion_ddim_step_cpu<T>(T*, const T*, const T*, const acc_t<T>*, int64_t, int64_t, int64_t, int64_t); \
  template void diffusion_cfg_cpu<T>(T*, int64_t, int64_t, int64_t, int64_t, double);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
