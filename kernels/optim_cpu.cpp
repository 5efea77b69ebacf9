// Host AdamW and EMA updates (kernels/optim.h); also the CPU backend's optimizer.
#include <cmath>

#include "core/check.h"
#include "kernels/optim.h"

namespace drwkv::kernels {

AdamWStep adamw_step_constants(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                               double grad_scale) {
  DRWKV_ASSERT(t >= 1, "adamw: step %lld (steps count from 1)", (long long)t);
  DRWKV_ASSERT(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0 && lr >= 0 && weight_decay >= 0,
               "adamw: lr %g beta1 %g beta2 %g eps %g weight_decay %g", lr, beta1, beta2, eps, weight_decay);
  AdamWStep h;
  h.beta1 = float(beta1);
  h.beta2 = float(beta2);
  h.eps = float(eps);
  h.decay_factor = float(1.0 - lr * weight_decay);
  h.step_size = float(lr / (1.0 - std::pow(beta1, double(t))));
  h.sqrt_bc2 = float(std::sqrt(1.0 - std::pow(beta2, double(t))));
  h.grad_scale = float(grad_scale);
  return h;
}

void adamw_cpu(float* params, const float* grads, float* m, float* v, bf16* copy, int64_t n, const AdamWStep& h,
               const float* grad_scale_ptr, float* ema) {
  const float scale = grad_scale_ptr ? h.grad_scale * *grad_scale_ptr : h.grad_scale;
  const float c1 = 1.0f - h.beta1, c2 = 1.0f - h.beta2, ce = 1.0f - h.ema_decay;
  for (int64_t i = 0; i < n; ++i) {
    float g = grads[i] * scale;
    float mi = h.beta1 * m[i] + c1 * g;
    float vi = h.beta2 * v[i] + c2 * g * g;
    float p = params[i] * h.decay_factor;
    p -= h.step_size * mi / (std::sqrt(vi) / h.sqrt_bc2 + h.eps);
    m[i] = mi;
    v[i] = vi;
    params[i] = p;
    if (copy) copy[i] = bf16(p);
    if (ema) ema[i] = h.ema_decay * ema[i] + ce * p;
  }
}

void ema_cpu(float* ema, const float* params, int64_t n, float decay) {
  const float c = 1.0f - decay;
  for (int64_t i = 0; i < n; ++i) ema[i] = decay * ema[i] + c * params[i];
}

}  // namespace drwkv::kernels
