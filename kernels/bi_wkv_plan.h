// Decomposition of a Bi-WKV sequence into clusters, blocks, segments and chunks (bi_wkv_chunk.h), and the
// memory layouts of the CUDA kernel. The decomposition is a pure function of T (and of an optional
// override), shared by the CPU implementation, so both evaluate the same sums in the same order.
//
// One sequence group = one batch element × 32 consecutive channels (lane = channel). It is handled by a
// cluster of `cluster` thread blocks (Hopper thread block clusters: co-scheduled, with a cluster-wide
// barrier), each of `warps` warps; warp w of block r owns segment g = r·warps + w, the chunks
// [g·S, g·S + S) (S = seg_chunks) of kChunk tokens. Nothing crosses clusters: no atomics, no inter-kernel
// passes. Automatic choice: 8 warps per block; segments of 4 chunks (32 tokens per thread) up to
// T = 2048 (clusters of ≤ 8 blocks of 256 tokens; bf16 from T = 257 on: 8 chunks, blocks of 512
// tokens), beyond that 8-block clusters with longer segments (T = 4096: 8 chunks). Longer sequences
// (f32 beyond T = 4096, bf16 beyond 6144) take 8-block clusters of 16-warp blocks, one per SM: their
// segments are half as long, so the same shared memory per SM stages twice the share of every segment.
// H100 (docs/PERF.md, forward + backward): at T = 4096 16-warp blocks are 3–6% slower in f32 and 25–29%
// in bf16 (the 8-warp forward runs three blocks per SM there); at T = 6144 4–11% faster in f32 and 1–6%
// slower in bf16; at T = 8192 3–8% faster in f32, in bf16 from 0.3% slower to 5% faster; at T = 12288
// to 32768 6–23% faster in both.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/bi_wkv_scan.h"

