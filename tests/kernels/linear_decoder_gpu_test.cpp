// Linear decoder CUDA kernels against the CPU reference (f64, same rounded inputs): forward (LayerNorm
// folded into the product, unpatchify on write) and backward (dh overwrite/accumulate, mod chunks, W_out,
// b_out), N = P²·Cout padded to 32 / 64 / 128, C a multiple of 4 or not, several row tiles and sample
// groups, f32 and bf16 h, outputs poisoned first; determinism of dW_out.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "core/stream.h"
#include "kernels/linear_decoder.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
using testing::random_uniform_via_f32;
using testing::sum_tolerance;
using testing::to_f64;
const Device kGpu = Device::cuda(0);
StreamHandle stream() { return current_stream(0).handle(); }
template <typename T> T* p(const Tensor& t) { return static_cast<T*>(t.data()); }

DecoderDims dims(int64_t B, int gh, int gw, int64_t C, int P, int Co) {
  DecoderDims d;
  d.batch = B;
  d.grid_h = gh;
  d.grid_w = gw;
  d.C = C;
  d.patch = P;
  d.out_channels = Co;
  return d;
}

template <typename T>
void check(const DecoderDims& d, bool accumulate, uint64_t seed) {
  const DType dt = dtype_v<T>;
  const int64_t B = d.batch, C = d.C, N = d.n_out(), rows = B * d.tokens();
  const Shape img{B, d.out_channels, int64_t(d.grid_h) * d.patch, int64_t(d.grid_w) * d.patch};
  const std::string what = "B " + std::to_string(B) + " grid " + std::to_string(d.grid_h) + "x" + std::to_string(d.grid_w) +
                           " C " + std::to_string(C) + " P " + std::to_string(d.patch) + " Cout " +
                           std::to_string(d.out_channels) + (accumulate ? " acc " : " ") + std::string(dtype_name(dt));
  Tensor h = random_uniform_via_f32(Shape{B, d.tokens(), C}, dt, kGpu, seed, -2, 3), h64 = to_f64(h);
  Tensor mod = random_uniform_via_f32(Shape{B, 2 * C}, DType::F32, kGpu, seed + 1), mod64 = to_f64(mod);
  Tensor w = random_uniform_via_f32(Shape{N, C}, DType::F32, kGpu, seed + 2), w64 = to_f64(w);
  Tensor b = random_uniform_via_f32(Shape{N}, DType::F32, kGpu, seed + 3), b64 = to_f64(b);
  Tensor ws = Tensor::empty(Shape{linear_decoder_workspace(d)}, DType::F32, kGpu);
  ws.fill_(std::nan(""));
  Tensor out = testing::poisoned(img, dt, kGpu), mean = testing::poisoned(Shape{rows}, DType::F32, kGpu),
         rstd = testing::poisoned(Shape{rows}, DType::F32, kGpu);
  Tensor out64 = Tensor::empty(img, DType::F64), mean64 = Tensor::empty(Shape{rows}, DType::F64),
         rstd64 = Tensor::empty(Shape{rows}, DType::F64);
  linear_decoder_forward_cpu<double>(p<double>(out64), p<double>(mean64), p<double>(rstd64), p<double>(h64),
                                     p<double>(mod64), p<double>(w64), p<double>(b64), d, 1e-6, nullptr);
  linear_decoder_forward_cuda<T>(p<T>(out), p<float>(mean), p<float>(rstd), p<T>(h), p<float>(mod), p<float>(w),
                                 p<float>(b), d, 1e-6, p<float>(ws), stream());
  const bool half = dt == DType::BF16;
  const testing::Tolerance out_tol = half ? testing::tolerance_for(dt) : testing::Tolerance{1e-4, 1e-4};
  EXPECT_TENSORS_CLOSE(out, out64, out_tol, what + " out", seed);
  EXPECT_TENSORS_CLOSE(mean, mean64, (testing::Tolerance{2e-5, 1e-5}), what + " mean", seed);
  EXPECT_TENSORS_CLOSE(rstd, rstd64, (testing::Tolerance{5e-5, 1e-5}), what + " rstd", seed);

  // backward from the GPU's statistics and output (the CPU reference ignores the output)
  Tensor stat_m = to_f64(mean), stat_r = to_f64(rstd);
  Tensor dout = random_uniform_via_f32(img, dt, kGpu, seed + 4), dout64 = to_f64(dout);
  Tensor dh = accumulate ? random_uniform_via_f32(Shape{B, d.tokens(), C}, dt, kGpu, seed + 5)
                         : testing::poisoned(Shape{B, d.tokens(), C}, dt, kGpu);
  Tensor dh64 = accumulate ? to_f64(dh) : Tensor::empty(Shape{B, d.tokens(), C}, DType::F64);
  Tensor dmod = random_uniform_via_f32(Shape{B, 2 * C}, DType::F32, kGpu, seed + 6), dmod64 = to_f64(dmod);
  Tensor dw = random_uniform_via_f32(Shape{N, C}, DType::F32, kGpu, seed + 7), dw64 = to_f64(dw);
  Tensor db = random_uniform_via_f32(Shape{N}, DType::F32, kGpu, seed + 8), db64 = to_f64(db);
  linear_decoder_backward_cpu<double>(p<double>(dh64), p<double>(dmod64), p<double>(dw64), p<double>(db64),
                                      p<double>(dout64), nullptr, p<double>(h64), p<double>(stat_m), p<double>(stat_r),
                                      p<double>(mod64), p<double>(w64), p<double>(b64), d, accumulate, nullptr);
  ws.fill_(std::nan(""));
  linear_decoder_backward_cuda<T>(p<T>(dh), p<float>(dmod), p<float>(dw), p<float>(db), p<T>(dout), p<T>(out), p<T>(h),
                                  p<float>(mean), p<float>(rstd), p<float>(mod), p<float>(w), p<float>(b), d, accumulate,
                                  p<float>(ws), stream());
  const double terms = double(d.tokens());
  const testing::Tolerance dh_tol = half ? testing::Tolerance{3e-2, 3e-2} : testing::Tolerance{2e-4, 2e-4};
  EXPECT_TENSORS_CLOSE(dh, dh64, dh_tol, what + " dh", seed);
  EXPECT_TENSORS_CLOSE(dmod, dmod64, (testing::Tolerance{half ? 2e-2 : 1e-4, (half ? 1e-3 : 1e-5) * terms}), what + " dmod",
                       seed);
  EXPECT_TENSORS_CLOSE(dw, dw64, (testing::Tolerance{half ? 2e-2 : 1e-4, (half ? 1e-3 : 1e-5) * double(rows)}), what + " dW",
                       seed);
  EXPECT_TENSORS_CLOSE(db, db64, (testing::Tolerance{1e-4, 1e-5 * double(rows)}), what + " db", seed);
}

