// Differentiable normalisations, embedding and MSE (autograd/norm_ops.h) over the kernel families
// kernels/norm.h, kernels/embed.h and kernels/loss.h.
//
// Gradients are written straight into the engine's buffers (BackwardContext::target) when their dtype and
// layout suit the kernel: activation gradients with the kernel's accumulate flag, parameter gradients
// (which the kernels always accumulate) after zeroing a fresh buffer. Otherwise (e.g. a bf16 gradient
// slot for a table whose kernel gradient is f32) the kernel writes a temporary that is then copied or
// added into the target with a dtype conversion.
#include "autograd/norm_ops.h"

#include "autograd/dispatch.h"
#include "autograd/tensor_math.h"
#include "kernels/embed.h"
#include "kernels/loss.h"
#include "kernels/norm.h"

namespace drwkv::autograd {
namespace {

template <typename T> T* ptr(const Tensor& t) { return t.defined() ? static_cast<T*>(t.data()) : nullptr; }

// Parameters, statistics and parameter gradients of an op on `dt` activations.
DType acc_dtype(DType dt) { return dt == DType::F64 ? DType::F64 : DType::F32; }

std::string dt_name(DType dt) { return std::string(dtype_name(dt)); }

// The value of an optional per-channel parameter [C], checked against the activation x.
Tensor param_value(const Variable& p, const Tensor& x, int64_t C, const char* op, const char* what) {
  if (!p.defined()) return Tensor();
  const Tensor& v = p.value();
  DRWKV_ASSERT(v.dim() == 1 && v.size(0) == C && v.dtype() == acc_dtype(x.dtype()) && v.device() == x.device(),
               "%s: %s must be %s[%lld] on %s for %s, got %s", op, what, dt_name(acc_dtype(x.dtype())).c_str(),
               (long long)C, x.device().str().c_str(), describe(x).c_str(), describe(v).c_str());
  return v.contiguous();
}

// Rows and channels of x viewed as [rows, C] (C = last dimension).
std::pair<int64_t, int64_t> rows_channels(const Tensor& x, const char* op) {
  DRWKV_ASSERT(x.dim() >= 1 && x.size(-1) > 0, "%s: input %s needs a non-empty last dimension", op, describe(x).c_str());
  return {x.numel() / x.size(-1), x.size(-1)};
}

// Where a kernel writes input i's gradient (see the file comment).
struct GradSink {
  Tensor target;            // the engine's buffer
  Tensor buf;               // what the kernel writes: target itself, or a temporary
  bool accumulate = false;  // target already holds a partial sum
  bool direct = false;      // buf is target

