// The receptance gate of the spatial mix (MODEL.md §1.8: out = W_o (σ(r) ⊙ z)): out = σ(r) ⊙ z over n
// contiguous elements. (The channel mix's gate, §1.9: σ(W_R x_r) ⊙ (W_2 k), is applied inside its gated
// residual: kernels/adaln_zero.h.)
//
// Backward from the forward's output instead of z: dr = dout ⊙ out ⊙ (1 − σ(r)) (= dout ⊙ z ⊙
// σ(r)(1 − σ(r))), dz = dout ⊙ σ(r); both overwrite, either may be null (not wanted). The output is what
// the next GEMM keeps for its weight gradient anyway, so the gate's backward needs neither z nor a
// recomputation of the output. No aliasing between outputs and inputs. Types: T = float, double, bf16 on
// the CPU; float, bf16 on CUDA; arithmetic in acc_t<T>. The CUDA kernels take 16-byte vector accesses
// when every pointer is 16-byte aligned. Bytes: forward reads r, z and writes out (3n·sizeof(T));
// backward reads dout, r, out and writes dr, dz (5n·sizeof(T)).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

template <typename T> void sigmoid_mul_forward_cpu(T* out, const T* r, const T* z, int64_t n);
template <typename T> void sigmoid_mul_forward_cuda(T* out, const T* r, const T* z, int64_t n, StreamHandle s);

template <typename T>
void sigmoid_mul_backward_cpu(T* dr, T* dz, const T* dout, const T* r, const T* out, int64_t n);
template <typename T>
void sigmoid_mul_backward_cuda(T* dr, T* dz, const T* dout, const T* r, const T* out, int64_t n, StreamHandle s);

}  // namespace drwkv::kernels
