// Host Bi-WKV (kernels/bi_wkv.h): the CPU backend and the test oracle of the CUDA kernels.
//
// The exact variant runs the CUDA algorithm sequence by sequence: the same plan (bi_wkv_plan.h), the
// same per-segment passes and chunk arithmetic (bi_wkv_chunk.h), and the same exchange between segments
// and blocks in the same order, only without the threads. The parameter gradients are summed per block
// over its segments, then over (batch, block) in double, in a fixed order.
// The compat variant evaluates the official kernel's closed-form weights (bi_wkv_compat_terms.h) in
// O(T²) per sequence, with the maximum exponent of each row subtracted.
#include <algorithm>
#include <vector>

#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_chunk.h"
#include "kernels/bi_wkv_compat_terms.h"
#include "kernels/bi_wkv_plan.h"

namespace drwkv::kernels {
using namespace bi_wkv_detail;

// The automatic plan depends on the element size (bf16 or not): the workspace covers both.
size_t bi_wkv_workspace_bytes(const BiWkvPlan& plan, int64_t B, int64_t T, int64_t C) {
  size_t bytes = 0;
  for (size_t elem_bytes : {size_t(2), size_t(4)}) {
    const Plan p = make_plan(T, plan.cluster, plan.warps, plan.chunks_per_warp, elem_bytes);
    bytes = std::max(bytes, workspace_layout(p, B, C).bytes);
  }
  return bytes;
}
size_t bi_wkv_workspace_bytes(int64_t B, int64_t T, int64_t C) {
  return bi_wkv_workspace_bytes(BiWkvPlan{}, B, T, C);
}

size_t bi_wkv_compat_workspace_bytes(int64_t B, int64_t T, int64_t C) {
  return size_t(5 * B * T * C) * sizeof(float);  // ẑ, m, y, then ∂L/∂w and ∂L/∂u per (b, t, c)
}

namespace {

// Segment summaries → segment carries, in the order of the kernel's exchange (bi_wkv_kernel.cuh).
template <typename A, bool kDeriv>
void segment_carries(const Plan& p, A w2, std::vector<Sum<A>>& left, std::vector<Sum<A>>& right) {
  const int N = p.cluster, W = p.warps;
  const A Ls = A(p.seg_chunks * kChunk), Lb = Ls * A(W);
  std::vector<Sum<A>> total_left(static_cast<size_t>(N)), total_right(static_cast<size_t>(N));
  for (int r = 0; r < N; ++r) {
    Sum<A> run = empty_sum<A>();
    for (int w = 0; w < W; ++w) left[size_t(r * W + w)] = scan_left<A, kDeriv>(run, left[size_t(r * W + w)], Ls, w2);
    total_left[size_t(r)] = run;
    run = empty_sum<A>();
    for (int w = W - 1; w >= 0; --w) right[size_t(r * W + w)] = scan_right<A>(run, right[size_t(r * W + w)], Ls, w2);
    total_right[size_t(r)] = run;
  }
  for (int r = 0; r < N; ++r) {
    Sum<A> block_left = empty_sum<A>(), block_right = empty_sum<A>();
    for (int q = 0; q < r; ++q) block_left = plus<A, kDeriv>(decayed<A, kDeriv>(block_left, Lb, w2), total_left[size_t(q)]);
    for (int q = N - 1; q > r; --q) block_right = plus<A, false>(total_right[size_t(q)], decayed<A, false>(block_right, Lb, w2));
    for (int w = 0; w < W; ++w) {
      const size_t g = size_t(r * W + w);
      left[g] = segment_carry_left<A, kDeriv>(block_left, left[g], w, Ls, w2);
      right[g] = segment_carry_right<A>(block_right, right[g], w, W, Ls, w2);
    }
  }
}

// One (b, c) sequence (pointers at its element (b, 0, c), stride C). Forward: writes y. Backward: writes
// dk, dv (when non-null) and the per-block partial gradients part_w/part_u[r], r < cluster.
template <typename E, bool kBackward>
void exact_sequence(const Plan& p, const E* k, const E* v, const E* dy, E* y, E* dk, E* dv, acc_t<E> decay,
                    acc_t<E> first, int64_t T, int64_t C, double* part_w, double* part_u) {
  using A = acc_t<E>;
  const Channel<A> ch = make_channel<A>(decay, first, T);
  const int G = p.cluster * p.warps, S = p.seg_chunks;
  auto load = [&](int j) {
    Chunk<A> d;
    const int64_t t0 = int64_t(j) * kChunk;
    d.valid = int(std::min<int64_t>(kChunk, T - t0));
    for (int i = 0; i < kChunk; ++i) {
      const bool in = i < d.valid;
      const int64_t e = (t0 + i) * C;
      d.k2[i] = in ? load_as<A>(k[e]) * A(kLog2e) : A(kEmpty);
      d.v[i] = in ? load_as<A>(v[e]) : A(0);
      d.g[i] = in && kBackward ? load_as<A>(dy[e]) : A(0);
    }
    return d;
  };
  const size_t ng = static_cast<size_t>(G), nc = static_cast<size_t>(G * S);
  std::vector<Sum<A>> rc1(nc), rc2(nc), left(ng), right(ng);
  auto put = [](std::vector<Sum<A>>& rc, int g, int S_) {
    return [&rc, g, S_](int s, const Sum<A>& x) { rc[size_t(g * S_ + s)] = x; };
  };
  auto get = [](std::vector<Sum<A>>& rc, int g, int S_) {
    return [&rc, g, S_](int s) { return rc[size_t(g * S_ + s)]; };
  };
  for (int g = 0; g < G; ++g)
    summarize_segment<A, kBackward>(ch, segment_range(g, S, p.chunks), load, put(rc1, g, S), get(rc1, g, S),
                                    left[size_t(g)], right[size_t(g)]);
  segment_carries<A, kBackward>(p, ch.w2, left, right);
  for (int g = 0; g < G; ++g)
    right_carries<A>(ch, segment_range(g, S, p.chunks), right[size_t(g)], get(rc1, g, S), put(rc1, g, S));
  if constexpr (!kBackward) {
    for (int g = 0; g < G; ++g)
      forward_segment<A>(ch, segment_range(g, S, p.chunks), left[size_t(g)], load, get(rc1, g, S),
                         [&](int j, int valid, const A (&o)[kChunk]) {
                           for (int i = 0; i < valid; ++i) y[(int64_t(j) * kChunk + i) * C] = store_as<E>(o[i]);
                         });
  } else {
    std::vector<A> gw(ng, A(0)), gu(ng, A(0));
    std::vector<Sum<A>> bleft(ng), bright(ng);
    for (int g = 0; g < G; ++g)
      backward_segment_rows<A>(ch, segment_range(g, S, p.chunks), left[size_t(g)], load, get(rc1, g, S),
                               put(rc2, g, S), get(rc2, g, S), bleft[size_t(g)], bright[size_t(g)], gw[size_t(g)],
                               gu[size_t(g)]);
    segment_carries<A, true>(p, ch.w2, bleft, bright);
    for (int g = 0; g < G; ++g)
      right_carries<A>(ch, segment_range(g, S, p.chunks), bright[size_t(g)], get(rc2, g, S), put(rc2, g, S));
    for (int g = 0; g < G; ++g)
      backward_segment_outputs<A>(
          ch, segment_range(g, S, p.chunks), left[size_t(g)], bleft[size_t(g)], load, get(rc1, g, S),
          get(rc2, g, S),
          [&](int j, int valid, const A (&gk)[kChunk], const A (&gv)[kChunk]) {
            for (int i = 0; i < valid; ++i) {
              if (dk) dk[(int64_t(j) * kChunk + i) * C] = store_as<E>(gk[i]);
              if (dv) dv[(int64_t(j) * kChunk + i) * C] = store_as<E>(gv[i]);
            }
          },
          gw[size_t(g)]);
    for (int r = 0; r < p.cluster; ++r) {  // per block over its segments, as the CUDA block does
      A sw = 0, su = 0;
      for (int w = 0; w < p.warps; ++w) {
        sw += gw[size_t(r * p.warps + w)];
        su += gu[size_t(r * p.warps + w)];
      }
      part_w[r] = double(sw);
      part_u[r] = double(su);
    }
  }
}

}  // namespace

namespace bi_wkv_detail {

template <typename E>
void bi_wkv_forward_cpu_plan(const Plan& plan, E* y, const E* k, const E* v, const acc_t<E>* decay,
                             const acc_t<E>* first, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      int64_t o = b * T * C + c;
      exact_sequence<E, false>(plan, k + o, v + o, nullptr, y + o, nullptr, nullptr, decay[c], first[c], T, C,
                               nullptr, nullptr);
    }
}

template <typename E>
void bi_wkv_backward_cpu_plan(const Plan& plan, E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy,
                              const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                              int64_t T, int64_t C) {
  if (B * T * C == 0) return;
  const int64_t rows = B * plan.cluster;
  // partials[c][b·cluster + r], reduced per channel in (b, r) order
  std::vector<double> part_w(static_cast<size_t>(C * rows)), part_u(part_w.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      int64_t o = b * T * C + c;
      size_t at = size_t(c * rows + b * plan.cluster);
      exact_sequence<E, true>(plan, k + o, v + o, dy + o, nullptr, dk ? dk + o : nullptr, dv ? dv + o : nullptr,
                              decay[c], first[c], T, C, &part_w[at], &part_u[at]);
    }
  for (int64_t c = 0; c < C; ++c) {
    double sw = 0, su = 0;
    for (int64_t r = 0; r < rows; ++r) {
      sw += part_w[size_t(c * rows + r)];
      su += part_u[size_t(c * rows + r)];
    }
    if (ddecay) ddecay[c] += acc_t<E>(sw / double(T));
    if (dfirst) dfirst[c] += acc_t<E>(su / double(T));
  }
}

}  // namespace bi_wkv_detail

