// q-shift mix CUDA kernels against the CPU reference (f64, from the same rounded inputs): f32 and bf16,
// the 16-byte path (C a multiple of 4·VW) and the scalar path (odd quarters, C < 4, unaligned views),
// grid lines shorter and longer than a walk segment of the backward, 1 to 4 mixes, accumulate and
// overwrite, partial μ gradients, outputs poisoned first; determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "core/stream.h"
#include "kernels/shift.h"
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

// `offset` > 0 shifts every token tensor by that many elements inside a larger buffer (unaligned views).
template <typename T>
void check(int64_t B, int gh, int gw, int64_t C, int M, bool accumulate, bool null_mu1, int offset, uint64_t seed) {
  const DType dt = dtype_v<T>;
  const int64_t n = B * gh * gw * C;
  const Shape s{B, int64_t(gh) * gw, C};
  auto token_tensor = [&](uint64_t sd) {
    Tensor big = random_uniform_via_f32(Shape{n + offset}, dt, kGpu, sd);
    return big.narrow(0, offset, n).view(s);
  };
  const std::string what = "B " + std::to_string(B) + " grid " + std::to_string(gh) + "x" + std::to_string(gw) + " C " +
                           std::to_string(C) + " M " + std::to_string(M) + " " + std::string(dtype_name(dt)) +
                           (offset ? " unaligned" : "");
  Tensor x = token_tensor(seed), x64 = to_f64(x);
  std::vector<Tensor> mu, mu64, outs, refs, douts, douts64;
  MixPtrs<T*> og;
  MixPtrs<double*> o64;
  MixPtrs<const float*> mg;
  MixPtrs<const double*> m64;
  MixPtrs<const T*> dg;
  MixPtrs<const double*> d64;
  for (int m = 0; m < M; ++m) {
    mu.push_back(random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 10 + m, 0, 1));
    mu64.push_back(to_f64(mu.back()));
    Tensor big = testing::poisoned(Shape{n + offset}, dt, kGpu);
    outs.push_back(big.narrow(0, offset, n).view(s));
    refs.push_back(Tensor::empty(s, DType::F64));
    douts.push_back(token_tensor(seed + 20 + m));
    douts64.push_back(to_f64(douts.back()));
    og.p[m] = p<T>(outs.back());
    o64.p[m] = p<double>(refs.back());
    mg.p[m] = p<float>(mu.back());
    m64.p[m] = p<double>(mu64.back());
    dg.p[m] = p<T>(douts.back());
    d64.p[m] = p<double>(douts64.back());
  }
  qshift_mix_forward_cpu<double>(o64, p<double>(x64), m64, M, B, gh, gw, C);
  qshift_mix_forward_cuda<T>(og, p<T>(x), mg, M, B, gh, gw, C, stream());
  for (int m = 0; m < M; ++m)
    EXPECT_TENSORS_CLOSE(outs[size_t(m)], refs[size_t(m)], testing::tolerance_for(dt), what + " out " + std::to_string(m), seed);

  // backward: dx starts from a partial sum when accumulating, else poisoned; dμ always accumulate
  Tensor dx = accumulate ? token_tensor(seed + 30) : testing::poisoned(s, dt, kGpu);
  Tensor dx64 = accumulate ? to_f64(dx) : Tensor::empty(s, DType::F64);
  std::vector<Tensor> dmu, dmu64;
  MixPtrs<float*> dmg;
  MixPtrs<double*> dm64;
  for (int m = 0; m < M; ++m) {
    dmu.push_back(random_uniform_via_f32(Shape{C}, DType::F32, kGpu, seed + 40 + m));
    dmu64.push_back(to_f64(dmu.back()));
    const bool null = null_mu1 && m == 1;
    dmg.p[m] = null ? nullptr : p<float>(dmu.back());
    dm64.p[m] = null ? nullptr : p<double>(dmu64.back());
  }
  Tensor ws = Tensor::empty(Shape{qshift_mix_workspace(M, B, gh, gw, C)}, DType::F32, kGpu);
  ws.fill_(std::nan(""));
  qshift_mix_backward_cpu<double>(p<double>(dx64), dm64, d64, p<double>(x64), m64, M, B, gh, gw, C, accumulate, nullptr);
  qshift_mix_backward_cuda<T>(p<T>(dx), dmg, dg, p<T>(x), mg, M, B, gh, gw, C, accumulate, p<float>(ws), stream());
  EXPECT_TENSORS_CLOSE(dx, dx64, testing::tolerance_for(dt), what + " dx", seed);
  for (int m = 0; m < M; ++m)
    EXPECT_TENSORS_CLOSE(dmu[size_t(m)], dmu64[size_t(m)], sum_tolerance(B * gh * gw),
                         what + " dmu " + std::to_string(m), seed);
}

