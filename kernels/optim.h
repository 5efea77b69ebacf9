// Fused optimizer updates over flat f32 buffers: AdamW and the EMA of the weights, one pass and one
// launch each for all parameters together.
//
// adamw: for i < n, with g = grads[i] · s where s = h.grad_scale · (*grad_scale_ptr, or 1 when null):
//   m = β1 m + (1 − β1) g;   v = β2 v + (1 − β2) g²
//   p = p · (1 − lr · wd)                                   (decoupled weight decay)
//   p = p − step_size · m / (√v / sqrt_bc2 + eps)           step_size = lr / (1 − β1^t), sqrt_bc2 = √(1 − β2^t)
//   copy[i] = bf16(p)                                       (when copy is not null)
// (torch.optim.AdamW's update; its first moment uses lerp, equal up to rounding). params, m, v are
// updated in place; grads is read only. grad_scale_ptr lets the gradient-clipping factor stay on the device (no
// host synchronisation): device memory for _cuda, host memory for _cpu. Buffers must not overlap.
// ema: ema[i] = decay · ema[i] + (1 − decay) · params[i]. adamw given an `ema` buffer also applies it
// to the updated parameters (decay h.ema_decay) in the same pass: the same arithmetic as ema after
// adamw, without reading the parameters a second time.
//
// Only f32 (the precision policy keeps master weights, gradients, moments and EMA in f32), so these
// launchers are not templates. The CUDA versions move 8 elements per thread as 16-byte accesses
// (two float4 per f32 buffer, one 16-byte pack for the bf16 copy) when every pointer is 16-byte
// aligned, and fall back to one element per thread otherwise; results do not depend on the path.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

struct AdamWStep {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float decay_factor = 1.0f;  // 1 − lr · weight_decay
  float step_size = 0.0f;     // lr / (1 − β1^t)
  float sqrt_bc2 = 1.0f;      // √(1 − β2^t)
  float grad_scale = 1.0f;    // host factor on the gradients (times *grad_scale_ptr when given)
  float ema_decay = 0.0f;     // with an ema buffer
};

// The per-step constants for 1-based step t, computed in f64 then rounded.
AdamWStep adamw_step_constants(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                               double grad_scale = 1.0);

void adamw_cpu(float* params, const float* grads, float* m, float* v, bf16* copy, int64_t n, const AdamWStep& h,
               const float* grad_scale_ptr, float* ema = nullptr);
void adamw_cuda(float* params, const float* grads, float* m, float* v, bf16* copy, int64_t n, const AdamWStep& h,
                const float* grad_scale_ptr, StreamHandle s, float* ema = nullptr);

void ema_cpu(float* ema, const float* params, int64_t n, float decay);
void ema_cuda(float* ema, const float* params, int64_t n, float decay, StreamHandle s);

}  // namespace drwkv::kernels