  // The kernel's accumulate flag for an activation gradient (overwrite unless adding into target).
  bool kernel_accumulate() const { return direct && accumulate; }
  // Parameter gradients are accumulated by the kernels: start from zero unless adding into target.
  void zero_for_accumulation() {
    if (!kernel_accumulate()) buf.zero_();
  }
  void finish() {
    if (direct || !target.defined()) return;
    if (accumulate) {
      add_(target, buf);
    } else {
      target.copy_(buf);
    }
  }
};

GradSink open_sink(BackwardContext& ctx, int i, DType kernel_dtype) {
  GradSink s;
  if (!ctx.needs(i)) return s;
  s.target = ctx.target(i, &s.accumulate);
  s.direct = s.target.dtype() == kernel_dtype && s.target.is_contiguous();
  s.buf = s.direct ? s.target : Tensor::empty(s.target.shape(), kernel_dtype, s.target.device());
  return s;
}

// Each gradient slot may be opened only once per backward (a second target() on the same slot would
// copy it away from the first), so inputs that share a slot are refused where that is not meaningful.
void check_distinct(const char* op, std::initializer_list<const Variable*> inputs) {
  for (const Variable* a : inputs)
    for (const Variable* b : inputs)
      DRWKV_ASSERT(a == b || !a->defined() || !b->defined() || a->impl() != b->impl(),
                   "%s: the same variable is passed as two different arguments", op);
}

bool records_gradient(std::initializer_list<const Variable*> inputs) {
  if (!grad_enabled()) return false;
  for (const Variable* v : inputs)
    if (v->requires_grad()) return true;
  return false;
}

// LayerNorm and GroupNorm share everything but the launcher (LayerNorm = one group).
Variable group_norm_impl(const Variable& x, int64_t groups, const Variable& weight, const Variable& bias, double eps,
                         const char* op) {
  check_distinct(op, {&x, &weight, &bias});
  Tensor xv = x.value().contiguous();
  auto [rows, C] = rows_channels(xv, op);
  DRWKV_ASSERT(groups > 0 && C % groups == 0, "%s: %lld channels do not split into %lld groups", op, (long long)C,
               (long long)groups);
  const DType at = acc_dtype(xv.dtype());
  Tensor w = param_value(weight, xv, C, op, "weight"), b = param_value(bias, xv, C, op, "bias");
  Tensor y = Tensor::empty(xv.shape(), xv.dtype(), xv.device());
  Tensor mean, rstd;  // saved only when a backward will need them
  if (records_gradient({&x, &weight, &bias})) {
    mean = Tensor::empty(Shape{rows * groups}, at, xv.device());
    rstd = Tensor::empty(Shape{rows * groups}, at, xv.device());
  }
  dispatch_float(xv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    if (groups == 1) {
      DRWKV_LAUNCH(xv, T, layernorm_forward, ptr<T>(y), ptr<A>(mean), ptr<A>(rstd), ptr<T>(xv), ptr<A>(w), ptr<A>(b),
                   rows, C, eps);
    } else {
      DRWKV_LAUNCH(xv, T, groupnorm_forward, ptr<T>(y), ptr<A>(mean), ptr<A>(rstd), ptr<T>(xv), ptr<A>(w), ptr<A>(b),
                   rows, C, groups, eps);
    }
  });
  return make_result(y, op, {x, weight, bias}, [xv, w, mean, rstd, rows, C, groups](BackwardContext& ctx) {
    Tensor gy = ctx.grad_output().contiguous();
    const DType at = mean.dtype();
    GradSink gx = open_sink(ctx, 0, xv.dtype()), gw = open_sink(ctx, 1, at), gb = open_sink(ctx, 2, at);
    if (gw.buf.defined()) gw.zero_for_accumulation();
    if (gb.buf.defined()) gb.zero_for_accumulation();
    Tensor scratch;
    if (xv.is_cuda() && (gw.buf.defined() || gb.buf.defined()))
      scratch = Tensor::empty(Shape{kernels::norm_backward_scratch_size(rows, C)}, at, xv.device());
    dispatch_float(xv.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      if (groups == 1) {
        DRWKV_LAUNCH(xv, T, layernorm_backward, ptr<T>(gx.buf), ptr<A>(gw.buf), ptr<A>(gb.buf), ptr<T>(gy), ptr<T>(xv),
                     ptr<A>(w), ptr<A>(mean), ptr<A>(rstd), rows, C, gx.kernel_accumulate(), ptr<A>(scratch));
      } else {
        DRWKV_LAUNCH(xv, T, groupnorm_backward, ptr<T>(gx.buf), ptr<A>(gw.buf), ptr<A>(gb.buf), ptr<T>(gy), ptr<T>(xv),
                     ptr<A>(w), ptr<A>(mean), ptr<A>(rstd), rows, C, groups, gx.kernel_accumulate(), ptr<A>(scratch));
      }
    });
    gx.finish();
    gw.finish();
    gb.finish();
  });
}

}  // namespace

Variable layer_norm(const Variable& x, const Variable& weight, const Variable& bias, double eps) {
  return group_norm_impl(x, 1, weight, bias, eps, "layer_norm");
}

Variable group_norm(const Variable& x, int groups, const Variable& weight, const Variable& bias, double eps) {
  return group_norm_impl(x, groups, weight, bias, eps, "group_norm");
}

Variable l2_normalize(const Variable& x, int group_size, double eps) {
  Tensor xv = x.value().contiguous();
  auto [rows, C] = rows_channels(xv, "l2_normalize");
  DRWKV_ASSERT(group_size > 0 && C % group_size == 0, "l2_normalize: %lld channels do not split into groups of %d",
               (long long)C, group_size);
  Tensor y = Tensor::empty(xv.shape(), xv.dtype(), xv.device());
  dispatch_float(xv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(xv, T, l2norm_forward, ptr<T>(y), ptr<T>(xv), rows, C, int64_t(group_size), eps);
  });
  return make_result(y, "l2_normalize", {x}, [xv, rows, C, group_size, eps](BackwardContext& ctx) {
    Tensor gy = ctx.grad_output().contiguous();
    GradSink gx = open_sink(ctx, 0, xv.dtype());
    dispatch_float(xv.dtype(), [&](auto tag) {
      using T = decltype(tag);
      DRWKV_LAUNCH(xv, T, l2norm_backward, ptr<T>(gx.buf), ptr<T>(gy), ptr<T>(xv), rows, C, int64_t(group_size), eps,
                   gx.kernel_accumulate());
    });
    gx.finish();
  });
}