namespace drwkv::kernels::bi_wkv_detail {

inline constexpr int kMaxCluster = 8;  // portable cluster size
inline constexpr int kMaxWarps = 16;
inline constexpr int kSegChunks = 4;   // automatic segment length, in chunks
// Automatic plans of more chunks than this take 16-warp blocks (file comment): f32, bf16.
inline constexpr int64_t kWideBlockChunksF32 = 512, kWideBlockChunksBf16 = 768;
inline constexpr int kSumFloats = 8 * 32;  // a block total / summary row block: [field][lane]
inline constexpr int kRcFloats = 3 * 32;   // one chunk's right carry: [p, a, b][lane]
inline constexpr int kLcarFloats = 4 * 32;  // a segment's forward left carry and ∂L/∂u: [p, a, b, gu][lane]
inline constexpr size_t kRcSmemMax = 100 * 1024;  // chunk carries beyond this go to the workspace

struct Plan {
  int cluster = 1;     // blocks per sequence group
  int warps = 1;       // segments per block
  int seg_chunks = 1;  // chunks per segment
  int64_t chunks = 1;  // ceil(T / kChunk)
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Registers per thread of the kernel variants (bi_wkv_kernel.cuh), and the variant for `blocks_per_sm`
// blocks of `warps` warps on one SM: the largest whose registers fit its 64 Ki (0: none does, more than
// 25 warps per SM). A 104-register variant (19 warps, the fewest registers without spills in the
// backward) was tried: the plans that need it, three 6-warp blocks per SM, ran slower than the
// automatic ones (H100, docs/PERF.md).
inline constexpr int kRegVariants[] = {128, 80};
inline int regs_for(int warps, int blocks_per_sm) {
  const int per_thread = 65536 / (warps * blocks_per_sm * 32);
  for (int r : kRegVariants)
    if (r <= per_thread) return r;
  return 0;
}

// The automatic plan for elements of `elem_bytes` bytes (2: bf16; anything else: the f32 choice), or the
// given counts where they are positive (S = 0: as many as needed).
inline Plan make_plan(int64_t T, int cluster = 0, int warps = 0, int seg_chunks = 0, size_t elem_bytes = 4) {
  Plan p;
  p.chunks = T < 1 ? 1 : ceil_div(T, kChunk);
  if (cluster <= 0 && warps <= 0) {
    // bf16 stages twice the chunks per byte of shared memory: 8-chunk segments (half the blocks per
    // sequence) then win, 0.213 against 0.230 ms forward + backward at B32 T1024 C384 (H100)
    const int seg = elem_bytes == 2 ? 2 * kSegChunks : kSegChunks;
    if (p.chunks <= 8 * kSegChunks) {
      p.cluster = 1;
      p.warps = int(ceil_div(p.chunks, kSegChunks));
    } else if (p.chunks <= int64_t(kMaxCluster) * 8 * kSegChunks) {
      p.warps = 8;
      p.cluster = int(ceil_div(p.chunks, 8 * seg));
    } else {  // longer segments, then larger blocks (file comment)
      p.warps = p.chunks <= (elem_bytes == 2 ? kWideBlockChunksBf16 : kWideBlockChunksF32) ? 8 : kMaxWarps;
      p.cluster = kMaxCluster;
    }
  } else {
    p.cluster = cluster > 0 ? cluster : 1;
    p.warps = warps > 0 ? warps : 8;
  }
  p.seg_chunks = seg_chunks > 0 ? seg_chunks : int(ceil_div(p.chunks, int64_t(p.cluster) * p.warps));
  return p;
}

inline bool plan_valid(const Plan& p) {
  return p.cluster >= 1 && p.cluster <= kMaxCluster && p.warps >= 1 && p.warps <= kMaxWarps && p.seg_chunks >= 1 &&
         int64_t(p.cluster) * p.warps * p.seg_chunks >= p.chunks;
}

// Chunk right carries (forward, and backward for the backward kernel) live in shared memory unless they
// would take more than kRcSmemMax bytes per block; then in the workspace.
inline bool rc_in_smem(const Plan& p) {
  return size_t(p.warps) * size_t(p.seg_chunks) * 2 * kRcFloats * sizeof(float) <= kRcSmemMax;
}

// Workspace of the CUDA launchers (byte offsets): block totals exchanged within a cluster
// [seqs][stage 2][cluster][8][32], per-block partial parameter gradients [B·cluster][2][C], and when not
// in shared memory the chunk right carries [seqs][cluster][warps][seg_chunks][stage 2][3][32].
struct Workspace {
  size_t xchg = 0, part = 0, rc = 0, bytes = 0;
  bool rc_global = false;
};
inline Workspace workspace_layout(const Plan& p, int64_t B, int64_t C) {
  auto up = [](size_t x) { return (x + 255) & ~size_t(255); };
  const size_t seqs = size_t(B) * size_t(ceil_div(C, 32));
  Workspace w;
  w.xchg = 0;
  w.part = up(seqs * 2 * size_t(p.cluster) * kSumFloats * sizeof(float));
  w.rc = w.part + up(size_t(B) * size_t(p.cluster) * 2 * size_t(C) * sizeof(float));
  w.rc_global = !rc_in_smem(p);
  w.bytes = w.rc + (w.rc_global ? up(seqs * size_t(p.cluster) * size_t(p.warps) * size_t(p.seg_chunks) * 2 *
                                     kRcFloats * sizeof(float))
                                : 0);
  return w;
}

// Dynamic shared memory of one block (byte offsets): the staged inputs (k, v, and dy for the backward,
// element type, [warp][staged chunk][token][lane]), the chunk right carries when in shared memory
// ([warp][seg chunk][stage][3][32], one stage forward, two backward), segment summaries [warp][8][32],
// the block carries [8][32], and (backward) the segments' forward left carries and ∂L/∂u partials
// [warp][4][32], parked there between the passes that use them, and the lanes' offsets [32] (int64) in
// the parameter-gradient partials.
struct SmemLayout {
  uint32_t k = 0, v = 0, g = 0, rc = 0, seg = 0, carry = 0, lcar = 0, part = 0, bytes = 0;
  int staged = 0;  // chunks per segment kept in shared memory
  int rc_stride = 0;  // floats per chunk in the carry array
};
inline SmemLayout smem_layout(const Plan& p, int staged, size_t elem_bytes, bool backward) {
  auto up = [](size_t x) { return (x + 15) & ~size_t(15); };
  SmemLayout l;
  l.staged = staged;
  const size_t n = size_t(p.warps) * size_t(staged) * kChunk * 32 * elem_bytes;
  l.k = 0;
  l.v = uint32_t(up(n));
  l.g = uint32_t(l.v + up(n));
  const size_t stage_end = l.g + (backward ? up(n) : 0);
  l.rc_stride = (backward ? 2 : 1) * kRcFloats;
  l.rc = uint32_t(stage_end);
  const size_t rc_bytes = rc_in_smem(p) ? size_t(p.warps) * p.seg_chunks * l.rc_stride * sizeof(float) : 0;
  l.seg = uint32_t(l.rc + rc_bytes);
  l.carry = uint32_t(l.seg + size_t(p.warps) * kSumFloats * sizeof(float));
  l.lcar = uint32_t(l.carry + kSumFloats * sizeof(float));
  l.part = uint32_t(l.lcar + (backward ? size_t(p.warps) * kLcarFloats * sizeof(float) : 0));
  l.bytes = uint32_t(l.part + (backward ? 32 * sizeof(int64_t) : 0));
  return l;
}
// The most chunks per segment that can be staged within `budget` bytes per block.
inline int max_staged(const Plan& p, size_t budget, size_t elem_bytes, bool backward) {
  const SmemLayout fixed = smem_layout(p, 0, elem_bytes, backward);
  if (budget <= fixed.bytes) return 0;
  const size_t per_chunk = size_t(p.warps) * kChunk * 32 * elem_bytes * (backward ? 3 : 2);
  const size_t s = (budget - fixed.bytes) / per_chunk;
  return int(s < size_t(p.seg_chunks) ? s : size_t(p.seg_chunks));
}

// The CPU implementation with an explicit plan (bi_wkv_cpu.cpp; the public _cpu launchers use
// make_plan(T) with their element size): the oracle of a CUDA launch with the same plan, to rounding.
template <typename E>
void bi_wkv_forward_cpu_plan(const Plan& plan, E* y, const E* k, const E* v, const acc_t<E>* decay,
                             const acc_t<E>* first, int64_t B, int64_t T, int64_t C);
template <typename E>
void bi_wkv_backward_cpu_plan(const Plan& plan, E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy,
                              const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                              int64_t T, int64_t C);

}  // namespace drwkv::kernels::bi_wkv_detail
