// The exact Bi-WKV CUDA kernel (one template for forward and backward), used by bi_wkv.cu and
// bi_wkv_backward.cu. The arithmetic and the per-segment passes are bi_wkv_chunk.h, the decomposition
// and memory layouts bi_wkv_plan.h; this file maps them onto threads.
//
// Mapping. A thread block cluster handles one sequence group (batch element b, 32 channels; lane =
// channel, so every global access of a warp is one contiguous run of C-innermost memory); warp w of
// cluster rank r owns segment g = r·warps + w. Per thread:
//   pass 1   reads its chunks of k, v (, dy) from global memory (the next chunk is in flight while the
//            current one is summarised), keeps the first `staged` chunks in shared memory, stores each
//            chunk's right summary and forms the segment summaries;
//   exchange combines the segment summaries of the cluster (below) into the segment's carries;
//   carries  turns the chunk right summaries into chunk right carries (thread-private, in place);
//   pass 2   forward: y. Backward: the outputs again with ẑ, terms A/u of the parameter gradients and the
//            backward summaries; then a second exchange and carry sweep for the backward sums;
//   pass 3   (backward) dk, dv and term B; the block's parameter-gradient partial, summed over its
//            warps in order, goes to the workspace row b·cluster + r (reduced over rows by a second
//            kernel in a fixed order).
// Passes 2 and 3 read staged chunks from shared memory and the others again from global memory.
//
// Exchange (one per direction of sums; fixed combination order, bi_wkv_chunk.h): segment summaries →
// shared memory → warp 0 (left sums) and warp 1 (right sums) scan the block's segments serially (the
// exclusive prefixes replace the summaries) → block totals to the workspace → cluster barrier
// (barrier.cluster arrive.release / wait.acquire: orders the global writes for the other blocks, which
// read them through L2) → warps 0 / 1 combine the totals of the blocks before / after → shared memory →
// every warp: carry = block carry decayed to its segment ⊕ its prefix. Two block barriers and one
// cluster barrier per exchange; a cluster of one block skips the cluster part.
//
// Device code only (CUDA builtins, no runtime API), so that tests/kernels/bi_wkv_emulated_test.cpp can run
// this exact source on the host under an emulation of the CUDA execution model, which then provides
// dynamic_smem() and cluster_sync(); the launchers' host helpers are in bi_wkv_launch.cuh.
#pragma once

#include "kernels/bi_wkv_chunk.h"
#include "kernels/bi_wkv_plan.h"

namespace drwkv::kernels::bi_wkv_detail {

#if !defined(DRWKV_CUDA_EMULATION)
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char drwkv_bi_wkv_smem[];
  return drwkv_bi_wkv_smem;
}
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__)
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}
#endif

template <typename E> struct KernelArgs {
  const E* k;
  const E* v;
  const E* dy;   // backward
  E* y;          // forward
  E* dk;         // backward, may be null
  E* dv;         // backward, may be null
  const float* decay;
  const float* first;
  float* xchg;   // [seqs][2][cluster][8][32] block totals (workspace)
  float* part;   // [B·cluster][2][C] per-block ∂L/∂w, ∂L/∂u (backward)
  float* rc;     // [seqs][cluster][warps][seg_chunks][2][3][32] chunk carries (kGlobalCarries), else unused
  int64_t T, C, TC, chunks;  // TC = T·C < 2^31 − 8·C (the launcher checks)
  int groups;
  int cluster, warps, seg_chunks;
  SmemLayout smem;
};

// A summary row block f[field·32] (lane-major rows of 32 floats), fields 0–4 left (p, a, b, da, db),
// 5–7 right (p, a, b).
template <bool kCoherent> __device__ __forceinline__ float ld(const float* p) { return kCoherent ? __ldcg(p) : *p; }
template <bool kCoherent> __device__ __forceinline__ Sum<float> read_left(const float* f) {
  return {ld<kCoherent>(f), ld<kCoherent>(f + 32), ld<kCoherent>(f + 64), ld<kCoherent>(f + 96), ld<kCoherent>(f + 128)};
}
template <bool kCoherent> __device__ __forceinline__ Sum<float> read_right(const float* f) {
  return {ld<kCoherent>(f + 160), ld<kCoherent>(f + 192), ld<kCoherent>(f + 224), 0.f, 0.f};
}
__device__ __forceinline__ void write_left(float* f, const Sum<float>& s) {
  f[0] = s.p;
  f[32] = s.a;
  f[64] = s.b;
  f[96] = s.da;
  f[128] = s.db;
}
__device__ __forceinline__ void write_right(float* f, const Sum<float>& s) {
  f[160] = s.p;
  f[192] = s.a;
  f[224] = s.b;
}

