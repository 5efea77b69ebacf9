// The DRWKV output head fused with unpatchify (MODEL.md §1.11, FinalLayer + Unpatchify of §1.1):
//   z = LN_{eps, no affine}(h) ⊙ (1 + scale_b) + shift_b        shift = mod[b, 0:C], scale = mod[b, C:2C]
//   o = z W_outᵀ + b_out                                         W_out [N, C], N = P²·Cout, b_out [N]
//   out[b, c', y·P + i, x·P + j] = o[b, y·grid_w + x, (i·P + j)·Cout + c']     out [B, Cout, grid_h·P, grid_w·P]
// (the output patch order is (i, j, c'), channel fastest; the input patchify order is (c, i, j), §1.2).
//
// h: [B, T, C] (T = grid_h·grid_w, raster order), out in h's dtype T; mod [B, 2C], W_out, b_out and the
// saved statistics mean/rstd ([B·T]) are acc_t<T>. b_out may be null (no bias).
// Forward: overwrites out, mean, rstd.
// Backward: dh (overwrite, or add when `accumulate`), dmod (+= into both chunks of the [B, 2C] mod
// gradient), dweight (+= [N, C]), dbias (+= [N]); each may be null. `out` must be the forward's output
// for the same inputs (the CUDA backward takes the per-row LayerNorm reductions from it, see
// linear_decoder.cu); the CPU backward recomputes everything and ignores it.
// Workspace: linear_decoder_workspace(d) elements of acc_t<T> in 16-byte aligned device memory for _cuda
// (forward and backward); _cpu ignores it (may be null). All reductions are deterministic (fixed-order partial sums).
// Types: T = float, double, bf16 on the CPU; float, bf16 on CUDA. N ≤ kDecoderMaxOut on CUDA.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

struct DecoderDims {
  int64_t batch = 0;
  int grid_h = 0, grid_w = 0;
  int64_t C = 0;         // model width
  int patch = 0;         // P
  int out_channels = 0;  // Cout
  DRWKV_HD int64_t tokens() const { return int64_t(grid_h) * grid_w; }
  DRWKV_HD int64_t n_out() const { return int64_t(patch) * patch * out_channels; }
};

inline constexpr int64_t kDecoderMaxOut = 128;

// N rounded up to the CUDA kernels' register tiles (32, 64 or 128).
inline int64_t decoder_padded_out(int64_t n) { return n <= 32 ? 32 : n <= 64 ? 64 : 128; }

// Sample groups of the CUDA backward: each block owns whole samples (so the modulation gradients need no
// partial sums) and one 32-channel slice; about 1024 blocks in total. Depends on the shape only, which
// keeps the reduction order fixed.
struct DecoderGroups {
  int64_t groups = 1;
  int64_t samples_per_group = 1;
};
inline DecoderGroups decoder_groups(int64_t batch, int64_t C) {
  int64_t slices = (C + 31) / 32;
  int64_t g = (1024 + slices - 1) / slices;
  if (g > batch) g = batch;
  if (g < 1) g = 1;
  DecoderGroups r;
  r.samples_per_group = (batch + g - 1) / g;
  if (r.samples_per_group < 1) r.samples_per_group = 1;
  r.groups = (batch + r.samples_per_group - 1) / r.samples_per_group;
  return r;
}

int64_t linear_decoder_workspace(const DecoderDims& d);

template <typename T>
void linear_decoder_forward_cpu(T* out, acc_t<T>* mean, acc_t<T>* rstd, const T* h, const acc_t<T>* mod,
                                const acc_t<T>* weight, const acc_t<T>* bias, const DecoderDims& d, double eps,
                                acc_t<T>* workspace);
template <typename T>
void linear_decoder_forward_cuda(T* out, acc_t<T>* mean, acc_t<T>* rstd, const T* h, const acc_t<T>* mod,
                                 const acc_t<T>* weight, const acc_t<T>* bias, const DecoderDims& d, double eps,
                                 acc_t<T>* workspace, StreamHandle s);

template <typename T>
void linear_decoder_backward_cpu(T* dh, acc_t<T>* dmod, acc_t<T>* dweight, acc_t<T>* dbias, const T* dout,
                                 const T* out, const T* h, const acc_t<T>* mean, const acc_t<T>* rstd,
                                 const acc_t<T>* mod, const acc_t<T>* weight, const acc_t<T>* bias,
                                 const DecoderDims& d, bool accumulate, acc_t<T>* workspace);
template <typename T>
void linear_decoder_backward_cuda(T* dh, acc_t<T>* dmod, acc_t<T>* dweight, acc_t<T>* dbias, const T* dout,
                                  const T* out, const T* h, const acc_t<T>* mean, const acc_t<T>* rstd,
                                  const acc_t<T>* mod, const acc_t<T>* weight, const acc_t<T>* bias,
                                  const DecoderDims& d, bool accumulate, acc_t<T>* workspace, StreamHandle s);

// Flat index into out [B, Cout, grid_h·P, grid_w·P] of output n of token t of sample b.
DRWKV_HD int64_t decoder_out_index(const DecoderDims& d, int64_t b, int64_t t, int64_t n) {
  const int64_t pix = n / d.out_channels, co = n - pix * d.out_channels;
  const int64_t i = pix / d.patch, j = pix - i * d.patch;
  const int64_t y = t / d.grid_w, x = t - y * d.grid_w;
  const int64_t W = int64_t(d.grid_w) * d.patch, H = int64_t(d.grid_h) * d.patch;
  return ((b * d.out_channels + co) * H + y * d.patch + i) * W + x * d.patch + j;
}

}  // namespace drwkv::kernels
