// The DRWKV fused ops (autograd/drwkv_ops.h) over kernels/shift.h, adaln_zero.h, gate.h and
// linear_decoder.h. Each forward checks shapes and dtypes, runs one kernel, and records a closure that
// keeps only what its backward reads. Gradients are written in place into the engine's buffers
// (BackwardContext::target) so that parameter gradients accumulate straight into their f32 buffers.
#include "autograd/drwkv_ops.h"

#include <initializer_list>
#include <string>

#include "autograd/dispatch.h"
#include "autograd/tensor_math.h"
#include "kernels/adaln_zero.h"
#include "kernels/gate.h"
#include "kernels/linear_decoder.h"
#include "kernels/shift.h"

namespace drwkv::autograd {
namespace {
template <typename T> T* ptr(const Tensor& t) { return t.defined() ? static_cast<T*>(t.data()) : nullptr; }

DType acc_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }
std::string dname(DType t) { return std::string(dtype_name(t)); }

// A contiguous value with the expected shape, dtype and device.
Tensor checked(const Variable& v, const Shape& shape, DType dtype, Device device, const char* what) {
  const Tensor& t = v.value();
  DRWKV_ASSERT(t.shape() == shape && t.dtype() == dtype && t.device() == device, "%s: got %s, expected %s[%s] %s",
               what, describe(t).c_str(), dname(dtype).c_str(), shape.str().c_str(), device.str().c_str());
  return t.contiguous();
}

// Scratch of the CUDA reductions; the CPU kernels take none.
Tensor workspace(const Tensor& where, int64_t elems, DType acc) {
  if (!where.is_cuda() || elems <= 0) return Tensor();
  return Tensor::empty(Shape{elems}, acc, where.device());
}

// Where a kernel writes the gradient of input i: the engine's buffer when dtype and layout fit (then
// `accumulate` says whether it already holds a partial sum), otherwise a fresh buffer that commit() adds
// to the engine's one (a bound gradient of another dtype, or a strided view).
struct GradBuffer {
  Tensor target, buf;
  bool accumulate = false;
  bool used = false;

