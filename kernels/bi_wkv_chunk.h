// Chunk-level arithmetic of the exact Bi-WKV and the per-segment passes built on it, shared by the CPU
// implementation (bi_wkv_cpu.cpp, the test oracle) and the CUDA kernel (bi_wkv_kernel.cuh): the same
// functions run in the same order on both, only the mapping onto threads differs.
//
// Structure. A sequence (one batch element, one channel) is cut into chunks of kChunk = 8 tokens. A
// thread owns one channel of a segment of consecutive chunks (bi_wkv_plan.h); between chunks, segments,
// blocks and the blocks of a cluster, the left- and right-going sums travel as log-space Sums
// (bi_wkv_scan.h). Per direction of MODEL.md §2 (forward sums over (k; v, 1), backward sums over
// (−m; ẑ, ẑ·y)) a segment makes one pass that summarises its chunks, the summaries are combined across
// segments (exchange), the right-going carry of every chunk is computed from the stored chunk summaries,
// and a second pass produces the outputs chunk by chunk with the left-going carry running along.
//
// Fast chunk arithmetic (channels with kChunk·|w2| + |u2| ≤ kFastRange, w2 = w·log2 e, u2 = u·log2 e:
// every DRWKV channel, whose |w| = |decay|/T ≪ 1). Inside a chunk all sums share one scale instead of a
// per-token running maximum, so one exponential per token, x_i = 2^{k2_i − mk} (mk = the chunk's largest
// key), replaces the 5 per token of the per-token form, and the in-chunk sums are plain recurrences
// s ← r·s + x·(v, 1) with r = e^{−w} (two FMAs per token and direction). The scale of a chunk is
//   ML = max(pL + 8·pw, mk + 7·pw)     left sweep (also bounds the left sum passed on),
//   M  = max(ML, pR + 7·pw, mk + 6·pw, u2 + mk)   outputs,        pw = max(−w2, 0),
// with pL, pR the exponents of the carries: every factor 2^{(·) − ML}, 2^{(·) − M} is ≤ 1 (up to the
// factor 2 of a normalised carry), nothing overflows. The denominator of every output is then
// ≥ 2^{−(8·|w2| + |u2|)} ≥ 2^{−kFastRange} in that scale (its largest term is within 7 decay steps of
// the chunk's largest key, of a carry, or is its own bonus), so terms that flush to zero are negligible;
// this bound depends on w and u only, never on k. The backward keys of a chunk are all −M, so its
// backward sums are again plain recurrences in the scale of the carry they extend. Carries passed on
// between chunks are either normalised by an exact power of two (forward) or given the exact maximum
// key (backward), so their exponents stay tight bounds along any sequence length.
// Other channels (extreme w or u) take the per-token path of bi_wkv_scan.h, decided per channel.
//
// ∂L/∂w is split as in bi_wkv_scan.h: term A (left sources of every output, through ∂/∂w of the forward
// left sums) in the first output pass, term B (right sources, through ∂/∂w of the backward left sums)
// in the second; right-going sums carry no derivatives.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/bi_wkv_scan.h"

