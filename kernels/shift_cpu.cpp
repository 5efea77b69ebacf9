// Host q-shift mix (kernels/shift.h): the CPU backend and the oracle of the CUDA kernels.
#include <vector>

#include "core/check.h"
#include "kernels/shift.h"

namespace drwkv::kernels {
namespace {
void check_args(int mixes, int64_t batch, int grid_h, int grid_w, int64_t C) {
  DRWKV_ASSERT(mixes >= 1 && mixes <= kQShiftMaxMix, "q-shift mix: %d mixes (1..%d)", mixes, kQShiftMaxMix);
  DRWKV_ASSERT(batch >= 0 && grid_h > 0 && grid_w > 0 && C > 0, "q-shift mix: B %lld, grid %dx%d, C %lld",
               (long long)batch, grid_h, grid_w, (long long)C);
}
}  // namespace

int64_t qshift_mix_workspace(int mixes, int64_t batch, int grid_h, int grid_w, int64_t C) {
  return batch * qshift_walk_groups(grid_h, grid_w) * mixes * C;
}

template <typename T>
void qshift_mix_forward_cpu(const MixPtrs<T*>& outs, const T* x, const MixPtrs<const acc_t<T>*>& mus, int mixes,
                            int64_t batch, int grid_h, int grid_w, int64_t C) {
  using A = acc_t<T>;
  check_args(mixes, batch, grid_h, grid_w, C);
  const int64_t tokens = int64_t(grid_h) * grid_w;
  std::vector<int> quarter(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) quarter[size_t(c)] = qshift_quarter(c, C);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = (b * tokens + t) * C;
      int64_t src[4];
      for (int q = 0; q < 4; ++q) src[q] = qshift_source(q, t, grid_h, grid_w);
      for (int64_t c = 0; c < C; ++c) {
        const int64_t s = src[quarter[size_t(c)]];
        const A xv = load_as<A>(x[row + c]);
        const A qv = s >= 0 ? load_as<A>(x[(b * tokens + s) * C + c]) : A(0);
        for (int m = 0; m < mixes; ++m) {
          const A mu = mus.p[m][c];
          outs.p[m][row + c] = store_as<T>(xv * mu + qv * (A(1) - mu));
        }
      }
    }
  }
}

template <typename T>
void qshift_mix_backward_cpu(T* dx, const MixPtrs<acc_t<T>*>& dmus, const MixPtrs<const T*>& douts, const T* x,
                             const MixPtrs<const acc_t<T>*>& mus, int mixes, int64_t batch, int grid_h, int grid_w,
                             int64_t C, bool accumulate, acc_t<T>* /*workspace*/) {
  using A = acc_t<T>;
  check_args(mixes, batch, grid_h, grid_w, C);
  const int64_t tokens = int64_t(grid_h) * grid_w;
  std::vector<int> quarter(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) quarter[size_t(c)] = qshift_quarter(c, C);
  std::vector<A> dmu(static_cast<size_t>(mixes * C), A(0));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t row = (b * tokens + t) * C;
      int64_t src[4], rd[4];
      for (int q = 0; q < 4; ++q) {
        src[q] = qshift_source(q, t, grid_h, grid_w);
        rd[q] = qshift_reader(q, t, grid_h, grid_w);
      }
      for (int64_t c = 0; c < C; ++c) {
        const int q = quarter[size_t(c)];
        const A xv = load_as<A>(x[row + c]);
        const A qv = src[q] >= 0 ? load_as<A>(x[(b * tokens + src[q]) * C + c]) : A(0);
        const int64_t reader = rd[q] >= 0 ? (b * tokens + rd[q]) * C + c : -1;
        A acc = accumulate && dx ? load_as<A>(dx[row + c]) : A(0);
        for (int m = 0; m < mixes; ++m) {
          const A mu = mus.p[m][c];
          const A g = load_as<A>(douts.p[m][row + c]);
          const A gr = reader >= 0 ? load_as<A>(douts.p[m][reader]) : A(0);
          acc += g * mu + gr * (A(1) - mu);
          dmu[size_t(m * C + c)] += g * (xv - qv);
        }
        if (dx) dx[row + c] = store_as<T>(acc);
      }
    }
  }
  for (int m = 0; m < mixes; ++m)
    if (dmus.p[m])
      for (int64_t c = 0; c < C; ++c) dmus.p[m][c] += dmu[size_t(m * C + c)];
}

#define INSTANTIATE(T)                                                                                           \
  template void qshift_mix_forward_cpu<T>(const MixPtrs<T*>&, const T*, const MixPtrs<const acc_t<T>*>&, int,    \
                                          int64_t, int, int, int64_t);                                           \
  template void qshift_mix_backward_cpu<T>(T*, const MixPtrs<acc_t<T>*>&, const MixPtrs<const T*>&, const T*,    \
                                           const MixPtrs<const acc_t<T>*>&, int, int64_t, int, int, int64_t, bool, \
                                           acc_t<T>*);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
