// Linear layers and batched matrix products over the GEMM family (autograd/linear_ops.h).
//
// Operands are handed to the GEMM as (pointer, leading dim, batch stride) views whenever their layout
// allows, so slices such as the halves W1 | W2 of one weight, or chunks of a wider activation, are not
// copied. Gradients of the inputs are written by the GEMM straight into the engine's target for that
// input (BackwardContext::target): beta = 1 when it already holds a partial sum, 0 when it is fresh.
// A target the GEMM cannot write (a strided view, or a dtype the GEMM cannot produce from these
// operands, e.g. a bf16 target of f32 operands) receives the product through a temporary instead.
#include "autograd/linear_ops.h"

#include "autograd/profiler.h"

#include <algorithm>

#include "autograd/dispatch.h"
#include "autograd/tensor_math.h"
#include "kernels/gemm.h"

namespace drwkv::autograd {
namespace {

// A tensor seen as `batch` row-major matrices rows × cols: element (b, i, j) at
// data + b·stride + i·ld + j.
struct Mat {
  Tensor t;  // the tensor (or its contiguous copy) the view points into
  int64_t batch = 1, rows = 0, cols = 0, ld = 0, stride = 0;
};

// Leading dims of t (all but `keep` trailing dims) as one row index, when they are evenly strided:
// returns the row stride, or -1 when they do not collapse.
int64_t collapsed_stride(const Tensor& t, int first, int last, int64_t unit) {
  int64_t ld = -1, expect = 0;
  for (int d = last; d >= first; --d) {
    if (t.size(d) == 1) continue;
    if (ld < 0) {
      ld = t.stride(d);
      expect = ld * t.size(d);
    } else if (t.stride(d) != expect) {
      return -1;
    } else {
      expect *= t.size(d);
    }
  }
  return ld < 0 ? unit : ld;
}

// t [..., cols] as one matrix [numel / cols, cols] without copying when possible; `copy` = false
// reports failure (an empty Mat) instead of copying, for outputs that must be written in place.
Mat as_matrix(const Tensor& t, bool copy = true) {
  DRWKV_ASSERT(t.dim() >= 1, "matrix view of a 0-d tensor");
  Mat m;
  m.cols = t.size(-1);
  m.rows = m.cols ? t.numel() / m.cols : 0;
  bool unit_cols = m.cols == 1 || t.stride(-1) == 1;
  int64_t ld = unit_cols ? collapsed_stride(t, 0, t.dim() - 2, std::max<int64_t>(m.cols, 1)) : -1;
  if (ld >= std::max<int64_t>(m.cols, 1)) {
    m.t = t;
    m.ld = ld;
    return m;
  }
  if (!copy) return Mat{};
  m.t = t.contiguous();
  m.ld = std::max<int64_t>(m.cols, 1);
  return m;
}

// A 3-D tensor [batch, rows, cols] as batched matrices (batch stride may be 0 for inputs).
Mat as_batched(const Tensor& t, bool copy = true) {
  DRWKV_ASSERT(t.dim() == 3, "bmm needs 3-D operands, got %s", describe(t).c_str());
  Mat m;
  m.batch = t.size(0);
  m.rows = t.size(1);
  m.cols = t.size(2);
  int64_t unit = std::max<int64_t>(m.cols, 1);
  bool ok = (m.cols == 1 || t.stride(2) == 1) && (m.rows == 1 || t.stride(1) >= unit) && t.stride(0) >= 0;
  if (ok && copy) {
    m.t = t;
    m.ld = m.rows == 1 ? unit : t.stride(1);
    m.stride = m.batch == 1 ? 0 : t.stride(0);
    return m;
  }
  // outputs: only dense layouts, so batches never overlap
  if (!copy) {
    if (!t.is_contiguous()) return Mat{};
    m.t = t;
  } else {
    m.t = t.contiguous();
  }
  m.ld = unit;
  m.stride = m.rows * m.cols;
  return m;
}

// d (=, or += when beta = 1) op(a) · op(b) (+ bias), batch by batch.
void gemm(const Mat& a, bool ta, const Mat& b, bool tb, const Mat& d, float beta, const Tensor& bias = Tensor()) {
  const int64_t m = d.rows, n = d.cols, k = ta ? a.rows : a.cols;
  DRWKV_ASSERT((ta ? a.cols : a.rows) == m && (tb ? b.cols : b.rows) == k && (tb ? b.rows : b.cols) == n,
               "gemm: op(A) %lldx%lld · op(B) %lldx%lld → %lldx%lld", (long long)(ta ? a.cols : a.rows), (long long)k,
               (long long)(tb ? b.cols : b.rows), (long long)(tb ? b.rows : b.cols), (long long)m, (long long)n);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: D = beta · D (+ bias); only reachable with empty token sets
    DRWKV_ASSERT(!bias.defined(), "gemm: bias with an empty reduction");
    Tensor out = d.t;  // the view covers the whole output tensor
    if (beta == 0.0f) out.zero_();
    return;
  }
  kernels::GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.batch = d.batch;
  g.a = a.t.data();
  g.a_dtype = a.t.dtype();
  g.lda = a.ld;
  g.trans_a = ta;
  g.stride_a = a.batch == 1 ? 0 : a.stride;
  g.b = b.t.data();
  g.b_dtype = b.t.dtype();
  g.ldb = b.ld;
  g.trans_b = tb;
  g.stride_b = b.batch == 1 ? 0 : b.stride;
  g.d = d.t.data();
  g.d_dtype = d.t.dtype();
  g.ldd = d.ld;
  g.stride_d = d.stride;
  if (bias.defined()) {
    g.bias = bias.data();
    g.bias_dtype = bias.dtype();
  }
  g.beta = beta;
  if (d.t.is_cuda()) {
    ProfileRange range("gemm", d.t.device());
    DRWKV_CUDA_ONLY(kernels::gemm_cuda(g, current_stream(d.t.device()).handle()));
  } else {
    kernels::gemm_cpu(g);
  }
}

// Whether the GEMM can write an `out` tensor from operands of dtype `in` (kernels/gemm.h).
bool gemm_can_write(DType in, DType out) {
  return out == in || (in == DType::BF16 && out == DType::F32);
}

// Input i's gradient as the product `f(out_matrix, beta)`, in place into the engine's target when the
// GEMM can write it, otherwise through a temporary in the operands' dtype. `batched` selects the
// 3-D view.
template <typename F>
void grad_product(BackwardContext& ctx, int i, DType operand_dtype, bool batched, F&& f) {
  bool accumulate = false;
  Tensor target = ctx.target(i, &accumulate);
  if (gemm_can_write(operand_dtype, target.dtype())) {
    Mat m = batched ? as_batched(target, false) : as_matrix(target, false);
    if (m.t.defined()) {
      f(m, accumulate ? 1.0f : 0.0f);
      return;
    }
  }
  Tensor tmp = Tensor::empty(target.shape(), operand_dtype, target.device());
  f(batched ? as_batched(tmp, false) : as_matrix(tmp, false), 0.0f);
  if (accumulate) {
    add_(target, tmp);
  } else {
    target.copy_(tmp);
  }
}

// Bias gradient Σ_rows dy (dy [rows, n], dense) into input i: f32 (f64 for the f64 oracle) column sums
// accumulated in place when the target is that dtype and dense.
void bias_grad(BackwardContext& ctx, int i, const Tensor& dy_in) {
  Tensor dy = dy_in.contiguous();
  const int64_t n = dy.size(-1), rows = n ? dy.numel() / n : 0;
  const DType acc_dtype = dy.dtype() == DType::F64 ? DType::F64 : DType::F32;
  bool accumulate = false;
  Tensor target = ctx.target(i, &accumulate);
  bool direct = target.dtype() == acc_dtype && target.is_contiguous();
  Tensor out = direct ? target : Tensor::empty(target.shape(), acc_dtype, target.device());
  bool acc_out = direct && accumulate;
  Tensor scratch;
  if (dy.is_cuda())
    scratch = Tensor::empty(Shape{std::max<int64_t>(1, kernels::bias_grad_scratch_size(rows, n))}, acc_dtype, dy.device());
  dispatch_float(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    A* sp = scratch.defined() ? static_cast<A*>(scratch.data()) : nullptr;
    DRWKV_LAUNCH(dy, T, bias_grad, static_cast<A*>(out.data()), static_cast<const T*>(dy.data()), rows, n, acc_out, sp);
  });
  if (direct) return;
  if (accumulate) {
    add_(target, out);
  } else {
    target.copy_(out);
  }
}

