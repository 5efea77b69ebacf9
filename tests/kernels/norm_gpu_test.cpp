// CUDA kernels of kernels/norm.h against the CPU oracle computed in f64 from the same (rounded) inputs:
// f32 and bf16, shapes that take every path (warp per row, multi-warp rows, rows longer than the
// register path, C = 1, C not a multiple of 8, single rows, many rows per block, groups that are and
// are not aligned lane runs, misaligned pointers), outputs poisoned before each call, dx overwritten,
// accumulated and in place, parameter gradients added to non-zero values, and run-to-run determinism.
#include <gtest/gtest.h>

#include <cmath>

#include "core/stream.h"
#include "kernels/norm.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {
using testing::poisoned;
using testing::random_uniform;
using testing::Tolerance;
const Device kGpu = Device::cuda(0);

StreamHandle stream() { return current_stream(0).handle(); }
double* p64(const Tensor& t) { return static_cast<double*>(t.data()); }
float* pf(const Tensor& t) { return t.defined() ? static_cast<float*>(t.data()) : nullptr; }
template <typename T> T* pt(const Tensor& t) { return static_cast<T*>(t.data()); }

// A GPU copy of `host` whose first element sits `shift` elements past a 16-byte boundary (shift = 0:
// aligned), with the view returned and its backing buffer kept alive in `keep`.
Tensor gpu_copy(const Tensor& host, int shift, Tensor* keep) {
  *keep = Tensor::empty(Shape{host.numel() + shift}, host.dtype(), kGpu);
  Tensor v = keep->slice(0, shift, shift + host.numel()).view(host.shape());
  v.copy_(host);
  return v;
}

struct GnCase {
  int64_t rows, C, groups;  // groups = 0: the LayerNorm launchers
};

std::string label(const GnCase& c, DType dt, bool affine, int shift) {
  return std::string(dtype_name(dt)) + " rows " + std::to_string(c.rows) + " C " + std::to_string(c.C) + " groups " +
         std::to_string(c.groups) + (affine ? " affine" : "") + (shift ? " misaligned" : "");
}

