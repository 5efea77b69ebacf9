// Differentiable views and layout changes (autograd/shape_ops.h).
#include "autograd/shape_ops.h"

#include "autograd/profiler.h"

#include "autograd/tensor_math.h"

namespace drwkv::autograd {

Variable reshape(const Variable& x, const Shape& shape) {
  return make_result(x.value().reshape(shape), "reshape", {x}, [in = x.shape()](BackwardContext& ctx) {
    ctx.add(0, ctx.grad_output().reshape(in));
  });
}

Variable permute(const Variable& x, const std::vector<int>& order) {
  std::vector<int> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    int o = order[i] < 0 ? order[i] + x.value().dim() : order[i];
    inverse[size_t(o)] = int(i);
  }
  return make_result(x.value().permute(order), "permute", {x}, [inverse](BackwardContext& ctx) {
    ctx.add(0, ctx.grad_output().permute(inverse).contiguous());
  });
}

Variable transpose(const Variable& x, int a, int b) {
  std::vector<int> order(static_cast<size_t>(x.value().dim()));
  for (int i = 0; i < x.value().dim(); ++i) order[size_t(i)] = i;
  int n = x.value().dim();
  std::swap(order[size_t(a < 0 ? a + n : a)], order[size_t(b < 0 ? b + n : b)]);
  return permute(x, order);
}

Variable contiguous(const Variable& x) {
  if (x.value().is_contiguous()) return x;
  return make_result(x.value().contiguous(), "contiguous", {x}, [](BackwardContext& ctx) { ctx.add(0, ctx.grad_output()); });
}

Variable slice(const Variable& x, int axis, int64_t start, int64_t length) {
  return make_result(x.value().narrow(axis, start, length), "slice", {x}, [axis, start, length](BackwardContext& ctx) {
    ProfileRange range("slice_backward", ctx.grad_output().device());
    bool accumulate = false;
    Tensor g = ctx.target(0, &accumulate);
    if (!accumulate) g.zero_();
    Tensor part = g.narrow(axis, start, length);
    Tensor go = ctx.grad_output();
    if (accumulate) {
      Tensor sum = part.contiguous();
      add_(sum, go);
      part.copy_(sum);
    } else {
      part.copy_(go);
    }
  });
}

Variable concat(const std::vector<Variable>& xs, int axis) {
  DRWKV_ASSERT(!xs.empty(), "concat of nothing");
  const Tensor& first = xs[0].value();
  int ax = axis < 0 ? axis + first.dim() : axis;
  Shape shape = first.shape();
  int64_t total = 0;
  std::vector<int64_t> lengths;
  for (const Variable& x : xs) {
    const Tensor& v = x.value();
    DRWKV_ASSERT(v.dim() == first.dim() && v.dtype() == first.dtype() && v.device() == first.device(),
                 "concat: %s vs %s", describe(v).c_str(), describe(first).c_str());
    for (int d = 0; d < v.dim(); ++d)
      DRWKV_ASSERT(d == ax || v.size(d) == first.size(d), "concat along %d: %s vs %s", ax, describe(v).c_str(),
                   describe(first).c_str());
    lengths.push_back(v.size(ax));
    total += v.size(ax);
  }
  shape[ax] = total;
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  int64_t off = 0;
  for (const Variable& x : xs) {
    out.narrow(ax, off, x.value().size(ax)).copy_(x.value());
    off += x.value().size(ax);
  }
  return make_result(out, "concat", xs, [ax, lengths](BackwardContext& ctx) {
    int64_t off = 0;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      if (ctx.needs(i)) ctx.add(i, ctx.grad_output().narrow(ax, off, lengths[size_t(i)]).contiguous());
      off += lengths[size_t(i)];
    }
  });
}

std::vector<Variable> split(const Variable& x, const std::vector<int64_t>& lengths, int axis) {
  const Tensor& v = x.value();
  int ax = axis < 0 ? axis + v.dim() : axis;
  std::vector<Tensor> parts;
  int64_t off = 0;
  for (int64_t len : lengths) {
    parts.push_back(v.narrow(ax, off, len));
    off += len;
  }
  DRWKV_ASSERT(off == v.size(ax), "split: lengths sum to %lld, axis %d has %lld", (long long)off, ax, (long long)v.size(ax));
  return make_results(parts, "split", {x}, [ax, lengths](BackwardContext& ctx) {
    std::vector<Variable> pieces;
    bool accumulate = false;
    Tensor g = ctx.target(0, &accumulate);
    int64_t off = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      Tensor part = g.narrow(ax, off, lengths[i]);
      Tensor go = ctx.grad_output(int(i));
      if (!go.defined()) {
        if (!accumulate) part.zero_();
      } else if (accumulate) {
        Tensor sum = part.contiguous();
        add_(sum, go);
        part.copy_(sum);
      } else {
        part.copy_(go);
      }
      off += lengths[i];
    }
  });
}

Variable cast(const Variable& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  return make_result(converted(x.value(), dtype), "cast", {x}, [from = x.dtype()](BackwardContext& ctx) {
    ctx.add(0, converted(ctx.grad_output(), from));
  });
}

}  // namespace drwkv::autograd
