// Optimizer steps and norms over flat buffers (autograd/optim.h), on the buffers' device and its
// current stream.
#include "autograd/optim.h"

#include "autograd/profiler.h"

#include "autograd/dispatch.h"
#include "kernels/optim.h"
#include "kernels/reduce.h"

namespace drwkv::autograd {
namespace {
void check_flat(const Tensor& t, const Tensor& like, DType dtype, const char* what) {
  DRWKV_ASSERT(t.defined() && t.dtype() == dtype && t.is_contiguous() && t.numel() == like.numel() &&
                   t.device() == like.device(),
               "%s: %s must be a contiguous %s buffer of %lld elements on %s", what,
               t.defined() ? describe(t).c_str() : "undefined", std::string(dtype_name(dtype)).c_str(),
               (long long)like.numel(), like.device().str().c_str());
}
}  // namespace

void adamw_step(Tensor& params, const Tensor& grads, Tensor& m, Tensor& v, const AdamWConfig& cfg, int64_t step,
                const Tensor& grad_scale, Tensor compute_copy, Tensor ema, double ema_decay) {
  check_flat(params, params, DType::F32, "adamw_step params");
  check_flat(grads, params, DType::F32, "adamw_step grads");
  check_flat(m, params, DType::F32, "adamw_step m");
  check_flat(v, params, DType::F32, "adamw_step v");
  if (compute_copy.defined()) check_flat(compute_copy, params, DType::BF16, "adamw_step compute_copy");
  if (ema.defined()) {
    check_flat(ema, params, DType::F32, "adamw_step ema");
    DRWKV_ASSERT(ema_decay >= 0 && ema_decay <= 1, "adamw_step: ema_decay %g outside [0, 1]", ema_decay);
  }
  // The scale stays where it is when it lives with the parameters (no synchronisation); a scalar
  // elsewhere is read on the host (free for a host scalar; a device scalar with host parameters syncs).
  const float* scale_ptr = nullptr;
  double host_scale = 1.0;
  if (grad_scale.defined()) {
    DRWKV_ASSERT(grad_scale.numel() == 1 && grad_scale.dtype() == DType::F32,
                 "adamw_step: grad_scale must be one f32 value, got %s", describe(grad_scale).c_str());
    if (grad_scale.device() == params.device()) {
      scale_ptr = static_cast<const float*>(grad_scale.data());
    } else {
      host_scale = grad_scale.item();
    }
  }
  kernels::AdamWStep h =
      kernels::adamw_step_constants(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, step, host_scale);
  float* p = params.data_ptr<float>();
  const float* g = grads.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  bf16* copy = compute_copy.defined() ? compute_copy.data_ptr<bf16>() : nullptr;
  float* ep = ema.defined() ? ema.data_ptr<float>() : nullptr;
  h.ema_decay = float(ema_decay);
  if (params.is_cuda()) {
    ProfileRange range("adamw", params.device());
    DRWKV_CUDA_ONLY(kernels::adamw_cuda(p, g, mp, vp, copy, params.numel(), h, scale_ptr,
                                        current_stream(params.device()).handle(), ep));
  } else {
    kernels::adamw_cpu(p, g, mp, vp, copy, params.numel(), h, scale_ptr, ep);
  }
}

void ema_update(Tensor& ema, const Tensor& params, double decay) {
  check_flat(ema, ema, DType::F32, "ema_update ema");
  check_flat(params, ema, DType::F32, "ema_update params");
  DRWKV_ASSERT(decay >= 0 && decay <= 1, "ema_update: decay %g outside [0, 1]", decay);
  if (ema.is_cuda()) {
    ProfileRange range("ema", params.device());
    DRWKV_CUDA_ONLY(kernels::ema_cuda(ema.data_ptr<float>(), params.data_ptr<float>(), ema.numel(), float(decay),
                                      current_stream(ema.device()).handle()));
  } else {
    kernels::ema_cpu(ema.data_ptr<float>(), params.data_ptr<float>(), ema.numel(), float(decay));
  }
}

Tensor sum_squares(const Tensor& x_in) {
  Tensor x = x_in.contiguous();
  // out[0] is the result; the CUDA kernel keeps its block partials in out[1..]
  Tensor buf = Tensor::empty(Shape{kernels::kSumSquaresBuffer}, DType::F64, x.device());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(x, T, sum_squares, buf.data_ptr<double>(), static_cast<const T*>(x.data()), x.numel());
  });
  return buf.narrow(0, 0, 1);
}

}  // namespace drwkv::autograd
