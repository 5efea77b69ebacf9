// Differentiable elementwise ops and reductions (autograd/elementwise_ops.h).
#include "autograd/elementwise_ops.h"

#include "autograd/dispatch.h"
#include "autograd/tensor_math.h"

namespace drwkv::autograd {
using kernels::BinaryOp;
using kernels::ReduceOp;
using kernels::UnaryOp;

namespace {
template <typename T> T* ptr(const Tensor& t) { return static_cast<T*>(t.data()); }

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  DRWKV_ASSERT(a.dtype() == b.dtype() && a.device() == b.device(), "%s: operands %s and %s differ in dtype or device", op,
               describe(a).c_str(), describe(b).c_str());
}

int norm_axis(int axis, int dim) {
  int a = axis < 0 ? axis + dim : axis;
  DRWKV_ASSERT(a >= 0 && a < dim, "axis %d out of range for %d dims", axis, dim);
  return a;
}
}  // namespace

// ---- tensor helpers ---------------------------------------------------------------------------------
Tensor binary_tensor(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same(a, b, "binary");
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  kernels::Broadcast bc = make_broadcast(shape, {&a, &b});
  dispatch_float(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(out, T, binary, op, ptr<T>(out), ptr<T>(a), ptr<T>(b), bc);
  });
  return out;
}

Tensor reduce_tensor(ReduceOp op, const Tensor& x_in, int axis, bool keepdim) {
  Tensor x = x_in.contiguous();
  axis = norm_axis(axis, x.dim());
  int64_t outer = 1, inner = 1, n = x.size(axis);
  for (int d = 0; d < axis; ++d) outer *= x.size(d);
  for (int d = axis + 1; d < x.dim(); ++d) inner *= x.size(d);
  Shape shape = x.shape();
  shape[axis] = 1;
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(x, T, reduce_axis, op, ptr<T>(out), ptr<T>(x), outer, n, inner, false);
  });
  return keepdim ? out : out.squeeze(axis);
}

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor r = g;
  int lead = g.dim() - shape.size();
  DRWKV_ASSERT(lead >= 0, "sum_to_shape: %s to %s", g.shape().str().c_str(), shape.str().c_str());
  for (int i = 0; i < lead; ++i) r = reduce_tensor(ReduceOp::Sum, r, 0, false);
  for (int d = 0; d < shape.size(); ++d)
    if (shape[d] == 1 && r.size(d) != 1) r = reduce_tensor(ReduceOp::Sum, r, d, true);
  DRWKV_ASSERT(r.shape() == shape, "sum_to_shape: got %s, wanted %s", r.shape().str().c_str(), shape.str().c_str());
  return r;
}

// ---- ops ----------------------------------------------------------------------------------------------
Variable unary(UnaryOp op, const Variable& x) {
  Tensor xv = x.value().contiguous();
  Tensor y = Tensor::empty(xv.shape(), xv.dtype(), xv.device());
  dispatch_float(xv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(y, T, unary_forward, op, ptr<T>(y), ptr<T>(xv), xv.numel());
  });
  // ops whose derivative is a function of y keep y only (often kept by the next op anyway); the others x
  const bool from_y = kernels::unary_derivative_from_output(op);
  return make_result(y, "unary", {x}, [op, kept = from_y ? y : xv, from_y](BackwardContext& ctx) {
    Tensor gy = ctx.grad_output().contiguous();
    Tensor gx = Tensor::empty(kept.shape(), kept.dtype(), kept.device());
    dispatch_float(kept.dtype(), [&](auto tag) {
      using T = decltype(tag);
      DRWKV_LAUNCH(gx, T, unary_backward, op, ptr<T>(gx), ptr<T>(gy), from_y ? nullptr : ptr<T>(kept),
                   from_y ? ptr<T>(kept) : nullptr, kept.numel());
    });
    ctx.add(0, gx);
  });
}

Variable binary(BinaryOp op, const Variable& a, const Variable& b) {
  Tensor av = a.value(), bv = b.value();
  Tensor out = binary_tensor(op, av, bv);
  bool need_a = op == BinaryOp::Mul || op == BinaryOp::Div;  // d/db uses a; d/da uses b
  return make_result(out, "binary", {a, b}, [op, av = need_a ? av : Tensor(), bv = op != BinaryOp::Add && op != BinaryOp::Sub ? bv : Tensor(),
                                             sa = av.shape(), sb = bv.shape()](BackwardContext& ctx) {
    const Tensor& g = ctx.grad_output();
    if (ctx.needs(0)) {
      Tensor ga = g;
      if (op == BinaryOp::Mul) ga = binary_tensor(BinaryOp::Mul, g, bv);
      if (op == BinaryOp::Div) ga = binary_tensor(BinaryOp::Div, g, bv);
      ctx.add(0, sum_to_shape(ga, sa).contiguous());
    }
    if (ctx.needs(1)) {
      Tensor gb;
      switch (op) {
        case BinaryOp::Add: gb = g; break;
        case BinaryOp::Sub: gb = binary_tensor(BinaryOp::Sub, Tensor::zeros(Shape{}, g.dtype(), g.device()), g); break;
        case BinaryOp::Mul: gb = binary_tensor(BinaryOp::Mul, g, av); break;
        case BinaryOp::Div:  // -g a / b²
          gb = binary_tensor(BinaryOp::Div, binary_tensor(BinaryOp::Mul, g, av), binary_tensor(BinaryOp::Mul, bv, bv));
          gb = binary_tensor(BinaryOp::Sub, Tensor::zeros(Shape{}, g.dtype(), g.device()), gb);
          break;
      }
      ctx.add(1, sum_to_shape(gb, sb).contiguous());
    }
  });
}

