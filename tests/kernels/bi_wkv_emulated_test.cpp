// The exact Bi-WKV CUDA kernel source (kernels/bi_wkv_kernel.cuh) run on the host under an emulation of
// the CUDA execution model (bi_wkv_cuda_emulation.h: fibers, block and cluster barriers, dynamic shared
// memory), against the CPU implementation with the same plan: clusters of 1–8 blocks, 1–16 warps,
// segments longer and shorter than needed (empty segments and blocks), all, some and no chunks staged in
// shared memory, chunk carries in shared memory and in the workspace, the fast and the per-token path
// (and channels of both in one warp), masked channels and partial chunks; and independence of the
// results from thread order and block scheduling. This checks the block structure, barriers, exchanges
// and indexing of the kernel without a GPU; the device's own arithmetic (ex2.approx, rcp.approx) and
// memory model are checked by bi_wkv_gpu_test on the hardware.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_chunk.h"
#include "kernels/bi_wkv_plan.h"
#include "tests/support/testing.h"
// last: the emulation defines CUDA keywords as macros
#include "tests/kernels/bi_wkv_cuda_emulation.h"
#include "kernels/bi_wkv_kernel.cuh"

namespace drwkv::kernels {
namespace {
using namespace bi_wkv_detail;

struct Problem {
  int64_t B, T, C;
  std::vector<float> k, v, dy, decay, first;
};

// w = decay/T: |w| ≤ w_max per token; u = first/T: |u| ≤ u_max.
Problem make(int64_t B, int64_t T, int64_t C, uint64_t seed, double w_max = 5.0 / 256, double u_max = 2.0) {
  auto u = [](int64_t n, uint64_t s, double lo, double hi) {
    return testing::random_uniform(Shape{n}, DType::F32, Device::cpu(), s, lo, hi).to_vector<float>();
  };
  const double t = double(T);
  return {B, T, C, u(B * T * C, seed, -3, 3), u(B * T * C, seed + 1, -1, 1), u(B * T * C, seed + 2, -1, 1),
          u(C, seed + 3, -w_max * t, w_max * t), u(C, seed + 4, -u_max * t, u_max * t)};
}

struct Outputs {
  std::vector<float> y, dk, dv;
  std::vector<double> ddecay, dfirst;  // Σ over (b, block) of the per-block partials, / T
};

struct Launch {
  int cluster = 0, warps = 0, seg_chunks = 0;
  int staged = -1;       // −1: all chunks
  bool global_rc = false;  // chunk carries in the workspace
};

template <bool kBackward, bool kGlobal>
void run_kernel(const KernelArgs<float>& a, unsigned blocks, unsigned threads, unsigned cluster, size_t smem,
                unsigned resident, uint64_t seed) {
  emu::launch(blocks, threads, cluster, smem, resident, [&] { bi_wkv_kernel<float, kBackward, kGlobal>(a); }, seed);
}

// The launch sequence of bi_wkv.cu / bi_wkv_backward.cu with the emulated device holding `resident`
// blocks at once. Outputs, workspace and shared memory start poisoned.
Outputs run(const Problem& p, const Launch& l, unsigned resident, uint64_t seed, Plan* used = nullptr) {
  const Plan plan = make_plan(p.T, l.cluster, l.warps, l.seg_chunks);
  EXPECT_TRUE(plan_valid(plan));
  if (used) *used = plan;
  const int staged = l.staged < 0 ? plan.seg_chunks : std::min(l.staged, plan.seg_chunks);
  const bool global = l.global_rc || !rc_in_smem(plan);
  const size_t n = p.k.size();
  const int64_t groups = (p.C + 31) / 32, seqs = p.B * groups;
  Outputs o{std::vector<float>(n, NAN), std::vector<float>(n, NAN), std::vector<float>(n, NAN), {}, {}};
  std::vector<float> xchg(size_t(seqs * 2 * plan.cluster) * kSumFloats, NAN);
  std::vector<float> part(size_t(p.B * plan.cluster * 2 * p.C), NAN);
  std::vector<float> rc(size_t(seqs * plan.cluster * plan.warps * plan.seg_chunks) * 2 * kRcFloats, NAN);
  KernelArgs<float> a;
  a.k = p.k.data();
  a.v = p.v.data();
  a.dy = p.dy.data();
  a.y = o.y.data();
  a.dk = o.dk.data();
  a.dv = o.dv.data();
  a.decay = p.decay.data();
  a.first = p.first.data();
  a.xchg = xchg.data();
  a.part = part.data();
  a.rc = global ? rc.data() : nullptr;
  a.T = p.T;
  a.C = p.C;
  a.TC = p.T * p.C;
  a.chunks = plan.chunks;
  a.groups = int(groups);
  a.cluster = plan.cluster;
  a.warps = plan.warps;
  a.seg_chunks = plan.seg_chunks;
  const unsigned blocks = unsigned(seqs * plan.cluster), threads = unsigned(plan.warps * 32),
                 cluster = unsigned(plan.cluster);
  resident = std::max(resident, cluster);
  for (bool backward : {false, true}) {
    a.smem = smem_layout(plan, staged, sizeof(float), backward);
    const size_t smem = a.smem.bytes;
    if (!backward && global) run_kernel<false, true>(a, blocks, threads, cluster, smem, resident, seed++);
    if (!backward && !global) run_kernel<false, false>(a, blocks, threads, cluster, smem, resident, seed++);
    if (backward && global) run_kernel<true, true>(a, blocks, threads, cluster, smem, resident, seed++);
    if (backward && !global) run_kernel<true, false>(a, blocks, threads, cluster, smem, resident, seed++);
  }
  o.ddecay.assign(size_t(p.C), 0.0);
  o.dfirst.assign(size_t(p.C), 0.0);
  for (int64_t r = 0; r < p.B * plan.cluster; ++r)
    for (int64_t c = 0; c < p.C; ++c) {
      o.ddecay[size_t(c)] += double(part[size_t((r * 2 + 0) * p.C + c)]) / double(p.T);
      o.dfirst[size_t(c)] += double(part[size_t((r * 2 + 1) * p.C + c)]) / double(p.T);
    }
  return o;
}

Outputs cpu(const Problem& p, const Plan& plan) {
  const size_t n = p.k.size();
  Outputs o{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n), {}, {}};
  std::vector<float> dd(size_t(p.C), 0.f), df(size_t(p.C), 0.f);
  bi_wkv_forward_cpu_plan<float>(plan, o.y.data(), p.k.data(), p.v.data(), p.decay.data(), p.first.data(), p.B, p.T,
                                 p.C);
  bi_wkv_backward_cpu_plan<float>(plan, o.dk.data(), o.dv.data(), dd.data(), df.data(), p.dy.data(), p.k.data(),
                                  p.v.data(), p.decay.data(), p.first.data(), p.B, p.T, p.C);
  o.ddecay.assign(dd.begin(), dd.end());
  o.dfirst.assign(df.begin(), df.end());
  return o;
}

// Same plan, arithmetic and order as the CPU implementation: agreement to float rounding (the two
// compilations may contract differently), NaN never passes.
template <typename V>
::testing::AssertionResult agree(const V& got, const V& want, const std::string& what) {
  double scale = 1e-2;
  for (auto x : want) scale = std::max(scale, std::fabs(double(x)));
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(double(got[i]) - double(want[i])) <= 1e-5 * scale))
      return ::testing::AssertionFailure() << what << "[" << i << "]: got " << got[i] << ", expected " << want[i];
  return ::testing::AssertionSuccess();
}