// The warp that runs the right-direction scans of a block (warp 0 runs the left ones).
__device__ __forceinline__ int right_warp(int warps) { return warps > 1 ? 1 : 0; }

// One exchange (header comment). In: this thread's segment summaries (left measured at the segment's
// last position, right at its first); out: its carries (left at its first position − 1, right at its
// last + 1). `stage` 0: forward sums, 1: backward sums. Contains block and cluster barriers: every thread
// of the cluster calls it.
template <bool kDeriv, typename E>
__device__ __forceinline__ void exchange(const KernelArgs<E>& a, unsigned char* sm, int stage, int rank, int warp,
                                         int lane, float w2, Sum<float>& left, Sum<float>& right) {
  const int W = a.warps, N = a.cluster, rw = right_warp(W);
  const float Ls = float(a.seg_chunks * kChunk), Lb = Ls * float(W);
  float* seg = reinterpret_cast<float*>(sm + a.smem.seg);
  float* carry = reinterpret_cast<float*>(sm + a.smem.carry) + lane;
  __syncthreads();  // the previous exchange may still read seg / carry
  write_left(seg + warp * kSumFloats + lane, left);
  write_right(seg + warp * kSumFloats + lane, right);
  __syncthreads();
  Sum<float> total_left = empty_sum<float>(), total_right = empty_sum<float>();
  if (warp == 0)
    for (int w = 0; w < W; ++w) {
      float* f = seg + w * kSumFloats + lane;
      write_left(f, scan_left<float, kDeriv>(total_left, read_left<false>(f), Ls, w2));
    }
  if (warp == rw)
    for (int w = W - 1; w >= 0; --w) {
      float* f = seg + w * kSumFloats + lane;
      write_right(f, scan_right<float>(total_right, read_right<false>(f), Ls, w2));
    }
  if (N > 1) {  // cluster-uniform
    // [q][stage][rank] with q·N = blockIdx.x − rank
    float* xchg = a.xchg + (2 * (int64_t(blockIdx.x) - rank) + int64_t(stage) * N) * kSumFloats + lane;
    if (warp == 0) write_left(xchg + rank * kSumFloats, total_left);
    if (warp == rw) write_right(xchg + rank * kSumFloats, total_right);
    cluster_sync();
    // the totals of the blocks before (left) / after (right), in the fixed order; loads (from L2) are
    // issued kBatch blocks ahead of the combination
    constexpr int kBatch = 4;
    if (warp == 0) {
      Sum<float> run = empty_sum<float>();
      for (int r0 = 0; r0 < rank; r0 += kBatch) {
        Sum<float> t[kBatch];
DRWKV_BIWKV_UNROLL
        for (int u = 0; u < kBatch; ++u)
          if (r0 + u < rank) t[u] = read_left<true>(xchg + (r0 + u) * kSumFloats);
DRWKV_BIWKV_UNROLL
        for (int u = 0; u < kBatch; ++u)
          if (r0 + u < rank) run = plus<float, kDeriv>(decayed<float, kDeriv>(run, Lb, w2), t[u]);
      }
      write_left(carry, run);
    }
    if (warp == rw) {
      Sum<float> run = empty_sum<float>();
      for (int r0 = N - 1; r0 > rank; r0 -= kBatch) {
        Sum<float> t[kBatch];
DRWKV_BIWKV_UNROLL
        for (int u = 0; u < kBatch; ++u)
          if (r0 - u > rank) t[u] = read_right<true>(xchg + (r0 - u) * kSumFloats);
DRWKV_BIWKV_UNROLL
        for (int u = 0; u < kBatch; ++u)
          if (r0 - u > rank) run = plus<float, false>(t[u], decayed<float, false>(run, Lb, w2));
      }
      write_right(carry, run);
    }
  }
  __syncthreads();  // prefixes (and block carries) complete
  const Sum<float> block_left = N > 1 ? read_left<false>(carry) : empty_sum<float>();
  const Sum<float> block_right = N > 1 ? read_right<false>(carry) : empty_sum<float>();
  const float* f = seg + warp * kSumFloats + lane;
  left = segment_carry_left<float, kDeriv>(block_left, read_left<false>(f), warp, Ls, w2);
  right = segment_carry_right<float>(block_right, read_right<false>(f), warp, W, Ls, w2);
}