  // For kernels that add (+=): the buffer, zeroed unless it holds a partial sum.
  Tensor adding() {
    if (!accumulate) buf.zero_();
    return buf;
  }
  void commit() {
    if (used && !buf.shares_storage_with(target)) add_(target, buf);
  }
};
GradBuffer grad_buffer(BackwardContext& ctx, int i, DType dtype) {
  GradBuffer g;
  if (!ctx.needs(i)) return g;
  g.used = true;
  bool acc = false;
  g.target = ctx.target(i, &acc);
  if (g.target.dtype() == dtype && g.target.is_contiguous()) {
    g.buf = g.target;
    g.accumulate = acc;
  } else {
    g.buf = Tensor::empty(g.target.shape(), dtype, g.target.device());
  }
  return g;
}

// Runs the CPU or CUDA launcher of a kernel templated on (residual dtype, branch dtype).
#define DRWKV_OPS_LAUNCH2(where, TH, TY, name, ...)                                         \
  ::drwkv::autograd::launch<TH>(                                                       \
      #name, (where), [&] { ::drwkv::kernels::name##_cpu<TH, TY>(__VA_ARGS__); },      \
      [&](auto drwkv_stream_) { DRWKV_CUDA_ONLY(::drwkv::kernels::name##_cuda<TH, TY>(__VA_ARGS__, drwkv_stream_)); })

// Calls f(TH{}, TY{}) for the supported (residual, branch) dtype pairs.
template <typename F>
void dispatch_pair(DType th, DType ty, F&& f) {
  if (th == DType::F32 && ty == DType::F32) return f(float{}, float{});
  if (th == DType::F64 && ty == DType::F64) return f(double{}, double{});
  if (th == DType::F32 && ty == DType::BF16) return f(float{}, bf16{});
  DRWKV_FAIL("residual/branch dtypes %s/%s: supported are f32/f32, f64/f64, f32/bf16", dname(th).c_str(),
             dname(ty).c_str());
}

// [B, T, C] with T = grid_h · grid_w.
void check_tokens(const Tensor& x, int grid_h, int grid_w, const char* what) {
  DRWKV_ASSERT(x.dim() == 3 && grid_h > 0 && grid_w > 0 && x.size(1) == int64_t(grid_h) * grid_w,
               "%s: %s is not [B, %d·%d, C]", what, describe(x).c_str(), grid_h, grid_w);
}

// mod [B, M·C] with the named chunks inside.
void check_mod(const Tensor& mod, int64_t B, int64_t C, std::initializer_list<int> chunks, const char* what) {
  DRWKV_ASSERT(mod.dim() == 2 && mod.size(0) == B && mod.size(1) % C == 0, "%s: mod %s is not [%lld, M·%lld]", what,
               describe(mod).c_str(), (long long)B, (long long)C);
  for (int k : chunks)
    DRWKV_ASSERT(k >= 0 && k < mod.size(1) / C, "%s: chunk %d of mod %s", what, k, describe(mod).c_str());
}
}  // namespace

// ---- q-shift mix ---------------------------------------------------------------------------------------
std::vector<Variable> qshift_mix(const Variable& x, const std::vector<Variable>& mus, int grid_h, int grid_w,
                                 RecomputedPtr x_again) {
  const int M = int(mus.size());
  DRWKV_ASSERT(M >= 1 && M <= kernels::kQShiftMaxMix, "qshift_mix: %d mixes (1..%d)", M, kernels::kQShiftMaxMix);
  Tensor xv = x.value().contiguous();
  check_tokens(xv, grid_h, grid_w, "qshift_mix");
  const int64_t B = xv.size(0), C = xv.size(2);
  const DType acc = acc_dtype(xv.dtype());
  std::vector<Tensor> muv, outs;
  for (const Variable& mu : mus) {
    muv.push_back(checked(mu, Shape{C}, acc, xv.device(), "qshift_mix μ"));
    outs.push_back(Tensor::empty(xv.shape(), xv.dtype(), xv.device()));
  }
  dispatch_float(xv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    kernels::MixPtrs<T*> o;
    kernels::MixPtrs<const A*> mp;
    for (int m = 0; m < M; ++m) {
      o.p[m] = ptr<T>(outs[size_t(m)]);
      mp.p[m] = ptr<A>(muv[size_t(m)]);
    }
    DRWKV_LAUNCH(xv, T, qshift_mix_forward, o, ptr<T>(xv), mp, M, B, grid_h, grid_w, C);
  });
  std::vector<Variable> inputs{x};
  inputs.insert(inputs.end(), mus.begin(), mus.end());
  return make_results(outs, "qshift_mix", inputs, [saved = SavedInput(xv, x_again), muv, M, grid_h, grid_w,
                                                   acc](BackwardContext& ctx) {
    const Tensor xv = saved.get().contiguous();
    const int64_t B = xv.size(0), C = xv.size(2);
    std::vector<Tensor> douts;
    for (int m = 0; m < M; ++m) douts.push_back(ctx.grad_output_or_zeros(m).contiguous());
    GradBuffer gx = grad_buffer(ctx, 0, xv.dtype());
    std::vector<GradBuffer> gmu;
    for (int m = 0; m < M; ++m) gmu.push_back(grad_buffer(ctx, 1 + m, acc));
    Tensor ws = workspace(xv, kernels::qshift_mix_workspace(M, B, grid_h, grid_w, C), acc);
    dispatch_float(xv.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      kernels::MixPtrs<A*> dm;
      kernels::MixPtrs<const T*> dp;
      kernels::MixPtrs<const A*> mp;
      for (int m = 0; m < M; ++m) {
        GradBuffer& g = gmu[size_t(m)];
        dm.p[m] = g.used ? ptr<A>(g.adding()) : nullptr;
        dp.p[m] = ptr<T>(douts[size_t(m)]);
        mp.p[m] = ptr<A>(muv[size_t(m)]);
      }
      DRWKV_LAUNCH(xv, T, qshift_mix_backward, gx.used ? ptr<T>(gx.buf) : nullptr, dm, dp, ptr<T>(xv), mp, M, B,
                   grid_h, grid_w, C, gx.accumulate, ptr<A>(ws));
    });
    gx.commit();
    for (GradBuffer& g : gmu) g.commit();
  });
}

// ---- adaLN-Zero ----------------------------------------------------------------------------------------
namespace {
// layernorm_modulate's checked operands.
struct LnModArgs {
  Tensor hv, wv, bv, mv;
  int64_t B, T, C;
  DType acc;
};
LnModArgs ln_mod_args(const Variable& h, const Variable& ln_weight, const Variable& ln_bias, const Variable& mod,
                      int shift_chunk, int scale_chunk) {
  LnModArgs a;
  a.hv = h.value().contiguous();
  DRWKV_ASSERT(a.hv.dim() == 3, "layernorm_modulate: h %s is not [B, T, C]", describe(a.hv).c_str());
  a.B = a.hv.size(0), a.T = a.hv.size(1), a.C = a.hv.size(2);
  a.acc = acc_dtype(a.hv.dtype());
  const Device dev = a.hv.device();
  a.wv = ln_weight.defined() ? checked(ln_weight, Shape{a.C}, a.acc, dev, "layernorm_modulate weight") : Tensor();
  a.bv = ln_bias.defined() ? checked(ln_bias, Shape{a.C}, a.acc, dev, "layernorm_modulate bias") : Tensor();
  DRWKV_ASSERT(mod.value().dtype() == a.acc && mod.value().device() == dev, "layernorm_modulate: mod %s",
               describe(mod.value()).c_str());
  a.mv = mod.value().contiguous();
  check_mod(a.mv, a.B, a.C, {shift_chunk, scale_chunk}, "layernorm_modulate");
  return a;
}

// The node of y = layernorm_modulate(h) whose forward values (y, mean, rstd) are computed.
Variable record_layernorm_modulate(const Variable& h, const Variable& ln_weight, const Variable& ln_bias,
                                   const Variable& mod, const LnModArgs& a, int shift_chunk, int scale_chunk,
                                   DType out_dtype, RecomputedPtr h_again, const Tensor& y, const Tensor& mean,
                                   const Tensor& rstd) {
  return make_result(y, "layernorm_modulate", {h, ln_weight, ln_bias, mod},
                     [saved = SavedInput(a.hv, std::move(h_again)), wv = a.wv, bv = a.bv, mv = a.mv, mean, rstd,
                      shift_chunk, scale_chunk, out_dtype, acc = a.acc](BackwardContext& ctx) {
                       const Tensor hv = saved.get().contiguous();
                       const int64_t B = hv.size(0), T = hv.size(1), C = hv.size(2), ms = mv.size(1);
                       Tensor dy = ctx.grad_output(0).contiguous();
                       GradBuffer gh = grad_buffer(ctx, 0, hv.dtype());
                       GradBuffer gw = grad_buffer(ctx, 1, acc), gb = grad_buffer(ctx, 2, acc);
                       GradBuffer gm = grad_buffer(ctx, 3, acc);
                       Tensor dw = gw.used ? gw.adding() : Tensor(), db = gb.used ? gb.adding() : Tensor();
                       Tensor dm = gm.used ? gm.adding() : Tensor();
                       Tensor ws = workspace(hv, kernels::layernorm_modulate_workspace(B, T, C), acc);
                       dispatch_pair(hv.dtype(), out_dtype, [&](auto th, auto ty) {
                         using TH = decltype(th);
                         using TY = decltype(ty);
                         using A = acc_t<TH>;
                         A* d = ptr<A>(dm);
                         DRWKV_OPS_LAUNCH2(hv, TH, TY, layernorm_modulate_backward, gh.used ? ptr<TH>(gh.buf) : nullptr,
                                           ptr<A>(dw), ptr<A>(db), d ? d + shift_chunk * C : nullptr,
                                           d ? d + scale_chunk * C : nullptr, ptr<TY>(dy), ptr<TH>(hv), ptr<A>(mean),
                                           ptr<A>(rstd), ptr<A>(wv), ptr<A>(bv), ptr<A>(mv) + scale_chunk * C, ms, B,
                                           T, C, gh.accumulate, ptr<A>(ws));
                       });
                       gh.commit();
                       gw.commit();
                       gb.commit();
                       gm.commit();
                     });
}

// gated_residual's checked operands (r undefined for the plain one).
struct GatedArgs {
  const char* name;
  Tensor hv, yv, rv, mv, ss;
  int64_t B, T, C;
  DType acc;
};
GatedArgs gated_args(const Variable& h, const Variable& r, const Variable& y, const Variable& mod, int gate_chunk,
                     const Tensor& sample_scale) {
  GatedArgs a;
  a.name = r.defined() ? "receptance_gated_residual" : "gated_residual";
  a.hv = h.value().contiguous();
  DRWKV_ASSERT(a.hv.dim() == 3, "%s: h %s is not [B, T, C]", a.name, describe(a.hv).c_str());
  a.B = a.hv.size(0), a.T = a.hv.size(1), a.C = a.hv.size(2);
  a.acc = acc_dtype(a.hv.dtype());
  const Device dev = a.hv.device();
  DRWKV_ASSERT(y.value().shape() == a.hv.shape() && y.value().device() == dev, "%s: y %s for h %s", a.name,
               describe(y.value()).c_str(), describe(a.hv).c_str());
  a.yv = y.value().contiguous();
  if (r.defined()) {
    a.rv = r.value().contiguous();
    DRWKV_ASSERT(a.rv.shape() == a.yv.shape() && a.rv.dtype() == a.yv.dtype() && a.rv.device() == dev,
                 "%s: receptance r %s, expected the shape, dtype and device of y %s", a.name, describe(a.rv).c_str(),
                 describe(a.yv).c_str());
  }
  DRWKV_ASSERT(mod.value().dtype() == a.acc && mod.value().device() == dev, "%s: mod %s", a.name,
               describe(mod.value()).c_str());
  a.mv = mod.value().contiguous();
  check_mod(a.mv, a.B, a.C, {gate_chunk}, a.name);
  if (sample_scale.defined()) {
    DRWKV_ASSERT(sample_scale.shape() == Shape{a.B}, "%s: sample_scale %s for batch %lld", a.name,
                 describe(sample_scale).c_str(), (long long)a.B);
    a.ss = sample_scale.to(dev, a.acc).contiguous();
  }
  return a;
}

// The node of out = gated_residual(h, (r,) y) whose forward value is computed.
Variable record_gated_residual(const Variable& h, const Variable& r, const Variable& y, const Variable& mod,
                               const GatedArgs& a, int gate_chunk, RecomputedPtr y_again, const Tensor& out) {
  std::vector<Variable> inputs{h, y, mod};  // (, r)
  if (r.defined()) inputs.push_back(r);
  return make_result(out, a.name, inputs,
                     [saved = SavedInput(a.yv, std::move(y_again)), rv = a.rv, ys = a.yv.shape(), yt = a.yv.dtype(),
                      mv = a.mv, ss = a.ss, gate_chunk, acc = a.acc, th = a.hv.dtype()](BackwardContext& ctx) {
                       const int64_t B = ys[0], T = ys[1], C = ys[2], ms = mv.size(1);
                       Tensor g = ctx.grad_output(0).contiguous();
                       GradBuffer gy = grad_buffer(ctx, 1, yt);
                       GradBuffer gm = grad_buffer(ctx, 2, acc);
                       // dr into a buffer of its own, handed over after the kernel: r may be y itself
                       Tensor dr = rv.defined() && ctx.needs(3) ? Tensor::empty(ys, yt, rv.device()) : Tensor();
                       Tensor dm = gm.used ? gm.adding() : Tensor();
                       if (gy.used || gm.used || dr.defined()) {
                         const Tensor yv = saved.get().contiguous();
                         Tensor ws = gm.used ? workspace(yv, kernels::gated_residual_workspace(B, T, C), acc) : Tensor();
                         dispatch_pair(th, yv.dtype(), [&](auto tht, auto tyt) {
                           using TH = decltype(tht);
                           using TY = decltype(tyt);
                           using A = acc_t<TH>;
                           A* d = ptr<A>(dm);
                           DRWKV_OPS_LAUNCH2(yv, TH, TY, gated_residual_backward, gy.used ? ptr<TY>(gy.buf) : nullptr,
                                             ptr<TY>(dr), d ? d + gate_chunk * C : nullptr, ptr<TH>(g), ptr<TY>(yv),
                                             ptr<TY>(rv), ptr<A>(mv) + gate_chunk * C, ms, ptr<A>(ss), B, T, C,
                                             gy.accumulate, ptr<A>(ws));
                         });
                       }
                       gy.commit();
                       gm.commit();
                       if (dr.defined()) ctx.add(3, dr);
                       if (ctx.needs(0)) ctx.add(0, g);  // the residual path passes the gradient through
                     });
}

Variable gated_residual_op(const Variable& h, const Variable& r, const Variable& y, const Variable& mod,
                           int gate_chunk, const Tensor& sample_scale, RecomputedPtr y_again, Tensor* rounded) {
  const GatedArgs a = gated_args(h, r, y, mod, gate_chunk, sample_scale);
  const int64_t B = a.B, T = a.T, C = a.C, ms = a.mv.size(1);
  Tensor out = Tensor::empty(a.hv.shape(), a.hv.dtype(), a.hv.device());
  Tensor outr = rounded ? Tensor::empty(a.hv.shape(), a.yv.dtype(), a.hv.device()) : Tensor();
  dispatch_pair(a.hv.dtype(), a.yv.dtype(), [&](auto th, auto ty) {
    using TH = decltype(th);
    using TY = decltype(ty);
    using A = acc_t<TH>;
    DRWKV_OPS_LAUNCH2(a.hv, TH, TY, gated_residual_forward, ptr<TH>(out), ptr<TY>(outr), ptr<TH>(a.hv), ptr<TY>(a.yv),
                      ptr<TY>(a.rv), ptr<A>(a.mv) + gate_chunk * C, ms, ptr<A>(a.ss), B, T, C);
  });
  if (rounded) *rounded = outr;
  return record_gated_residual(h, r, y, mod, a, gate_chunk, std::move(y_again), out);
}
}  // namespace

Variable layernorm_modulate(const Variable& h, const Variable& ln_weight, const Variable& ln_bias, double eps,
                            const Variable& mod, int shift_chunk, int scale_chunk, DType out_dtype,
                            RecomputedPtr h_again) {
  const LnModArgs a = ln_mod_args(h, ln_weight, ln_bias, mod, shift_chunk, scale_chunk);
  const int64_t B = a.B, T = a.T, C = a.C, ms = a.mv.size(1);
  const Device dev = a.hv.device();
  Tensor y = Tensor::empty(a.hv.shape(), out_dtype, dev);
  Tensor mean = Tensor::empty(Shape{B * T}, a.acc, dev), rstd = Tensor::empty(Shape{B * T}, a.acc, dev);
  dispatch_pair(a.hv.dtype(), out_dtype, [&](auto th, auto ty) {
    using TH = decltype(th);
    using TY = decltype(ty);
    using A = acc_t<TH>;
    const A* m = ptr<A>(a.mv);
    DRWKV_OPS_LAUNCH2(a.hv, TH, TY, layernorm_modulate_forward, ptr<TY>(y), ptr<A>(mean), ptr<A>(rstd),
                      ptr<TH>(a.hv), ptr<A>(a.wv), ptr<A>(a.bv), m + shift_chunk * C, m + scale_chunk * C, ms, B, T,
                      C, eps);
  });
  return record_layernorm_modulate(h, ln_weight, ln_bias, mod, a, shift_chunk, scale_chunk, out_dtype,
                                   std::move(h_again), y, mean, rstd);
}

Variable gated_residual(const Variable& h, const Variable& y, const Variable& mod, int gate_chunk,
                        const Tensor& sample_scale, RecomputedPtr y_again) {
  return gated_residual_op(h, Variable(), y, mod, gate_chunk, sample_scale, std::move(y_again), nullptr);
}

Variable receptance_gated_residual(const Variable& h, const Variable& r, const Variable& y, const Variable& mod,
                                   int gate_chunk, const Tensor& sample_scale, Tensor* rounded) {
  DRWKV_ASSERT(r.defined(), "receptance_gated_residual: no receptance r");
  return gated_residual_op(h, r, y, mod, gate_chunk, sample_scale, nullptr, rounded);
}

namespace {
// The fused forward's checked operands: the residual's (r undefined for the plain one) and the norm's
// (whose h is h1: h's shape and dtype; its mod may be another tensor with the same row stride).
struct GatedLnArgs {
  GatedArgs g;
  LnModArgs l;
};
GatedLnArgs gated_ln_args(const Variable& h, const Variable& r, const Variable& y, const Variable& mod, int gate_chunk,
                          const Tensor& sample_scale, const Variable& ln_weight, const Variable& ln_bias,
                          const Variable& ln_mod, int shift_chunk, int scale_chunk, DType out_dtype) {
  GatedLnArgs a{gated_args(h, r, y, mod, gate_chunk, sample_scale),
                ln_mod_args(h, ln_weight, ln_bias, ln_mod, shift_chunk, scale_chunk)};
  DRWKV_ASSERT(a.g.yv.dtype() == out_dtype, "%s_layernorm_modulate: y %s, expected the norm output's %s", a.g.name,
               describe(a.g.yv).c_str(), dname(out_dtype).c_str());
  DRWKV_ASSERT(a.l.mv.size(1) == a.g.mv.size(1),
               "%s_layernorm_modulate: the norm's mod %s and the gate's %s differ in row length", a.g.name,
               describe(a.l.mv).c_str(), describe(a.g.mv).c_str());
  return a;
}
void launch_gated_ln_forward(const GatedLnArgs& a, const Tensor& h1v, const Tensor& h1r, const Tensor& x,
                             const Tensor& mean, const Tensor& rstd, int gate_chunk, int shift_chunk, int scale_chunk,
                             double eps) {
  const GatedArgs& g = a.g;
  const int64_t B = g.B, T = g.T, C = g.C, ms = g.mv.size(1);
  dispatch_pair(g.hv.dtype(), g.yv.dtype(), [&](auto th, auto ty) {
    using TH = decltype(th);
    using TY = decltype(ty);
    using A = acc_t<TH>;
    const A* m = ptr<A>(g.mv);
    const A* lm = ptr<A>(a.l.mv);
    DRWKV_OPS_LAUNCH2(g.hv, TH, TY, gated_residual_layernorm_modulate_forward, ptr<TH>(h1v), ptr<TY>(h1r), ptr<TY>(x),
                      ptr<A>(mean), ptr<A>(rstd), ptr<TH>(g.hv), ptr<TY>(g.yv), ptr<TY>(g.rv), m + gate_chunk * C,
                      ptr<A>(g.ss), ptr<A>(a.l.wv), ptr<A>(a.l.bv), lm + shift_chunk * C, lm + scale_chunk * C, ms, B,
                      T, C, eps);
  });
}

// The op of gated_residual_layernorm_modulate and receptance_gated_residual_layernorm_modulate.
std::pair<Variable, Variable> gated_ln_op(const Variable& h, const Variable& r, const Variable& y, const Variable& mod,
                                          int gate_chunk, const Tensor& sample_scale, const Variable& ln_weight,
                                          const Variable& ln_bias, double eps, const Variable& ln_mod,
                                          int shift_chunk, int scale_chunk, DType out_dtype, Tensor* rounded) {
  const GatedLnArgs a = gated_ln_args(h, r, y, mod, gate_chunk, sample_scale, ln_weight, ln_bias, ln_mod, shift_chunk,
                                      scale_chunk, out_dtype);
  const GatedArgs& g = a.g;
  const Device dev = g.hv.device();
  Tensor h1v = Tensor::empty(g.hv.shape(), g.hv.dtype(), dev);
  Tensor x = Tensor::empty(g.hv.shape(), out_dtype, dev);
  Tensor mean = Tensor::empty(Shape{g.B * g.T}, g.acc, dev), rstd = Tensor::empty(Shape{g.B * g.T}, g.acc, dev);
  Tensor h1r = rounded ? Tensor::empty(g.hv.shape(), g.yv.dtype(), dev) : Tensor();
  launch_gated_ln_forward(a, h1v, h1r, x, mean, rstd, gate_chunk, shift_chunk, scale_chunk, eps);
  if (rounded) *rounded = h1r;
  // One node for both outputs, so that the backward too is one kernel: the norm's backward forms each row
  // of dh1 that the residual's backward reads. Without a receptance it keeps h (kept anyway: the block
  // input), not h1, which the kernel forms again from h and y (read anyway); with one, h1 is the block's
  // output, kept anyway as the next block's input.
  const bool separate_ln_mod = ln_mod.impl() != mod.impl();
  std::vector<Variable> inputs{h, y, mod, ln_weight, ln_bias};
  if (r.defined()) inputs.push_back(r);
  if (separate_ln_mod) inputs.push_back(ln_mod);
  const int r_input = r.defined() ? 5 : -1, ln_mod_input = separate_ln_mod ? int(inputs.size()) - 1 : 2;
  std::vector<Variable> outs = make_results(
      {h1v, x}, r.defined() ? "receptance_gated_residual_layernorm_modulate" : "gated_residual_layernorm_modulate",
      inputs,
      [rows = r.defined() ? h1v : g.hv, form_row = !r.defined(), yv = g.yv, rv = g.rv, mv = g.mv, lmv = a.l.mv,
       ss = g.ss, wv = a.l.wv, bv = a.l.bv, mean, rstd, gate_chunk, shift_chunk, scale_chunk, r_input, ln_mod_input,
       acc = g.acc](BackwardContext& ctx) {
        const int64_t B = yv.size(0), T = yv.size(1), C = yv.size(2), ms = mv.size(1);
        Tensor dx = ctx.grad_output_or_zeros(1).contiguous();
        // dh1: the gradient h1 received from its other consumers, completed in place (or fresh)
        Tensor dh1 = ctx.grad_output_to_modify(0);
        const bool accumulate = dh1.defined();
        if (!accumulate) dh1 = Tensor::empty(rows.shape(), rows.dtype(), rows.device());
        // dy into the engine's buffer when it fits, else a fresh one (y's gradient is always formed: dh1 is)
        GradBuffer gy = grad_buffer(ctx, 1, yv.dtype());
        Tensor dy = gy.used ? gy.buf : Tensor::empty(yv.shape(), yv.dtype(), yv.device());
        // dr into a buffer of its own, handed over after the kernel: r may be y itself
        Tensor dr = r_input >= 0 && ctx.needs(r_input) ? Tensor::empty(yv.shape(), yv.dtype(), yv.device()) : Tensor();
        GradBuffer gm = grad_buffer(ctx, 2, acc), gw = grad_buffer(ctx, 3, acc), gb = grad_buffer(ctx, 4, acc);
        GradBuffer glm = ln_mod_input != 2 ? grad_buffer(ctx, ln_mod_input, acc) : GradBuffer();
        Tensor dm = gm.used ? gm.adding() : Tensor(), dw = gw.used ? gw.adding() : Tensor();
        Tensor db = gb.used ? gb.adding() : Tensor();
        Tensor dlm = ln_mod_input == 2 ? dm : glm.used ? glm.adding() : Tensor();
        Tensor ws = workspace(rows, kernels::gated_residual_layernorm_modulate_backward_workspace(B, T, C), acc);
        // h's gradient is h1's (the residual passes it through). When h already holds a partial sum (a long
        // skip's), the kernel adds h1's rows into it, instead of the engine adding the two afterwards.
        Tensor pass = ctx.needs(0) ? ctx.partial_sum(0) : Tensor();
        if (pass.defined() && (pass.dtype() != rows.dtype() || !pass.is_contiguous())) pass = Tensor();
        dispatch_pair(rows.dtype(), yv.dtype(), [&](auto th, auto ty) {
          using TH = decltype(th);
          using TY = decltype(ty);
          using A = acc_t<TH>;
          A* d = ptr<A>(dm);
          A* dl = ptr<A>(dlm);
          const A* m = ptr<A>(mv);
          DRWKV_OPS_LAUNCH2(rows, TH, TY, gated_residual_layernorm_modulate_backward, ptr<TH>(dh1), ptr<TH>(pass),
                            ptr<TY>(dy),
                            ptr<TY>(dr), d ? d + gate_chunk * C : nullptr, ptr<A>(dw), ptr<A>(db),
                            dl ? dl + shift_chunk * C : nullptr, dl ? dl + scale_chunk * C : nullptr, ptr<TY>(dx),
                            form_row ? ptr<TH>(rows) : nullptr, form_row ? nullptr : ptr<TH>(rows), ptr<A>(mean),
                            ptr<A>(rstd), ptr<TY>(yv), ptr<TY>(rv), m + gate_chunk * C, ptr<A>(ss), ptr<A>(wv),
                            ptr<A>(bv), ptr<A>(lmv) + scale_chunk * C, ms, B, T, C, accumulate,
                            gy.used && gy.accumulate, ptr<A>(ws));
        });
        gy.commit();
        gm.commit();
        gw.commit();
        gb.commit();
        if (glm.used) glm.commit();
        if (dr.defined()) ctx.add(r_input, dr);
        if (ctx.needs(0) && !pass.defined()) ctx.add(0, dh1);  // the residual passes h1's gradient through to h
      });
  return {outs[0], outs[1]};
}
}  // namespace

std::pair<Variable, Variable> gated_residual_layernorm_modulate(const Variable& h, const Variable& y,
                                                                const Variable& mod, int gate_chunk,
                                                                const Tensor& sample_scale, const Variable& ln_weight,
                                                                const Variable& ln_bias, double eps, int shift_chunk,
                                                                int scale_chunk, DType out_dtype) {
  return gated_ln_op(h, Variable(), y, mod, gate_chunk, sample_scale, ln_weight, ln_bias, eps, mod, shift_chunk,
                     scale_chunk, out_dtype, nullptr);
}

std::pair<Variable, Variable> receptance_gated_residual_layernorm_modulate(
    const Variable& h, const Variable& r, const Variable& y, const Variable& mod, int gate_chunk,
    const Tensor& sample_scale, const Variable& ln_weight, const Variable& ln_bias, double eps, const Variable& ln_mod,
    int shift_chunk, int scale_chunk, DType out_dtype, Tensor* rounded) {
  DRWKV_ASSERT(r.defined(), "receptance_gated_residual_layernorm_modulate: no receptance r");
  return gated_ln_op(h, r, y, mod, gate_chunk, sample_scale, ln_weight, ln_bias, eps, ln_mod, shift_chunk,
                     scale_chunk, out_dtype, rounded);
}

Tensor gated_layernorm_modulate_value(const Tensor& h, const Tensor& y, const Tensor& mod, int gate_chunk,
                                      const Tensor& sample_scale, const Tensor& ln_weight, const Tensor& ln_bias,
                                      double eps, int shift_chunk, int scale_chunk, DType out_dtype) {
  auto var = [](const Tensor& t) { return t.defined() ? Variable(t) : Variable(); };
  const Variable m(mod);
  const GatedLnArgs a = gated_ln_args(Variable(h), Variable(), Variable(y), m, gate_chunk, sample_scale, var(ln_weight),
                                      var(ln_bias), m, shift_chunk, scale_chunk, out_dtype);
  const Device dev = a.g.hv.device();
  Tensor x = Tensor::empty(a.g.hv.shape(), out_dtype, dev);
  Tensor mean = Tensor::empty(Shape{a.g.B * a.g.T}, a.g.acc, dev), rstd = Tensor::empty(mean.shape(), a.g.acc, dev);
  launch_gated_ln_forward(a, Tensor(), Tensor(), x, mean, rstd, gate_chunk, shift_chunk, scale_chunk, eps);
  return x;
}

// ---- sigmoid gate --------------------------------------------------------------------------------------
Variable sigmoid_mul(const Variable& r, const Variable& z) {
  Tensor rv = r.value().contiguous(), zv = z.value().contiguous();
  DRWKV_ASSERT(rv.shape() == zv.shape() && rv.dtype() == zv.dtype() && rv.device() == zv.device(),
               "sigmoid_mul: r %s, z %s", describe(rv).c_str(), describe(zv).c_str());
  Tensor out = Tensor::empty(rv.shape(), rv.dtype(), rv.device());
  dispatch_float(rv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    DRWKV_LAUNCH(rv, T, sigmoid_mul_forward, ptr<T>(out), ptr<T>(rv), ptr<T>(zv), rv.numel());
  });
  // backward from r and the output (which the consumer's GEMM keeps anyway), not z (kernels/gate.h)
  return make_result(out, "sigmoid_mul", {r, z}, [rv, out](BackwardContext& ctx) {
    Tensor g = ctx.grad_output(0).contiguous();
    Tensor dr = ctx.needs(0) ? Tensor::empty(rv.shape(), rv.dtype(), rv.device()) : Tensor();
    Tensor dz = ctx.needs(1) ? Tensor::empty(rv.shape(), rv.dtype(), rv.device()) : Tensor();
    dispatch_float(rv.dtype(), [&](auto tag) {
      using T = decltype(tag);
      DRWKV_LAUNCH(rv, T, sigmoid_mul_backward, ptr<T>(dr), ptr<T>(dz), ptr<T>(g), ptr<T>(rv), ptr<T>(out), rv.numel());
    });
    if (dr.defined()) ctx.add(0, dr);
    if (dz.defined()) ctx.add(1, dz);
  });
}

