// adaLN-Zero CUDA kernels against the CPU reference (f64, same rounded inputs): LayerNorm + modulation
// forward/backward and the gated residual, f32 and bf16 branch, with and without affine, overwrite and
// accumulate, the 16-byte path and the scalar path (odd C, mod strides not a multiple of 4), several
// token blocks per sample, outputs poisoned first; the fused (receptance-)gated residual + LayerNorm-
// modulate forward and backward against the two kernels; determinism of the parameter gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "core/stream.h"
#include "kernels/adaln_zero.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
using testing::random_uniform_via_f32;
using testing::sum_tolerance;
using testing::to_f64;
const Device kGpu = Device::cuda(0);
StreamHandle stream() { return current_stream(0).handle(); }
template <typename T>
T* p(const Tensor& t) {
  return static_cast<T*>(t.data());
}

struct Case {
  int64_t B, T, C;
  bool affine, accumulate;
  int stride_pad;  // mod row stride = 6C + pad (pad 1: the scalar path)
};

template <typename TY>
void check_layernorm_modulate(const Case& k, uint64_t seed) {
  const DType ty = dtype_v<TY>;
  const int64_t B = k.B, T = k.T, C = k.C, ms = 6 * C + k.stride_pad;
  const int sh = 3, sc = 4;
  const std::string what = "B " + std::to_string(B) + " T " + std::to_string(T) + " C " + std::to_string(C) +
                           (k.affine ? " affine" : "") + (k.accumulate ? " acc" : "") + " pad " +
                           std::to_string(k.stride_pad) + " " + std::string(dtype_name(ty));
  Tensor h = random_uniform_via_f32(Shape{B, T, C}, DType::F32, kGpu, seed, -2, 3), h64 = to_f64(h);
  Tensor w = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 1, 0.5, 1.5), w64 = to_f64(w);
  Tensor bias = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 2), b64 = to_f64(bias);
  Tensor mod = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 3), mod64 = to_f64(mod);
  const float* wg = k.affine ? p<float>(w) : nullptr;
  const float* bg = k.affine ? p<float>(bias) : nullptr;
  const double* wr = k.affine ? p<double>(w64) : nullptr;
  const double* br = k.affine ? p<double>(b64) : nullptr;
  // forward
  Tensor y = testing::poisoned(Shape{B, T, C}, ty, kGpu);
  Tensor mean = testing::poisoned(Shape{B * T}, DType::F32, kGpu), rstd = testing::poisoned(Shape{B * T}, DType::F32, kGpu);
  Tensor y64 = Tensor::empty(Shape{B, T, C}, DType::F64), mean64 = Tensor::empty(Shape{B * T}, DType::F64),
         rstd64 = Tensor::empty(Shape{B * T}, DType::F64);
  layernorm_modulate_forward_cpu<double, double>(p<double>(y64), p<double>(mean64), p<double>(rstd64), p<double>(h64), wr,
                                                 br, p<double>(mod64) + sh * C, p<double>(mod64) + sc * C, ms, B, T, C, 1e-5);
  layernorm_modulate_forward_cuda<float, TY>(p<TY>(y), p<float>(mean), p<float>(rstd), p<float>(h), wg, bg,
                                             p<float>(mod) + sh * C, p<float>(mod) + sc * C, ms, B, T, C, 1e-5, stream());
  EXPECT_TENSORS_CLOSE(y, y64, testing::tolerance_for(ty), what + " y", seed);
  EXPECT_TENSORS_CLOSE(mean, mean64, (testing::Tolerance{2e-5, 1e-5}), what + " mean", seed);
  EXPECT_TENSORS_CLOSE(rstd, rstd64, (testing::Tolerance{5e-5, 1e-5}), what + " rstd", seed);
  // backward, from the statistics the GPU saved (the reference uses the same ones)
  Tensor stat_m = to_f64(mean), stat_r = to_f64(rstd);
  Tensor dy = random_uniform_via_f32(Shape{B, T, C}, ty, kGpu, seed + 4), dy64 = to_f64(dy);
  Tensor dh = k.accumulate ? random_uniform_via_f32(Shape{B, T, C}, DType::F32, kGpu, seed + 5)
                           : testing::poisoned(Shape{B, T, C}, DType::F32, kGpu);
  Tensor dh64 = k.accumulate ? to_f64(dh) : Tensor::empty(Shape{B, T, C}, DType::F64);
  Tensor dw = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 6), dw64 = to_f64(dw);
  Tensor db = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 7), db64 = to_f64(db);
  Tensor dmod = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 8), dmod64 = to_f64(dmod);
  Tensor ws = Tensor::empty(Shape{layernorm_modulate_workspace(B, T, C)}, DType::F32, kGpu);
  ws.fill_(std::nan(""));
  layernorm_modulate_backward_cpu<double, double>(
      p<double>(dh64), k.affine ? p<double>(dw64) : nullptr, k.affine ? p<double>(db64) : nullptr,
      p<double>(dmod64) + sh * C, p<double>(dmod64) + sc * C, p<double>(dy64), p<double>(h64), p<double>(stat_m),
      p<double>(stat_r), wr, br, p<double>(mod64) + sc * C, ms, B, T, C, k.accumulate, nullptr);
  layernorm_modulate_backward_cuda<float, TY>(p<float>(dh), k.affine ? p<float>(dw) : nullptr,
                                              k.affine ? p<float>(db) : nullptr, p<float>(dmod) + sh * C,
                                              p<float>(dmod) + sc * C, p<TY>(dy), p<float>(h), p<float>(mean),
                                              p<float>(rstd), wg, bg, p<float>(mod) + sc * C, ms, B, T, C, k.accumulate,
                                              p<float>(ws), stream());
  EXPECT_TENSORS_CLOSE(dh, dh64, (testing::Tolerance{1e-4, 1e-4}), what + " dh", seed);
  EXPECT_TENSORS_CLOSE(dmod, dmod64, sum_tolerance(T), what + " dmod (shift, scale; other chunks untouched)", seed);
  EXPECT_TENSORS_CLOSE(dw, dw64, sum_tolerance(B * T), what + " dweight", seed);
  EXPECT_TENSORS_CLOSE(db, db64, sum_tolerance(B * T), what + " dbias", seed);
}

