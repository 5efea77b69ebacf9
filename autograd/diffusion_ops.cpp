// Diffusion arithmetic on tensors (autograd/diffusion_ops.h).
#include "autograd/diffusion_ops.h"

#include "autograd/dispatch.h"
#include "autograd/elementwise_ops.h"
#include "kernels/diffusion.h"

static_assert(drwkv::autograd::kDiffusionCoefs == drwkv::kernels::kCoefs, "coefficient rows differ");

namespace drwkv::autograd {
namespace {
template <typename T> T* ptr(const Tensor& t) { return static_cast<T*>(t.data()); }
template <typename T> acc_t<T>* aptr(const Tensor& t) { return static_cast<acc_t<T>*>(t.data()); }

void check_image(const Tensor& t, const char* what, const Tensor& like) {
  DRWKV_ASSERT(t.dim() == 4 && t.dtype() == like.dtype() && t.device() == like.device() && t.is_contiguous(),
               "%s: %s, expected a contiguous [B, C, H, W] %s tensor on %s", what, describe(t).c_str(),
               std::string(dtype_name(like.dtype())).c_str(), like.device().str().c_str());
}
void check_coef(const Tensor& coef, const Tensor& like) {
  DType acc = like.dtype() == DType::F64 ? DType::F64 : DType::F32;
  DRWKV_ASSERT(coef.dim() == 2 && coef.size(0) == like.size(0) && coef.size(1) == kernels::kCoefs &&
                   coef.dtype() == acc && coef.device() == like.device() && coef.is_contiguous(),
               "diffusion coefficients %s, expected [%lld, %d] %s", describe(coef).c_str(), (long long)like.size(0),
               kernels::kCoefs, std::string(dtype_name(acc)).c_str());
}
}  // namespace

HybridLoss hybrid_loss(const Variable& out_var, const Tensor& x0, const Tensor& xt, const Tensor& eps,
                       const Tensor& coef, bool learned) {
  Tensor out = out_var.value().contiguous();
  check_image(x0, "x0", out);
  check_image(xt, "x_t", out);
  check_image(eps, "noise", out);
  check_coef(coef, out);
  const int64_t B = x0.size(0), C = x0.size(1), P = x0.size(2) * x0.size(3);
  DRWKV_ASSERT(out.size(0) == B && out.size(1) == (learned ? 2 * C : C) && out.size(2) * out.size(3) == P,
               "model output %s for data %s (learned variance: %d)", describe(out).c_str(), describe(x0).c_str(),
               int(learned));
  DType acc = coef.dtype();
  Tensor terms = Tensor::empty(Shape{B, 2}, acc, out.device());
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(out, T, diffusion_loss_forward, aptr<T>(terms), ptr<T>(out), ptr<T>(x0), ptr<T>(xt), ptr<T>(eps),
                 aptr<T>(coef), B, C, P, learned);
  });
  // loss_b = mse_b + vb_b, on the device (no host synchronisation)
  Tensor total = binary_tensor(kernels::BinaryOp::Add, terms.select(1, 0).contiguous(), terms.select(1, 1).contiguous());
  Variable lv = make_result(total, "hybrid_loss", {out_var}, [out, x0, xt, eps, coef, learned, B, C, P](BackwardContext& ctx) {
    Tensor g = ctx.grad_output().contiguous();
    Tensor dout = Tensor::empty(out.shape(), out.dtype(), out.device());
    dispatch_float(out.dtype(), [&](auto tag) {
      using T = decltype(tag);
      DRWKV_LAUNCH(out, T, diffusion_loss_backward, ptr<T>(dout), aptr<T>(g), ptr<T>(out), ptr<T>(x0), ptr<T>(xt),
                   ptr<T>(eps), aptr<T>(coef), B, C, P, learned);
    });
    ctx.add(0, dout);
  });
  return HybridLoss{lv, terms};
}

Tensor q_sample(const Tensor& x0, const Tensor& eps, const Tensor& coef) {
  check_image(eps, "noise", x0);
  check_coef(coef, x0);
  Tensor xt = Tensor::empty(x0.shape(), x0.dtype(), x0.device());
  const int64_t B = x0.size(0), CP = x0.numel() / std::max<int64_t>(B, 1);
  dispatch_float(x0.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(x0, T, diffusion_q_sample, ptr<T>(xt), ptr<T>(x0), ptr<T>(eps), aptr<T>(coef), B, CP);
  });
  return xt;
}

void ddpm_step_(Tensor& x, const Tensor& out, const Tensor& z, const Tensor& coef, bool learned) {
  check_image(z, "noise", x);
  check_coef(coef, x);
  const int64_t B = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  Tensor o = out.contiguous();
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(x, T, diffusion_ddpm_step, ptr<T>(x), ptr<T>(o), ptr<T>(z), aptr<T>(coef), B, C, P, learned);
  });
}

void ddim_step_(Tensor& x, const Tensor& out, const Tensor& z, const Tensor& coef) {
  check_image(z, "noise", x);
  check_coef(coef, x);
  const int64_t B = x.size(0), C = x.size(1), P = x.size(2) * x.size(3), Cout = out.size(1);
  Tensor o = out.contiguous();
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(x, T, diffusion_ddim_step, ptr<T>(x), ptr<T>(o), ptr<T>(z), aptr<T>(coef), B, C, P, Cout);
  });
}

void cfg_combine_(Tensor& out, int64_t guided, double scale) {
  DRWKV_ASSERT(out.dim() == 4 && out.size(0) % 2 == 0 && out.is_contiguous() && guided <= out.size(1),
               "cfg_combine_: %s with %lld guided channels", describe(out).c_str(), (long long)guided);
  const int64_t n = out.size(0) / 2, Cout = out.size(1), P = out.size(2) * out.size(3);
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(out, T, diffusion_cfg, ptr<T>(out), n, Cout, P, guided, scale);
  });
}

}  // namespace drwkv::autograd
