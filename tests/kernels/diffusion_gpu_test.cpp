// Diffusion kernels on the GPU against the CPU reference (f32 and bf16 images, f32 coefficients). The
// reference runs the CPU kernels in f32 on the same (rounded) inputs: the t = 0 likelihood term
// subtracts nearly equal CDF values, so f32 and f64 legitimately differ there, and the GPU must match
// the f32 semantics, not the f64 ones.
#include <gtest/gtest.h>

#include <cmath>

#include "core/stream.h"
#include "kernels/diffusion.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
const Device kGpu = Device::cuda(0);

// Plausible coefficient rows (a mix of t = 0 and t > 0 samples), as f32.
Tensor make_coef(int64_t B) {
  std::vector<float> v;
  for (int64_t b = 0; b < B; ++b) {
    double ac = 0.9999 - 0.3 * double(b) / double(B), prev = b == 0 ? 1.0 : ac + 0.001, beta = 1e-4 + 0.001 * double(b);
    bool t0 = b == 0;
    std::vector<double> row = {std::sqrt(ac), std::sqrt(1 - ac), std::sqrt(1 / ac), std::sqrt(1 / ac - 1), 0.3 + 0.01 * double(b),
                               0.6, std::log(beta), std::log(beta * 0.5), t0 ? 1.0 : 0.0, prev, 0.05, t0 ? 0.0 : 1.0};
    for (double x : row) v.push_back(float(x));
  }
  return Tensor::from_vector(v, Shape{B, kCoefs});
}