// With `receptance`, the branch is σ(r) ⊙ y (r spanning both signs well past the sigmoid's knee).
template <typename TY>
void check_gated_residual(const Case& k, bool receptance, uint64_t seed) {
  const DType ty = dtype_v<TY>;
  const int64_t B = k.B, T = k.T, C = k.C, ms = 6 * C + k.stride_pad;
  const int gc = 2;
  const std::string what = std::string(receptance ? "receptance-gated" : "gated") + " B " + std::to_string(B) +
                           " T " + std::to_string(T) + " C " + std::to_string(C) + (k.accumulate ? " acc" : "") + " " +
                           std::string(dtype_name(ty));
  Tensor h = random_uniform_via_f32(Shape{B, T, C}, DType::F32, kGpu, seed), h64 = to_f64(h);
  Tensor y = random_uniform_via_f32(Shape{B, T, C}, ty, kGpu, seed + 1), y64 = to_f64(y);
  Tensor r, r64;
  if (receptance) {
    r = random_uniform_via_f32(Shape{B, T, C}, ty, kGpu, seed + 6, -5.0, 5.0);
    r64 = to_f64(r);
  }
  Tensor mod = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 2), mod64 = to_f64(mod);
  std::vector<float> sv;
  for (int64_t b = 0; b < B; ++b) sv.push_back(b % 3 == 1 ? 0.f : 1.f / 0.9f);
  Tensor ss = Tensor::from_vector(sv, Shape{B}, kGpu), ss64 = to_f64(ss);
  const TY* rp = receptance ? p<TY>(r) : nullptr;
  const double* rp64 = receptance ? p<double>(r64) : nullptr;
  for (const bool scaled : {false, true}) {
    const float* sg = scaled ? p<float>(ss) : nullptr;
    const double* sr = scaled ? p<double>(ss64) : nullptr;
    Tensor out = testing::poisoned(Shape{B, T, C}, DType::F32, kGpu), out64 = Tensor::empty(Shape{B, T, C}, DType::F64);
    gated_residual_forward_cpu<double, double>(p<double>(out64), nullptr, p<double>(h64), p<double>(y64), rp64,
                                               p<double>(mod64) + gc * C, ms, sr, B, T, C);
    Tensor rounded = testing::poisoned(Shape{B, T, C}, ty, kGpu);  // out in the branch dtype as well
    gated_residual_forward_cuda<float, TY>(p<float>(out), p<TY>(rounded), p<float>(h), p<TY>(y), rp,
                                           p<float>(mod) + gc * C, ms, sg, B, T, C, stream());
    EXPECT_TENSORS_CLOSE(out, out64, testing::tolerance_for(DType::F32), what + " out", seed);
    EXPECT_TENSORS_CLOSE(rounded, out.to(ty), (testing::Tolerance{0, 0}), what + " out rounded (bitwise a cast)", seed);
    Tensor inplace = h.clone();  // out aliasing h
    gated_residual_forward_cuda<float, TY>(p<float>(inplace), nullptr, p<float>(inplace), p<TY>(y), rp,
                                           p<float>(mod) + gc * C, ms, sg, B, T, C, stream());
    EXPECT_TENSORS_CLOSE(inplace, out64, testing::tolerance_for(DType::F32), what + " out in place", seed);

    Tensor dout = random_uniform_via_f32(Shape{B, T, C}, DType::F32, kGpu, seed + 3), dout64 = to_f64(dout);
    Tensor dy = k.accumulate ? random_uniform_via_f32(Shape{B, T, C}, ty, kGpu, seed + 4)
                             : testing::poisoned(Shape{B, T, C}, ty, kGpu);
    Tensor dr = testing::poisoned(Shape{B, T, C}, ty, kGpu);  // dr is always overwritten
    Tensor dy64 = k.accumulate ? to_f64(dy) : Tensor::empty(Shape{B, T, C}, DType::F64);
    Tensor dr64 = Tensor::empty(Shape{B, T, C}, DType::F64);
    Tensor dmod = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 5), dmod64 = to_f64(dmod);
    Tensor ws = Tensor::empty(Shape{gated_residual_workspace(B, T, C)}, DType::F32, kGpu);
    ws.fill_(std::nan(""));
    gated_residual_backward_cpu<double, double>(p<double>(dy64), receptance ? p<double>(dr64) : nullptr,
                                                p<double>(dmod64) + gc * C, p<double>(dout64), p<double>(y64), rp64,
                                                p<double>(mod64) + gc * C, ms, sr, B, T, C, k.accumulate, nullptr);
    gated_residual_backward_cuda<float, TY>(p<TY>(dy), receptance ? p<TY>(dr) : nullptr, p<float>(dmod) + gc * C,
                                            p<float>(dout), p<TY>(y), rp, p<float>(mod) + gc * C, ms, sg, B, T, C,
                                            k.accumulate, p<float>(ws), stream());
    EXPECT_TENSORS_CLOSE(dy, dy64, testing::tolerance_for(ty), what + " dy", seed);
    if (receptance) {
      EXPECT_TENSORS_CLOSE(dr, dr64, testing::tolerance_for(ty), what + " dr", seed);
    }
    EXPECT_TENSORS_CLOSE(dmod, dmod64, sum_tolerance(T), what + " dgate", seed);
  }
}