Variable embedding(const Variable& table, const Tensor& ids_in) {
  const Tensor& tv_in = table.value();
  DRWKV_ASSERT(tv_in.dim() == 2 && tv_in.size(1) > 0, "embedding: table must be [rows, C], got %s",
               describe(tv_in).c_str());
  DRWKV_ASSERT(ids_in.dtype() == DType::I32 && ids_in.device() == tv_in.device(),
               "embedding: ids must be i32 on %s, got %s", tv_in.device().str().c_str(), describe(ids_in).c_str());
  Tensor tv = tv_in.contiguous(), ids = ids_in.contiguous();
  const int64_t R = tv.size(0), C = tv.size(1), n = ids.numel();
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor out = Tensor::empty(out_shape, tv.dtype(), tv.device());
  dispatch_float(tv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(tv, T, embedding_forward, ptr<T>(out), ptr<T>(tv), ptr<int32_t>(ids), n, R, C);
  });
  return make_result(out, "embedding", {table}, [ids, R, C, n, dt = tv.dtype(), dev = tv.device()](BackwardContext& ctx) {
    Tensor gout = ctx.grad_output().contiguous();
    GradSink gt = open_sink(ctx, 0, acc_dtype(dt));
    Tensor scratch;
    if (dev.is_cuda() && n > 0)
      DRWKV_CUDA_ONLY(scratch = Tensor::empty(Shape{int64_t(kernels::embedding_backward_scratch_bytes_cuda(n, R))},
                                              DType::U8, dev));
    dispatch_float(dt, [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      DRWKV_LAUNCH(gout, T, embedding_backward, ptr<A>(gt.buf), ptr<T>(gout), ptr<int32_t>(ids), n, R, C,
                   gt.kernel_accumulate(), scratch.defined() ? scratch.data() : nullptr);
    });
    gt.finish();
  });
}

Variable mse_loss(const Variable& a, const Variable& b) {
  Tensor av = a.value().contiguous(), bv = b.value().contiguous();
  DRWKV_ASSERT(av.shape() == bv.shape() && av.dtype() == bv.dtype() && av.device() == bv.device() && av.numel() > 0,
               "mse_loss: operands %s and %s must match in shape, dtype and device (and be non-empty)",
               describe(av).c_str(), describe(bv).c_str());
  const int64_t n = av.numel();
  const DType at = acc_dtype(av.dtype());
  // the launchers keep their block partials after the result: the loss is a view of element 0
  Tensor buffer = Tensor::empty(Shape{kernels::kMseBuffer}, at, av.device());
  dispatch_float(av.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    DRWKV_LAUNCH(av, T, mse_forward, ptr<A>(buffer), ptr<T>(av), ptr<T>(bv), n);
  });
  Tensor loss = buffer.slice(0, 0, 1);
  const bool same = a.impl() == b.impl();
  return make_result(loss, "mse_loss", {a, b}, [av, bv, n, same](BackwardContext& ctx) {
    if (same) {  // mean((a − a)²): the two contributions cancel exactly; one slot, opened once
      bool accumulate = false;
      Tensor t = ctx.target(0, &accumulate);
      if (!accumulate) t.zero_();
      return;
    }
    Tensor g = ctx.grad_output().contiguous();
    GradSink ga = open_sink(ctx, 0, av.dtype()), gb = open_sink(ctx, 1, av.dtype());
    dispatch_float(av.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      DRWKV_LAUNCH(av, T, mse_backward, ptr<T>(ga.buf), ptr<T>(gb.buf), ptr<A>(g), ptr<T>(av), ptr<T>(bv), n,
                   ga.kernel_accumulate(), gb.kernel_accumulate());
    });
    ga.finish();
    gb.finish();
  });
}

}  // namespace drwkv::autograd