// In an unnamed namespace: every .cu that includes this gets its own kernel instances, so the attributes
// its launcher sets (the dynamic shared-memory limit) apply to exactly the functions it launches (shared
// template instances across translation units left the opt-in limit on another module's copy).
namespace {
// kRegs: the registers per thread the variant may use (kRegVariants, bi_wkv_plan.h), so that the blocks
// a plan puts on an SM fit its register file: 128 for up to 16 warps per SM, 80 for up to 25 (the
// backward spills there, the forward does not).
template <typename E, bool kBackward, bool kGlobalCarries, int kRegs = 128>
__global__ void __launch_bounds__(kMaxWarps * 32) __maxnreg__(kRegs) bi_wkv_kernel(const KernelArgs<E> a) {
  unsigned char* sm = dynamic_smem();
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  const int N = a.cluster, W = a.warps, S = a.seg_chunks, staged = a.smem.staged;
  // 32-bit block indices: the grid has fewer than 2^31 blocks, C fewer than 2^31 channels
  const unsigned q = blockIdx.x / unsigned(N);
  const int rank = int(blockIdx.x % unsigned(N));
  const int b = int(q / unsigned(a.groups)), c = int(q % unsigned(a.groups)) * 32 + lane;
  const bool channel = c < a.C;
  // element (b, t, c) is at base + t·C + c; the in-sequence index t·C + c fits 32 bits (the launcher checks)
  const int64_t T = a.T, base = int64_t(b) * a.TC + c;
  const int C = int(a.C);
  auto at_chunk = [&](int j) { return base + j * kChunk * C; };  // element (b, 8j, c)
  // masked lanes (c ≥ C) run on zeros with w = u = 0 and store nothing
  const Channel<float> ch = make_channel<float>(channel ? a.decay[c] : 0.f, channel ? a.first[c] : 0.f, T);
  const SegmentRange sg = segment_range(rank * W + warp, S, a.chunks);

  // this thread's staged chunks: [warp][chunk][token][lane]
  const int stage_at = (warp * staged * kChunk) * 32 + lane;
  E* sk = reinterpret_cast<E*>(sm + a.smem.k) + stage_at;
  E* sv = reinterpret_cast<E*>(sm + a.smem.v) + stage_at;
  E* sgr = reinterpret_cast<E*>(sm + a.smem.g) + stage_at;
  // this thread's chunk carries: [chunk][stage][p, a, b][lane], in shared memory or the workspace
  auto rc_at = [&](int s, int stage) {
    if constexpr (kGlobalCarries)
      return a.rc + (((int64_t(blockIdx.x) * W + warp) * S + s) * 2 + stage) * kRcFloats + lane;
    else
      return reinterpret_cast<float*>(sm + a.smem.rc) + (warp * S + s) * a.smem.rc_stride + stage * kRcFloats + lane;
  };

  // chunk j from global memory (pass 1 stages it) or from shared memory
  auto fetch = [&](int j, bool pass1) {
    Chunk<float> d;
    d.valid = int(T - int64_t(j) * kChunk < kChunk ? T - int64_t(j) * kChunk : kChunk);
    const int s = j - sg.j0, at = s * kChunk * 32;
    const E zero = store_as<E>(0.f);
    E ke[kChunk], ve[kChunk], ge[kChunk];
    if (!pass1 && s < staged) {
DRWKV_BIWKV_UNROLL
      for (int i = 0; i < kChunk; ++i) {
        ke[i] = sk[at + i * 32];
        ve[i] = sv[at + i * 32];
        ge[i] = kBackward ? sgr[at + i * 32] : zero;
      }
    } else {
      const int64_t e0 = at_chunk(j);
      const E* kc = a.k + e0;
      const E* vc = a.v + e0;
      const E* gc = kBackward ? a.dy + e0 : nullptr;
      if (channel && d.valid == kChunk) {
DRWKV_BIWKV_UNROLL
        for (int i = 0; i < kChunk; ++i) {  // pointers advanced row by row: one 64-bit add per load
          ke[i] = *kc;
          ve[i] = *vc;
          kc += C;
          vc += C;
          if (kBackward) {
            ge[i] = *gc;
            gc += C;
          } else {
            ge[i] = zero;
          }
        }
      } else {
DRWKV_BIWKV_UNROLL
        for (int i = 0; i < kChunk; ++i) {
          const bool in = channel && i < d.valid;
          ke[i] = in ? kc[i * C] : zero;
          ve[i] = in ? vc[i * C] : zero;
          ge[i] = kBackward && in ? gc[i * C] : zero;
        }
      }
      if (pass1 && s < staged)
DRWKV_BIWKV_UNROLL
        for (int i = 0; i < kChunk; ++i) {
          sk[at + i * 32] = ke[i];
          sv[at + i * 32] = ve[i];
          if (kBackward) sgr[at + i * 32] = ge[i];
        }
    }
DRWKV_BIWKV_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      d.k2[i] = load_as<float>(ke[i]) * float(kLog2e);
      d.v[i] = load_as<float>(ve[i]);
      d.g[i] = load_as<float>(ge[i]);
    }
    if (d.valid < kChunk)  // the sequence's last chunk
DRWKV_BIWKV_UNROLL
      for (int i = 0; i < kChunk; ++i)
        if (i >= d.valid) d.k2[i] = kEmpty;
    return d;
  };
  auto get_rc = [&](int stage) {
    return [=](int s) {
      const float* f = rc_at(s, stage);
      return Sum<float>{f[0], f[32], f[64], 0.f, 0.f};
    };
  };
  auto put_rc = [&](int stage) {
    return [=](int s, const Sum<float>& x) {
      float* f = rc_at(s, stage);
      f[0] = x.p;
      f[32] = x.a;
      f[64] = x.b;
    };
  };
  auto load1 = [&](int j) { return fetch(j, true); };
  auto load = [&](int j) { return fetch(j, false); };