// Operands of the fused gated residual + LayerNorm-modulate: h, y, the receptance r (with `receptance`),
// affine parameters, the gate's mod and the norm's (another tensor of the same row stride with the
// receptance, as the next block's), drop-path scales.
struct GatedLnInputs {
  Tensor h, y, r, w, bias, mod, ln_mod, ss;
  GatedLnInputs(const Case& k, DType ty, bool receptance, uint64_t seed) {
    const int64_t B = k.B, T = k.T, C = k.C, ms = 6 * C + k.stride_pad;
    h = random_uniform_via_f32(Shape{B, T, C}, DType::F32, kGpu, seed, -2, 3);
    y = random_uniform_via_f32(Shape{B, T, C}, ty, kGpu, seed + 1);
    if (receptance) r = random_uniform_via_f32(Shape{B, T, C}, ty, kGpu, seed + 2, -5.0, 5.0);
    w = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 3, 0.5, 1.5);
    bias = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 4);
    mod = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 5);
    ln_mod = receptance ? random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 6) : mod;
    std::vector<float> sv;
    for (int64_t b = 0; b < B; ++b) sv.push_back(b % 3 == 1 ? 0.f : 1.f / 0.9f);
    ss = Tensor::from_vector(sv, Shape{B}, kGpu);
  }
};
template <typename T> const T* opt(const Tensor& t) { return t.defined() ? p<T>(t) : nullptr; }