template <typename E>
void bi_wkv_forward_cpu(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                        int64_t T, int64_t C, void* /*workspace*/) {
  bi_wkv_detail::bi_wkv_forward_cpu_plan<E>(make_plan(T, 0, 0, 0, sizeof(E)), y, k, v, decay, first, B, T, C);
}

template <typename E>
void bi_wkv_backward_cpu(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k, const E* v,
                         const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T, int64_t C,
                         void* /*workspace*/) {
  bi_wkv_detail::bi_wkv_backward_cpu_plan<E>(make_plan(T, 0, 0, 0, sizeof(E)), dk, dv, ddecay, dfirst, dy, k, v, decay,
                                             first, B, T, C);
}

// ---- official_compat ------------------------------------------------------------------------------------
namespace {

// Row t of the compat forward: max exponent m, scaled denominator den (Den = e^m·den) and y.
template <typename A> struct CompatRow {
  A m, den, y;
};
template <typename A>
CompatRow<A> compat_row(int64_t t, int64_t T, int64_t S, const CompatChannel<A>& ch, const A* k, const A* v) {
  A m = A(kEmpty);
  for (int64_t i = 0; i < T; ++i) {
    CompatTerms<A> tr = compat_terms(t, i, S, ch, k[i]);
    for (int r = 0; r < tr.count; ++r) m = std::max(m, tr.x[r]);
  }
  A den = 0, num = 0;
  for (int64_t i = 0; i < T; ++i) {
    CompatTerms<A> tr = compat_terms(t, i, S, ch, k[i]);
    for (int r = 0; r < tr.count; ++r) {
      A e = tr.c[r] * std::exp(tr.x[r] - m);
      den += e;
      num += e * v[i];
    }
  }
  return {m, den, num / den};
}

template <typename E>
void load_channel(std::vector<acc_t<E>>& out, const E* p, int64_t T, int64_t C) {
  out.resize(size_t(T));
  for (int64_t t = 0; t < T; ++t) out[size_t(t)] = load_as<acc_t<E>>(p[t * C]);
}

}  // namespace

