// Bidirectional WKV (MODEL.md §2), forward and backward; and the official kernel's variant (§2.6).
//
// Per batch element b and channel c, with w = decay[c]/T and u = first[c]/T (MODEL.md §1.8: the kernel
// applies the 1/T of the DRWKV spatial mix itself, so callers pass the parameters):
//   y_t = ( Σ_{i≠t} e^{−(|t−i|−1)w + k_i} v_i + e^{u + k_t} v_t ) / ( Σ_{i≠t} e^{−(|t−i|−1)w + k_i} + e^{u + k_t} )
// Layout: k, v, y, dy, dk, dv are [B, T, C] row-major (C innermost); decay, first, ddecay, dfirst are
// [C] in acc_t<E> (f32 for f32 and bf16 tensors, f64 for the f64 oracle). Arithmetic is in acc_t<E>.
// Any T ≥ 1 and C ≥ 1 (no compile-time limit); stable for any k and any sign of w (log-space sums
// with running maxima, no epsilon).
//
// Gradient contract (backward): dk, dv are overwritten; ddecay[c] += Σ_{b,t} ∂L/∂w / T and
// dfirst[c] += Σ_{b,t} ∂L/∂u / T are accumulated, reduced over batch and tokens in a fixed order (two
// runs give bitwise-identical results). Any of dk, dv, ddecay, dfirst may be null (not computed).
// Nothing is saved by the forward: the backward recomputes the forward sums (reads k, v, dy once,
// writes dk, dv once). Outputs must not alias inputs.
//
// workspace: device scratch of bi_wkv_workspace_bytes(B, T, C) bytes for the _cuda launchers, any
// contents (the launcher clears what it needs), not used concurrently by another launch; _cpu ignores
// it (may be null). CUDA launchers run on stream `s`, which must be the current stream of the current
// device (the workspace may hold results between the kernels of one call).
//
// Algorithm (details in bi_wkv_scan.h and bi_wkv_tile.cuh): each thread owns 4 tokens of one channel
// in registers, a block (tile) 32 channels × up to 64 tokens; segment and tile summaries are combined
// exactly (decay distances counted per position), so the forward reads k, v once and writes y once.
// Tiles of one sequence exchange summaries through global memory inside one kernel ("chained"); when a
// sequence has too many tiles to be resident at once the same kernel runs as separate passes
// ("multi-pass", k and v are re-read). Both give the same results to rounding; each is deterministic.
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

// The CUDA launchers with an explicit algorithm (tests and benchmarks; Auto is what the plain launchers
// use). Chained requires that every tile of a sequence can be resident at once and fails otherwise.
enum class BiWkvPath : uint8_t { Auto, Chained, MultiPass };
template <typename E>
void bi_wkv_forward_cuda_path(BiWkvPath path, E* y, const E* k, const E* v, const acc_t<E>* decay,
                              const acc_t<E>* first, int64_t B, int64_t T, int64_t C, void* workspace,
                              StreamHandle s);
template <typename E>
void bi_wkv_backward_cuda_path(BiWkvPath path, E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy,
                               const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                               int64_t T, int64_t C, void* workspace, StreamHandle s);
// The path Auto picks on the current device (CUDA builds only).
template <typename E> BiWkvPath bi_wkv_auto_path(int64_t B, int64_t T, int64_t C, bool backward);

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