template <typename T>
void check_groupnorm(const GnCase& c, bool affine, int shift, uint64_t seed) {
  const DType dt = dtype_v<T>;
  const int64_t rows = c.rows, C = c.C, G = std::max<int64_t>(c.groups, 1), n = rows * C;
  const std::string what = label(c, dt, affine, shift);
  Tensor x = random_uniform(Shape{rows, C}, dt, Device::cpu(), seed, -1, 3);
  Tensor dy = random_uniform(Shape{rows, C}, dt, Device::cpu(), seed + 1);
  Tensor w = affine ? random_uniform(Shape{C}, DType::F32, Device::cpu(), seed + 2, 0.5, 1.5) : Tensor();
  Tensor b = affine ? random_uniform(Shape{C}, DType::F32, Device::cpu(), seed + 3) : Tensor();
  Tensor dx0 = random_uniform(Shape{rows, C}, dt, Device::cpu(), seed + 4);
  Tensor dw0 = random_uniform(Shape{C}, DType::F32, Device::cpu(), seed + 5);
  Tensor db0 = random_uniform(Shape{C}, DType::F32, Device::cpu(), seed + 6);

  // f64 oracle
  Tensor x64 = x.to(DType::F64), dy64 = dy.to(DType::F64);
  Tensor w64 = affine ? w.to(DType::F64) : Tensor(), b64 = affine ? b.to(DType::F64) : Tensor();
  Tensor y_ref = Tensor::empty(Shape{rows, C}, DType::F64), dx_ref = Tensor::empty(Shape{rows, C}, DType::F64);
  Tensor m_ref = Tensor::empty(Shape{rows * G}, DType::F64), r_ref = Tensor::empty(Shape{rows * G}, DType::F64);
  Tensor dw_ref = dw0.to(DType::F64), db_ref = db0.to(DType::F64);
  const double* wr = affine ? p64(w64) : nullptr;
  groupnorm_forward_cpu<double>(p64(y_ref), p64(m_ref), p64(r_ref), p64(x64), wr, affine ? p64(b64) : nullptr, rows, C, G,
                                1e-5);
  groupnorm_backward_cpu<double>(p64(dx_ref), affine ? p64(dw_ref) : nullptr, affine ? p64(db_ref) : nullptr, p64(dy64),
                                 p64(x64), wr, p64(m_ref), p64(r_ref), rows, C, G, false, nullptr);

  // forward on the GPU
  Tensor kx, ky, kdy, kdx;
  Tensor xg = gpu_copy(x, shift, &kx), dyg = gpu_copy(dy, shift, &kdy);
  Tensor yg = gpu_copy(poisoned(Shape{rows, C}, dt, Device::cpu()), shift, &ky);
  Tensor mg = poisoned(Shape{rows * G}, DType::F32, kGpu), rg = poisoned(Shape{rows * G}, DType::F32, kGpu);
  Tensor wg = affine ? w.to(kGpu) : Tensor(), bg = affine ? b.to(kGpu) : Tensor();
  if (c.groups == 0) {
    layernorm_forward_cuda<T>(pt<T>(yg), pf(mg), pf(rg), pt<T>(xg), pf(wg), pf(bg), rows, C, 1e-5, stream());
  } else {
    groupnorm_forward_cuda<T>(pt<T>(yg), pf(mg), pf(rg), pt<T>(xg), pf(wg), pf(bg), rows, C, G, 1e-5, stream());
  }
  const Tolerance out_tol = dt == DType::F32 ? Tolerance{2e-5, 2e-5} : testing::tolerance_for(dt);
  const Tolerance stat_tol = {2e-5, 2e-6};
  EXPECT_TENSORS_CLOSE(yg, y_ref, out_tol, what + " y", seed);
  EXPECT_TENSORS_CLOSE(mg, m_ref, stat_tol, what + " mean", seed);
  EXPECT_TENSORS_CLOSE(rg, r_ref, stat_tol, what + " rstd", seed);

  // backward: dx overwritten, parameter gradients added to dw0/db0
  Tensor dxg = gpu_copy(poisoned(Shape{rows, C}, dt, Device::cpu()), shift, &kdx);
  Tensor dwg = affine ? dw0.to(kGpu) : Tensor(), dbg = affine ? db0.to(kGpu) : Tensor();
  Tensor scratch = poisoned(Shape{norm_backward_scratch_size(rows, C)}, DType::F32, kGpu);
  auto backward = [&](T* dx, float* dw, float* db, const T* g, bool acc) {
    if (c.groups == 0) {
      layernorm_backward_cuda<T>(dx, dw, db, g, pt<T>(xg), pf(wg), pf(mg), pf(rg), rows, C, acc, pf(scratch), stream());
    } else {
      groupnorm_backward_cuda<T>(dx, dw, db, g, pt<T>(xg), pf(wg), pf(mg), pf(rg), rows, C, G, acc, pf(scratch), stream());
    }
  };
  backward(pt<T>(dxg), pf(dwg), pf(dbg), pt<T>(dyg), false);
  const Tolerance dx_tol = dt == DType::F32 ? Tolerance{1e-4, 1e-4} : testing::tolerance_for(dt);
  EXPECT_TENSORS_CLOSE(dxg, dx_ref, dx_tol, what + " dx", seed);
  if (affine) {
    EXPECT_TENSORS_CLOSE(dwg, dw_ref, testing::sum_tolerance(rows), what + " dweight", seed);
    EXPECT_TENSORS_CLOSE(dbg, db_ref, testing::sum_tolerance(rows), what + " dbias", seed);
  }
  // accumulate into dx0, and in place (dx = dy); no parameter gradients requested
  Tensor acc_g = dx0.to(kGpu);
  backward(pt<T>(acc_g), nullptr, nullptr, pt<T>(dyg), true);
  Tensor acc_ref = dx_ref.clone();
  {
    std::vector<double> d0 = dx0.to_vector<double>();
    double* p = p64(acc_ref);
    for (int64_t i = 0; i < n; ++i) p[i] += d0[size_t(i)];
  }
  EXPECT_TENSORS_CLOSE(acc_g, acc_ref, dx_tol, what + " dx accumulate", seed);
  Tensor inplace = dy.to(kGpu);
  backward(pt<T>(inplace), nullptr, nullptr, pt<T>(inplace), false);
  EXPECT_TENSORS_CLOSE(inplace, dx_ref, dx_tol, what + " dx in place", seed);
}