template <typename E>
void bi_wkv_compat_forward_cpu(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first,
                               int64_t B, int64_t T, int64_t C, void* /*workspace*/) {
  using A = acc_t<E>;
  const int64_t S = compat_segment(T);
  std::vector<A> kk, vv;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      int64_t o = b * T * C + c;
      load_channel<E>(kk, k + o, T, C);
      load_channel<E>(vv, v + o, T, C);
      CompatChannel<A> ch = compat_channel(decay[c] / A(T), first[c] / A(T));
      for (int64_t t = 0; t < T; ++t) y[o + t * C] = store_as<E>(compat_row(t, T, S, ch, kk.data(), vv.data()).y);
    }
}

template <typename E>
void bi_wkv_compat_backward_cpu(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k,
                                const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T,
                                int64_t C, void* /*workspace*/) {
  using A = acc_t<E>;
  const int64_t S = compat_segment(T);
  const size_t nt = static_cast<size_t>(T), nc = static_cast<size_t>(C);
  std::vector<A> kk, vv, gg, z(nt), m(nt), yy(nt);
  std::vector<double> sw(nc, 0.0), su(nc, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      int64_t o = b * T * C + c;
      load_channel<E>(kk, k + o, T, C);
      load_channel<E>(vv, v + o, T, C);
      load_channel<E>(gg, dy + o, T, C);
      CompatChannel<A> ch = compat_channel(decay[c] / A(T), first[c] / A(T));
      for (int64_t t = 0; t < T; ++t) {
        CompatRow<A> row = compat_row(t, T, S, ch, kk.data(), vv.data());
        z[size_t(t)] = gg[size_t(t)] / row.den;  // ∂L/∂y_t / Den_t, times e^{m_t}
        m[size_t(t)] = row.m;
        yy[size_t(t)] = row.y;
        A gw = 0, gu = 0;  // Σ_i ∂(ω_{t,i} e^{k_i})/∂(w, u) · (v_i − y_t)
        for (int64_t i = 0; i < T; ++i) {
          CompatTerms<A> tr = compat_terms(t, i, S, ch, kk[size_t(i)]);
          for (int r = 0; r < tr.count; ++r) {
            A e = std::exp(tr.x[r] - row.m) * (vv[size_t(i)] - row.y);
            gw += tr.dc[r] * e;
            gu += tr.du[r] * e;
          }
        }
        sw[size_t(c)] += double(z[size_t(t)] * gw);
        su[size_t(c)] += double(z[size_t(t)] * gu);
      }
      for (int64_t i = 0; i < T; ++i) {  // columns: Σ_t z_t ω_{t,i} e^{k_i} (·, v_i − y_t)
        A gv = 0, gk = 0;
        for (int64_t t = 0; t < T; ++t) {
          CompatTerms<A> tr = compat_terms(t, i, S, ch, kk[size_t(i)]);
          for (int r = 0; r < tr.count; ++r) {
            A e = z[size_t(t)] * tr.c[r] * std::exp(tr.x[r] - m[size_t(t)]);
            gv += e;
            gk += e * (vv[size_t(i)] - yy[size_t(t)]);
          }
        }
        if (dk) dk[o + i * C] = store_as<E>(gk);
        if (dv) dv[o + i * C] = store_as<E>(gv);
      }
    }
  for (int64_t c = 0; c < C; ++c) {
    if (ddecay) ddecay[c] += acc_t<E>(sw[size_t(c)] / double(T));
    if (dfirst) dfirst[c] += acc_t<E>(su[size_t(c)] / double(T));
  }
}