namespace drwkv::kernels::bi_wkv_detail {

inline constexpr float kFastRange = 24.f;  // log2 units; see the file comment

// Per-channel constants.
template <typename A> struct Channel {
  A w2, u2;  // w·log2 e, u·log2 e
  A r;       // e^{−w}, one decay step (fast path)
  bool fast;
  DRWKV_HD A pw() const { return max_(-w2, A(0)); }  // growth per step of a sum's exponent bound
};

template <typename A> DRWKV_HD Channel<A> make_channel(A decay, A first, int64_t T) {
  Channel<A> ch;
  ch.w2 = decay / A(T) * A(kLog2e);
  ch.u2 = first / A(T) * A(kLog2e);
#if defined(__CUDA_ARCH__)
  ch.r = A(exp2f(-float(ch.w2)));  // accurate: raised to powers up to 8 inside a chunk
#else
  ch.r = std::exp2(-ch.w2);
#endif
  ch.fast = A(kChunk) * abs_(ch.w2) + abs_(ch.u2) <= A(kFastRange);  // false for NaN parameters
  return ch;
}

// One chunk of one channel: k2 = k·log2 e (kEmpty for absent tokens), v, dy (0 for absent tokens);
// tokens j ≥ valid are absent (beyond T).
template <typename A> struct Chunk {
  A k2[kChunk], v[kChunk], g[kChunk];
  int valid;
};

// Forward outputs of a chunk and what its backward needs.
template <typename A> struct Rows {
  A y[kChunk], z[kChunk];  // outputs; ẑ = dy/den (0 for absent tokens)
  A x[kChunk];             // fast path: 2^{k2 − mk}; per-token path: backward key −m_t
  A M, mk, fB;             // fast path: scale (backward key −M), largest key, 2^{u2 + mk − M}
};

template <typename A> DRWKV_HD A chunk_max(const A (&k2)[kChunk]) {
  A m = k2[0];
DRWKV_BIWKV_UNROLL
  for (int i = 1; i < kChunk; ++i) m = max_(m, k2[i]);
  return m;
}

// ---- fast path -------------------------------------------------------------------------------------------

// Summaries of a chunk (left measured at its last position, with derivatives when kDeriv; right at its
// first) in the scale P = mk + 7·pw that bounds every decayed term, then normalised.
template <typename A, bool kDeriv>
DRWKV_HD void fast_summaries(const Chunk<A>& d, const Channel<A>& ch, Sum<A>& left, Sum<A>& right) {
  const A r = ch.r, P = chunk_max(d.k2) + A(kChunk - 1) * ch.pw();
  A xs[kChunk];
  A la = 0, lb = 0, lda = 0, ldb = 0;
DRWKV_BIWKV_UNROLL
  for (int i = 0; i < kChunk; ++i) {
    xs[i] = exp2_(d.k2[i] - P);
    if (kDeriv) {
      lda = r * (lda - la);
      ldb = r * (ldb - lb);
    }
    la = r * la + xs[i] * d.v[i];
    lb = r * lb + xs[i];
  }
  A ra = 0, rb = 0;
DRWKV_BIWKV_UNROLL
  for (int i = kChunk - 1; i >= 0; --i) {
    ra = r * ra + xs[i] * d.v[i];
    rb = r * rb + xs[i];
  }
  left = normalized<A>({P, la, lb, lda, ldb});
  right = normalized<A>({P, ra, rb, A(0), A(0)});
}

// Outputs of a chunk from its carries (see bi_wkv_scan.h safe_rows for the meaning of kZ, kGrads and
// `left`, which advances to the chunk's last position, normalised).
template <typename A, bool kZ, bool kGrads>
DRWKV_HD void fast_rows(const Chunk<A>& d, const Channel<A>& ch, Sum<A>& left, const Sum<A>& right, Rows<A>& o, A& gw,
                        A& gu) {
  const A r = ch.r, pw = ch.pw();
  const A mk = chunk_max(d.k2);
  const A ML = max_(left.p + A(kChunk) * pw, mk + A(kChunk - 1) * pw);
  const A M = max_(max_(ML, right.p + A(kChunk - 1) * pw), max_(mk + A(kChunk - 2) * pw, ch.u2 + mk));
  const A cL = exp2_(left.p - ML), lam = exp2_(mk - ML), aL = exp2_(ML - M);
  const A cR = exp2_(right.p - M), rho = exp2_(mk - M), fB = exp2_(ch.u2 + mk - M);
DRWKV_BIWKV_UNROLL
  for (int i = 0; i < kChunk; ++i) o.x[i] = exp2_(d.k2[i] - mk);
  // right sums of every output (over i > t), in the output scale M; held in o.y / o.z until the outputs
  // replace them
  A Ra = cR * right.a, Rb = cR * right.b;
DRWKV_BIWKV_UNROLL
  for (int t = kChunk - 1; t >= 0; --t) {
    o.y[t] = Ra;
    o.z[t] = Rb;
    const A xr = rho * o.x[t];
    Ra = r * Ra + xr * d.v[t];
    Rb = r * Rb + xr;
  }
  // left sums (over i < t) in the scale ML, and the outputs
  A La = cL * left.a, Lb = cL * left.b, dLa = cL * left.da, dLb = cL * left.db;
  A gwA = 0;  // Σ_t ẑ_t·(dLa − y_t·dLb), times aL at the end
DRWKV_BIWKV_UNROLL
  for (int t = 0; t < kChunk; ++t) {
    // absent tokens (beyond T) have x = 0 and dy = 0; their den > 0 still (the chunk's present tokens
    // are before them), so their y is finite and their ẑ = 0
    const A xb = fB * o.x[t];
    const A num = aL * La + (xb * d.v[t] + o.y[t]);
    const A den = aL * Lb + (xb + o.z[t]);  // ≥ 2^{−kFastRange} for a present token
    const A rinv = rcp_(den);
    const A yt = num * rinv;
    o.y[t] = yt;
    if (kZ) {
      const A zt = d.g[t] * rinv;
      o.z[t] = zt;
      if (kGrads) {
        gu += zt * xb * (d.v[t] - yt);
        gwA += zt * (dLa - yt * dLb);
        dLa = r * (dLa - La);
        dLb = r * (dLb - Lb);
      }
    }
    const A xl = lam * o.x[t];
    La = r * La + xl * d.v[t];
    Lb = r * Lb + xl;
  }
  if (kGrads) gw += aL * gwA;
  left = normalized<A>({ML, La, Lb, dLa, dLb});
  o.M = M;
  o.mk = mk;
  o.fB = fB;
}

// Backward summaries of a chunk: keys −M, values (ẑ, ẑ·y); exponent −M + 7·pw is the exact largest
// decayed key (left measured at the last position with derivatives, right at the first). The sweeps run
// on the raw values; the scale 2^{−7·pw} (≥ 2^{−kFastRange}) is applied once.
template <typename A>
DRWKV_HD void fast_bwd_summaries(const Rows<A>& o, const Channel<A>& ch, Sum<A>& left, Sum<A>& right) {
  const A r = ch.r, P = -o.M + A(kChunk - 1) * ch.pw(), beta = exp2_(-A(kChunk - 1) * ch.pw());
  A zy[kChunk];
  A l1 = 0, l2 = 0, d1 = 0, d2 = 0;
DRWKV_BIWKV_UNROLL
  for (int t = 0; t < kChunk; ++t) {
    zy[t] = o.z[t] * o.y[t];
    d1 = r * (d1 - l1);
    d2 = r * (d2 - l2);
    l1 = r * l1 + o.z[t];
    l2 = r * l2 + zy[t];
  }
  A r1 = 0, r2 = 0;
DRWKV_BIWKV_UNROLL
  for (int t = kChunk - 1; t >= 0; --t) {
    r1 = r * r1 + o.z[t];
    r2 = r * r2 + zy[t];
  }
  left = {P, beta * l1, beta * l2, beta * d1, beta * d2};
  right = {P, beta * r1, beta * r2, A(0), A(0)};
}

// dk, dv of a chunk and term B of ∂L/∂w from the backward carries (`left` measured at the chunk's first
// position − 1 with derivatives, advanced to its last position with the exact largest key; `right`
// measured at its last position + 1). Columns: e^{k_i}·P_i = x_i·2^{mk + Q}·(sum in the scale 2^Q),
// where mk + Q ≤ 2·kFastRange because every row scale bounds every source's term. The right sums are
// kept already multiplied by 2^{mk + QR} (they are not passed on, so their underflow would only drop
// negligible terms); the left ones are passed on and stay in their own scale.
template <typename A>
DRWKV_HD void fast_backward(const Chunk<A>& d, const Rows<A>& o, const Channel<A>& ch, Sum<A>& left,
                            const Sum<A>& right, A (&dk)[kChunk], A (&dv)[kChunk], A& gw) {
  const A r = ch.r, pw = ch.pw(), M = o.M;
  const A QL = max_(left.p + A(kChunk) * pw, -M + A(kChunk - 1) * pw);
  const A QR = max_(right.p + A(kChunk - 1) * pw, -M + A(kChunk - 2) * pw);
  const A cL = exp2_(left.p - QL), bL = exp2_(-M - QL), gL = exp2_(o.mk + QL);
  const A gR = exp2_(o.mk + QR), cR = gR * exp2_(right.p - QR), bR = gR * exp2_(-M - QR);
  A zy[kChunk];
DRWKV_BIWKV_UNROLL
  for (int i = 0; i < kChunk; ++i) zy[i] = o.z[i] * o.y[i];
  // right sums of every column (over t > i), times 2^{mk + QR}, held in dv / dk until the outputs
  // replace them
  A R1 = cR * right.a, R2 = cR * right.b;
DRWKV_BIWKV_UNROLL
  for (int i = kChunk - 1; i >= 0; --i) {
    dv[i] = R1;
    dk[i] = R2;
    R1 = r * R1 + bR * o.z[i];
    R2 = r * R2 + bR * zy[i];
  }
  A L1 = cL * left.a, L2 = cL * left.b, D1 = cL * left.da, D2 = cL * left.db;
  A gwB = 0;  // Σ_i x_i·(v_i·D1 − D2), times 2^{mk + QL} at the end
DRWKV_BIWKV_UNROLL
  for (int i = 0; i < kChunk; ++i) {
    const A bz = o.fB * o.z[i];  // bonus: z_i·e^{u + k_i} = x_i·fB·ẑ_i
    const A Pb = gL * L1 + dv[i] + bz, Qb = gL * L2 + dk[i] + bz * o.y[i];
    dv[i] = o.x[i] * Pb;
    dk[i] = o.x[i] * (d.v[i] * Pb - Qb);
    gwB += o.x[i] * (d.v[i] * D1 - D2);
    D1 = r * (D1 - L1);
    D2 = r * (D2 - L2);
    L1 = r * L1 + bL * o.z[i];
    L2 = r * L2 + bL * zy[i];
  }
  gw += gL * gwB;
  const A q = max_(left.p - A(kChunk) * ch.w2, -M + A(kChunk - 1) * pw), f = exp2_(QL - q);
  left = {q, L1 * f, L2 * f, D1 * f, D2 * f};
}

// ---- either path, per channel ------------------------------------------------------------------------------

template <typename A, bool kDeriv>
DRWKV_HD void chunk_summaries(const Chunk<A>& d, const Channel<A>& ch, Sum<A>& left, Sum<A>& right) {
  if (ch.fast)
    fast_summaries<A, kDeriv>(d, ch, left, right);
  else
    safe_summaries<A, kChunk, kDeriv, false>(d.k2, d.v, d.v, ch.w2, left, right);
}

template <typename A, bool kZ, bool kGrads>
DRWKV_HD void chunk_rows(const Chunk<A>& d, const Channel<A>& ch, Sum<A>& left, const Sum<A>& right, Rows<A>& o,
                         A& gw, A& gu) {
  if (ch.fast)
    fast_rows<A, kZ, kGrads>(d, ch, left, right, o, gw, gu);
  else
    safe_rows<A, kChunk, kZ, kGrads>(d.k2, d.v, d.g, d.valid, ch.w2, ch.u2, left, right, o.y, o.z, o.x, gw, gu);
}

template <typename A>
DRWKV_HD void chunk_bwd_summaries(const Rows<A>& o, const Channel<A>& ch, Sum<A>& left, Sum<A>& right) {
  if (ch.fast)
    fast_bwd_summaries<A>(o, ch, left, right);
  else
    safe_summaries<A, kChunk, true, true>(o.x, o.z, o.y, ch.w2, left, right);
}

template <typename A>
DRWKV_HD void chunk_backward(const Chunk<A>& d, const Rows<A>& o, const Channel<A>& ch, Sum<A>& left,
                             const Sum<A>& right, A (&dk)[kChunk], A (&dv)[kChunk], A& gw) {
  if (ch.fast)
    fast_backward<A>(d, o, ch, left, right, dk, dv, gw);
  else
    safe_backward<A, kChunk>(d.k2, d.v, o.y, o.z, o.x, ch.w2, ch.u2, left, right, dk, dv, gw);
}

// ---- per-segment passes ------------------------------------------------------------------------------------
// A segment spans S chunks from chunk j0; those below the sequence's chunk count, j0 ≤ j < j1, exist
// (j1 ≤ j0: none). Segment summaries are measured at the segment's ends (first position for right
// sums, last for left ones) whether or not its trailing chunks exist, so that the exchange sees
// segments of equal length. The callables: load(j) → Chunk<A>; put(s, Sum) / get(s) → Sum store and
// fetch chunk s = j − j0's right-going sum; store(j, valid, values...) writes outputs.

struct SegmentRange {
  int j0, j1, S;  // chunk indices (a sequence has fewer than 2^31 chunks)
};
DRWKV_HD SegmentRange segment_range(int segment, int S, int64_t chunks) {
  const int64_t j0 = int64_t(segment) * S, end = j0 + S;
  return {int(j0), int(end < chunks ? end : chunks), S};
}
// Positions from the last existing chunk's end to the segment's end.
DRWKV_HD int trailing_positions(const SegmentRange& sg) {
  return (sg.j0 + sg.S - (sg.j1 > sg.j0 ? sg.j1 : sg.j0)) * kChunk;
}

// The right summary of a segment (measured at its first position) from its chunks' right summaries.
template <typename A, typename Get> DRWKV_HD Sum<A> fold_right(const Channel<A>& ch, const SegmentRange& sg, Get get) {
  Sum<A> right = empty_sum<A>();
  for (int j = sg.j0; j < sg.j1; ++j)
    right = plus<A, false>(right, decayed<A, false>(get(j - sg.j0), A((j - sg.j0) * kChunk), ch.w2));
  return right;
}

// Pass 1 of either direction over (k; v, 1): segment summaries; each chunk's right summary goes to
// put(s, ·) and is read back through get(s) for the segment's right summary (fewer values live across the
// loop). The next chunk is loaded before the current one is processed (the device overlaps the loads with
// the arithmetic).
template <typename A, bool kDeriv, typename Load, typename Put, typename Get>
DRWKV_HD void summarize_segment(const Channel<A>& ch, const SegmentRange& sg, Load load, Put put, Get get,
                                Sum<A>& left, Sum<A>& right) {
  left = empty_sum<A>();
  Chunk<A> cur{}, nxt{};
  if (sg.j0 < sg.j1) cur = load(sg.j0);
  for (int j = sg.j0; j < sg.j1; ++j) {
    if (j + 1 < sg.j1) nxt = load(j + 1);
    Sum<A> cl, cr;
    chunk_summaries<A, kDeriv>(cur, ch, cl, cr);
    left = plus<A, kDeriv>(decayed<A, kDeriv>(left, A(kChunk), ch.w2), cl);
    put(j - sg.j0, cr);
    cur = nxt;
  }
  left = decayed<A, kDeriv>(left, A(trailing_positions(sg)), ch.w2);
  right = fold_right<A>(ch, sg, get);
}

// The right-going carry of every chunk (measured at its last position + 1), in place of its right
// summary, from the segment's right carry (measured at the segment's end + 1).
template <typename A, typename Get, typename Put>
DRWKV_HD void right_carries(const Channel<A>& ch, const SegmentRange& sg, const Sum<A>& carry, Get get, Put put) {
  Sum<A> run = decayed<A, false>(carry, A(trailing_positions(sg)), ch.w2);
  for (int j = sg.j1 - 1; j >= sg.j0; --j) {
    const int s = j - sg.j0;
    const Sum<A> summary = get(s);
    put(s, run);
    run = plus<A, false>(summary, decayed<A, false>(run, A(kChunk), ch.w2));
  }
}

// Forward outputs of a segment from its left carry and the chunks' right carries: store(j, valid, y).
template <typename A, typename Load, typename Get, typename Store>
DRWKV_HD void forward_segment(const Channel<A>& ch, const SegmentRange& sg, Sum<A> left, Load load, Get right,
                              Store store) {
  for (int j = sg.j0; j < sg.j1; ++j) {
    const Chunk<A> d = load(j);
    Rows<A> o;
    A gw = 0, gu = 0;
    chunk_rows<A, false, false>(d, ch, left, right(j - sg.j0), o, gw, gu);
    store(j, d.valid, o.y);
  }
}

// Backward pass 2: the forward outputs again (with ẑ), terms A of ∂L/∂w and ∂L/∂u, and the summaries
// of the backward sums (per chunk: right ones to put(s, ·), read back through get(s); per segment: left
// with derivatives, right).
template <typename A, typename Load, typename Get, typename Put, typename GetB>
DRWKV_HD void backward_segment_rows(const Channel<A>& ch, const SegmentRange& sg, Sum<A> left, Load load, Get right,
                                    Put put, GetB get, Sum<A>& bleft, Sum<A>& bright, A& gw, A& gu) {
  bleft = empty_sum<A>();
  for (int j = sg.j0; j < sg.j1; ++j) {
    const Chunk<A> d = load(j);
    Rows<A> o;
    chunk_rows<A, true, true>(d, ch, left, right(j - sg.j0), o, gw, gu);
    Sum<A> cl, cr;
    chunk_bwd_summaries<A>(o, ch, cl, cr);
    bleft = plus<A, true>(decayed<A, true>(bleft, A(kChunk), ch.w2), cl);
    put(j - sg.j0, cr);
  }
  bleft = decayed<A, true>(bleft, A(trailing_positions(sg)), ch.w2);
  bright = fold_right<A>(ch, sg, get);
}

// Backward pass 3: dk, dv (store(j, valid, dk, dv)) and term B of ∂L/∂w, from the forward and backward
// left carries of the segment and the chunks' forward (right(s)) and backward (bright(s)) right carries.
template <typename A, typename Load, typename Get, typename GetB, typename Store>
DRWKV_HD void backward_segment_outputs(const Channel<A>& ch, const SegmentRange& sg, Sum<A> left, Sum<A> bleft,
                                       Load load, Get right, GetB bright, Store store, A& gw) {
  for (int j = sg.j0; j < sg.j1; ++j) {
    const Chunk<A> d = load(j);
    const int s = j - sg.j0;
    Rows<A> o;
    A unused_w = 0, unused_u = 0;
    chunk_rows<A, true, false>(d, ch, left, right(s), o, unused_w, unused_u);
    A dk[kChunk], dv[kChunk];
    chunk_backward<A>(d, o, ch, bleft, bright(s), dk, dv, gw);
    store(j, d.valid, dk, dv);
  }
}

// ---- exchange between segments ------------------------------------------------------------------------------
// Segment g of a sequence spans Ls positions from g·Ls; blocks are W consecutive segments (Lb = W·Ls).
// Left carries are measured at a segment's first position − 1, right carries at its last position + 1.
// The combination order is fixed (so is the result): in-block exclusive scans over the segments, then
// over the blocks before / after, then segment carry = block carry decayed to the segment ⊕ in-block prefix.

// One step of the in-block scans: returns the exclusive prefix, then extends it by the segment's summary.
template <typename A, bool kDeriv> DRWKV_HD Sum<A> scan_left(Sum<A>& run, const Sum<A>& segment, A Ls, A w2) {
  const Sum<A> prefix = run;
  run = plus<A, kDeriv>(decayed<A, kDeriv>(run, Ls, w2), segment);
  return prefix;
}
template <typename A> DRWKV_HD Sum<A> scan_right(Sum<A>& run, const Sum<A>& segment, A Ls, A w2) {
  const Sum<A> prefix = run;
  run = plus<A, false>(segment, decayed<A, false>(run, Ls, w2));
  return prefix;
}
template <typename A, bool kDeriv>
DRWKV_HD Sum<A> segment_carry_left(const Sum<A>& block_left, const Sum<A>& prefix, int warp, A Ls, A w2) {
  return plus<A, kDeriv>(decayed<A, kDeriv>(block_left, A(warp) * Ls, w2), prefix);
}
template <typename A>
DRWKV_HD Sum<A> segment_carry_right(const Sum<A>& block_right, const Sum<A>& prefix, int warp, int warps, A Ls, A w2) {
  return plus<A, false>(prefix, decayed<A, false>(block_right, A(warps - 1 - warp) * Ls, w2));
}

}  // namespace drwkv::kernels::bi_wkv_detail