template <typename T>
void check(int64_t B, int64_t C, int64_t H, uint64_t seed) {
  DType dt = dtype_v<T>;
  StreamHandle s = current_stream(0).handle();
  auto rnd = [&](Shape sh, uint64_t k) { return testing::random_uniform(sh, DType::F32, Device::cpu(), seed + k).to(dt); };
  const int64_t P = H * H;
  Tensor out = rnd(Shape{B, 2 * C, H, H}, 1), x0 = rnd(Shape{B, C, H, H}, 2), eps = rnd(Shape{B, C, H, H}, 3);
  Tensor xt = rnd(Shape{B, C, H, H}, 4), z = rnd(Shape{B, C, H, H}, 5), g = testing::random_uniform(Shape{B}, DType::F32, Device::cpu(), seed + 6);
  Tensor coef = make_coef(B), coef64 = coef, g64 = g;
  // plain variables, not lambdas: member templates on a lambda's result inside a template need `template`
  Tensor out64 = out.to(DType::F32), x064 = x0.to(DType::F32), eps64 = eps.to(DType::F32), xt64 = xt.to(DType::F32),
         z64 = z.to(DType::F32);
  testing::Tolerance tol = testing::tolerance_for(dt);
  std::string tag = std::string(dtype_name(dt)) + " B" + std::to_string(B) + " C" + std::to_string(C) + " H" + std::to_string(H);
  // q_sample
  Tensor ref = Tensor::empty(x0.shape(), DType::F32);
  diffusion_q_sample_cpu<float>(ref.data_ptr<float>(), x064.data_ptr<float>(), eps64.data_ptr<float>(), coef64.data_ptr<float>(), B, C * P);
  Tensor got = testing::poisoned(x0.shape(), dt, kGpu);
  Tensor x0g = x0.to(kGpu), epsg = eps.to(kGpu), coefg = coef.to(kGpu), outg = out.to(kGpu), xtg = xt.to(kGpu), zg = z.to(kGpu), gg = g.to(kGpu);
  diffusion_q_sample_cuda<T>(got.data_ptr<T>(), x0g.data_ptr<T>(), epsg.data_ptr<T>(), coefg.data_ptr<float>(), B, C * P, s);
  EXPECT_TENSORS_CLOSE(got, ref, tol, "q_sample " + tag, seed);
  // loss forward / backward
  Tensor terms_ref = Tensor::empty(Shape{B, 2}, DType::F32);
  diffusion_loss_forward_cpu<float>(terms_ref.data_ptr<float>(), out64.data_ptr<float>(), x064.data_ptr<float>(),
                                     xt64.data_ptr<float>(), eps64.data_ptr<float>(), coef64.data_ptr<float>(), B, C, P, true);
  Tensor terms = testing::poisoned(Shape{B, 2}, DType::F32, kGpu);
  diffusion_loss_forward_cuda<T>(terms.data_ptr<float>(), outg.data_ptr<T>(), x0g.data_ptr<T>(), xtg.data_ptr<T>(),
                                 epsg.data_ptr<T>(), coefg.data_ptr<float>(), B, C, P, true, s);
  EXPECT_TENSORS_CLOSE(terms, terms_ref, (testing::Tolerance{1e-4, 1e-5}), "loss terms " + tag, seed);
  Tensor dref = Tensor::empty(out.shape(), DType::F32);
  diffusion_loss_backward_cpu<float>(dref.data_ptr<float>(), g64.data_ptr<float>(), out64.data_ptr<float>(), x064.data_ptr<float>(),
                                      xt64.data_ptr<float>(), eps64.data_ptr<float>(), coef64.data_ptr<float>(), B, C, P, true);
  Tensor dgot = testing::poisoned(out.shape(), dt, kGpu);
  diffusion_loss_backward_cuda<T>(dgot.data_ptr<T>(), gg.data_ptr<float>(), outg.data_ptr<T>(), x0g.data_ptr<T>(), xtg.data_ptr<T>(),
                                  epsg.data_ptr<T>(), coefg.data_ptr<float>(), B, C, P, true, s);
  EXPECT_TENSORS_CLOSE(dgot, dref, (testing::Tolerance{std::max(tol.rtol, 1e-3), 1e-6}), "loss backward " + tag, seed);
  // reverse steps
  Tensor x_ref = xt64.clone(), x_got = xt.to(kGpu);
  diffusion_ddpm_step_cpu<float>(x_ref.data_ptr<float>(), out64.data_ptr<float>(), z64.data_ptr<float>(), coef64.data_ptr<float>(), B, C, P, true);
  diffusion_ddpm_step_cuda<T>(x_got.data_ptr<T>(), outg.data_ptr<T>(), zg.data_ptr<T>(), coefg.data_ptr<float>(), B, C, P, true, s);
  EXPECT_TENSORS_CLOSE(x_got, x_ref, tol, "ddpm " + tag, seed);
  x_ref = xt64.clone();
  x_got = xt.to(kGpu);
  diffusion_ddim_step_cpu<float>(x_ref.data_ptr<float>(), out64.data_ptr<float>(), z64.data_ptr<float>(), coef64.data_ptr<float>(), B, C, P, 2 * C);
  diffusion_ddim_step_cuda<T>(x_got.data_ptr<T>(), outg.data_ptr<T>(), zg.data_ptr<T>(), coefg.data_ptr<float>(), B, C, P, 2 * C, s);
  EXPECT_TENSORS_CLOSE(x_got, x_ref, (testing::Tolerance{tol.rtol, tol.atol * 10}), "ddim " + tag, seed);
  // guidance (B even)
  if (B % 2 == 0) {
    Tensor cref = out64.clone(), cgot = out.to(kGpu);
    diffusion_cfg_cpu<float>(cref.data_ptr<float>(), B / 2, 2 * C, P, C, 1.7);
    diffusion_cfg_cuda<T>(cgot.data_ptr<T>(), B / 2, 2 * C, P, C, 1.7, s);
    EXPECT_TENSORS_CLOSE(cgot, cref, tol, "cfg " + tag, seed);
  }
}

TEST(DiffusionGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  check<float>(1, 1, 1, 1);
  check<float>(4, 3, 7, 2);
  check<float>(8, 4, 32, 3);
  check<bf16>(4, 4, 32, 4);
  check<bf16>(3, 1, 5, 5);
}

}  // namespace
}  // namespace drwkv::kernels
