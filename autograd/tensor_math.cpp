// Non-differentiable tensor functions (autograd/tensor_math.h).
#include "autograd/tensor_math.h"

#include "autograd/dispatch.h"
#include "autograd/profiler.h"

namespace drwkv::autograd {

Tensor converted(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  ProfileRange range("cast", t.device());
  return t.to(dtype);
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  int n = std::max(a.size(), b.size());
  Shape out;
  for (int i = 0; i < n; ++i) {
    int64_t da = i - (n - a.size()) >= 0 ? a[i - (n - a.size())] : 1;
    int64_t db = i - (n - b.size()) >= 0 ? b[i - (n - b.size())] : 1;
    DRWKV_ASSERT(da == db || da == 1 || db == 1, "shapes %s and %s do not broadcast", a.str().c_str(), b.str().c_str());
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

kernels::Broadcast make_broadcast(const Shape& out, std::initializer_list<const Tensor*> operands) {
  kernels::Broadcast bc;
  bc.ndim = out.size();
  for (int d = 0; d < out.size(); ++d) bc.shape[d] = out[d];
  int k = 0;
  for (const Tensor* t : operands) {
    Tensor e = t->expand(out);  // checks compatibility, stride 0 on broadcast dims
    for (int d = 0; d < out.size(); ++d) bc.stride[k][d] = e.stride(d);
    ++k;
  }
  return bc;
}

void add_(Tensor& dst, const Tensor& src_in) {
  Tensor src = src_in.dtype() == dst.dtype() && src_in.device() == dst.device() ? src_in : src_in.to(dst.device(), dst.dtype());
  DRWKV_ASSERT(dst.shape() == src.shape(), "add_: %s += %s", describe(dst).c_str(), describe(src).c_str());
  kernels::Broadcast bc = make_broadcast(dst.shape(), {&dst, &src});
  // the output is written densely: go through a temporary when dst is a strided view
  Tensor out = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
  dispatch_float(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(dst, T, binary, kernels::BinaryOp::Add, static_cast<T*>(out.data()), static_cast<const T*>(dst.data()),
                 static_cast<const T*>(src.data()), bc);
  });
  if (!out.shares_storage_with(dst)) dst.copy_(out);
}

}  // namespace drwkv::autograd
