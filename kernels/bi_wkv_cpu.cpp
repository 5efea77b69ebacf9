// Host Bi-WKV (kernels/bi_wkv.h): the CPU backend and the test oracle of the CUDA kernels.
//
// The exact variant runs the CUDA algorithm sequence by sequence: the same segments of kSeg tokens,
// tiles of warps_for(T) segments, intra-tile scans, cross-tile carries and per-segment rescans
// (bi_wkv_scan.h), only without the threads. The parameter gradients are summed per tile over its
// segments, then over (batch, tile) in double, in a fixed order.
// The compat variant evaluates the official kernel's closed-form weights (bi_wkv_compat_terms.h) in
// O(T²) per sequence, with the maximum exponent of each row subtracted.
#include <algorithm>
#include <vector>

#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_compat_terms.h"
#include "kernels/bi_wkv_scan.h"

namespace drwkv::kernels {
using namespace bi_wkv_detail;

size_t bi_wkv_workspace_bytes(int64_t B, int64_t T, int64_t C) { return layout(B, T, C).bytes; }

size_t bi_wkv_compat_workspace_bytes(int64_t B, int64_t T, int64_t C) {
  return size_t(5 * B * T * C) * sizeof(float);  // ẑ, m, y, then ∂L/∂w and ∂L/∂u per (b, t, c)
}

namespace {

template <typename A> struct Seg {
  A x[kSeg];
};

// Turns per-segment summaries into per-segment carries, exactly as the CUDA block exchange does:
// exclusive scans over the segments of each tile (the tile summaries fall out), carries across tiles,
// then each segment's carry from its tile's carry and its in-tile prefix.
template <typename A, bool kDeriv>
void segment_carries(std::vector<Sum<A>>& left, std::vector<Sum<A>>& right, int warps, int64_t tiles, A w2) {
  const A L = A(warps * kSeg);
  const size_t nt = static_cast<size_t>(tiles);
  std::vector<Sum<A>> tile_left(nt), tile_right(nt);
  for (int64_t tile = 0; tile < tiles; ++tile) {
    Sum<A>* l = left.data() + tile * warps;
    Sum<A>* r = right.data() + tile * warps;
    Sum<A> run = empty_sum<A>();
    for (int w = 0; w < warps; ++w) {
      Sum<A> agg = l[w];
      l[w] = run;
      run = plus<A, kDeriv>(decayed<A, kDeriv>(run, A(kSeg), w2), agg);
    }
    tile_left[size_t(tile)] = run;
    run = empty_sum<A>();
    for (int w = warps - 1; w >= 0; --w) {
      Sum<A> agg = r[w];
      r[w] = run;
      run = plus<A, false>(agg, decayed<A, false>(run, A(kSeg), w2));
    }
    tile_right[size_t(tile)] = run;
  }
  std::vector<Sum<A>> carry_left(nt), carry_right(nt);
  tile_carries_left<A, kDeriv, 1>(
      tiles, L, w2, [&](int64_t j) { return tile_left[size_t(j)]; },
      [&](int64_t j, const Sum<A>& s) { carry_left[size_t(j)] = s; });
  tile_carries_right<A, 1>(
      tiles, L, w2, [&](int64_t j) { return tile_right[size_t(j)]; },
      [&](int64_t j, const Sum<A>& s) { carry_right[size_t(j)] = s; });
  for (int64_t tile = 0; tile < tiles; ++tile)
    for (int w = 0; w < warps; ++w) {
      size_t s = size_t(tile * warps + w);
      left[s] = segment_carry_left<A, kDeriv>(carry_left[size_t(tile)], left[s], w, w2);
      right[s] = segment_carry_right<A>(carry_right[size_t(tile)], right[s], w, warps, w2);
    }
}

// One (b, c) sequence. Forward: writes y. Backward: writes dk, dv (when non-null) and the per-tile
// partial gradients part_w/part_u[b·tiles + tile].
template <typename E, bool kBackward>
void exact_sequence(const E* k, const E* v, const E* dy, E* y, E* dk, E* dv, acc_t<E> decay, acc_t<E> first,
                    int64_t T, int64_t C, double* part_w, double* part_u) {
  using A = acc_t<E>;
  const A w2 = decay / A(T) * A(kLog2e), u2 = first / A(T) * A(kLog2e);
  const int warps = warps_for(T);
  const int64_t tiles = (T + warps * kSeg - 1) / (warps * kSeg), segs = tiles * warps;
  const size_t ns = static_cast<size_t>(segs);
  std::vector<Seg<A>> k2(ns), vv(ns), g(ns), yy(ns), z(ns), key(ns);
  std::vector<int> valid(ns);
  for (int64_t s = 0; s < segs; ++s) {
    valid[size_t(s)] = int(std::clamp<int64_t>(T - s * kSeg, 0, kSeg));
    for (int j = 0; j < kSeg; ++j) {
      int64_t t = s * kSeg + j;
      bool in = j < valid[size_t(s)];
      k2[size_t(s)].x[j] = in ? load_as<A>(k[t * C]) * A(kLog2e) : A(kEmpty);
      vv[size_t(s)].x[j] = in ? load_as<A>(v[t * C]) : A(0);
      g[size_t(s)].x[j] = in && kBackward ? load_as<A>(dy[t * C]) : A(0);
    }
  }
  // stage 1: the forward sums over (k, v)
  std::vector<Sum<A>> left(ns), right(ns);
  for (size_t s = 0; s < ns; ++s)
    segment_summaries<A, kBackward, false>(k2[s].x, vv[s].x, vv[s].x, w2, left[s], right[s]);
  segment_carries<A, kBackward>(left, right, warps, tiles, w2);
  std::vector<A> gw(ns, A(0)), gu(ns, A(0));
  for (size_t s = 0; s < ns; ++s)
    segment_forward<A, kBackward>(k2[s].x, vv[s].x, g[s].x, valid[s], w2, u2, left[s], right[s], yy[s].x, z[s].x,
                                  key[s].x, gw[s], gu[s]);
  if (!kBackward) {
    for (size_t s = 0; s < ns; ++s)
      for (int j = 0; j < valid[s]; ++j) y[(int64_t(s) * kSeg + j) * C] = store_as<E>(yy[s].x[j]);
    return;
  }
  // stage 2: the backward sums over (−m, ẑ, ẑ·y)
  for (size_t s = 0; s < ns; ++s)
    segment_summaries<A, true, true>(key[s].x, z[s].x, yy[s].x, w2, left[s], right[s]);
  segment_carries<A, true>(left, right, warps, tiles, w2);
  for (size_t s = 0; s < ns; ++s) {
    A gk[kSeg], gv[kSeg];
    segment_backward<A>(k2[s].x, vv[s].x, yy[s].x, z[s].x, key[s].x, w2, u2, left[s], right[s], gk, gv, gw[s]);
    for (int j = 0; j < valid[s]; ++j) {
      int64_t t = int64_t(s) * kSeg + j;
      if (dk) dk[t * C] = store_as<E>(gk[j]);
      if (dv) dv[t * C] = store_as<E>(gv[j]);
    }
  }
  for (int64_t tile = 0; tile < tiles; ++tile) {  // per tile over its segments, as the CUDA block does
    A sw = 0, su = 0;
    for (int w = 0; w < warps; ++w) {
      sw += gw[size_t(tile * warps + w)];
      su += gu[size_t(tile * warps + w)];
    }
    part_w[tile] = double(sw);
    part_u[tile] = double(su);
  }
}

}  // namespace

template <typename E>
void bi_wkv_forward_cpu(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                        int64_t T, int64_t C, void* /*workspace*/) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      int64_t o = b * T * C + c;
      exact_sequence<E, false>(k + o, v + o, nullptr, y + o, nullptr, nullptr, decay[c], first[c], T, C, nullptr,
                               nullptr);
    }
}

template <typename E>
void bi_wkv_backward_cpu(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k, const E* v,
                         const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T, int64_t C,
                         void* /*workspace*/) {
  if (B * T * C == 0) return;
  const Layout lay = layout(B, T, C);
  // partials[c][b·tiles + tile], reduced per channel in (b, tile) order
  std::vector<double> part_w(static_cast<size_t>(C * B * lay.tiles)), part_u(part_w.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      int64_t o = b * T * C + c;
      size_t p = size_t((c * B + b) * lay.tiles);
      exact_sequence<E, true>(k + o, v + o, dy + o, nullptr, dk ? dk + o : nullptr, dv ? dv + o : nullptr, decay[c],
                              first[c], T, C, &part_w[p], &part_u[p]);
    }
  for (int64_t c = 0; c < C; ++c) {
    double sw = 0, su = 0;
    for (int64_t r = 0; r < B * lay.tiles; ++r) {
      sw += part_w[size_t(c * B * lay.tiles + r)];
      su += part_u[size_t(c * B * lay.tiles + r)];
    }
    if (ddecay) ddecay[c] += acc_t<E>(sw / double(T));
    if (dfirst) dfirst[c] += acc_t<E>(su / double(T));
  }
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
