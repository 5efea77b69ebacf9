// Bidirectional WKV (MODEL.md §2), forward and backward; and the official kernel's variant (§2.6).
//
// Per batch element b and channel c, with w = decay[c]/T and u = first[c]/T (MODEL.md §1.8: the kernel
// applies the 1/T of the DRWKV spatial mix itself, so callers pass the parameters):
//   y_t = ( Σ_{i≠t} e^{−(|t−i|−1)w + k_i} v_i + e^{u + k_t} v_t ) / ( Σ_{i≠t} e^{−(|t−i|−1)w + k_i} + e^{u + k_t} )
// Layout: k, v, y, dy, dk, dv are [B, T, C] row-major (C innermost); decay, first, ddecay, dfirst are
// [C] in acc_t<E> (f32 for f32 and bf16 tensors, f64 for the f64 oracle). Arithmetic is in acc_t<E>.
// Any T ≥ 1 and C ≥ 1 (no compile-time limit; the CUDA launchers require T·C < 2^31 per batch
// element); stable for any k and any sign or size of w and u (log-space sums between chunks, bounded
// scales inside them, no epsilon).
//
// Gradient contract (backward): dk, dv are overwritten; ddecay[c] += Σ_{b,t} ∂L/∂w / T and
// dfirst[c] += Σ_{b,t} ∂L/∂u / T are accumulated, reduced over batch and tokens in a fixed order (two
// runs give bitwise-identical results). Any of dk, dv, ddecay, dfirst may be null (not computed).
// Nothing is saved by the forward: the backward recomputes the forward sums. Outputs must not alias
// inputs.
//
// workspace: device scratch of bi_wkv_workspace_bytes(B, T, C) bytes for the _cuda launchers (of
// bi_wkv_workspace_bytes(plan, B, T, C) for the _plan launchers), any contents, not used concurrently by
// another launch; _cpu ignores it (may be null). CUDA launchers run on stream `s`, which must be the
// current stream of the current device (the workspace may hold results between the kernels of one call).
//
// Algorithm (bi_wkv_chunk.h, bi_wkv_plan.h, bi_wkv_kernel.cuh): sequences are cut into chunks of 8
// tokens; inside a chunk the sums are plain recurrences in one bounded scale (one exponential per token),
// between chunks, segments and blocks they travel in log space. On CUDA one thread block cluster (≤ 8
// blocks) owns a whole sequence group (a batch element × 32 channels, lane = channel); its warps own
// consecutive segments and exchange summaries through shared memory and, between the cluster's blocks,
// the workspace and the cluster barrier: no atomics, one launch (plus a small reduction of the parameter
// gradients). Forward: k, v read from global memory once and kept in shared memory for the second pass,
// y written once. Backward: k, v, dy read once and kept for passes 2 and 3, dk, dv written once. Chunks
// that do not fit the shared memory (the f32 backward from T = 1024 on, every pass beyond T ≈ 2048) are
// read again, mostly from L2. Channels with 8·|w| + |u| > 24·ln 2 (far outside DRWKV's range) use a per-token
// log-space path instead; results are the same to rounding. The CPU implementation runs the same
// decomposition sequentially (the test oracle of the kernel with the same plan).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

// ---- exact definition (MODEL.md §2.1, FOLLOW) ---------------------------------------------------------

size_t bi_wkv_workspace_bytes(int64_t B, int64_t T, int64_t C);

template <typename E>
void bi_wkv_forward_cpu(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                        int64_t T, int64_t C, void* workspace);
template <typename E>
void bi_wkv_backward_cpu(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k, const E* v,
                         const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T, int64_t C,
                         void* workspace);

template <typename E>
void bi_wkv_forward_cuda(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                         int64_t T, int64_t C, void* workspace, StreamHandle s);
template <typename E>
void bi_wkv_backward_cuda(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k, const E* v,
                          const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T, int64_t C,
                          void* workspace, StreamHandle s);

// The decomposition of the CUDA kernels, for tests and benchmarks (the CPU always uses the automatic
// one). Each 32-channel sequence group is handled by a cluster of `cluster` thread blocks (1..8) of
// `warps` warps (1..16): both 0 for the automatic choice, else a 0 means 1 block / 8 warps. Every warp
// owns a segment of `chunks_per_warp` chunks of 8 tokens (0: as many as the sequence needs;
// cluster·warps·chunks_per_warp·8 ≥ T). The first `staged_chunks` chunks of every segment are kept in
// shared memory between the passes, the others are read again from global memory (−1: as many as fit
// a shared-memory budget of 1/blocks_per_sm of an SM). Up to 16 warps per SM (blocks_per_sm·warps) run
// a kernel variant with 128 registers per thread, up to 25 one limited to 80 (the backward spills there),
// more are an error; 0: for blocks of ≤ 8 warps 2, or 3 in the forward where that still stages half of
// every segment; 1 for larger blocks.
struct BiWkvPlan {
  int cluster = 0;
  int warps = 0;
  int chunks_per_warp = 0;
  int staged_chunks = -1;
  int blocks_per_sm = 0;
};
// A plan as a launch resolves it on the current device (CUDA builds only).
struct BiWkvLaunchInfo {
  int cluster, warps, chunks_per_warp, staged_chunks, blocks_per_sm;
  size_t smem_bytes;       // dynamic shared memory per block
  int active_clusters;     // clusters the device holds at once (cudaOccupancyMaxActiveClusters)
  bool carries_in_smem;    // chunk carries in shared memory (else in the workspace)
};

size_t bi_wkv_workspace_bytes(const BiWkvPlan& plan, int64_t B, int64_t T, int64_t C);
template <typename E>
void bi_wkv_forward_cuda_plan(const BiWkvPlan& plan, E* y, const E* k, const E* v, const acc_t<E>* decay,
                              const acc_t<E>* first, int64_t B, int64_t T, int64_t C, void* workspace,
                              StreamHandle s);
template <typename E>
void bi_wkv_backward_cuda_plan(const BiWkvPlan& plan, E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy,
                               const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                               int64_t T, int64_t C, void* workspace, StreamHandle s);
template <typename E> BiWkvLaunchInfo bi_wkv_launch_info(const BiWkvPlan& plan, int64_t T, bool backward);

// ---- official kernel's weights (MODEL.md §2.6, OPTION official_compat; parity checks only) -------------
// Same arguments and contracts as above; forward with the closed-form weights of the official kernel
// (segments of ceil(T/32) tokens) and the true gradient of that forward. O(T²) per sequence, no
// epsilon in the denominator (it may vanish for |w| far beyond DRWKV's range, as the kernel's does).

size_t bi_wkv_compat_workspace_bytes(int64_t B, int64_t T, int64_t C);

template <typename E>
void bi_wkv_compat_forward_cpu(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first,
                               int64_t B, int64_t T, int64_t C, void* workspace);
template <typename E>
void bi_wkv_compat_backward_cpu(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k,
                                const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T,
                                int64_t C, void* workspace);
template <typename E>
void bi_wkv_compat_forward_cuda(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first,
                                int64_t B, int64_t T, int64_t C, void* workspace, StreamHandle s);
template <typename E>
void bi_wkv_compat_backward_cuda(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k,
                                 const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T,
                                 int64_t C, void* workspace, StreamHandle s);

}  // namespace drwkv::kernels
