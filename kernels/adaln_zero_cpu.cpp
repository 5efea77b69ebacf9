// Host adaLN-Zero kernels (kernels/adaln_zero.h): the CPU backend and the oracle of the CUDA kernels.
// Written as the textbook formulas (two-pass statistics, direct sums), independent of the CUDA
// factorisations.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/adaln_zero.h"
#include "kernels/elementwise_math.h"

namespace drwkv::kernels {
namespace {
void check_args(int64_t batch, int64_t tokens, int64_t C, int64_t mod_stride) {
  DRWKV_ASSERT(batch >= 0 && tokens >= 0 && C > 0 && mod_stride >= C, "adaLN: B %lld, T %lld, C %lld, mod stride %lld",
               (long long)batch, (long long)tokens, (long long)C, (long long)mod_stride);
}
int64_t token_blocks(int64_t tokens) { return (tokens + kAdaLNTokensPerBlock - 1) / kAdaLNTokensPerBlock; }
}  // namespace

int64_t layernorm_modulate_workspace(int64_t batch, int64_t tokens, int64_t C) {
  return batch * token_blocks(tokens) * 2 * C + batch * 2 * C;
}
int64_t gated_residual_workspace(int64_t batch, int64_t tokens, int64_t C) { return batch * token_blocks(tokens) * C; }
void check_gated_residual_layernorm_modulate_backward(const void* dh1, const void* dh_pass, const void* dy,
                                                      const void* dr, const void* h, const void* h1, const void* r) {
  DRWKV_ASSERT(dh1 && dy, "gated_residual_layernorm_modulate_backward: dh1 and dy are required");
  DRWKV_ASSERT(dh_pass != dh1, "gated_residual_layernorm_modulate_backward: dh_pass aliases dh1");
  DRWKV_ASSERT((h == nullptr) != (h1 == nullptr) && (!h || !r) && (r || !dr),
               "gated_residual_layernorm_modulate_backward: pass h1, or h without a receptance (dr needs r)");
}
int64_t gated_residual_layernorm_modulate_backward_workspace(int64_t batch, int64_t tokens, int64_t C) {
  return layernorm_modulate_workspace(batch, tokens, C) + gated_residual_workspace(batch, tokens, C) +
         (C > kGatedLayerNormBackwardFusedC ? batch * tokens * C : 0);  // h1 of the two-kernel path
}

template <typename TH, typename TY>
void layernorm_modulate_forward_cpu(TY* y, acc_t<TH>* mean, acc_t<TH>* rstd, const TH* h, const acc_t<TH>* weight,
                                    const acc_t<TH>* bias, const acc_t<TH>* shift, const acc_t<TH>* scale,
                                    int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C, double eps) {
  using A = acc_t<TH>;
  check_args(batch, tokens, C, mod_stride);
  for (int64_t b = 0; b < batch; ++b) {
    const A* sh = shift + b * mod_stride;
    const A* sc = scale + b * mod_stride;
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = b * tokens + t;
      const TH* x = h + row * C;
      A mu = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mu += load_as<A>(x[c]);
      mu /= A(C);
      for (int64_t c = 0; c < C; ++c) {
        A d = load_as<A>(x[c]) - mu;
        var += d * d;
      }
      const A rs = A(1) / std::sqrt(var / A(C) + A(eps));
      mean[row] = mu;
      rstd[row] = rs;
      for (int64_t c = 0; c < C; ++c) {
        A n = (load_as<A>(x[c]) - mu) * rs;
        if (weight) n *= weight[c];
        if (bias) n += bias[c];
        y[row * C + c] = store_as<TY>(n * (A(1) + sc[c]) + sh[c]);
      }
    }
  }
}