  // pass 1 and the forward carries
  Sum<float> left, right;
  summarize_segment<float, kBackward>(ch, sg, load1, put_rc(0), get_rc(0), left, right);
  exchange<kBackward>(a, sm, 0, rank, warp, lane, ch.w2, left, right);
  right_carries<float>(ch, sg, right, get_rc(0), put_rc(0));

  if constexpr (!kBackward) {
    forward_segment<float>(ch, sg, left, load, get_rc(0), [&](int j, int valid, const float (&y)[kChunk]) {
      E* yc = a.y + at_chunk(j);
      if (channel && valid == kChunk) {
DRWKV_BIWKV_UNROLL
        for (int i = 0; i < kChunk; ++i, yc += C) *yc = store_as<E>(y[i]);
      } else {
DRWKV_BIWKV_UNROLL
        for (int i = 0; i < kChunk; ++i)
          if (channel && i < valid) yc[i * C] = store_as<E>(y[i]);
      }
    });
  } else {
    // pass 2 and the backward carries; the forward left carry (and ∂L/∂u) wait in shared memory for pass 3
    float* lcar = reinterpret_cast<float*>(sm + a.smem.lcar) + warp * kLcarFloats + lane;
    int64_t* part_at = reinterpret_cast<int64_t*>(sm + a.smem.part) + lane;  // where warp 0 writes the partials
    if (warp == 0) *part_at = channel ? (int64_t(b) * N + rank) * 2 * a.C + c : -1;
    lcar[0] = left.p;
    lcar[32] = left.a;
    lcar[64] = left.b;
    float gw = 0.f, gu = 0.f;
    Sum<float> bleft, bright;
    backward_segment_rows<float>(ch, sg, left, load, get_rc(0), put_rc(1), get_rc(1), bleft, bright, gw, gu);
    lcar[96] = gu;
    exchange<true>(a, sm, 1, rank, warp, lane, ch.w2, bleft, bright);
    right_carries<float>(ch, sg, bright, get_rc(1), put_rc(1));
    // pass 3
    const Sum<float> left3 = {lcar[0], lcar[32], lcar[64], 0.f, 0.f};  // (its derivatives are not needed)
    backward_segment_outputs<float>(
        ch, sg, left3, bleft, load, get_rc(0), get_rc(1),
        [&](int j, int valid, const float (&dk)[kChunk], const float (&dv)[kChunk]) {
          const int64_t e0 = at_chunk(j);
          if (channel && valid == kChunk) {
            if (a.dk) {
              E* p = a.dk + e0;
DRWKV_BIWKV_UNROLL
              for (int i = 0; i < kChunk; ++i, p += C) *p = store_as<E>(dk[i]);
            }
            if (a.dv) {
              E* p = a.dv + e0;
DRWKV_BIWKV_UNROLL
              for (int i = 0; i < kChunk; ++i, p += C) *p = store_as<E>(dv[i]);
            }
          } else {
DRWKV_BIWKV_UNROLL
            for (int i = 0; i < kChunk; ++i)
              if (channel && i < valid) {
                if (a.dk) a.dk[e0 + i * C] = store_as<E>(dk[i]);
                if (a.dv) a.dv[e0 + i * C] = store_as<E>(dv[i]);
              }
          }
        },
        gw);
    // the block's share of the parameter gradients, over its warps in order
    float* part = reinterpret_cast<float*>(sm + a.smem.seg);
    __syncthreads();  // the exchange's reads of seg are done
    part[(warp * 2 + 0) * 32 + lane] = gw;
    part[(warp * 2 + 1) * 32 + lane] = lcar[96];
    __syncthreads();
    if (warp == 0 && *part_at >= 0) {
      float sw = 0.f, su = 0.f;
      for (int w = 0; w < W; ++w) {
        sw += part[(w * 2 + 0) * 32 + lane];
        su += part[(w * 2 + 1) * 32 + lane];
      }
      a.part[*part_at] = sw;      // [b·cluster + rank][0][c]
      a.part[*part_at + a.C] = su;  // [b·cluster + rank][1][c]
    }
  }
}

}  // namespace
}  // namespace drwkv::kernels::bi_wkv_detail
