// Host linear decoder (kernels/linear_decoder.h): the CPU backend and the oracle of the CUDA kernels,
// written as the plain formulas (LayerNorm, modulation, matrix-vector product, scatter into the image).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/linear_decoder.h"

namespace drwkv::kernels {
namespace {
void check_dims(const DecoderDims& d) {
  DRWKV_ASSERT(d.batch >= 0 && d.grid_h > 0 && d.grid_w > 0 && d.C > 0 && d.patch > 0 && d.out_channels > 0,
               "linear decoder: B %lld, grid %dx%d, C %lld, P %d, Cout %d", (long long)d.batch, d.grid_h, d.grid_w,
               (long long)d.C, d.patch, d.out_channels);
}
}  // namespace

int64_t linear_decoder_workspace(const DecoderDims& d) {
  const int64_t np = decoder_padded_out(d.n_out()), rows = d.batch * d.tokens();
  const int64_t row_blocks = (rows + 63) / 64;
  const DecoderGroups g = decoder_groups(d.batch, d.C);
  // u, v per sample | do in token order | two row sums | bias partials | weight partials
  return d.batch * 2 * np + rows * np + rows * 2 + row_blocks * np + g.groups * d.n_out() * d.C;
}

template <typename T>
void linear_decoder_forward_cpu(T* out, acc_t<T>* mean, acc_t<T>* rstd, const T* h, const acc_t<T>* mod,
                                const acc_t<T>* weight, const acc_t<T>* bias, const DecoderDims& d, double eps,
                                acc_t<T>* /*workspace*/) {
  using A = acc_t<T>;
  check_dims(d);
  const int64_t C = d.C, N = d.n_out(), tokens = d.tokens();
  std::vector<A> z(static_cast<size_t>(C));
  for (int64_t b = 0; b < d.batch; ++b) {
    const A* shift = mod + b * 2 * C;
    const A* scale = shift + C;
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = b * tokens + t;
      const T* x = h + row * C;
      A mu = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mu += load_as<A>(x[c]);
      mu /= A(C);
      for (int64_t c = 0; c < C; ++c) var += (load_as<A>(x[c]) - mu) * (load_as<A>(x[c]) - mu);
      const A rs = A(1) / std::sqrt(var / A(C) + A(eps));
      mean[row] = mu;
      rstd[row] = rs;
      for (int64_t c = 0; c < C; ++c) z[size_t(c)] = (load_as<A>(x[c]) - mu) * rs * (A(1) + scale[c]) + shift[c];
      for (int64_t n = 0; n < N; ++n) {
        A o = bias ? bias[n] : A(0);
        for (int64_t c = 0; c < C; ++c) o += weight[n * C + c] * z[size_t(c)];
        out[decoder_out_index(d, b, t, n)] = store_as<T>(o);
      }
    }
  }
}

template <typename T>
void linear_decoder_backward_cpu(T* dh, acc_t<T>* dmod, acc_t<T>* dweight, acc_t<T>* dbias, const T* dout,
                                 const T* /*out*/, const T* h, const acc_t<T>* mean, const acc_t<T>* rstd,
                                 const acc_t<T>* mod, const acc_t<T>* weight, const acc_t<T>* /*bias*/,
                                 const DecoderDims& d, bool accumulate, acc_t<T>* /*workspace*/) {
  using A = acc_t<T>;
  check_dims(d);
  const int64_t C = d.C, N = d.n_out(), tokens = d.tokens();
  const size_t nc = static_cast<size_t>(C);
  std::vector<A> xh(nc), z(nc), dz(nc), g(nc), dsh(nc), dsc(nc), go(static_cast<size_t>(N));
  std::vector<A> dw(static_cast<size_t>(N * C), A(0)), db(static_cast<size_t>(N), A(0));
  for (int64_t b = 0; b < d.batch; ++b) {
    const A* shift = mod + b * 2 * C;
    const A* scale = shift + C;
    std::fill(dsh.begin(), dsh.end(), A(0));
    std::fill(dsc.begin(), dsc.end(), A(0));
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = b * tokens + t;
      const A mu = mean[row], rs = rstd[row];
      for (int64_t c = 0; c < C; ++c) {
        xh[size_t(c)] = (load_as<A>(h[row * C + c]) - mu) * rs;
        z[size_t(c)] = xh[size_t(c)] * (A(1) + scale[c]) + shift[c];
        dz[size_t(c)] = 0;
      }
      for (int64_t n = 0; n < N; ++n) {
        const A gn = load_as<A>(dout[decoder_out_index(d, b, t, n)]);
        go[size_t(n)] = gn;
        db[size_t(n)] += gn;
        for (int64_t c = 0; c < C; ++c) {
          dw[size_t(n * C + c)] += gn * z[size_t(c)];
          dz[size_t(c)] += gn * weight[n * C + c];
        }
      }
      A s1 = 0, s2 = 0;
      for (int64_t c = 0; c < C; ++c) {
        dsh[size_t(c)] += dz[size_t(c)];
        dsc[size_t(c)] += dz[size_t(c)] * xh[size_t(c)];
        g[size_t(c)] = dz[size_t(c)] * (A(1) + scale[c]);
        s1 += g[size_t(c)];
        s2 += g[size_t(c)] * xh[size_t(c)];
      }
      if (!dh) continue;
      for (int64_t c = 0; c < C; ++c) {
        A v = rs * (g[size_t(c)] - (s1 + xh[size_t(c)] * s2) / A(C));
        if (accumulate) v += load_as<A>(dh[row * C + c]);
        dh[row * C + c] = store_as<T>(v);
      }
    }
    if (dmod)
      for (int64_t c = 0; c < C; ++c) {
        dmod[b * 2 * C + c] += dsh[size_t(c)];
        dmod[b * 2 * C + C + c] += dsc[size_t(c)];
      }
  }
  if (dweight)
    for (int64_t k = 0; k < N * C; ++k) dweight[k] += dw[size_t(k)];
  if (dbias)
    for (int64_t n = 0; n < N; ++n) dbias[n] += db[size_t(n)];
}

#define INSTANTIATE(T)                                                                                        \
  template void linear_decoder_forward_cpu<T>(T*, acc_t<T>*, acc_t<T>*, const T*, const acc_t<T>*,            \
                                              const acc_t<T>*, const acc_t<T>*, const DecoderDims&, double,     \
                                              acc_t<T>*);                                                     \
  template void linear_decoder_backward_cpu<T>(T*, acc_t<T>*, acc_t<T>*, acc_t<T>*, const T*, const T*,       \
                                               const T*, const acc_t<T>*, const acc_t<T>*, const acc_t<T>*,    \
                                               const acc_t<T>*, const acc_t<T>*, const DecoderDims&, bool,     \
                                               acc_t<T>*);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