// ---- output head ---------------------------------------------------------------------------------------
Variable linear_decoder(const Variable& h, const Variable& mod, const Variable& w_out, const Variable& b_out,
                        int patch, int grid_h, int grid_w, int out_channels, double eps) {
  Tensor hv = h.value().contiguous();
  check_tokens(hv, grid_h, grid_w, "linear_decoder");
  DRWKV_ASSERT(patch > 0 && out_channels > 0, "linear_decoder: patch %d, out channels %d", patch, out_channels);
  kernels::DecoderDims d;
  d.batch = hv.size(0);
  d.grid_h = grid_h;
  d.grid_w = grid_w;
  d.C = hv.size(2);
  d.patch = patch;
  d.out_channels = out_channels;
  const int64_t N = d.n_out();
  const DType acc = acc_dtype(hv.dtype());
  const Device dev = hv.device();
  Tensor mv = checked(mod, Shape{d.batch, 2 * d.C}, acc, dev, "linear_decoder mod");
  Tensor wv = checked(w_out, Shape{N, d.C}, acc, dev, "linear_decoder W_out");
  Tensor bv = b_out.defined() ? checked(b_out, Shape{N}, acc, dev, "linear_decoder b_out") : Tensor();
  Tensor out = Tensor::empty(Shape{d.batch, out_channels, int64_t(grid_h) * patch, int64_t(grid_w) * patch}, hv.dtype(), dev);
  Tensor mean = Tensor::empty(Shape{d.batch * d.tokens()}, acc, dev), rstd = Tensor::empty(mean.shape(), acc, dev);
  Tensor ws = workspace(hv, kernels::linear_decoder_workspace(d), acc);
  dispatch_float(hv.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    DRWKV_LAUNCH(hv, T, linear_decoder_forward, ptr<T>(out), ptr<A>(mean), ptr<A>(rstd), ptr<T>(hv), ptr<A>(mv),
                 ptr<A>(wv), ptr<A>(bv), d, eps, ptr<A>(ws));
  });
  return make_result(out, "linear_decoder", {h, mod, w_out, b_out}, [hv, mv, wv, bv, mean, rstd, out, d, acc](BackwardContext& ctx) {
    Tensor g = ctx.grad_output(0).contiguous();
    GradBuffer gh = grad_buffer(ctx, 0, hv.dtype());
    GradBuffer gm = grad_buffer(ctx, 1, acc), gw = grad_buffer(ctx, 2, acc), gb = grad_buffer(ctx, 3, acc);
    Tensor dm = gm.used ? gm.adding() : Tensor(), dw = gw.used ? gw.adding() : Tensor();
    Tensor db = gb.used ? gb.adding() : Tensor();
    Tensor ws = workspace(hv, kernels::linear_decoder_workspace(d), acc);
    dispatch_float(hv.dtype(), [&](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      DRWKV_LAUNCH(hv, T, linear_decoder_backward, gh.used ? ptr<T>(gh.buf) : nullptr, ptr<A>(dm), ptr<A>(dw), ptr<A>(db),
                   ptr<T>(g), ptr<T>(out), ptr<T>(hv), ptr<A>(mean), ptr<A>(rstd), ptr<A>(mv), ptr<A>(wv), ptr<A>(bv), d,
                   gh.accumulate, ptr<A>(ws));
    });
    gh.commit();
    gm.commit();
    gw.commit();
    gb.commit();
  });
}

