// CUDA implementation of kernels/diffusion.h. Elementwise grid-stride loops; the per-sample loss terms
// use one block per sample with a fixed-order block reduction (deterministic).
#include "kernels/cuda_utils.cuh"
#include "kernels/diffusion.h"
#include "kernels/diffusion_math.h"

namespace drwkv::kernels {
namespace {
using namespace diffusion_math;
using cuda::grid_size;

template <typename T>
__global__ void q_sample_kernel(T* xt, const T* x0, const T* eps, const acc_t<T>* coef, int64_t n, int64_t CP) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const A* c = coef + (i / CP) * kCoefs;
    xt[i] = store_as<T>(c[0] * load_as<A>(x0[i]) + c[1] * load_as<A>(eps[i]));
  }
}

template <typename T>
__global__ void loss_forward_kernel(acc_t<T>* terms, const T* out, const T* x0, const T* xt, const T* eps,
                                    const acc_t<T>* coef, int64_t C, int64_t P, bool learned) {
  using A = acc_t<T>;
  __shared__ A scratch[32];
  const int64_t b = blockIdx.x, Cout = learned ? 2 * C : C;
  const A* c = coef + b * kCoefs;
  A mse = 0, vb = 0;
  for (int64_t j = threadIdx.x; j < C * P; j += blockDim.x) {
    int64_t ch = j / P, p = j % P;
    loss_element_terms(out, x0, xt, eps, c, b * C * P + j, (b * Cout + ch) * P + p, (b * Cout + C + ch) * P + p,
                       learned, &mse, &vb);
  }
  mse = cuda::block_sum(mse, scratch);
  vb = cuda::block_sum(vb, scratch);
  if (threadIdx.x == 0) {
    A n = A(C * P);
    terms[2 * b] = mse / n;
    terms[2 * b + 1] = vb / n / A(0.6931471805599453);
  }
}

template <typename T>
__global__ void loss_backward_kernel(T* dout, const acc_t<T>* g, const T* out, const T* x0, const T* xt, const T* eps,
                                     const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned) {
  using A = acc_t<T>;
  const int64_t Cout = learned ? 2 * C : C, n = B * C * P;
  const A inv_n = A(1) / A(C * P);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / (C * P), j = i % (C * P), ch = j / P, p = j % P;
    loss_element_backward(dout, out, x0, xt, eps, coef + b * kCoefs, g[b], i, (b * Cout + ch) * P + p,
                          (b * Cout + C + ch) * P + p, learned, inv_n);
  }
}

template <typename T>
__global__ void ddpm_kernel(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                            bool learned) {
  using A = acc_t<T>;
  const int64_t Cout = learned ? 2 * C : C, n = B * C * P;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / (C * P), j = i % (C * P), ch = j / P, p = j % P;
    x[i] = store_as<T>(ddpm_element(x, out, z, coef + b * kCoefs, i, (b * Cout + ch) * P + p, (b * Cout + C + ch) * P + p,
                                    learned));
  }
}

template <typename T>
__global__ void ddim_kernel(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                            int64_t Cout) {
  using A = acc_t<T>;
  const int64_t n = B * C * P;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / (C * P), j = i % (C * P), ch = j / P, p = j % P;
    const A* c = coef + b * kCoefs;
    A sigma = c[10], ap = c[9];
    A rem = A(1) - ap - sigma * sigma;
    A dir = rem > A(0) ? sqrt(rem) : A(0);
    A xv = load_as<A>(x[i]);
    A eh = load_as<A>(out[(b * Cout + ch) * P + p]);
    A x0 = c[2] * xv - c[3] * eh;
    A e2 = (c[2] * xv - x0) / c[3];
    x[i] = store_as<T>(x0 * sqrt(ap) + dir * e2 + c[11] * sigma * load_as<A>(z[i]));
  }
}