TEST(QShiftGpu, MatchesCpu) {
  DRWKV_REQUIRE_GPU();
  for (auto [B, gh, gw, C] : std::vector<std::tuple<int64_t, int, int, int64_t>>{
           {2, 3, 4, 64}, {1, 1, 1, 32}, {2, 2, 3, 12}, {1, 3, 5, 40}, {2, 4, 4, 48}, {2, 8, 9, 64}, {1, 1, 7, 6},
           {1, 3, 1, 2}, {4, 16, 16, 384}, {1, 4, 4, 1024},
           // grid lines longer than one backward walk segment (kQShiftSegment), in rows, columns or both
           {1, 3, 37, 16}, {2, 20, 5, 24}, {1, 33, 34, 64}}) {
    for (int M = 1; M <= 4; ++M) {
      check<float>(B, gh, gw, C, M, M % 2 == 0, M == 3, 0, 100 + uint64_t(M));
      check<bf16>(B, gh, gw, C, M, M % 2 == 1, M == 2, 0, 200 + uint64_t(M));
    }
  }
}

TEST(QShiftGpu, UnalignedViewsMatchCpu) {
  DRWKV_REQUIRE_GPU();
  check<float>(2, 4, 4, 64, 3, true, false, 1, 7);
  check<bf16>(2, 4, 4, 64, 2, false, false, 3, 8);
}

TEST(QShiftGpu, MuGradientIsDeterministic) {
  DRWKV_REQUIRE_GPU();
  const int64_t B = 64, C = 384;
  const int gh = 16, gw = 16, M = 3;
  Tensor x = random_uniform_via_f32(Shape{B, gh * gw, C}, DType::BF16, kGpu, 1);
  std::vector<Tensor> mu, douts;
  MixPtrs<const float*> mg;
  MixPtrs<const bf16*> dg;
  for (int m = 0; m < M; ++m) {
    mu.push_back(random_uniform_via_f32(Shape{C}, DType::F32, kGpu, 2 + m, 0, 1));
    douts.push_back(random_uniform_via_f32(Shape{B, gh * gw, C}, DType::BF16, kGpu, 5 + m));
    mg.p[m] = p<float>(mu.back());
    dg.p[m] = p<bf16>(douts.back());
  }
  Tensor ws = Tensor::empty(Shape{qshift_mix_workspace(M, B, gh, gw, C)}, DType::F32, kGpu);
  Tensor dx = Tensor::empty(x.shape(), DType::BF16, kGpu);
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Tensor dmu = Tensor::zeros(Shape{M, C}, DType::F32, kGpu);
    MixPtrs<float*> dmg;
    for (int m = 0; m < M; ++m) dmg.p[m] = p<float>(dmu) + m * C;
    qshift_mix_backward_cuda<bf16>(p<bf16>(dx), dmg, dg, p<bf16>(x), mg, M, B, gh, gw, C, false, p<float>(ws), stream());
    std::vector<float> v = dmu.to_vector<float>();
    if (run == 0) first = v;
    else EXPECT_EQ(0, std::memcmp(first.data(), v.data(), v.size() * sizeof(float))) << "dμ differs between runs";
  }
}

}  // namespace
}  // namespace drwkv::kernels