TEST(LinearDecoderGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  uint64_t seed = 1;
  for (auto [B, gh, gw, C, P, Co] : std::vector<std::tuple<int64_t, int, int, int64_t, int, int>>{
           {2, 2, 3, 64, 2, 8},    // N = 32
           {1, 1, 1, 8, 1, 2},     // 1×1 grid, N = 2
           {2, 3, 5, 36, 2, 3},    // C % 32 != 0
           {1, 4, 4, 30, 2, 4},    // C % 4 != 0: scalar staging
           {2, 8, 9, 96, 4, 8},    // N = 128, two row tiles
           {3, 2, 2, 40, 4, 4},    // N = 64
           {5, 3, 3, 64, 2, 6},    // N = 24 (pixels with learned variance)
           {2, 5, 7, 100, 3, 2},   // P = 3
           {40, 2, 2, 33, 2, 8},   // several samples per group
           {4, 16, 16, 384, 2, 8}  // the DRWKV-S/2 head on 4 samples
       }) {
    const DecoderDims d = dims(B, gh, gw, C, P, Co);
    check<float>(d, false, seed += 10);
    check<float>(d, true, seed += 10);
    check<bf16>(d, true, seed += 10);
  }
}

TEST(LinearDecoderGpu, WeightGradientIsDeterministic) {
  DRWKV_REQUIRE_GPU();
  const DecoderDims d = dims(64, 16, 16, 384, 2, 8);
  const int64_t rows = d.batch * d.tokens(), N = d.n_out();
  Tensor h = random_uniform_via_f32(Shape{d.batch, d.tokens(), d.C}, DType::F32, kGpu, 1);
  Tensor mod = random_uniform_via_f32(Shape{d.batch, 2 * d.C}, DType::F32, kGpu, 2),
         w = random_uniform_via_f32(Shape{N, d.C}, DType::F32, kGpu, 3),
         b = random_uniform_via_f32(Shape{N}, DType::F32, kGpu, 4);
  Tensor out = Tensor::empty(Shape{d.batch, d.out_channels, 32, 32}, DType::F32, kGpu);
  Tensor dout = random_uniform_via_f32(out.shape(), DType::F32, kGpu, 5);
  Tensor mean = Tensor::empty(Shape{rows}, DType::F32, kGpu), rstd = Tensor::empty(Shape{rows}, DType::F32, kGpu);
  Tensor ws = Tensor::empty(Shape{linear_decoder_workspace(d)}, DType::F32, kGpu);
  linear_decoder_forward_cuda<float>(p<float>(out), p<float>(mean), p<float>(rstd), p<float>(h), p<float>(mod), p<float>(w),
                                     p<float>(b), d, 1e-6, p<float>(ws), stream());
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Tensor grads = Tensor::zeros(Shape{N * d.C + N + d.batch * 2 * d.C}, DType::F32, kGpu);
    float* g = p<float>(grads);
    linear_decoder_backward_cuda<float>(nullptr, g + N * d.C + N, g, g + N * d.C, p<float>(dout), p<float>(out), p<float>(h),
                                        p<float>(mean), p<float>(rstd), p<float>(mod), p<float>(w), p<float>(b), d, false,
                                        p<float>(ws), stream());
    std::vector<float> v = grads.to_vector<float>();
    if (run == 0) first = v;
    else EXPECT_EQ(0, std::memcmp(first.data(), v.data(), v.size() * sizeof(float))) << "gradients differ between runs";
  }
}

}  // namespace
}  // namespace drwkv::kernels