template <typename TH, typename TY>
void layernorm_modulate_backward_cpu(TH* dh, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
                                     acc_t<TH>* dscale, const TY* dy, const TH* h, const acc_t<TH>* mean,
                                     const acc_t<TH>* rstd, const acc_t<TH>* weight, const acc_t<TH>* bias,
                                     const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens,
                                     int64_t C, bool accumulate, acc_t<TH>* /*workspace*/) {
  using A = acc_t<TH>;
  check_args(batch, tokens, C, mod_stride);
  const size_t n = static_cast<size_t>(C);
  std::vector<A> dw(n, A(0)), db(n, A(0)), dsh(n), dsc(n), dxh(n), xh(n);
  for (int64_t b = 0; b < batch; ++b) {
    const A* sc = scale + b * mod_stride;
    std::fill(dsh.begin(), dsh.end(), A(0));
    std::fill(dsc.begin(), dsc.end(), A(0));
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = b * tokens + t;
      const A mu = mean[row], rs = rstd[row];
      A s1 = 0, s2 = 0;
      for (int64_t c = 0; c < C; ++c) {
        const A g = load_as<A>(dy[row * C + c]);
        const A x = (load_as<A>(h[row * C + c]) - mu) * rs;
        const A w = weight ? weight[c] : A(1);
        const A n = x * w + (bias ? bias[c] : A(0));
        const A dn = g * (A(1) + sc[c]);  // gradient of LN(h)
        dsh[size_t(c)] += g;
        dsc[size_t(c)] += g * n;
        dw[size_t(c)] += dn * x;
        db[size_t(c)] += dn;
        xh[size_t(c)] = x;
        dxh[size_t(c)] = dn * w;
        s1 += dxh[size_t(c)];
        s2 += dxh[size_t(c)] * x;
      }
      if (!dh) continue;
      for (int64_t c = 0; c < C; ++c) {
        A v = rs * (dxh[size_t(c)] - (s1 + xh[size_t(c)] * s2) / A(C));
        if (accumulate) v += load_as<A>(dh[row * C + c]);
        dh[row * C + c] = store_as<TH>(v);
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      if (dshift) dshift[b * mod_stride + c] += dsh[size_t(c)];
      if (dscale) dscale[b * mod_stride + c] += dsc[size_t(c)];
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] += dw[size_t(c)];
    if (dbias) dbias[c] += db[size_t(c)];
  }
}

template <typename TH, typename TY>
void gated_residual_forward_cpu(TH* out, TY* out_rounded, const TH* h, const TY* y, const TY* r,
                                const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale, int64_t batch,
                                int64_t tokens, int64_t C) {
  using A = acc_t<TH>;
  check_args(batch, tokens, C, mod_stride);
  for (int64_t b = 0; b < batch; ++b) {
    const A s = sample_scale ? sample_scale[b] : A(1);
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = (b * tokens + t) * C;
      for (int64_t c = 0; c < C; ++c) {
        const A branch = load_as<A>(y[row + c]) * (r ? sigmoid_(load_as<A>(r[row + c])) : A(1));
        out[row + c] = store_as<TH>(load_as<A>(h[row + c]) + s * gate[b * mod_stride + c] * branch);
        if (out_rounded) out_rounded[row + c] = store_as<TY>(load_as<A>(out[row + c]));
      }
    }
  }
}

template <typename TH, typename TY>
void gated_residual_backward_cpu(TY* dy, TY* dr, acc_t<TH>* dgate, const TH* dout, const TY* y, const TY* r,
                                 const acc_t<TH>* gate, int64_t mod_stride, const acc_t<TH>* sample_scale,
                                 int64_t batch, int64_t tokens, int64_t C, bool accumulate, acc_t<TH>* /*workspace*/) {
  using A = acc_t<TH>;
  check_args(batch, tokens, C, mod_stride);
  DRWKV_ASSERT(r || !dr, "gated_residual_backward: dr without a receptance");
  std::vector<A> dg(static_cast<size_t>(C));
  for (int64_t b = 0; b < batch; ++b) {
    const A s = sample_scale ? sample_scale[b] : A(1);
    std::fill(dg.begin(), dg.end(), A(0));
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = (b * tokens + t) * C;
      for (int64_t c = 0; c < C; ++c) {
        const A g = load_as<A>(dout[row + c]), yv = load_as<A>(y[row + c]);
        const A sr = r ? sigmoid_(load_as<A>(r[row + c])) : A(1);
        const A gs = s * gate[b * mod_stride + c] * g;  // ∂L/∂(branch)
        dg[size_t(c)] += g * sr * yv;
        if (dy) dy[row + c] = store_as<TY>(gs * sr + (accumulate ? load_as<A>(dy[row + c]) : A(0)));
        if (dr) dr[row + c] = store_as<TY>(gs * yv * sr * (A(1) - sr));
      }
    }
    if (dgate)
      for (int64_t c = 0; c < C; ++c) dgate[b * mod_stride + c] += s * dg[size_t(c)];
  }
}

// The two CPU kernels in sequence (the oracle of the fused CUDA kernel).
template <typename TH, typename TY>
void gated_residual_layernorm_modulate_forward_cpu(TH* h1, TY* h1_rounded, TY* x, acc_t<TH>* mean, acc_t<TH>* rstd,
                                                   const TH* h,
                                                   const TY* y, const TY* r, const acc_t<TH>* gate,
                                                   const acc_t<TH>* sample_scale,
                                                   const acc_t<TH>* weight, const acc_t<TH>* bias,
                                                   const acc_t<TH>* shift, const acc_t<TH>* scale, int64_t mod_stride,
                                                   int64_t batch, int64_t tokens, int64_t C, double eps) {
  std::vector<TH> own;  // h1 when the caller does not want it
  if (!h1) {
    own.resize(static_cast<size_t>(batch * tokens * C));
    h1 = own.data();
  }
  gated_residual_forward_cpu<TH, TY>(h1, h1_rounded, h, y, r, gate, mod_stride, sample_scale, batch, tokens, C);
  layernorm_modulate_forward_cpu<TH, TY>(x, mean, rstd, h1, weight, bias, shift, scale, mod_stride, batch, tokens, C,
                                         eps);
}