#define INSTANTIATE(E)                                                                                           \
  template void bi_wkv_detail::bi_wkv_forward_cpu_plan<E>(const bi_wkv_detail::Plan&, E*, const E*, const E*,     \
                                                          const acc_t<E>*, const acc_t<E>*, int64_t, int64_t,     \
                                                          int64_t);                                               \
  template void bi_wkv_detail::bi_wkv_backward_cpu_plan<E>(const bi_wkv_detail::Plan&, E*, E*, acc_t<E>*,        \
                                                           acc_t<E>*, const E*, const E*, const E*,               \
                                                           const acc_t<E>*, const acc_t<E>*, int64_t, int64_t,    \
                                                           int64_t);                                              \
  template void bi_wkv_forward_cpu<E>(E*, const E*, const E*, const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, \
                                      int64_t, void*);                                                           \
  template void bi_wkv_backward_cpu<E>(E*, E*, acc_t<E>*, acc_t<E>*, const E*, const E*, const E*,                \
                                       const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, int64_t, void*);      \
  template void bi_wkv_compat_forward_cpu<E>(E*, const E*, const E*, const acc_t<E>*, const acc_t<E>*, int64_t,   \
                                             int64_t, int64_t, void*);                                           \
  template void bi_wkv_compat_backward_cpu<E>(E*, E*, acc_t<E>*, acc_t<E>*, const E*, const E*, const E*,         \
                                              const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, int64_t, void*);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