void expect_agree(const Outputs& got, const Outputs& want, const std::string& what) {
  EXPECT_TRUE(agree(got.y, want.y, what + " y"));
  EXPECT_TRUE(agree(got.dk, want.dk, what + " dk"));
  EXPECT_TRUE(agree(got.dv, want.dv, what + " dv"));
  EXPECT_TRUE(agree(got.ddecay, want.ddecay, what + " ddecay"));
  EXPECT_TRUE(agree(got.dfirst, want.dfirst, what + " dfirst"));
}

std::string describe(const Problem& p, const Plan& plan, const Launch& l) {
  return "B=" + std::to_string(p.B) + " T=" + std::to_string(p.T) + " C=" + std::to_string(p.C) + " plan " +
         std::to_string(plan.cluster) + "x" + std::to_string(plan.warps) + "x" + std::to_string(plan.seg_chunks) +
         " staged " + std::to_string(l.staged) + (l.global_rc ? " global carries" : "");
}

void check(const Problem& p, const Launch& l, unsigned resident, uint64_t seed) {
  Plan plan;
  Outputs got = run(p, l, resident, seed, &plan);
  expect_agree(got, cpu(p, plan), describe(p, plan, l));
}

struct Shape3 {
  int64_t B, T, C;
};

TEST(BiWkvEmulated, AutomaticPlans) {
  // one warp; several warps; partial chunks and channel groups; two-block clusters (T > 256)
  const Shape3 shapes[] = {{1, 1, 1}, {1, 2, 3}, {1, 3, 5}, {2, 17, 7}, {1, 64, 33}, {1, 65, 33}, {2, 130, 40},
                           {1, 300, 33}};
  uint64_t seed = 1;
  for (const Shape3& s : shapes) {
    seed += 10;
    check(make(s.B, s.T, s.C, seed), Launch{}, 64, seed);
  }
  EXPECT_EQ(emu::g_barrier_errors.load(), 0);
}