TEST(NormGpu, LayerNormMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  const GnCase cases[] = {{1, 1, 0},    {1, 7, 0},    {3, 33, 0},    {5, 384, 0},  {2, 385, 0},   {64, 1024, 0},
                          {3, 1536, 0}, {2, 5000, 0}, {2, 20000, 0}, {5000, 96, 0}, {1, 4096, 0}, {300, 64, 0}};
  uint64_t seed = 100;
  for (const GnCase& c : cases) {
    for (bool affine : {true, false}) {
      check_groupnorm<float>(c, affine, 0, seed++);
      check_groupnorm<bf16>(c, affine, 0, seed++);
    }
  }
}

TEST(NormGpu, LayerNormMisalignedPointersTakeTheScalarPath) {
  DRWKV_REQUIRE_GPU();
  for (int64_t C : {384, 1024, 33}) {
    check_groupnorm<float>({7, C, 0}, true, 1, 200);
    check_groupnorm<bf16>({7, C, 0}, true, 3, 201);
  }
}

TEST(NormGpu, GroupNormMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  // RWKV-7 heads (L = 64), one group, L = 8 / 1 / 7 (unaligned: generic path), L = 256 (longer than a
  // warp run: generic path), many rows
  const GnCase cases[] = {{4, 1024, 16}, {3, 64, 1}, {5, 24, 3},   {2, 21, 3},
                          {7, 384, 6},   {2, 4096, 16}, {1, 8, 8}, {333, 512, 8}};
  uint64_t seed = 300;
  for (const GnCase& c : cases) {
    for (bool affine : {true, false}) {
      check_groupnorm<float>(c, affine, 0, seed++);
      check_groupnorm<bf16>(c, affine, 0, seed++);
    }
  }
}

template <typename T>
void check_l2(int64_t rows, int64_t C, int64_t gs, double eps, bool tiny_rows, uint64_t seed) {
  const DType dt = dtype_v<T>;
  const std::string what = std::string(dtype_name(dt)) + " l2 rows " + std::to_string(rows) + " C " +
                           std::to_string(C) + " group " + std::to_string(gs) + (tiny_rows ? " (eps branch)" : "");
  Tensor x = random_uniform(Shape{rows, C}, DType::F32, Device::cpu(), seed, -1, 1);
  if (tiny_rows) {  // odd rows get norms far below eps
    float* p = x.data_ptr<float>();
    for (int64_t r = 1; r < rows; r += 2)
      for (int64_t c = 0; c < C; ++c) p[r * C + c] *= 1e-4f;
  }
  x = x.to(dt);
  Tensor dy = random_uniform(Shape{rows, C}, dt, Device::cpu(), seed + 1);
  Tensor dx0 = random_uniform(Shape{rows, C}, dt, Device::cpu(), seed + 2);
  Tensor x64 = x.to(DType::F64), dy64 = dy.to(DType::F64);
  Tensor y_ref = Tensor::empty(Shape{rows, C}, DType::F64), dx_ref = Tensor::empty(Shape{rows, C}, DType::F64);
  l2norm_forward_cpu<double>(p64(y_ref), p64(x64), rows, C, gs, eps);
  l2norm_backward_cpu<double>(p64(dx_ref), p64(dy64), p64(x64), rows, C, gs, eps, false);
  Tensor acc_ref = dx0.to(DType::F64);
  l2norm_backward_cpu<double>(p64(acc_ref), p64(dy64), p64(x64), rows, C, gs, eps, true);

  Tensor xg = x.to(kGpu), dyg = dy.to(kGpu);
  Tensor yg = poisoned(Shape{rows, C}, dt, kGpu), dxg = poisoned(Shape{rows, C}, dt, kGpu), accg = dx0.to(kGpu);
  l2norm_forward_cuda<T>(pt<T>(yg), pt<T>(xg), rows, C, gs, eps, stream());
  l2norm_backward_cuda<T>(pt<T>(dxg), pt<T>(dyg), pt<T>(xg), rows, C, gs, eps, false, stream());
  l2norm_backward_cuda<T>(pt<T>(accg), pt<T>(dyg), pt<T>(xg), rows, C, gs, eps, true, stream());
  const Tolerance tol = dt == DType::F32 ? Tolerance{1e-4, 1e-4} : testing::tolerance_for(dt);
  EXPECT_TENSORS_CLOSE(yg, y_ref, tol, what + " y", seed);
  EXPECT_TENSORS_CLOSE(dxg, dx_ref, tol, what + " dx", seed);
  EXPECT_TENSORS_CLOSE(accg, acc_ref, tol, what + " dx accumulate", seed);
  // in place: y over x, dx over dy
  Tensor inplace = x.to(kGpu);
  l2norm_forward_cuda<T>(pt<T>(inplace), pt<T>(inplace), rows, C, gs, eps, stream());
  EXPECT_TENSORS_CLOSE(inplace, y_ref, tol, what + " y in place", seed);
  Tensor g = dy.to(kGpu);
  l2norm_backward_cuda<T>(pt<T>(g), pt<T>(g), pt<T>(xg), rows, C, gs, eps, false, stream());
  EXPECT_TENSORS_CLOSE(g, dx_ref, tol, what + " dx in place", seed);
}

