// Bi-WKV as a differentiable op (autograd/bi_wkv_ops.h) over kernels/bi_wkv.h.
//
// The forward saves nothing beyond its inputs (the backward kernel recomputes the forward sums, which
// costs less than storing them). decay/first gradients are accumulated by the kernel straight into the
// leaves' gradient buffers (BackwardContext::target), already divided by T.
#include "autograd/bi_wkv_ops.h"

#include <algorithm>

#include "autograd/dispatch.h"
#include "kernels/bi_wkv.h"

namespace drwkv::autograd {
namespace {

template <typename E> E* ptr(const Tensor& t) { return t.defined() ? static_cast<E*>(t.data()) : nullptr; }

Tensor workspace(BiWkvVariant variant, const Tensor& like, int64_t B, int64_t T, int64_t C) {
  if (!like.is_cuda()) return Tensor();  // the CPU launchers need none
  size_t bytes = variant == BiWkvVariant::Exact ? kernels::bi_wkv_workspace_bytes(B, T, C)
                                                : kernels::bi_wkv_compat_workspace_bytes(B, T, C);
  return Tensor::empty(Shape{int64_t(std::max<size_t>(bytes, 1))}, DType::U8, like.device());
}

// A [C] parameter gradient the kernel can accumulate into: contiguous, in the parameters' dtype.
Tensor param_grad(BackwardContext& ctx, int i, DType dtype, const char* name) {
  if (!ctx.needs(i)) return Tensor();
  bool accumulate = false;
  Tensor g = ctx.target(i, &accumulate);
  DRWKV_ASSERT(g.dtype() == dtype && g.is_contiguous(), "bi_wkv: gradient of %s is %s, expected contiguous %s", name,
               describe(g).c_str(), std::string(dtype_name(dtype)).c_str());
  if (!accumulate) g.zero_();
  return g;
}

}  // namespace

Variable bi_wkv(const Variable& decay, const Variable& first, const Variable& k, const Variable& v,
                BiWkvVariant variant) {
  Tensor kt = k.value().contiguous(), vt = v.value().contiguous();
  Tensor dt = decay.value().contiguous(), ft = first.value().contiguous();
  DRWKV_ASSERT(kt.dim() == 3 && kt.shape() == vt.shape() && kt.dtype() == vt.dtype() && kt.device() == vt.device(),
               "bi_wkv: k %s and v %s must be [B, T, C] of the same dtype and device", describe(kt).c_str(),
               describe(vt).c_str());
  const int64_t B = kt.size(0), T = kt.size(1), C = kt.size(2);
  const DType param_dtype = kt.dtype() == DType::F64 ? DType::F64 : DType::F32;
  for (const Tensor* p : {&dt, &ft})
    DRWKV_ASSERT(p->shape() == Shape{C} && p->dtype() == param_dtype && p->device() == kt.device(),
                 "bi_wkv: decay/first %s must be [%lld] %s on %s", describe(*p).c_str(), (long long)C,
                 std::string(dtype_name(param_dtype)).c_str(), kt.device().str().c_str());
  Tensor y = Tensor::empty(kt.shape(), kt.dtype(), kt.device());
  if (kt.numel() > 0) {
    Tensor ws = workspace(variant, kt, B, T, C);
    dispatch_float(kt.dtype(), [&](auto tag) {
      using E = decltype(tag);
      using A = acc_t<E>;
      if (variant == BiWkvVariant::Exact)
        DRWKV_LAUNCH(kt, E, bi_wkv_forward, ptr<E>(y), ptr<E>(kt), ptr<E>(vt), ptr<A>(dt), ptr<A>(ft), B, T, C,
                     ws.data());
      else
        DRWKV_LAUNCH(kt, E, bi_wkv_compat_forward, ptr<E>(y), ptr<E>(kt), ptr<E>(vt), ptr<A>(dt), ptr<A>(ft), B, T,
                     C, ws.data());
    });
  }
  return make_result(y, "bi_wkv", {decay, first, k, v}, [kt, vt, dt, ft, variant, param_dtype](BackwardContext& ctx) {
    const int64_t B = kt.size(0), T = kt.size(1), C = kt.size(2);
    Tensor gy = ctx.grad_output().contiguous();
    Tensor gdecay = param_grad(ctx, 0, param_dtype, "decay");
    Tensor gfirst = param_grad(ctx, 1, param_dtype, "first");
    Tensor gk = ctx.needs(2) ? Tensor::empty(kt.shape(), kt.dtype(), kt.device()) : Tensor();
    Tensor gv = ctx.needs(3) ? Tensor::empty(kt.shape(), kt.dtype(), kt.device()) : Tensor();
    if (kt.numel() > 0) {
      Tensor ws = workspace(variant, kt, B, T, C);
      dispatch_float(kt.dtype(), [&](auto tag) {
        using E = decltype(tag);
        using A = acc_t<E>;
        if (variant == BiWkvVariant::Exact)
          DRWKV_LAUNCH(kt, E, bi_wkv_backward, ptr<E>(gk), ptr<E>(gv), ptr<A>(gdecay), ptr<A>(gfirst), ptr<E>(gy),
                       ptr<E>(kt), ptr<E>(vt), ptr<A>(dt), ptr<A>(ft), B, T, C, ws.data());
        else
          DRWKV_LAUNCH(kt, E, bi_wkv_compat_backward, ptr<E>(gk), ptr<E>(gv), ptr<A>(gdecay), ptr<A>(gfirst),
                       ptr<E>(gy), ptr<E>(kt), ptr<E>(vt), ptr<A>(dt), ptr<A>(ft), B, T, C, ws.data());
      });
    }
    if (gk.defined()) ctx.add(2, gk);
    if (gv.defined()) ctx.add(3, gv);
  });
}

}  // namespace drwkv::autograd