template <typename T>
__global__ void cfg_kernel(T* out, int64_t n, int64_t Cout, int64_t P, int64_t guided, acc_t<T> scale) {
  using A = acc_t<T>;
  const int64_t total = n * guided * P;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / (guided * P), j = i % (guided * P), ch = j / P, p = j % P;
    int64_t ic = (b * Cout + ch) * P + p, iu = ((b + n) * Cout + ch) * P + p;
    A ec = load_as<A>(out[ic]), eu = load_as<A>(out[iu]);
    T g = store_as<T>(eu + scale * (ec - eu));
    out[ic] = g;
    out[iu] = g;
  }
}
}  // namespace

template <typename T>
void diffusion_q_sample_cuda(T* xt, const T* x0, const T* eps, const acc_t<T>* coef, int64_t B, int64_t CP,
                             StreamHandle s) {
  if (B * CP == 0) return;
  q_sample_kernel<T><<<grid_size(B * CP, 256), 256, 0, to_cuda(s)>>>(xt, x0, eps, coef, B * CP, CP);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void diffusion_loss_forward_cuda(acc_t<T>* terms, const T* out, const T* x0, const T* xt, const T* eps,
                                 const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned, StreamHandle s) {
  if (B == 0) return;
  loss_forward_kernel<T><<<unsigned(B), 256, 0, to_cuda(s)>>>(terms, out, x0, xt, eps, coef, C, P, learned);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void diffusion_loss_backward_cuda(T* dout, const acc_t<T>* g, const T* out, const T* x0, const T* xt, const T* eps,
                                  const acc_t<T>* coef, int64_t B, int64_t C, int64_t P, bool learned, StreamHandle s) {
  if (B * C * P == 0) return;
  loss_backward_kernel<T><<<grid_size(B * C * P, 256), 256, 0, to_cuda(s)>>>(dout, g, out, x0, xt, eps, coef, B, C, P,
                                                                             learned);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void diffusion_ddpm_step_cuda(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                              bool learned, StreamHandle s) {
  if (B * C * P == 0) return;
  ddpm_kernel<T><<<grid_size(B * C * P, 256), 256, 0, to_cuda(s)>>>(x, out, z, coef, B, C, P, learned);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void diffusion_ddim_step_cuda(T* x, const T* out, const T* z, const acc_t<T>* coef, int64_t B, int64_t C, int64_t P,
                              int64_t out_channels, StreamHandle s) {
  if (B * C * P == 0) return;
  ddim_kernel<T><<<grid_size(B * C * P, 256), 256, 0, to_cuda(s)>>>(x, out, z, coef, B, C, P, out_channels);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void diffusion_cfg_cuda(T* out, int64_t n, int64_t Cout, int64_t P, int64_t guided, double scale, StreamHandle s) {
  if (n * guided * P == 0) return;
  cfg_kernel<T><<<grid_size(n * guided * P, 256), 256, 0, to_cuda(s)>>>(out, n, Cout, P, guided, acc_t<T>(scale));
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                           \
  template void diffusion_q_sample_cuda<T>(T*, const T*, const T*, const acc_t<T>*, int64_t, int64_t, StreamHandle); \
  template void diffusion_loss_forward_cuda<T>(acc_t<T>*, const T*, const T*, const T*, const T*, const acc_t<T>*, \
                                               int64_t, int64_t, int64_t, bool, StreamHandle);                  \
  template void diffusion_loss_backward_cuda<T>(T*, const acc_t<T>*, const T*, const T*, const T*, const T*,      \
                                                const acc_t<T>*, int64_t, int64_t, int64_t, bool, StreamHandle); \
  template void diffusion_ddpm_step_cuda<T>(T*, const T*, const T*, const acc_t<T>*, int64_t, int64_t, int64_t, bool, \
                                            StreamHandle);                                                       \
  template void diffusion_ddim_step_cuda<T>(T*, const T*, const T*, const acc_t<T>*, int64_t, int64_t, int64_t,   \
                                            int64_t, StreamHandle);                                              \
  template void diffusion_cfg_cuda<T>(T*, int64_t, int64_t, int64_t, int64_t, double, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
