// Quad-directional q-shift fused with token-shift interpolation (MODEL.md §1.8 table, used by the
// spatial mix §1.8 with M = 3 and the channel mix §1.9 with M = 2).
//
// x: [B, T, C] row-major, T = grid_h · grid_w tokens in raster order (token n = y · grid_w + x).
// Q = qshift(x): channel quarter k = [b_k, b_{k+1}), b_k = floor(k · C / 4), receives the left (k = 0),
// right (1), upper (2), lower (3) neighbour within the same sample; zero where that neighbour is off the
// grid. Forward, one pass over x for all M ≤ kQShiftMaxMix mixes:
//   out_m = x ⊙ μ_m + Q ⊙ (1 − μ_m)          (μ weights the current token; μ = 1 means "no shift")
// Backward, one pass over the M output gradients g_m:
//   dx   = Σ_m g_m ⊙ μ_m + Qᵀ(Σ_m g_m ⊙ (1 − μ_m))     Qᵀ: each token gathers from the neighbours that read it
//   dμ_m += Σ_{b,t} g_m ⊙ (x − Q)                      (+= into acc_t parameter gradients)
//
// Contract: outputs overwrite; dx overwrites, or adds when `accumulate` (dx may be null: not wanted);
// dμ_m accumulate, and entries dmus[m] may be null (no gradient wanted). Outputs must not alias inputs. μ and dμ are acc_t<T>
// (f32 master values read directly). `workspace` (device memory for _cuda, qshift_mix_workspace(...)
// elements of acc_t<T>) holds the per-block partial sums of dμ so that the CUDA reduction runs in a
// fixed order (deterministic, no atomics); _cpu ignores it (it may be null).
// Types: T = float, double, bf16 on the CPU; float, bf16 on CUDA. Arithmetic in acc_t<T>.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

inline constexpr int kQShiftMaxMix = 4;

// M pointers passed by value (entries at and beyond M are ignored).
template <typename P>
struct MixPtrs {
  P p[kQShiftMaxMix] = {};
};

// Rows (tokens over the whole batch) handled by one CUDA block of the forward.
inline constexpr int64_t kQShiftRowsPerBlock = 64;
// The backward walks grid lines (rows for quarters 0 and 1, columns for 2 and 3) in segments of at most
// kQShiftSegment tokens, kQShiftLinesPerBlock segments of one sample per CUDA block; the segment groups
// per sample fix the reduction order of dμ (kernels/shift.cu). 4 segments per block ran 2–3.5 points of
// copy bandwidth faster than 8; 8-token segments were slower than 16 (H100).
inline constexpr int kQShiftSegment = 16;
inline constexpr int kQShiftLinesPerBlock = 4;
inline int qshift_walk_groups(int grid_h, int grid_w) {
  auto segments = [](int lines, int length) { return int64_t(lines) * ((length + kQShiftSegment - 1) / kQShiftSegment); };
  const int64_t a = segments(grid_h, grid_w), b = segments(grid_w, grid_h), n = a > b ? a : b;
  return int((n + kQShiftLinesPerBlock - 1) / kQShiftLinesPerBlock);
}

// Elements of acc_t<T> the backward needs as workspace.
int64_t qshift_mix_workspace(int mixes, int64_t batch, int grid_h, int grid_w, int64_t C);

template <typename T>
void qshift_mix_forward_cpu(const MixPtrs<T*>& outs, const T* x, const MixPtrs<const acc_t<T>*>& mus, int mixes,
                            int64_t batch, int grid_h, int grid_w, int64_t C);
template <typename T>
void qshift_mix_forward_cuda(const MixPtrs<T*>& outs, const T* x, const MixPtrs<const acc_t<T>*>& mus, int mixes,
                             int64_t batch, int grid_h, int grid_w, int64_t C, StreamHandle s);

template <typename T>
void qshift_mix_backward_cpu(T* dx, const MixPtrs<acc_t<T>*>& dmus, const MixPtrs<const T*>& douts, const T* x,
                             const MixPtrs<const acc_t<T>*>& mus, int mixes, int64_t batch, int grid_h, int grid_w,
                             int64_t C, bool accumulate, acc_t<T>* workspace);
template <typename T>
void qshift_mix_backward_cuda(T* dx, const MixPtrs<acc_t<T>*>& dmus, const MixPtrs<const T*>& douts, const T* x,
                              const MixPtrs<const acc_t<T>*>& mus, int mixes, int64_t batch, int grid_h, int grid_w,
                              int64_t C, bool accumulate, acc_t<T>* workspace, StreamHandle s);

// The channel quarter of channel c, and the neighbour token read through a quarter by `token`, or −1 at
// the border (the §1.8 table); shared by both backends so that they cannot disagree on it.
DRWKV_HD int qshift_quarter(int64_t c, int64_t C) {
  int k = 3;  // the largest k with b_k = floor(k·C/4) <= c (empty quarters of C < 4 are skipped)
  while (k > 0 && (int64_t(k) * C) / 4 > c) --k;
  return k;
}
DRWKV_HD int64_t qshift_source(int quarter, int64_t token, int grid_h, int grid_w) {
  const int64_t y = token / grid_w, x = token - y * grid_w;
  switch (quarter) {
    case 0: return x > 0 ? token - 1 : -1;                  // left neighbour
    case 1: return x + 1 < grid_w ? token + 1 : -1;         // right neighbour
    case 2: return y > 0 ? token - grid_w : -1;             // neighbour above
    default: return y + 1 < grid_h ? token + grid_w : -1;   // neighbour below
  }
}
// The token that reads `token` through quarter `quarter` (the transpose of qshift_source), or −1.
// The CUDA backward walks grid lines in the direction that puts each source one step behind its reader
// (kernels/shift.cu walk_of); the GPU test checks it against these.
DRWKV_HD int64_t qshift_reader(int quarter, int64_t token, int grid_h, int grid_w) {
  const int64_t y = token / grid_w, x = token - y * grid_w;
  switch (quarter) {
    case 0: return x + 1 < grid_w ? token + 1 : -1;  // my right neighbour reads me as its left one
    case 1: return x > 0 ? token - 1 : -1;
    case 2: return y + 1 < grid_h ? token + grid_w : -1;
    default: return y > 0 ? token - grid_w : -1;
  }
}

}  // namespace drwkv::kernels