// ---- patch embedding layout ----------------------------------------------------------------------------
Variable patchify(const Variable& x, int patch) {
  const Tensor& v = x.value();
  DRWKV_ASSERT(v.dim() == 4 && patch > 0 && v.size(2) % patch == 0 && v.size(3) % patch == 0,
               "patchify: %s is not [B, C, H, W] with H, W multiples of %d", describe(v).c_str(), patch);
  const int64_t B = v.size(0), C = v.size(1), gh = v.size(2) / patch, gw = v.size(3) / patch, P = patch;
  // [B, C, gh, P, gw, P] -> [B, gh, gw, C, P, P]: token (y, x) in raster order, patch vector (c, i, j)
  Tensor out = v.reshape(Shape{B, C, gh, P, gw, P}).permute({0, 2, 4, 1, 3, 5}).contiguous().reshape(Shape{B, gh * gw, C * P * P});
  return make_result(out, "patchify", {x}, [B, C, gh, gw, P](BackwardContext& ctx) {
    Tensor g = ctx.grad_output(0).reshape(Shape{B, gh, gw, C, P, P}).permute({0, 3, 1, 4, 2, 5}).contiguous();
    ctx.add(0, g.reshape(Shape{B, C, gh * P, gw * P}));
  });
}

}  // namespace drwkv::autograd

#undef DRWKV_OPS_LAUNCH2
