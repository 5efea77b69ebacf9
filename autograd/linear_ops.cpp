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

// A gradient as the product `f(out_matrix, beta)` into `target` (the engine's, holding a partial sum
// when `accumulate`), in place when the GEMM can write it, otherwise through a temporary in the
// operands' dtype. `batched` selects the 3-D view.
template <typename F>
void product_into(Tensor target, bool accumulate, DType operand_dtype, bool batched, F&& f) {
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

// Input i's gradient as the product `f(out_matrix, beta)` (product_into the engine's target).
template <typename F>
void grad_product(BackwardContext& ctx, int i, DType operand_dtype, bool batched, F&& f) {
  bool accumulate = false;
  Tensor target = ctx.target(i, &accumulate);
  product_into(std::move(target), accumulate, operand_dtype, batched, std::forward<F>(f));
}

// Weight gradients with fewer elements than this run one GEMM each in linear_group (measured below).
constexpr int64_t kMinGroupedWeightGradient = int64_t(1) << 20;

// Products d_k = op(a_k) op(b_k) of one shape as one grouped GEMM (kernels::gemm_group), or one GEMM
// each when the operands do not share dtypes and leading dimensions.
void gemm_grouped(const std::vector<Mat>& a, bool ta, const std::vector<Mat>& b, bool tb, const std::vector<Mat>& d,
                  float beta) {
  const size_t n = d.size();
  bool same = n <= size_t(kernels::kMaxGemmGroup);
  for (size_t i = 0; i < n && same; ++i)
    same = a[i].ld == a[0].ld && b[i].ld == b[0].ld && d[i].ld == d[0].ld && d[i].rows == d[0].rows &&
           d[i].cols == d[0].cols && a[i].t.dtype() == a[0].t.dtype() && d[i].t.dtype() == d[0].t.dtype() &&
           a[i].batch == 1 && b[i].batch == 1 && d[i].batch == 1;
  const int64_t k = ta ? a[0].rows : a[0].cols;
  if (!same || n == 1 || d[0].rows == 0 || d[0].cols == 0 || k == 0) {
    for (size_t i = 0; i < n; ++i) gemm(a[i], ta, b[i], tb, d[i], beta);
    return;
  }
  kernels::GemmArgs g;
  g.m = d[0].rows;
  g.n = d[0].cols;
  g.k = k;
  g.a_dtype = a[0].t.dtype();
  g.lda = a[0].ld;
  g.trans_a = ta;
  g.b_dtype = b[0].t.dtype();
  g.ldb = b[0].ld;
  g.trans_b = tb;
  g.d_dtype = d[0].t.dtype();
  g.ldd = d[0].ld;
  g.beta = beta;
  kernels::GemmGroup group;
  group.count = int(n);
  for (size_t i = 0; i < n; ++i) {
    DRWKV_ASSERT((ta ? a[i].cols : a[i].rows) == g.m && (tb ? b[i].rows : b[i].cols) == g.n &&
                     (tb ? b[i].cols : b[i].rows) == k,
                 "gemm_grouped: product %zu does not have the group's shape", i);
    group.a[i] = a[i].t.data();
    group.b[i] = b[i].t.data();
    group.d[i] = d[i].t.data();
  }
  if (d[0].t.is_cuda()) {
    ProfileRange range("gemm", d[0].t.device());
    DRWKV_CUDA_ONLY(kernels::gemm_group_cuda(g, group, current_stream(d[0].t.device()).handle()));
  } else {
    kernels::gemm_group_cpu(g, group);
  }
}

// The gradients of inputs idx[k] as products f(k, out_matrix, beta), grouped (`group(out_matrices,
// beta)`) when `allow_group` and every target takes the GEMM's output directly with the same
// accumulation, else one by one.
template <typename One, typename Group>
void grouped_grad_products(BackwardContext& ctx, const std::vector<int>& idx, DType operand_dtype, bool allow_group,
                           One&& one, Group&& group) {
  std::vector<Tensor> targets;
  std::vector<bool> acc;
  for (int i : idx) {
    bool a = false;
    targets.push_back(ctx.target(i, &a));
    acc.push_back(a);
  }
  std::vector<Mat> outs;
  for (size_t k = 0; k < idx.size() && allow_group; ++k) {
    if (!gemm_can_write(operand_dtype, targets[k].dtype()) || acc[k] != acc[0]) break;
    Mat m = as_matrix(targets[k], false);
    if (!m.t.defined()) break;
    outs.push_back(m);
  }
  if (outs.size() == idx.size()) {
    group(outs, acc[0] ? 1.0f : 0.0f);
    return;
  }
  for (size_t k = 0; k < idx.size(); ++k)
    product_into(targets[k], acc[k], operand_dtype, false, [&](const Mat& d, float beta) { one(int(k), d, beta); });
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

std::vector<Variable> linear_group(const std::vector<Variable>& xs, const std::vector<Variable>& weights,
                                   std::function<Tensor(int)> recompute_x) {
  const int n = int(xs.size());
  DRWKV_ASSERT(n >= 1 && n <= kernels::kMaxGemmGroup && int(weights.size()) == n,
               "linear_group: %d inputs and %zu weights (1..%d layers)", n, weights.size(), kernels::kMaxGemmGroup);
  std::vector<Mat> xm, wm, ym;
  std::vector<Tensor> ys;
  for (int i = 0; i < n; ++i) {
    const Tensor& xv = xs[size_t(i)].value();
    const Tensor& wv = weights[size_t(i)].value();
    check_pair(xv, wv, "linear_group");
    DRWKV_ASSERT(xv.shape() == xs[0].value().shape() && xv.dtype() == xs[0].value().dtype() &&
                     wv.shape() == weights[0].value().shape(),
                 "linear_group: layer %d (x %s, W %s) differs from layer 0 (x %s, W %s)", i, describe(xv).c_str(),
                 describe(wv).c_str(), describe(xs[0].value()).c_str(), describe(weights[0].value()).c_str());
    xm.push_back(as_matrix(xv));
    wm.push_back(as_matrix(wv));
    ys.push_back(Tensor::empty(with_last(xv.shape(), wv.size(0)), xv.dtype(), xv.device()));
    ym.push_back(as_matrix(ys.back()));
  }
  gemm_grouped(xm, false, wm, true, ym, 0.0f);  // y_i = x_i W_iᵀ
  const DType dt = xs[0].value().dtype();
  bool any_w = false, any_x = false;
  for (int i = 0; i < n; ++i) {
    any_w = any_w || weights[size_t(i)].requires_grad();
    any_x = any_x || xs[size_t(i)].requires_grad();
  }
  // x is needed only for dW (and then kept only without a recompute function), W only for dx
  if (!any_w || recompute_x) xm.clear();
  if (!any_x) wm.clear();
  if (!any_w) recompute_x = nullptr;
  std::vector<Variable> inputs = xs;
  inputs.insert(inputs.end(), weights.begin(), weights.end());
  return make_results(ys, "linear_group", inputs, [xm, wm, n, dt, recompute_x](BackwardContext& ctx) {
    std::vector<Mat> dy;
    for (int i = 0; i < n; ++i) dy.push_back(as_matrix(ctx.grad_output_or_zeros(i)));
    std::vector<int> dx_idx, dw_idx;
    for (int i = 0; i < n; ++i) {
      if (ctx.needs(i)) dx_idx.push_back(i);
      if (ctx.needs(n + i)) dw_idx.push_back(n + i);
    }
    auto pick = [](const std::vector<Mat>& all, const std::vector<int>& idx, int offset) {
      std::vector<Mat> out;
      for (int i : idx) out.push_back(all[size_t(i - offset)]);
      return out;
    };
    if (!dx_idx.empty()) {  // dx_i = dy_i W_i
      const std::vector<Mat> a = pick(dy, dx_idx, 0), b = pick(wm, dx_idx, 0);
      grouped_grad_products(
          ctx, dx_idx, dt, true,
          [&](int k, const Mat& d, float beta) { gemm(a[size_t(k)], false, b[size_t(k)], false, d, beta); },
          [&](const std::vector<Mat>& d, float beta) { gemm_grouped(a, false, b, false, d, beta); });
    }
    if (!dw_idx.empty()) {  // dW_i (+)= dy_iᵀ x_i
      std::vector<Mat> in;
      for (int i : dw_idx) in.push_back(recompute_x ? as_matrix(recompute_x(i - n)) : xm[size_t(i - n)]);
      const std::vector<Mat> a = pick(dy, dw_idx, n);
      // small weight gradients over long reductions run faster one by one (H100, gemm_gpu_bench --group:
      // 384 × 384 over 65536 rows 0.151 ms grouped against 3 × 0.046; 1024² over 16384 rows 0.142 against
      // 3 × 0.053)
      const bool group_dw = a[0].cols * in[0].cols >= kMinGroupedWeightGradient;
      grouped_grad_products(
          ctx, dw_idx, dt, group_dw,
          [&](int k, const Mat& d, float beta) { gemm(a[size_t(k)], true, in[size_t(k)], false, d, beta); },
          [&](const std::vector<Mat>& d, float beta) { gemm_grouped(a, true, in, false, d, beta); });
    }
  });
}

Variable linear2(const Variable& x, const Variable& w1, const Variable& s, const Variable& w2, const Variable& bias,
                 const Tensor& x_rounded, const Tensor& s_rounded) {
  const Tensor& xv = x.value();
  const Tensor& sv = s.value();
  const DType dt = w1.value().dtype();  // the GEMMs' operand dtype
  // f32 inputs with bf16 weights are rounded once for the GEMMs (or were, by the op that formed them)
  auto operand = [dt](const Tensor& t) {
    return t.dtype() == DType::F32 && dt == DType::BF16 ? converted(t, dt) : t;
  };
  auto given_or = [&](const Tensor& rounded, const Tensor& t, const char* what) {
    if (!rounded.defined()) return operand(t);
    DRWKV_ASSERT(rounded.dtype() == dt && rounded.shape() == t.shape() && rounded.device() == t.device(),
                 "linear2: %s rounded %s, expected %s[%s] %s", what, describe(rounded).c_str(),
                 std::string(dtype_name(dt)).c_str(), t.shape().str().c_str(), t.device().str().c_str());
    return rounded;
  };
  const Tensor xo = given_or(x_rounded, xv, "x"), so = given_or(s_rounded, sv, "s");
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
