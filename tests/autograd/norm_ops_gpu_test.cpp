// The bindings of autograd/norm_ops.h on the GPU against the same graph on the CPU in f64, from the same
// (rounded) values: bf16 and f32 activations with f32 parameters whose gradients are bound to a flat f32
// buffer (as in training), an unbound bf16 table (gradient converted from the kernel's f32), and a
// gradient slot that already holds a sum (accumulate path).
#include <gtest/gtest.h>

#include "autograd/elementwise_ops.h"
#include "autograd/norm_ops.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
using testing::random_uniform;
const Device kGpu = Device::cuda(0);
const testing::Tolerance kExact = {0, 0};
const testing::Tolerance kParamTol = {1e-4, 1e-4};

testing::Tolerance tol(DType dt) { return dt == DType::F32 ? testing::Tolerance{1e-4, 1e-4} : testing::tolerance_for(dt); }

// Runs norm ops on x (dtype dt) with f32 parameters on `dev`; returns y and the gradients of x, w, b for the
// output seed. Parameters are leaves whose gradients live in one flat buffer that starts at 1.
std::vector<Tensor> run_norms(Device dev, DType dt, DType pdt, const Tensor& x_host, const Tensor& w_host,
                              const Tensor& b_host, const Tensor& seed_host, int which) {
  const int64_t C = w_host.numel();
  Variable x(x_host.to(dev, dt), true);
  Variable w(w_host.to(dev, pdt), true), b(b_host.to(dev, pdt), true);
  Tensor flat = Tensor::full(Shape{2 * C + 3}, 1.0, pdt, dev);
  w.bind_grad(flat.narrow(0, 1, C));
  b.bind_grad(flat.narrow(0, C + 2, C));
  Variable y;
  switch (which) {
    case 0: y = layer_norm(x, w, b, 1e-5); break;
    case 1: y = group_norm(x, int(C / 64), w, b, 64e-5); break;
    case 2: y = add(layer_norm(x, Variable(), Variable(), 1e-6), l2_normalize(x, 64, 1e-12)); break;
  }
  y.backward(seed_host.to(dev, dt));
  std::vector<Tensor> out = {y.value(), x.grad()};
  if (which < 2) out.push_back(flat);
  return out;
}

TEST(NormOpsGpu, NormsMatchCpu) {
  DRWKV_REQUIRE_GPU();
  const int64_t B = 3, T = 17, C = 384;
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int which : {0, 1, 2}) {
      Tensor x = random_uniform(Shape{B, T, C}, dt, Device::cpu(), 1, -1, 3).to(DType::F32);
      Tensor w = random_uniform(Shape{C}, DType::F32, Device::cpu(), 2, 0.5, 1.5);
      Tensor b = random_uniform(Shape{C}, DType::F32, Device::cpu(), 3);
      Tensor seed = random_uniform(Shape{B, T, C}, dt, Device::cpu(), 4).to(DType::F32);
      std::vector<Tensor> got = run_norms(kGpu, dt, DType::F32, x, w, b, seed, which);
      std::vector<Tensor> ref = run_norms(Device::cpu(), DType::F64, DType::F64, x, w, b, seed, which);
      const std::string what = std::string(dtype_name(dt)) + " op " + std::to_string(which);
      EXPECT_TENSORS_CLOSE(got[0], ref[0], tol(dt), what + " y", 1);
      EXPECT_TENSORS_CLOSE(got[1], ref[1], tol(dt), what + " dx", 1);
      if (which < 2) {
        EXPECT_TENSORS_CLOSE(got[2], ref[2], kParamTol, what + " dweight/dbias", 1);
      }
    }
  }
}

TEST(NormOpsGpu, EmbeddingMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  const int64_t R = 1001, C = 384;
  std::vector<int32_t> idv;
  for (int i = 0; i < 256; ++i) idv.push_back(int32_t((i * 37) % 97 == 0 ? R - 1 : (i * 13) % 50));  // repeats
  Tensor ids = Tensor::from_vector(idv, Shape{16, 16});
  Tensor table = random_uniform(Shape{R, C}, DType::F32, Device::cpu(), 5);
  Tensor seed = random_uniform(Shape{16, 16, C}, DType::F32, Device::cpu(), 6);
  // CPU f64 reference
  Variable t_ref(table.to(DType::F64), true);
  Variable o_ref = embedding(t_ref, ids);
  o_ref.backward(seed.to(DType::F64));
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor tab = table.to(dt).to(DType::F64);  // what the GPU table holds
    Variable tg(table.to(kGpu, dt), true);
    Variable og = embedding(tg, ids.to(kGpu));
    // the seed rounded as the GPU sees it, twice (the second backward adds into the gradient)
    Tensor sg = seed.to(kGpu, dt);
    og.backward(sg);
    embedding(tg, ids.to(kGpu)).backward(sg);
    Variable tr(tab, true);
    Tensor s64 = sg.to(Device::cpu(), DType::F64);
    embedding(tr, ids).backward(s64);
    embedding(tr, ids).backward(s64);
    const std::string what = std::string(dtype_name(dt)) + " embedding";
    EXPECT_TENSORS_CLOSE(og.value(), embedding(Variable(tab), ids).value(), kExact, what + " forward", 5);
    EXPECT_EQ(tg.grad().dtype(), dt);
    EXPECT_TENSORS_CLOSE(tg.grad(), tr.grad(), tol(dt), what + " table gradient", 5);
  }
}

TEST(NormOpsGpu, MseLossMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  Tensor a = random_uniform(Shape{64, 4, 8, 8}, DType::F32, Device::cpu(), 7);
  Tensor b = random_uniform(Shape{64, 4, 8, 8}, DType::F32, Device::cpu(), 8);
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor a64 = a.to(dt).to(DType::F64), b64 = b.to(dt).to(DType::F64);
    Variable ag(a.to(kGpu, dt), true), ar(a64, true);
    Variable lg = mse_loss(ag, Variable(b.to(kGpu, dt))), lr = mse_loss(ar, Variable(b64));
    EXPECT_EQ(lg.value().dtype(), DType::F32);
    EXPECT_NEAR(lg.value().item(), lr.value().item(), 1e-5 * lr.value().item());
    scale_shift(lg, 3.0).backward();
    scale_shift(lr, 3.0).backward();
    EXPECT_TENSORS_CLOSE(ag.grad(), ar.grad(), tol(dt), std::string(dtype_name(dt)) + " mse da", 7);
  }
}

}  // namespace
}  // namespace drwkv::autograd