TEST(NormGpu, L2NormalizeMatchesCpu) {
  DRWKV_REQUIRE_GPU();
  struct Case { int64_t rows, C, gs; };
  uint64_t seed = 400;
  for (Case c : {Case{4, 1024, 64}, Case{3, 7, 7}, Case{5, 64, 64}, Case{2, 48, 16}, Case{1, 5000, 5000},
                 Case{9, 40, 8}, Case{3, 20, 5}, Case{1, 1, 1}, Case{700, 256, 64}}) {
    check_l2<float>(c.rows, c.C, c.gs, 1e-12, false, seed++);
    check_l2<bf16>(c.rows, c.C, c.gs, 1e-12, false, seed++);
  }
  check_l2<float>(6, 128, 64, 1e-2, true, seed++);
  check_l2<bf16>(6, 128, 64, 1e-2, true, seed++);
  check_l2<float>(4, 21, 7, 1e-2, true, seed++);
}

TEST(NormGpu, ParameterGradientsAreDeterministic) {
  DRWKV_REQUIRE_GPU();
  for (int64_t C : {384, 1536, 20000}) {
    const int64_t rows = C == 20000 ? 300 : 20000;
    Tensor x = testing::random_normal(Shape{rows, C}, DType::BF16, kGpu, 7);
    Tensor dy = testing::random_normal(Shape{rows, C}, DType::BF16, kGpu, 8);
    Tensor w = testing::random_normal(Shape{C}, DType::F32, kGpu, 9);
    Tensor y = Tensor::empty(Shape{rows, C}, DType::BF16, kGpu), dx = Tensor::empty(Shape{rows, C}, DType::BF16, kGpu);
    Tensor m = Tensor::empty(Shape{rows}, DType::F32, kGpu), r = Tensor::empty(Shape{rows}, DType::F32, kGpu);
    Tensor scratch = Tensor::empty(Shape{norm_backward_scratch_size(rows, C)}, DType::F32, kGpu);
    layernorm_forward_cuda<bf16>(pt<bf16>(y), pf(m), pf(r), pt<bf16>(x), pf(w), nullptr, rows, C, 1e-5, stream());
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      Tensor dw = Tensor::zeros(Shape{C}, DType::F32, kGpu), db = Tensor::zeros(Shape{C}, DType::F32, kGpu);
      layernorm_backward_cuda<bf16>(pt<bf16>(dx), pf(dw), pf(db), pt<bf16>(dy), pt<bf16>(x), pf(w), pf(m), pf(r), rows, C,
                                    false, pf(scratch), stream());
      std::vector<float> v = dw.to_vector<float>(), vb = db.to_vector<float>();
      v.insert(v.end(), vb.begin(), vb.end());
      if (run == 0) {
        first = v;
      } else {
        for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(float_bits(v[i]), float_bits(first[i])) << "C " << C << " i " << i;
      }
    }
  }
}

}  // namespace
}  // namespace drwkv::kernels
