// The official_compat Bi-WKV variant on CUDA (kernels/bi_wkv.h, MODEL.md §2.6): the official kernel's
// closed-form weights (bi_wkv_compat_terms.h) evaluated directly, O(T) work per output element, for
// parity checks of released checkpoints (T ≤ 1024 in practice), not for speed.
//
// Forward: one thread per (b, t, c) (c fastest: coalesced), two passes over i (row maximum, then the
// sums). Backward: rows_kernel recomputes each row, stores ẑ_t = dy_t/den_t, m_t, y_t and the row's
// ∂L/∂w, ∂L/∂u terms; cols_kernel gives dk_i, dv_i as sums over t; the parameter gradients are reduced
// over (b, t) in a fixed order (launch_param_grads). Workspace: 5·B·T·C floats.
#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_compat_terms.h"
#include "kernels/bi_wkv_launch.cuh"

namespace drwkv::kernels {
using namespace bi_wkv_detail;

namespace {

struct CompatScratch {
  float* z;     // [B, T, C] dy / den (den = Den·e^{−m})
  float* m;     // [B, T, C] row maximum exponent
  float* y;     // [B, T, C] forward output in f32
  float* part;  // [B·T][2][C] z_t·Σ_i ∂(ω e^k)/∂(w, u)·(v_i − y_t), scaled by e^{−m}
};

CompatScratch compat_scratch(void* workspace, int64_t n) {
  float* w = static_cast<float*>(workspace);
  return {w, w + n, w + 2 * n, w + 3 * n};
}

// Row t: maximum exponent, scaled denominator and output (natural units, accurate expf).
template <typename E> struct RowResult {
  float m, den, y;
};
template <typename E>
__device__ RowResult<E> compat_row(const E* k, const E* v, int64_t t, int64_t T, int64_t C, int64_t S,
                                   const CompatChannel<float>& ch) {
  float m = kEmpty;
  for (int64_t i = 0; i < T; ++i) {
    CompatTerms<float> tr = compat_terms(t, i, S, ch, load_as<float>(k[i * C]));
    for (int r = 0; r < tr.count; ++r) m = fmaxf(m, tr.x[r]);
  }
  float den = 0.f, num = 0.f;
  for (int64_t i = 0; i < T; ++i) {
    CompatTerms<float> tr = compat_terms(t, i, S, ch, load_as<float>(k[i * C]));
    float vi = load_as<float>(v[i * C]);
    for (int r = 0; r < tr.count; ++r) {
      float e = tr.c[r] * expf(tr.x[r] - m);
      den += e;
      num += e * vi;
    }
  }
  return {m, den, num / den};
}

// One thread per (b, t, c). With dy: the backward rows (scratch); without: y.
template <typename E>
__global__ void rows_kernel(const E* k, const E* v, const E* dy, E* y, CompatScratch sc, const float* decay,
                            const float* first, int64_t B, int64_t T, int64_t C) {
  const int64_t n = B * T * C, S = compat_segment(T);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C, t = (idx / C) % T, b = idx / (T * C);
    const E* kb = k + b * T * C + c;
    const E* vb = v + b * T * C + c;
    const CompatChannel<float> ch = compat_channel(decay[c] / float(T), first[c] / float(T));
    const RowResult<E> row = compat_row(kb, vb, t, T, C, S, ch);
    if (!dy) {
      y[idx] = store_as<E>(row.y);
      continue;
    }
    const float z = load_as<float>(dy[idx]) / row.den;
    sc.z[idx] = z;
    sc.m[idx] = row.m;
    sc.y[idx] = row.y;
    float gw = 0.f, gu = 0.f;
    for (int64_t i = 0; i < T; ++i) {
      CompatTerms<float> tr = compat_terms(t, i, S, ch, load_as<float>(kb[i * C]));
      const float dv = load_as<float>(vb[i * C]) - row.y;
      for (int r = 0; r < tr.count; ++r) {
        float e = expf(tr.x[r] - row.m) * dv;
        gw += tr.dc[r] * e;
        gu += tr.du[r] * e;
      }
    }
    sc.part[((b * T + t) * 2 + 0) * C + c] = z * gw;
    sc.part[((b * T + t) * 2 + 1) * C + c] = z * gu;
  }
}

// One thread per (b, i, c): dk_i, dv_i = Σ_t z_t ω_{t,i} e^{k_i − m_t} (v_i − y_t, 1).
template <typename E>
__global__ void cols_kernel(const E* k, const E* v, E* dk, E* dv, CompatScratch sc, const float* decay,
                            const float* first, int64_t B, int64_t T, int64_t C) {
  const int64_t n = B * T * C, S = compat_segment(T);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C, i = (idx / C) % T, b = idx / (T * C);
    const CompatChannel<float> ch = compat_channel(decay[c] / float(T), first[c] / float(T));
    const float ki = load_as<float>(k[idx]), vi = load_as<float>(v[idx]);
    float gk = 0.f, gv = 0.f;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t r_idx = (b * T + t) * C + c;
      const float z = sc.z[r_idx], m = sc.m[r_idx], yt = sc.y[r_idx];
      CompatTerms<float> tr = compat_terms(t, i, S, ch, ki);
      for (int r = 0; r < tr.count; ++r) {
        float e = z * tr.c[r] * expf(tr.x[r] - m);
        gv += e;
        gk += e * (vi - yt);
      }
    }
    if (dk) dk[idx] = store_as<E>(gk);
    if (dv) dv[idx] = store_as<E>(gv);
  }
}

}  // namespace

template <typename E>
void bi_wkv_compat_forward_cuda(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first,
                                int64_t B, int64_t T, int64_t C, void* /*workspace*/, StreamHandle stream) {
  const int64_t n = B * T * C;
  if (n == 0) return;
  rows_kernel<E><<<cuda::grid_size(n, 256), 256, 0, to_cuda(stream)>>>(k, v, nullptr, y, CompatScratch{}, decay,
                                                                         first, B, T, C);
  CUDA_CHECK_LAUNCH();
}

template <typename E>
void bi_wkv_compat_backward_cuda(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k,
                                 const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T,
                                 int64_t C, void* workspace, StreamHandle stream) {
  const int64_t n = B * T * C;
  if (n == 0) return;
  DRWKV_ASSERT(workspace, "bi_wkv_compat_backward_cuda: workspace of bi_wkv_compat_workspace_bytes() bytes required");
  const cudaStream_t s = to_cuda(stream);
  const CompatScratch sc = compat_scratch(workspace, n);
  rows_kernel<E><<<cuda::grid_size(n, 256), 256, 0, s>>>(k, v, dy, nullptr, sc, decay, first, B, T, C);
  CUDA_CHECK_LAUNCH();
  cols_kernel<E><<<cuda::grid_size(n, 256), 256, 0, s>>>(k, v, dk, dv, sc, decay, first, B, T, C);
  CUDA_CHECK_LAUNCH();
  launch_param_grads(ddecay, dfirst, sc.part, B * T, C, T, s);
}

#define INSTANTIATE(E)                                                                                         \
  template void bi_wkv_compat_forward_cuda<E>(E*, const E*, const E*, const acc_t<E>*, const acc_t<E>*,        \
                                              int64_t, int64_t, int64_t, void*, StreamHandle);                 \
  template void bi_wkv_compat_backward_cuda<E>(E*, E*, acc_t<E>*, acc_t<E>*, const E*, const E*, const E*,     \
                                               const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, int64_t,    \
                                               void*, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