// The fused gated residual + LayerNorm-modulate forward (with the receptance: the channel mix's residual
// and the next block's norm): bitwise the two kernels on the GPU, also without writing h1, and the f64
// CPU composition within the f32 / branch tolerances.
template <typename TY>
void check_gated_layernorm_modulate(const Case& k, bool receptance, uint64_t seed) {
  const DType ty = dtype_v<TY>;
  const int64_t B = k.B, T = k.T, C = k.C, ms = 6 * C + k.stride_pad;
  const std::string what = std::string(receptance ? "receptance-gated" : "gated") + "+LN B " + std::to_string(B) +
                           " T " + std::to_string(T) + " C " + std::to_string(C) + (k.affine ? " affine" : "") +
                           " pad " + std::to_string(k.stride_pad) + " " + std::string(dtype_name(ty));
  const GatedLnInputs in(k, ty, receptance, seed);
  const float* wg = k.affine ? p<float>(in.w) : nullptr;
  const float* bg = k.affine ? p<float>(in.bias) : nullptr;
  const float *m = p<float>(in.mod), *lm = p<float>(in.ln_mod);
  const TY* rp = opt<TY>(in.r);
  auto stats = [&] { return testing::poisoned(Shape{B * T}, DType::F32, kGpu); };
  // the two kernels
  Tensor h1 = testing::poisoned(Shape{B, T, C}, DType::F32, kGpu), x = testing::poisoned(Shape{B, T, C}, ty, kGpu);
  Tensor mean = stats(), rstd = stats();
  gated_residual_forward_cuda<float, TY>(p<float>(h1), nullptr, p<float>(in.h), p<TY>(in.y), rp, m + 2 * C, ms,
                                         p<float>(in.ss), B, T, C, stream());
  layernorm_modulate_forward_cuda<float, TY>(p<TY>(x), p<float>(mean), p<float>(rstd), p<float>(h1), wg, bg, lm + 3 * C,
                                             lm + 4 * C, ms, B, T, C, 1e-5, stream());
  // fused
  Tensor fh1 = testing::poisoned(Shape{B, T, C}, DType::F32, kGpu), fx = testing::poisoned(Shape{B, T, C}, ty, kGpu);
  Tensor fmean = stats(), frstd = stats();
  Tensor fh1r = testing::poisoned(Shape{B, T, C}, ty, kGpu);  // h1 in the branch dtype as well
  gated_residual_layernorm_modulate_forward_cuda<float, TY>(
      p<float>(fh1), p<TY>(fh1r), p<TY>(fx), p<float>(fmean), p<float>(frstd), p<float>(in.h), p<TY>(in.y), rp,
      m + 2 * C, p<float>(in.ss), wg, bg, lm + 3 * C, lm + 4 * C, ms, B, T, C, 1e-5, stream());
  const testing::Tolerance exact{0, 0};
  if (!receptance || C <= kGatedLayerNormBackwardFusedC) {  // x alone (h1 not written: the recomputation)
    Tensor ox = testing::poisoned(Shape{B, T, C}, ty, kGpu), omean = stats(), orstd = stats();
    gated_residual_layernorm_modulate_forward_cuda<float, TY>(
        nullptr, nullptr, p<TY>(ox), p<float>(omean), p<float>(orstd), p<float>(in.h), p<TY>(in.y), rp, m + 2 * C,
        p<float>(in.ss), wg, bg, lm + 3 * C, lm + 4 * C, ms, B, T, C, 1e-5, stream());
    EXPECT_TENSORS_CLOSE(ox, x, exact, what + " x without h1 (bitwise)", seed);
  }
  EXPECT_TENSORS_CLOSE(fh1, h1, exact, what + " h1 (bitwise)", seed);
  EXPECT_TENSORS_CLOSE(fh1r, fh1.to(ty), exact, what + " h1 rounded (bitwise a cast)", seed);
  EXPECT_TENSORS_CLOSE(fx, x, exact, what + " x (bitwise)", seed);
  EXPECT_TENSORS_CLOSE(fmean, mean, exact, what + " mean (bitwise)", seed);
  EXPECT_TENSORS_CLOSE(frstd, rstd, exact, what + " rstd (bitwise)", seed);
  // against the CPU in f64
  Tensor h64 = to_f64(in.h), y64 = to_f64(in.y), w64 = to_f64(in.w), b64 = to_f64(in.bias), mod64 = to_f64(in.mod),
         lmod64 = to_f64(in.ln_mod), ss64 = to_f64(in.ss), r64 = receptance ? to_f64(in.r) : Tensor();
  Tensor h164 = Tensor::empty(Shape{B, T, C}, DType::F64), x64 = Tensor::empty(Shape{B, T, C}, DType::F64);
  Tensor mean64 = Tensor::empty(Shape{B * T}, DType::F64), rstd64 = Tensor::empty(Shape{B * T}, DType::F64);
  gated_residual_layernorm_modulate_forward_cpu<double, double>(
      p<double>(h164), nullptr, p<double>(x64), p<double>(mean64), p<double>(rstd64), p<double>(h64), p<double>(y64),
      opt<double>(r64), p<double>(mod64) + 2 * C, p<double>(ss64), k.affine ? p<double>(w64) : nullptr,
      k.affine ? p<double>(b64) : nullptr, p<double>(lmod64) + 3 * C, p<double>(lmod64) + 4 * C, ms, B, T, C, 1e-5);
  EXPECT_TENSORS_CLOSE(fh1, h164, testing::tolerance_for(DType::F32), what + " h1", seed);
  EXPECT_TENSORS_CLOSE(fx, x64, testing::tolerance_for(ty), what + " x", seed);
}