void check_pair(const Tensor& x, const Tensor& w, const char* op) {
  DRWKV_ASSERT(x.dtype() == w.dtype() && x.device() == w.device(), "%s: input %s and weight %s differ in dtype or device",
               op, describe(x).c_str(), describe(w).c_str());
  DRWKV_ASSERT(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1) && w.size(1) >= 1,
               "%s: input %s does not match weight %s ([out, in])", op, describe(x).c_str(), describe(w).c_str());
}

void check_bias(const Tensor& b, const Tensor& x, int64_t n, const char* op) {
  if (!b.defined()) return;
  bool dtype_ok = b.dtype() == x.dtype() || (x.dtype() == DType::BF16 && b.dtype() == DType::F32);
  DRWKV_ASSERT(b.dim() == 1 && b.size(0) == n && dtype_ok && b.device() == x.device(),
               "%s: bias %s for %lld outputs of %s (bias dtype: the input's, or f32 with bf16 inputs)", op,
               describe(b).c_str(), (long long)n, describe(x).c_str());
}

Shape with_last(const Shape& s, int64_t n) {
  Shape r = s;
  r[r.size() - 1] = n;
  return r;
}

std::vector<Variable> inputs_with_bias(std::vector<Variable> v, const Variable& bias) {
  if (bias.defined()) v.push_back(bias);
  return v;
}
}  // namespace

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  return linear_recompute(x, weight, nullptr, bias);
}

