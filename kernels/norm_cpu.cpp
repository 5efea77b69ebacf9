// Host implementation of kernels/norm.h: the CPU backend and the test oracle of the CUDA kernels.
// LayerNorm is GroupNorm with one group. Statistics use two passes over each group (mean, then the
// mean squared deviation); parameter gradients are summed per channel in row order into a local
// buffer and then added, the same order for every run.
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/norm.h"

namespace drwkv::kernels {
namespace {

void check_groups(const char* op, int64_t rows, int64_t C, int64_t groups) {
  DRWKV_ASSERT(rows >= 0 && C > 0 && groups > 0 && C % groups == 0, "%s: rows %lld, C %lld, groups %lld", op,
               (long long)rows, (long long)C, (long long)groups);
}

template <typename T>
void groupnorm_forward_impl(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                            const acc_t<T>* bias, int64_t rows, int64_t C, int64_t groups, double eps) {
  using A = acc_t<T>;
  const int64_t L = C / groups;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const T* xs = x + r * C + g * L;
      T* ys = y + r * C + g * L;
      A s = 0;
      for (int64_t i = 0; i < L; ++i) s += load_as<A>(xs[i]);
      const A mu = s / A(L);
      A ss = 0;
      for (int64_t i = 0; i < L; ++i) {
        A d = load_as<A>(xs[i]) - mu;
        ss += d * d;
      }
      const A rs = A(1) / std::sqrt(ss / A(L) + A(eps));
      if (mean) mean[r * groups + g] = mu;
      if (rstd) rstd[r * groups + g] = rs;
      for (int64_t i = 0; i < L; ++i) {
        const int64_t c = g * L + i;
        A v = (load_as<A>(xs[i]) - mu) * rs;
        if (weight) v *= weight[c];
        if (bias) v += bias[c];
        ys[i] = store_as<T>(v);
      }
    }
  }
}

template <typename T>
void groupnorm_backward_impl(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                             const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                             int64_t C, int64_t groups, bool accumulate) {
  using A = acc_t<T>;
  DRWKV_ASSERT(mean && rstd, "groupnorm_backward: needs the forward's mean and rstd");
  const int64_t L = C / groups;
  std::vector<A> sw(dweight ? size_t(C) : 0, A(0)), sb(dbias ? size_t(C) : 0, A(0));
  std::vector<A> gbuf(static_cast<size_t>(L)), xhat(static_cast<size_t>(L));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t off = r * C + g * L;
      const A mu = mean[r * groups + g], rs = rstd[r * groups + g];
      A s1 = 0, s2 = 0;  // Σ g, Σ g·x̂ with g = dy ⊙ weight
      for (int64_t i = 0; i < L; ++i) {
        const int64_t c = g * L + i;
        const A d = load_as<A>(dy[off + i]);
        xhat[size_t(i)] = (load_as<A>(x[off + i]) - mu) * rs;
        gbuf[size_t(i)] = weight ? d * weight[c] : d;
        s1 += gbuf[size_t(i)];
        s2 += gbuf[size_t(i)] * xhat[size_t(i)];
        if (dweight) sw[size_t(c)] += d * xhat[size_t(i)];
        if (dbias) sb[size_t(c)] += d;
      }
      if (!dx) continue;
      // dx may alias dy: every dy of this group has been read above
      const A m1 = s1 / A(L), m2 = s2 / A(L);
      for (int64_t i = 0; i < L; ++i) {
        A v = rs * (gbuf[size_t(i)] - m1 - xhat[size_t(i)] * m2);
        if (accumulate) v += load_as<A>(dx[off + i]);
        dx[off + i] = store_as<T>(v);
      }
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] += sw[size_t(c)];
    if (dbias) dbias[c] += sb[size_t(c)];
  }
}

}  // namespace

template <typename T>
void layernorm_forward_cpu(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                           const acc_t<T>* bias, int64_t rows, int64_t C, double eps) {
  check_groups("layernorm_forward", rows, C, 1);
  groupnorm_forward_impl(y, mean, rstd, x, weight, bias, rows, C, 1, eps);
}

template <typename T>
void layernorm_backward_cpu(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                            const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                            int64_t C, bool accumulate, acc_t<T>* /*scratch*/) {
  check_groups("layernorm_backward", rows, C, 1);
  groupnorm_backward_impl(dx, dweight, dbias, dy, x, weight, mean, rstd, rows, C, 1, accumulate);
}