Variable scale_shift(const Variable& x, double alpha, double beta) {
  Tensor xv = x.value().contiguous();
  Tensor y = Tensor::empty(xv.shape(), xv.dtype(), xv.device());
  dispatch_float(xv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(y, T, scale_shift, ptr<T>(y), ptr<T>(xv), alpha, beta, xv.numel());
  });
  return make_result(y, "scale_shift", {x}, [alpha](BackwardContext& ctx) {
    Tensor g = ctx.grad_output().contiguous();
    Tensor gx = Tensor::empty(g.shape(), g.dtype(), g.device());
    dispatch_float(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      DRWKV_LAUNCH(gx, T, scale_shift, ptr<T>(gx), ptr<T>(g), alpha, 0.0, g.numel());
    });
    ctx.add(0, gx);
  });
}

Variable lerp(const Variable& a, const Variable& b, const Variable& w) {
  Tensor av = a.value(), bv = b.value(), wv = w.value();
  check_same(av, bv, "lerp");
  check_same(av, wv, "lerp");
  Shape shape = broadcast_shapes(broadcast_shapes(av.shape(), bv.shape()), wv.shape());
  Tensor out = Tensor::empty(shape, av.dtype(), av.device());
  kernels::Broadcast bc = make_broadcast(shape, {&av, &bv, &wv});
  dispatch_float(av.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(out, T, lerp, ptr<T>(out), ptr<T>(av), ptr<T>(bv), ptr<T>(wv), bc);
  });
  return make_result(out, "lerp", {a, b, w}, [av, bv, wv](BackwardContext& ctx) {
    const Tensor& g = ctx.grad_output();
    Tensor gw = ctx.needs(0) || ctx.needs(1) ? binary_tensor(BinaryOp::Mul, g, wv) : Tensor();
    if (ctx.needs(0)) ctx.add(0, sum_to_shape(binary_tensor(BinaryOp::Sub, g, gw), av.shape()).contiguous());
    if (ctx.needs(1)) ctx.add(1, sum_to_shape(gw, bv.shape()).contiguous());
    if (ctx.needs(2)) {
      Tensor d = binary_tensor(BinaryOp::Mul, g, binary_tensor(BinaryOp::Sub, bv, av));
      ctx.add(2, sum_to_shape(d, wv.shape()).contiguous());
    }
  });
}

Variable addcmul(const Variable& a, const Variable& b, const Variable& c, double s) {
  Tensor av = a.value(), bv = b.value(), cv = c.value();
  check_same(av, bv, "addcmul");
  check_same(av, cv, "addcmul");
  Shape shape = broadcast_shapes(broadcast_shapes(av.shape(), bv.shape()), cv.shape());
  Tensor out = Tensor::empty(shape, av.dtype(), av.device());
  kernels::Broadcast bc = make_broadcast(shape, {&av, &bv, &cv});
  dispatch_float(av.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(out, T, addcmul, ptr<T>(out), ptr<T>(av), ptr<T>(bv), ptr<T>(cv), s, bc);
  });
  return make_result(out, "addcmul", {a, b, c}, [bv, cv, s, sa = av.shape()](BackwardContext& ctx) {
    const Tensor& g = ctx.grad_output();
    if (ctx.needs(0)) ctx.add(0, sum_to_shape(g, sa).contiguous());
    Tensor gs = (ctx.needs(1) || ctx.needs(2)) ? binary_tensor(BinaryOp::Mul, g, Tensor::full(Shape{}, s, g.dtype(), g.device())) : Tensor();
    if (ctx.needs(1)) ctx.add(1, sum_to_shape(binary_tensor(BinaryOp::Mul, gs, cv), bv.shape()).contiguous());
    if (ctx.needs(2)) ctx.add(2, sum_to_shape(binary_tensor(BinaryOp::Mul, gs, bv), cv.shape()).contiguous());
  });
}

Variable sum(const Variable& x, int axis, bool keepdim) {
  int a = norm_axis(axis, x.value().dim());
  Tensor out = reduce_tensor(ReduceOp::Sum, x.value(), a, keepdim);
  return make_result(out, "sum", {x}, [a, keepdim, shape = x.shape()](BackwardContext& ctx) {
    Tensor g = keepdim ? ctx.grad_output() : ctx.grad_output().unsqueeze(a);
    ctx.add(0, g.expand(shape).contiguous());
  });
}

Variable mean(const Variable& x, int axis, bool keepdim) {
  int a = norm_axis(axis, x.value().dim());
  return scale_shift(sum(x, a, keepdim), 1.0 / double(x.value().size(a)));
}

Variable sum_all(const Variable& x) {
  Variable flat = x;
  if (x.value().dim() != 1) {
    Tensor v = x.value().reshape(Shape{x.value().numel()});
    flat = make_result(v, "flatten", {x}, [shape = x.shape()](BackwardContext& ctx) {
      ctx.add(0, ctx.grad_output().reshape(shape));
    });
  }
  return sum(flat, 0, true);
}

Variable mean_all(const Variable& x) { return scale_shift(sum_all(x), 1.0 / double(x.value().numel())); }

}  // namespace drwkv::autograd