// The two CPU backwards in sequence, on h1 as given or formed again by the forward's function (the
// oracle of the fused CUDA kernel).
template <typename TH, typename TY>
void gated_residual_layernorm_modulate_backward_cpu(
    TH* dh1, TH* dh_pass, TY* dy, TY* dr, acc_t<TH>* dgate, acc_t<TH>* dweight, acc_t<TH>* dbias, acc_t<TH>* dshift,
    acc_t<TH>* dscale, const TY* dx, const TH* h, const TH* h1, const acc_t<TH>* mean, const acc_t<TH>* rstd,
    const TY* y, const TY* r, const acc_t<TH>* gate, const acc_t<TH>* sample_scale, const acc_t<TH>* weight,
    const acc_t<TH>* bias, const acc_t<TH>* scale, int64_t mod_stride, int64_t batch, int64_t tokens, int64_t C,
    bool accumulate, bool accumulate_dy, acc_t<TH>* /*workspace*/) {
  check_gated_residual_layernorm_modulate_backward(dh1, dh_pass, dy, dr, h, h1, r);
  std::vector<TH> formed;
  if (!h1) {
    formed.resize(static_cast<size_t>(batch * tokens * C));
    gated_residual_forward_cpu<TH, TY>(formed.data(), nullptr, h, y, nullptr, gate, mod_stride, sample_scale, batch,
                                       tokens, C);
    h1 = formed.data();
  }
  layernorm_modulate_backward_cpu<TH, TY>(dh1, dweight, dbias, dshift, dscale, dx, h1, mean, rstd, weight, bias, scale,
                                          mod_stride, batch, tokens, C, accumulate, nullptr);
  gated_residual_backward_cpu<TH, TY>(dy, dr, dgate, dh1, y, r, gate, mod_stride, sample_scale, batch, tokens, C,
                                      accumulate_dy, nullptr);
  if (dh_pass)
    for (int64_t i = 0; i < batch * tokens * C; ++i) dh_pass[i] += dh1[i];
}

#define INSTANTIATE(TH, TY)                                                                                        \
  template void layernorm_modulate_forward_cpu<TH, TY>(TY*, acc_t<TH>*, acc_t<TH>*, const TH*, const acc_t<TH>*,   \
                                                       const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*,       \
                                                       int64_t, int64_t, int64_t, int64_t, double);                \
  template void layernorm_modulate_backward_cpu<TH, TY>(TH*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*,       \
                                                        const TY*, const TH*, const acc_t<TH>*, const acc_t<TH>*,  \
                                                        const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*,      \
                                                        int64_t, int64_t, int64_t, int64_t, bool, acc_t<TH>*);     \
  template void gated_residual_forward_cpu<TH, TY>(TH*, TY*, const TH*, const TY*, const TY*, const acc_t<TH>*,  \
                                                   int64_t, const acc_t<TH>*, int64_t, int64_t, int64_t);          \
  template void gated_residual_layernorm_modulate_forward_cpu<TH, TY>(                                            \
      TH*, TY*, TY*, acc_t<TH>*, acc_t<TH>*, const TH*, const TY*, const TY*, const acc_t<TH>*, const acc_t<TH>*,        \
      const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, int64_t, int64_t, int64_t, int64_t,   \
      double);                                                                                                     \
  template void gated_residual_backward_cpu<TH, TY>(TY*, TY*, acc_t<TH>*, const TH*, const TY*, const TY*,         \
                                                    const acc_t<TH>*, int64_t, const acc_t<TH>*, int64_t, int64_t, \
                                                    int64_t, bool, acc_t<TH>*);                                    \
  template void gated_residual_layernorm_modulate_backward_cpu<TH, TY>(                                           \
      TH*, TH*, TY*, TY*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, acc_t<TH>*, const TY*, const TH*,         \
      const TH*, const acc_t<TH>*, const acc_t<TH>*, const TY*, const TY*, const acc_t<TH>*, const acc_t<TH>*,      \
      const acc_t<TH>*, const acc_t<TH>*, const acc_t<TH>*, int64_t, int64_t, int64_t, int64_t, bool, bool,         \
      acc_t<TH>*);
INSTANTIATE(float, float)
INSTANTIATE(double, double)
INSTANTIATE(float, bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