template <typename T>
void groupnorm_forward_cpu(T* y, acc_t<T>* mean, acc_t<T>* rstd, const T* x, const acc_t<T>* weight,
                           const acc_t<T>* bias, int64_t rows, int64_t C, int64_t groups, double eps) {
  check_groups("groupnorm_forward", rows, C, groups);
  groupnorm_forward_impl(y, mean, rstd, x, weight, bias, rows, C, groups, eps);
}

template <typename T>
void groupnorm_backward_cpu(T* dx, acc_t<T>* dweight, acc_t<T>* dbias, const T* dy, const T* x,
                            const acc_t<T>* weight, const acc_t<T>* mean, const acc_t<T>* rstd, int64_t rows,
                            int64_t C, int64_t groups, bool accumulate, acc_t<T>* /*scratch*/) {
  check_groups("groupnorm_backward", rows, C, groups);
  groupnorm_backward_impl(dx, dweight, dbias, dy, x, weight, mean, rstd, rows, C, groups, accumulate);
}

template <typename T>
void l2norm_forward_cpu(T* y, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps) {
  using A = acc_t<T>;
  DRWKV_ASSERT(group_size > 0, "l2norm_forward: group_size %lld", (long long)group_size);
  check_groups("l2norm_forward", rows, C, C / group_size);
  const int64_t groups = C / group_size;
  for (int64_t s = 0; s < rows * groups; ++s) {
    const T* xs = x + s * group_size;
    A ss = 0;
    for (int64_t i = 0; i < group_size; ++i) {
      A v = load_as<A>(xs[i]);
      ss += v * v;
    }
    const A inv = A(1) / std::max(std::sqrt(ss), A(eps));
    for (int64_t i = 0; i < group_size; ++i) y[s * group_size + i] = store_as<T>(load_as<A>(xs[i]) * inv);
  }
}

template <typename T>
void l2norm_backward_cpu(T* dx, const T* dy, const T* x, int64_t rows, int64_t C, int64_t group_size, double eps,
                         bool accumulate) {
  using A = acc_t<T>;
  DRWKV_ASSERT(group_size > 0, "l2norm_backward: group_size %lld", (long long)group_size);
  check_groups("l2norm_backward", rows, C, C / group_size);
  const int64_t groups = C / group_size;
  for (int64_t s = 0; s < rows * groups; ++s) {
    const int64_t off = s * group_size;
    A ss = 0, sxd = 0;
    for (int64_t i = 0; i < group_size; ++i) {
      A v = load_as<A>(x[off + i]);
      ss += v * v;
      sxd += v * load_as<A>(dy[off + i]);
    }
    const A n = std::sqrt(ss);
    // ‖g‖ > eps: y = x/‖g‖ and dx = (dy − x (x·dy)/‖g‖²)/‖g‖; otherwise y = x/eps is linear in x
    const bool normed = n > A(eps);
    const A inv = normed ? A(1) / n : A(1) / A(eps);
    const A proj = normed ? sxd * inv * inv : A(0);
    for (int64_t i = 0; i < group_size; ++i) {
      A v = inv * (load_as<A>(dy[off + i]) - load_as<A>(x[off + i]) * proj);
      if (accumulate) v += load_as<A>(dx[off + i]);
      dx[off + i] = store_as<T>(v);
    }
  }
}

#define INSTANTIATE(T)                                                                                          \
  template void layernorm_forward_cpu<T>(T*, acc_t<T>*, acc_t<T>*, const T*, const acc_t<T>*, const acc_t<T>*,  \
                                         int64_t, int64_t, double);                                             \
  template void layernorm_backward_cpu<T>(T*, acc_t<T>*, acc_t<T>*, const T*, const T*, const acc_t<T>*,        \
                                          const acc_t<T>*, const acc_t<T>*, int64_t, int64_t, bool, acc_t<T>*); \
  template void groupnorm_forward_cpu<T>(T*, acc_t<T>*, acc_t<T>*, const T*, const acc_t<T>*, const acc_t<T>*,  \
                                         int64_t, int64_t, int64_t, double);                                    \
  template void groupnorm_backward_cpu<T>(T*, acc_t<T>*, acc_t<T>*, const T*, const T*, const acc_t<T>*,        \
                                          const acc_t<T>*, const acc_t<T>*, int64_t, int64_t, int64_t, bool,    \
                                          acc_t<T>*);                                                           \
  template void l2norm_forward_cpu<T>(T*, const T*, int64_t, int64_t, int64_t, double);                         \
  template void l2norm_backward_cpu<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, double, bool);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
