// DRWKV fused ops (kernels/shift.h, adaln_zero.h, gate.h, linear_decoder.h), forward and backward at the
// DRWKV-S/B (C = 384) and DRWKV-H (C = 1024) widths, B = 256, T = 256 (32×32 latents, patch 2), with the
// training precision: f32 residual stream, bf16 branch, f32 parameters and gradients.
//
// Each row times the op's launcher (all its kernels, finishing reductions included) and counts the bytes
// the op must move at least: its inputs read once and its outputs written once (gradients that accumulate
// are read too); neighbour re-reads, statistics, partial sums and parameters are not counted. GB/s is
// compared with the device-to-device copy bandwidth measured in the same run.
//
//   build/bench/drwkv_ops_gpu_bench [--iters N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/adaln_zero.h"
#include "kernels/gate.h"
#include "kernels/linear_decoder.h"
#include "kernels/shift.h"

namespace drwkv::bench {
namespace {
using kernels::MixPtrs;
const Device kGpu = Device::cuda(0);

// Uniform values in [lo, hi) drawn on the host (Philox), uploaded in dtype dt.
Tensor random(const Shape& s, DType dt, uint64_t seed, double lo = -1, double hi = 1) {
  Tensor t = Tensor::empty(s, DType::F32);
  rng_uniform_(t, seed, 0xBE7C);
  float* v = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = float(lo + (hi - lo) * double(v[i]));
  return t.to(kGpu, dt);
}
template <typename T> T* p(const Tensor& t) { return static_cast<T*>(t.data()); }

struct Row {
  std::string op;
  int64_t C;
  std::string pass;
  double ms, bytes;
};

}  // namespace
}  // namespace drwkv::bench