TEST(BiWkvEmulated, LongerAutomaticPlans) {
  // four-block clusters of 8 warps (T = 1000); eight-block clusters with 5-chunk segments (T = 2100);
  // eight-block clusters of 16-warp blocks with 5-chunk segments (T = 4200)
  check(make(1, 1000, 33, 211), Launch{}, 8, 1);
  check(make(1, 2100, 20, 221), Launch{}, 10, 2);
  check(make(1, 4200, 20, 231), Launch{}, 10, 3);
  EXPECT_EQ(emu::g_barrier_errors.load(), 0);
}

TEST(BiWkvEmulated, ForcedPlans) {
  const Problem p = make(2, 203, 40, 77);  // 26 chunks, the last partial; a partial channel group
  const Launch launches[] = {
      {1, 1, 0, -1, false},   // one thread per channel does everything
      {3, 2, 0, -1, false},   // three-block clusters
      {8, 1, 4, -1, false},   // eight blocks, the last ones empty
      {2, 16, 1, -1, false},  // sixteen warps, empty segments
      {4, 4, 2, 0, false},    // nothing staged: every pass reads global memory
      {2, 4, 4, 2, false},    // some chunks staged
      {4, 2, 4, -1, true},    // chunk carries in the workspace
      {1, 3, 0, 1, true},
  };
  uint64_t seed = 500;
  for (const Launch& l : launches) check(p, l, 16, seed += 3);
  EXPECT_EQ(emu::g_barrier_errors.load(), 0);
}

TEST(BiWkvEmulated, PerTokenPathAndMixedWarps) {
  // |w| up to 6 per token and |u| up to 40: most channels take the per-token path, some the fast one
  const Problem extreme = make(2, 70, 37, 901, 6.0, 40.0);
  int fast = 0;
  for (int64_t c = 0; c < extreme.C; ++c)
    fast += make_channel<double>(extreme.decay[size_t(c)], extreme.first[size_t(c)], extreme.T).fast;
  EXPECT_GT(fast, 0);
  EXPECT_LT(fast, extreme.C);
  check(extreme, Launch{}, 64, 3);
  check(extreme, Launch{2, 3, 0, 1, false}, 64, 5);
  // strongly negative w (far tokens dominate) on the fast path
  Problem negative = make(1, 150, 9, 911, 1.5, 1.0);
  for (float& d : negative.decay) d = -std::fabs(d);
  check(negative, Launch{}, 64, 7);
  EXPECT_EQ(emu::g_barrier_errors.load(), 0);
}

TEST(BiWkvEmulated, ResultsDoNotDependOnScheduling) {
  const Problem p = make(2, 257, 40, 99);
  for (const Launch& l : {Launch{}, Launch{3, 2, 0, 1, false}}) {
    Outputs a = run(p, l, 3, 5), b = run(p, l, 64, 77);
    EXPECT_EQ(a.y, b.y);
    EXPECT_EQ(a.dk, b.dk);
    EXPECT_EQ(a.dv, b.dv);
    EXPECT_EQ(a.ddecay, b.ddecay);
    EXPECT_EQ(a.dfirst, b.dfirst);
  }
}

}  // namespace
}  // namespace drwkv::kernels