// The fused backward against the f64 CPU composition of the two backwards and bitwise against the two
// CUDA kernels run on the forward's h1, with and without accumulation into dh1 and dy, drop-path scales
// and affine. Without the receptance the kernel gets h and forms h1 again; with it, h1 itself (and
// writes dr). Rows wider than 2048 channels take the two-kernel path.
template <typename TY>
void check_gated_layernorm_modulate_backward(const Case& k, bool receptance, uint64_t seed) {
  const DType ty = dtype_v<TY>;
  const int64_t B = k.B, T = k.T, C = k.C, ms = 6 * C + k.stride_pad;
  const std::string what = std::string(receptance ? "receptance-gated" : "gated") + "+LN backward B " +
                           std::to_string(B) + " T " + std::to_string(T) + " C " + std::to_string(C) +
                           (k.affine ? " affine" : "") + (k.accumulate ? " acc" : "") + " pad " +
                           std::to_string(k.stride_pad) + " " + std::string(dtype_name(ty));
  const Shape rows{B, T, C};
  const GatedLnInputs in(k, ty, receptance, seed);
  Tensor dx = random_uniform_via_f32(rows, ty, kGpu, seed + 7);
  const float* wg = k.affine ? p<float>(in.w) : nullptr;
  const float* bg = k.affine ? p<float>(in.bias) : nullptr;
  const float *m = p<float>(in.mod), *lm = p<float>(in.ln_mod);
  const TY* rp = opt<TY>(in.r);
  Tensor dh1_in = random_uniform_via_f32(rows, DType::F32, kGpu, seed + 8);
  Tensor dy_in = random_uniform_via_f32(rows, ty, kGpu, seed + 9);
  Tensor dmod_in = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 10);
  Tensor dlmod_in = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, seed + 11);
  Tensor dw_in = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 12);
  Tensor db_in = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 13);
  for (const bool scaled : {false, true}) {
    const std::string at = what + (scaled ? " scaled" : "");
    const float* sg = scaled ? p<float>(in.ss) : nullptr;
    // the forward: h1 and the statistics it saves
    Tensor h1 = Tensor::empty(rows, DType::F32, kGpu), x = Tensor::empty(rows, ty, kGpu);
    Tensor mean = Tensor::empty(Shape{B * T}, DType::F32, kGpu), rstd = Tensor::empty(Shape{B * T}, DType::F32, kGpu);
    gated_residual_layernorm_modulate_forward_cuda<float, TY>(p<float>(h1), nullptr, p<TY>(x), p<float>(mean),
                                                              p<float>(rstd),
                                                              p<float>(in.h), p<TY>(in.y), rp, m + 2 * C, sg, wg, bg,
                                                              lm + 3 * C, lm + 4 * C, ms, B, T, C, 1e-5, stream());
    auto start = [&](const Tensor& given, DType dt, bool acc) {
      return acc ? given.clone() : testing::poisoned(given.shape(), dt, kGpu);
    };
    // in the gradient of mod only the gate chunk is written, in that of the norm's mod shift and scale
    // (the same tensor without the receptance)
    struct Grads {
      Tensor dh1, dy, dr, dmod, dlmod, dw, db;
    };
    auto fresh = [&] {
      Grads g{start(dh1_in, DType::F32, k.accumulate), start(dy_in, ty, k.accumulate),
              receptance ? testing::poisoned(rows, ty, kGpu) : Tensor(), dmod_in.clone(),
              receptance ? dlmod_in.clone() : Tensor(), dw_in.clone(), db_in.clone()};
      if (!receptance) g.dlmod = g.dmod;
      return g;
    };
    Tensor ws = Tensor::empty(Shape{gated_residual_layernorm_modulate_backward_workspace(B, T, C)}, DType::F32, kGpu);
    ws.fill_(std::nan(""));
    // fused (dh_pass: a partial sum of h's gradient that dh1's rows are added to)
    auto fused = [&](Grads& g, float* dh_pass) {
      gated_residual_layernorm_modulate_backward_cuda<float, TY>(
          p<float>(g.dh1), dh_pass, p<TY>(g.dy), receptance ? p<TY>(g.dr) : nullptr, p<float>(g.dmod) + 2 * C,
          k.affine ? p<float>(g.dw) : nullptr, k.affine ? p<float>(g.db) : nullptr, p<float>(g.dlmod) + 3 * C,
          p<float>(g.dlmod) + 4 * C, p<TY>(dx), receptance ? nullptr : p<float>(in.h),
          receptance ? p<float>(h1) : nullptr, p<float>(mean), p<float>(rstd), p<TY>(in.y), rp, m + 2 * C, sg, wg, bg,
          lm + 4 * C, ms, B, T, C, k.accumulate, k.accumulate, p<float>(ws), stream());
    };
    Grads f = fresh();
    fused(f, nullptr);
    // the two CUDA kernels, on the forward's h1
    Grads u = fresh();
    layernorm_modulate_backward_cuda<float, TY>(p<float>(u.dh1), k.affine ? p<float>(u.dw) : nullptr,
                                                k.affine ? p<float>(u.db) : nullptr, p<float>(u.dlmod) + 3 * C,
                                                p<float>(u.dlmod) + 4 * C, p<TY>(dx), p<float>(h1), p<float>(mean),
                                                p<float>(rstd), wg, bg, lm + 4 * C, ms, B, T, C, k.accumulate,
                                                p<float>(ws), stream());
    gated_residual_backward_cuda<float, TY>(p<TY>(u.dy), receptance ? p<TY>(u.dr) : nullptr, p<float>(u.dmod) + 2 * C,
                                            p<float>(u.dh1), p<TY>(in.y), rp, m + 2 * C, ms, sg, B, T, C, k.accumulate,
                                            p<float>(ws), stream());
    const testing::Tolerance exact{0, 0};
    EXPECT_TENSORS_CLOSE(f.dh1, u.dh1, exact, at + " dh1 (bitwise the two kernels)", seed);
    EXPECT_TENSORS_CLOSE(f.dy, u.dy, exact, at + " dy (bitwise the two kernels)", seed);
    if (receptance) {
      EXPECT_TENSORS_CLOSE(f.dr, u.dr, exact, at + " dr (bitwise the two kernels)", seed);
    }
    {  // with dh_pass: the partial sum plus dh1, bitwise; the other gradients unchanged
      Grads q = fresh();
      Tensor pass = random_uniform_via_f32(rows, DType::F32, kGpu, seed + 14);
      std::vector<float> want = pass.to(Device::cpu()).to_vector<float>();
      const Tensor f_dh1 = f.dh1.to(Device::cpu());
      const std::vector<float> d1 = f_dh1.to_vector<float>();
      for (size_t i = 0; i < want.size(); ++i) want[i] += d1[i];
      fused(q, p<float>(pass));
      EXPECT_TENSORS_CLOSE(pass, Tensor::from_vector(want, rows), exact, at + " dh_pass += dh1", seed);
      EXPECT_TENSORS_CLOSE(q.dy, f.dy, exact, at + " dy with dh_pass", seed);
      EXPECT_TENSORS_CLOSE(q.dmod, f.dmod, exact, at + " dmod with dh_pass", seed);
    }
    // against the CPU in f64
    Tensor dh164 = k.accumulate ? to_f64(dh1_in) : Tensor::empty(rows, DType::F64);
    Tensor dy64 = k.accumulate ? to_f64(dy_in) : Tensor::empty(rows, DType::F64);
    Tensor dr64 = Tensor::empty(rows, DType::F64), dmod64 = to_f64(dmod_in), dw64 = to_f64(dw_in), db64 = to_f64(db_in);
    Tensor dlmod64 = receptance ? to_f64(dlmod_in) : dmod64;
    Tensor h64 = to_f64(in.h), h164 = to_f64(h1), y64 = to_f64(in.y), dx64 = to_f64(dx), mod64 = to_f64(in.mod);
    Tensor lmod64 = to_f64(in.ln_mod), ss64 = to_f64(in.ss), r64 = receptance ? to_f64(in.r) : Tensor();
    Tensor w64 = to_f64(in.w), b64 = to_f64(in.bias), mean64 = to_f64(mean), rstd64 = to_f64(rstd);
    gated_residual_layernorm_modulate_backward_cpu<double, double>(
        p<double>(dh164), nullptr, p<double>(dy64), receptance ? p<double>(dr64) : nullptr, p<double>(dmod64) + 2 * C,
        k.affine ? p<double>(dw64) : nullptr, k.affine ? p<double>(db64) : nullptr, p<double>(dlmod64) + 3 * C,
        p<double>(dlmod64) + 4 * C, p<double>(dx64), receptance ? nullptr : p<double>(h64),
        receptance ? p<double>(h164) : nullptr, p<double>(mean64), p<double>(rstd64), p<double>(y64), opt<double>(r64),
        p<double>(mod64) + 2 * C, scaled ? p<double>(ss64) : nullptr, k.affine ? p<double>(w64) : nullptr,
        k.affine ? p<double>(b64) : nullptr, p<double>(lmod64) + 4 * C, ms, B, T, C, k.accumulate, k.accumulate,
        nullptr);
    EXPECT_TENSORS_CLOSE(f.dh1, dh164, (testing::Tolerance{1e-4, 1e-4}), at + " dh1", seed);
    EXPECT_TENSORS_CLOSE(f.dy, dy64, testing::tolerance_for(ty), at + " dy", seed);
    if (receptance) {
      EXPECT_TENSORS_CLOSE(f.dr, dr64, testing::tolerance_for(ty), at + " dr", seed);
      EXPECT_TENSORS_CLOSE(f.dlmod, dlmod64, sum_tolerance(T), at + " dmod of the norm (shift, scale)", seed);
    }
    EXPECT_TENSORS_CLOSE(f.dmod, dmod64, sum_tolerance(T), at + " dmod (gate; without r also shift, scale)", seed);
    EXPECT_TENSORS_CLOSE(f.dw, dw64, sum_tolerance(B * T), at + " dweight", seed);
    EXPECT_TENSORS_CLOSE(f.db, db64, sum_tolerance(B * T), at + " dbias", seed);
  }
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c{
      {2, 3, 64, true, false, 0},  {1, 1, 8, false, true, 0},   {2, 70, 40, true, true, 0},  {3, 5, 12, false, false, 0},
      {1, 130, 96, true, false, 0}, {2, 10, 1024, true, true, 0}, {1, 3, 2000, false, true, 0}, {2, 65, 6, true, false, 0},
      {2, 9, 64, true, true, 1},    {8, 256, 384, true, false, 0}, {1, 2, 4096, true, true, 0}};
  return c;
}