int main(int argc, char** argv) {
  using namespace drwkv;
  using namespace drwkv::bench;
  int iters = 20;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::atoi(argv[i + 1]);
  StreamHandle s = current_stream(0).handle();
  const double copy = copy_bandwidth_gbs(0);
  std::printf("drwkv fused ops, %s, %s; device-to-device copy %.0f GB/s (read + write)\n\n", device_name(0).c_str(),
              now_string().c_str(), copy);
  std::vector<Row> rows;
  auto time = [&](const std::function<void()>& fn) { return time_gpu(0, fn, 3, iters).median_ms; };

  const int64_t B = 256, gh = 16, gw = 16, T = gh * gw;
  for (int64_t C : {int64_t(384), int64_t(1024)}) {
    const int64_t n = B * T * C;
    const double N2 = 2.0 * double(n), N4 = 4.0 * double(n);  // bytes of a bf16 / f32 token tensor
    // ---- q-shift mix: spatial (M = 3) and channel (M = 2) ----
    Tensor x = random(Shape{B, T, C}, DType::BF16, 1);
    for (int M : {3, 2}) {
      std::vector<Tensor> mu, out, dout;
      MixPtrs<bf16*> op;
      MixPtrs<const bf16*> dp;
      MixPtrs<const float*> mp;
      for (int m = 0; m < M; ++m) {
        mu.push_back(random(Shape{C}, DType::F32, 10 + m, 0, 1));
        out.push_back(Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu));
        dout.push_back(random(Shape{B, T, C}, DType::BF16, 20 + m));
        op.p[m] = p<bf16>(out.back());
        dp.p[m] = p<bf16>(dout.back());
        mp.p[m] = p<float>(mu.back());
      }
      Tensor dmu = Tensor::zeros(Shape{M, C}, DType::F32, kGpu), dx = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu);
      Tensor ws = Tensor::empty(Shape{kernels::qshift_mix_workspace(M, B, gh, gw, C)}, DType::F32, kGpu);
      MixPtrs<float*> dm;
      for (int m = 0; m < M; ++m) dm.p[m] = p<float>(dmu) + m * C;
      const std::string name = "qshift_mix M=" + std::to_string(M);
      rows.push_back({name, C, "forward", time([&] {
                        kernels::qshift_mix_forward_cuda<bf16>(op, p<bf16>(x), mp, M, B, gh, gw, C, s);
                      }),
                      (1 + M) * N2});
      rows.push_back({name, C, "backward", time([&] {
                        kernels::qshift_mix_backward_cuda<bf16>(p<bf16>(dx), dm, dp, p<bf16>(x), mp, M, B, gh, gw, C,
                                                                false, p<float>(ws), s);
                      }),
                      (M + 2) * N2});
    }
    // ---- layernorm_modulate: f32 h -> bf16 y, affine, chunks of a [B, 6C] mod ----
    Tensor h = random(Shape{B, T, C}, DType::F32, 2, -2, 2);
    Tensor w = random(Shape{C}, DType::F32, 3, 0.5, 1.5), bias = random(Shape{C}, DType::F32, 4);
    Tensor mod = random(Shape{B, 6 * C}, DType::F32, 5);
    Tensor y = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu);
    Tensor mean = Tensor::empty(Shape{B * T}, DType::F32, kGpu), rstd = Tensor::empty(Shape{B * T}, DType::F32, kGpu);
    Tensor dy = random(Shape{B, T, C}, DType::BF16, 6), dh = random(Shape{B, T, C}, DType::F32, 7);
    Tensor dw = Tensor::zeros(Shape{C}, DType::F32, kGpu), db = Tensor::zeros(Shape{C}, DType::F32, kGpu);
    Tensor dmod = Tensor::zeros(Shape{B, 6 * C}, DType::F32, kGpu);
    Tensor ws = Tensor::empty(Shape{kernels::layernorm_modulate_workspace(B, T, C)}, DType::F32, kGpu);
    const float* m = p<float>(mod);
    rows.push_back({"layernorm_modulate", C, "forward", time([&] {
                      kernels::layernorm_modulate_forward_cuda<float, bf16>(p<bf16>(y), p<float>(mean), p<float>(rstd),
                                                                            p<float>(h), p<float>(w), p<float>(bias), m,
                                                                            m + C, 6 * C, B, T, C, 1e-5, s);
                    }),
                    N4 + N2});
    // dh accumulates (h also receives the residual pass-through), so it is read and written
    rows.push_back({"layernorm_modulate", C, "backward", time([&] {
                      kernels::layernorm_modulate_backward_cuda<float, bf16>(
                          p<float>(dh), p<float>(dw), p<float>(db), p<float>(dmod), p<float>(dmod) + C, p<bf16>(dy),
                          p<float>(h), p<float>(mean), p<float>(rstd), p<float>(w), p<float>(bias), m + C, 6 * C, B, T, C,
                          true, p<float>(ws), s);
                    }),
                    N2 + N4 + 2 * N4});
    // ---- gated residual with drop-path scales ----
    Tensor scale = random(Shape{B}, DType::F32, 8, 0, 1.2), out = Tensor::empty(Shape{B, T, C}, DType::F32, kGpu);
    Tensor dout = random(Shape{B, T, C}, DType::F32, 9), dyg = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu);
    Tensor wsg = Tensor::empty(Shape{kernels::gated_residual_workspace(B, T, C)}, DType::F32, kGpu);
    Tensor r = random(Shape{B, T, C}, DType::BF16, 10, -4, 4), z = random(Shape{B, T, C}, DType::BF16, 11);
    Tensor dr = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu);
    rows.push_back({"gated_residual", C, "forward", time([&] {
                      kernels::gated_residual_forward_cuda<float, bf16>(p<float>(out), nullptr, p<float>(h), p<bf16>(y),
                                                                        nullptr, m + 2 * C, 6 * C, p<float>(scale), B, T,
                                                                        C, s);
                    }),
                    N4 + N2 + N4});
    // gated residual + the next LayerNorm-modulate in one pass: h, y read; h1, x written
    Tensor xn = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu);
    rows.push_back({"gated_residual+layernorm_modulate", C, "forward", time([&] {
                      kernels::gated_residual_layernorm_modulate_forward_cuda<float, bf16>(
                          p<float>(out), nullptr, p<bf16>(xn), p<float>(mean), p<float>(rstd), p<float>(h), p<bf16>(y),
                          nullptr, m + 2 * C, p<float>(scale), p<float>(w), p<float>(bias), m + 3 * C, m + 4 * C,
                          6 * C, B, T, C, 1e-5, s);
                    }),
                    N4 + N2 + N4 + N2});
    // and its backward in one pass: dx (bf16), h, dh1 (accumulated) and y read; dh1 and dy written
    Tensor wsf = Tensor::empty(Shape{kernels::gated_residual_layernorm_modulate_backward_workspace(B, T, C)},
                               DType::F32, kGpu);
    rows.push_back({"gated_residual+layernorm_modulate", C, "backward", time([&] {
                      kernels::gated_residual_layernorm_modulate_backward_cuda<float, bf16>(
                          p<float>(dh), nullptr, p<bf16>(dyg), nullptr, p<float>(dmod) + 2 * C, p<float>(dw),
                          p<float>(db), p<float>(dmod) + 3 * C, p<float>(dmod) + 4 * C, p<bf16>(dy), p<float>(h),
                          nullptr, p<float>(mean), p<float>(rstd), p<bf16>(y), nullptr, m + 2 * C, p<float>(scale),
                          p<float>(w), p<float>(bias), m + 4 * C, 6 * C, B, T, C, true, false, p<float>(wsf), s);
                    }),
                    N2 + N4 + 2 * N4 + N2 + N2});
    rows.push_back({"gated_residual", C, "backward", time([&] {
                      kernels::gated_residual_backward_cuda<float, bf16>(
                          p<bf16>(dyg), nullptr, p<float>(dmod) + 2 * C, p<float>(dout), p<bf16>(y), nullptr, m + 2 * C,
                          6 * C, p<float>(scale), B, T, C, false, p<float>(wsg), s);
                    }),
                    N4 + N2 + N2});
    // with the receptance gate σ(r) fused in (the channel mix's residual update)
    rows.push_back({"gated_residual sigmoid(r)", C, "forward", time([&] {
                      kernels::gated_residual_forward_cuda<float, bf16>(p<float>(out), nullptr, p<float>(h), p<bf16>(y),
                                                                        p<bf16>(r), m + 2 * C, 6 * C, p<float>(scale), B,
                                                                        T, C, s);
                    }),
                    N4 + 2 * N2 + N4});
    rows.push_back({"gated_residual sigmoid(r)", C, "backward", time([&] {
                      kernels::gated_residual_backward_cuda<float, bf16>(
                          p<bf16>(dyg), p<bf16>(dr), p<float>(dmod) + 2 * C, p<float>(dout), p<bf16>(y), p<bf16>(r),
                          m + 2 * C, 6 * C, p<float>(scale), B, T, C, false, p<float>(wsg), s);
                    }),
                    N4 + 4 * N2});
    // the receptance-gated residual + the next block's LayerNorm-modulate: h, r, y read; out, x written;
    // backward: dx, out, dout (accumulated), r, y read; dout, dy, dr written
    rows.push_back({"gated_residual sigmoid(r)+layernorm_modulate", C, "forward", time([&] {
                      kernels::gated_residual_layernorm_modulate_forward_cuda<float, bf16>(
                          p<float>(out), nullptr, p<bf16>(xn), p<float>(mean), p<float>(rstd), p<float>(h), p<bf16>(y),
                          p<bf16>(r), m + 5 * C, p<float>(scale), p<float>(w), p<float>(bias), m, m + C, 6 * C, B, T,
                          C, 1e-5, s);
                    }),
                    N4 + 2 * N2 + N4 + N2});
    rows.push_back({"gated_residual sigmoid(r)+layernorm_modulate", C, "backward", time([&] {
                      kernels::gated_residual_layernorm_modulate_backward_cuda<float, bf16>(
                          p<float>(dh), nullptr, p<bf16>(dyg), p<bf16>(dr), p<float>(dmod) + 5 * C, p<float>(dw),
                          p<float>(db), p<float>(dmod), p<float>(dmod) + C, p<bf16>(dy), nullptr, p<float>(out),
                          p<float>(mean), p<float>(rstd), p<bf16>(y), p<bf16>(r), m + 5 * C, p<float>(scale),
                          p<float>(w), p<float>(bias), m + C, 6 * C, B, T, C, true, false, p<float>(wsf), s);
                    }),
                    N2 + N4 + 2 * N4 + 2 * N2 + 2 * N2});
    // ---- sigmoid gate (bf16) ----
    Tensor gz = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu), dz = Tensor::empty(Shape{B, T, C}, DType::BF16, kGpu);
    rows.push_back({"sigmoid_mul", C, "forward", time([&] {
                      kernels::sigmoid_mul_forward_cuda<bf16>(p<bf16>(gz), p<bf16>(r), p<bf16>(z), n, s);
                    }),
                    3 * N2});
    rows.push_back({"sigmoid_mul", C, "backward", time([&] {
                      kernels::sigmoid_mul_backward_cuda<bf16>(p<bf16>(dr), p<bf16>(dz), p<bf16>(dy), p<bf16>(r),
                                                               p<bf16>(gz), n, s);
                    }),
                    5 * N2});
    // ---- linear decoder: P = 2, Cout = 8 on the 16×16 grid; P = 4 on the 8×8 grid of the same latents ----
    for (int P : {2, 4}) {
      kernels::DecoderDims d;
      d.batch = B;
      d.grid_h = d.grid_w = int(32 / P);
      d.C = C;
      d.patch = P;
      d.out_channels = 8;
      const int64_t rows_n = B * d.tokens(), No = d.n_out();
      Tensor hd = random(Shape{B, d.tokens(), C}, DType::F32, 12, -2, 2);
      Tensor md = random(Shape{B, 2 * C}, DType::F32, 13), wo = random(Shape{No, C}, DType::F32, 14),
             bo = random(Shape{No}, DType::F32, 15);
      Tensor img = Tensor::empty(Shape{B, 8, 32, 32}, DType::F32, kGpu), dimg = random(img.shape(), DType::F32, 16);
      Tensor mn = Tensor::empty(Shape{rows_n}, DType::F32, kGpu), rs = Tensor::empty(Shape{rows_n}, DType::F32, kGpu);
      Tensor dhd = Tensor::empty(hd.shape(), DType::F32, kGpu), dmd = Tensor::zeros(md.shape(), DType::F32, kGpu),
             dwo = Tensor::zeros(wo.shape(), DType::F32, kGpu), dbo = Tensor::zeros(bo.shape(), DType::F32, kGpu);
      Tensor wsd = Tensor::empty(Shape{kernels::linear_decoder_workspace(d)}, DType::F32, kGpu);
      const double hb = 4.0 * double(rows_n * C), ob = 4.0 * double(rows_n * No);
      const std::string name = "linear_decoder P=" + std::to_string(P) + " N=" + std::to_string(No) + " T=" +
                               std::to_string(d.tokens());
      rows.push_back({name, C, "forward", time([&] {
                        kernels::linear_decoder_forward_cuda<float>(p<float>(img), p<float>(mn), p<float>(rs), p<float>(hd),
                                                                    p<float>(md), p<float>(wo), p<float>(bo), d, 1e-6,
                                                                    p<float>(wsd), s);
                      }),
                      hb + ob});
      rows.push_back({name, C, "backward", time([&] {
                        kernels::linear_decoder_backward_cuda<float>(
                            p<float>(dhd), p<float>(dmd), p<float>(dwo), p<float>(dbo), p<float>(dimg), p<float>(img),
                            p<float>(hd), p<float>(mn), p<float>(rs), p<float>(md), p<float>(wo), p<float>(bo), d, false,
                            p<float>(wsd), s);
                      }),
                      2 * hb + 2 * ob});
    }
  }

  std::vector<std::vector<std::string>> table{{"op", "C", "pass", "median ms", "GB moved", "GB/s", "% of copy"}};
  for (const Row& r : rows) {
    const double gbs = r.bytes / (r.ms * 1e-3) / 1e9;
    table.push_back({r.op, std::to_string(r.C), r.pass, fmt(r.ms, 4), fmt(r.bytes / 1e9, 3), fmt(gbs, 0),
                     fmt(100.0 * gbs / copy, 1)});
  }
  print_table(table);
  return 0;
}