Variable linear_recompute(const Variable& x, const Variable& weight, std::function<Tensor()> recompute_x,
                          const Variable& bias) {
  const Tensor& xv = x.value();
  const Tensor& wv = weight.value();
  check_pair(xv, wv, "linear");
  const int64_t n = wv.size(0);
  Tensor bv = bias.defined() ? bias.value().contiguous() : Tensor();
  check_bias(bv, xv, n, "linear");
  Mat xm = as_matrix(xv), wm = as_matrix(wv);
  Tensor y = Tensor::empty(with_last(xv.shape(), n), xv.dtype(), xv.device());
  gemm(xm, false, wm, true, as_matrix(y), 0.0f, bv);  // y = x Wᵀ (+ b)
  const bool has_bias = bias.defined();
  const DType dt = xv.dtype();
  // x is needed only for dW (and then kept only without a recompute function), W only for dx
  if (!weight.requires_grad() || recompute_x) xm = Mat{};
  if (!x.requires_grad()) wm = Mat{};
  if (!weight.requires_grad()) recompute_x = nullptr;
  return make_result(y, "linear", inputs_with_bias({x, weight}, bias), [xm, wm, has_bias, dt, recompute_x](BackwardContext& ctx) {
    Mat dy = as_matrix(ctx.grad_output());
    if (ctx.needs(0))  // dx = dy W
      grad_product(ctx, 0, dt, false, [&](const Mat& d, float beta) { gemm(dy, false, wm, false, d, beta); });
    if (ctx.needs(1)) {  // dW (+)= dyᵀ x
      Mat in = recompute_x ? as_matrix(recompute_x()) : xm;
      grad_product(ctx, 1, dt, false, [&](const Mat& d, float beta) { gemm(dy, true, in, false, d, beta); });
    }
    if (has_bias && ctx.needs(2)) bias_grad(ctx, 2, ctx.grad_output());
  });
}