TEST(AdaLNGpu, LayerNormModulateMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 1;
  for (const Case& k : cases()) {
    check_layernorm_modulate<float>(k, seed += 10);
    check_layernorm_modulate<bf16>(k, seed += 10);
  }
}

TEST(AdaLNGpu, GatedResidualMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 500;
  for (const Case& k : cases()) {
    for (const bool receptance : {false, true}) {
      check_gated_residual<float>(k, receptance, seed += 10);
      check_gated_residual<bf16>(k, receptance, seed += 10);
    }
  }
}

TEST(AdaLNGpu, GatedLayerNormModulateMatchesTheTwoKernels) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 900;
  for (const Case& k : cases())
    for (const bool receptance : {false, true}) {
      check_gated_layernorm_modulate<float>(k, receptance, seed += 10);
      check_gated_layernorm_modulate<bf16>(k, receptance, seed += 10);
    }
}

TEST(AdaLNGpu, GatedLayerNormModulateBackwardMatchesCpuAndTheTwoKernels) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 1300;
  for (const Case& k : cases())
    for (const bool receptance : {false, true}) {
      check_gated_layernorm_modulate_backward<float>(k, receptance, seed += 20);
      check_gated_layernorm_modulate_backward<bf16>(k, receptance, seed += 20);
    }
}

TEST(AdaLNGpu, ParameterGradientsAreDeterministic) {
  DRWKV_REQUIRE_GPU();
  const int64_t B = 64, T = 256, C = 384, ms = 6 * C;
  Tensor h = random_uniform_via_f32(Shape{B, T, C}, DType::F32, kGpu, 1),
         dy = random_uniform_via_f32(Shape{B, T, C}, DType::BF16, kGpu, 2);
  Tensor w = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, 3),
         bias = random_uniform_via_f32(Shape{C}, DType::F32, kGpu, 4);
  Tensor mod = random_uniform_via_f32(Shape{B, ms}, DType::F32, kGpu, 5);
  Tensor y = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu), mean = Tensor::empty(Shape{B * T}, DType::F32, kGpu),
         rstd = Tensor::empty(Shape{B * T}, DType::F32, kGpu), dh = Tensor::empty(Shape{B, T, C}, DType::F32, kGpu);
  Tensor ws = Tensor::empty(Shape{layernorm_modulate_workspace(B, T, C)}, DType::F32, kGpu);
  layernorm_modulate_forward_cuda<float, bf16>(p<bf16>(y), p<float>(mean), p<float>(rstd), p<float>(h), p<float>(w),
                                               p<float>(bias), p<float>(mod), p<float>(mod) + C, ms, B, T, C, 1e-5, stream());
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Tensor grads = Tensor::zeros(Shape{2 * C + B * ms}, DType::F32, kGpu);
    float* g = p<float>(grads);
    layernorm_modulate_backward_cuda<float, bf16>(p<float>(dh), g, g + C, g + 2 * C, g + 3 * C, p<bf16>(dy), p<float>(h),
                                                  p<float>(mean), p<float>(rstd), p<float>(w), p<float>(bias),
                                                  p<float>(mod) + C, ms, B, T, C, false, p<float>(ws), stream());
    std::vector<float> v = grads.to_vector<float>();
    if (run == 0) first = v;
    else EXPECT_EQ(0, std::memcmp(first.data(), v.data(), v.size() * sizeof(float))) << "gradients differ between runs";
  }
}

}  // namespace
}  // namespace drwkv::kernels