Variable linear2(const Variable& x, const Variable& w1, const Variable& s, const Variable& w2, const Variable& bias) {
  const Tensor& xv = x.value();
  const Tensor& sv = s.value();
  const DType dt = w1.value().dtype();  // the GEMMs' operand dtype
  // f32 inputs with bf16 weights are rounded once for the GEMMs
  auto operand = [dt](const Tensor& t) {
    return t.dtype() == DType::F32 && dt == DType::BF16 ? converted(t, dt) : t;
  };
  const Tensor xo = operand(xv), so = operand(sv);
  check_pair(xo, w1.value(), "linear2 (x, w1)");
  check_pair(so, w2.value(), "linear2 (s, w2)");
  DRWKV_ASSERT(xv.dtype() == sv.dtype() && with_last(xv.shape(), 1) == with_last(sv.shape(), 1),
               "linear2: x %s and s %s must share dtype and leading dims", describe(xv).c_str(), describe(sv).c_str());
  const int64_t n = w1.value().size(0);
  DRWKV_ASSERT(w2.value().size(0) == n, "linear2: w1 %s and w2 %s differ in outputs", describe(w1.value()).c_str(),
               describe(w2.value()).c_str());
  Tensor bv = bias.defined() ? bias.value().contiguous() : Tensor();
  check_bias(bv, xv, n, "linear2");
  Mat xm = as_matrix(xo), sm = as_matrix(so), w1m = as_matrix(w1.value()), w2m = as_matrix(w2.value());
  Tensor y = Tensor::empty(with_last(xv.shape(), n), xv.dtype(), xv.device());
  Mat ym = as_matrix(y);
  // y = x W1ᵀ (+ b), then y += s W2ᵀ: a bf16 y is rounded after each half (documented in the header)
  gemm(xm, false, w1m, true, ym, 0.0f, bv);
  gemm(sm, false, w2m, true, ym, 1.0f);
  const bool has_bias = bias.defined();
  if (!w1.requires_grad()) xm = Mat{};
  if (!w2.requires_grad()) sm = Mat{};
  if (!x.requires_grad()) w1m = Mat{};
  if (!s.requires_grad()) w2m = Mat{};
  return make_result(y, "linear2", inputs_with_bias({x, w1, s, w2}, bias),
                     [xm, sm, w1m, w2m, has_bias, dt, operand](BackwardContext& ctx) {
                       const Tensor dy_out = ctx.grad_output();
                       const Tensor dyo = operand(dy_out);  // the GEMMs' operand (bf16 for an f32 y)
                       Mat dy = as_matrix(dyo);
                       auto dx = [&](int i, const Mat& w) {
                         grad_product(ctx, i, dt, false, [&](const Mat& d, float beta) { gemm(dy, false, w, false, d, beta); });
                       };
                       auto dw = [&](int i, const Mat& in) {
                         grad_product(ctx, i, dt, false, [&](const Mat& d, float beta) { gemm(dy, true, in, false, d, beta); });
                       };
                       if (ctx.needs(0)) dx(0, w1m);
                       if (ctx.needs(1)) dw(1, xm);
                       if (ctx.needs(2)) dx(2, w2m);
                       if (ctx.needs(3)) dw(3, sm);
                       if (has_bias && ctx.needs(4)) bias_grad(ctx, 4, dy_out);
                     });
}

Variable bmm(const Variable& a, const Variable& b, bool transpose_a, bool transpose_b) {
  const Tensor& av = a.value();
  const Tensor& bv = b.value();
  DRWKV_ASSERT(av.dim() == 3 && bv.dim() == 3 && av.size(0) == bv.size(0) && av.dtype() == bv.dtype() &&
                   av.device() == bv.device(),
               "bmm: %s and %s must be 3-D with one batch size, dtype and device", describe(av).c_str(),
               describe(bv).c_str());
  const bool ta = transpose_a, tb = transpose_b;
  const int64_t m = ta ? av.size(2) : av.size(1), k = ta ? av.size(1) : av.size(2);
  const int64_t n = tb ? bv.size(1) : bv.size(2);
  DRWKV_ASSERT((tb ? bv.size(2) : bv.size(1)) == k, "bmm: op(a) of %s and op(b) of %s do not chain (transposes %d, %d)",
               describe(av).c_str(), describe(bv).c_str(), int(ta), int(tb));
  Mat am = as_batched(av), bm = as_batched(bv);
  Tensor c = Tensor::empty(Shape{av.size(0), m, n}, av.dtype(), av.device());
  gemm(am, ta, bm, tb, as_batched(c), 0.0f);
  const DType dt = av.dtype();
  if (!b.requires_grad()) am = Mat{};  // a is needed only for db, b only for da
  if (!a.requires_grad()) bm = Mat{};
  return make_result(c, "bmm", {a, b}, [am, bm, ta, tb, dt](BackwardContext& ctx) {
    Mat dc = as_batched(ctx.grad_output());
    if (ctx.needs(0))
      grad_product(ctx, 0, dt, true, [&](const Mat& d, float beta) {
        if (!ta) {
          gemm(dc, false, bm, !tb, d, beta);  // da = dc · op(b)ᵀ
        } else {
          gemm(bm, tb, dc, true, d, beta);  // stored a is op(a)ᵀ: da = op(b) · dcᵀ
        }
      });
    if (ctx.needs(1))
      grad_product(ctx, 1, dt, true, [&](const Mat& d, float beta) {
        if (!tb) {
          gemm(am, !ta, dc, false, d, beta);  // db = op(a)ᵀ · dc
        } else {
          gemm(dc, true, am, ta, d, beta);  // stored b is op(b)ᵀ: db = dcᵀ · op(a)
        }
      });
  });
}

}  // namespace drwkv::autograd
