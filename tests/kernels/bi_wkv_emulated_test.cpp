// The exact Bi-WKV CUDA kernel source (kernels/bi_wkv_tile.cuh) run on the host under an emulation of
// the CUDA execution model (bi_wkv_cuda_emulation.h): all modes (single tile, chained with the device
// holding as few blocks as the algorithm allows, multi-pass), against the CPU implementation, and
// independence of the results from thread order and block scheduling. This checks the block
// structure, barriers, exchanges and indexing of the kernel without a GPU; the device's own arithmetic
// (ex2.approx, rcp) and memory model are checked by bi_wkv_gpu_test on the hardware.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_scan.h"
#include "tests/support/testing.h"
// last: the emulation defines CUDA keywords as macros
#include "tests/kernels/bi_wkv_cuda_emulation.h"
#include "kernels/bi_wkv_tile.cuh"

namespace drwkv::kernels {
namespace {
using namespace bi_wkv_detail;

struct Problem {
  int64_t B, T, C;
  std::vector<float> k, v, dy, decay, first;
};

Problem make(int64_t B, int64_t T, int64_t C, uint64_t seed) {
  auto u = [](int64_t n, uint64_t s, double lo, double hi) {
    return testing::random_uniform(Shape{n}, DType::F32, Device::cpu(), s, lo, hi).to_vector<float>();
  };
  return {B, T, C, u(B * T * C, seed, -3, 3), u(B * T * C, seed + 1, -1, 1), u(B * T * C, seed + 2, -1, 1),
          u(C, seed + 3, -5, 5), u(C, seed + 4, -2.0 * double(T), 2.0 * double(T))};
}

struct Outputs {
  std::vector<float> y, dk, dv;
  std::vector<double> ddecay, dfirst;  // Σ over (b, tile) of the per-tile partials, / T
};

enum class Algo { Chained, MultiPass };

// The launch sequence of bi_wkv.cu / bi_wkv_backward.cu, with the emulated device holding `resident`
// blocks at once. Outputs and workspace start poisoned.
Outputs run(const Problem& p, Algo algo, unsigned resident, uint64_t seed) {
  const Layout l = layout(p.B, p.T, p.C);
  const size_t n = p.k.size();
  Outputs o{std::vector<float>(n, NAN), std::vector<float>(n, NAN), std::vector<float>(n, NAN), {}, {}};
  std::vector<char> ws(l.bytes);
  std::memset(ws.data(), 0xA5, ws.size());
  TileArgs<float> a;
  a.k = p.k.data();
  a.v = p.v.data();
  a.dy = p.dy.data();
  a.y = o.y.data();
  a.dk = o.dk.data();
  a.dv = o.dv.data();
  a.decay = p.decay.data();
  a.first = p.first.data();
  a.agg = reinterpret_cast<float*>(ws.data() + l.agg);
  a.car1 = reinterpret_cast<float*>(ws.data() + l.car1);
  a.car2 = reinterpret_cast<float*>(ws.data() + l.car2);
  a.part = reinterpret_cast<float*>(ws.data() + l.part);
  a.sync = reinterpret_cast<unsigned*>(ws.data() + l.sync);
  a.B = p.B;
  a.T = p.T;
  a.C = p.C;
  a.tiles = l.tiles;
  a.groups = l.groups;
  a.warps = l.warps;
  const unsigned blocks = unsigned(l.seqs * l.tiles), threads = unsigned(l.warps * 32);
  auto tiles = [&](auto kernel) { emu::launch(blocks, threads, resident, kernel, seed++); };
  auto carries = [&](auto kernel) { emu::launch(unsigned(l.seqs), 64, resident, kernel, seed++); };
  auto clear_sync = [&] { std::memset(ws.data() + l.sync, 0, size_t(1 + 4 * l.seqs) * sizeof(unsigned)); };
  const float* decay = p.decay.data();
  const int64_t T = p.T, C = p.C;

  if (l.tiles == 1) {
    tiles([&] { tile_kernel<float, false, Mode::Final>(a); });
    std::memset(ws.data(), 0x5A, ws.size());
    tiles([&] { tile_kernel<float, true, Mode::Final>(a); });
  } else if (algo == Algo::Chained) {
    clear_sync();
    tiles([&] { tile_kernel<float, false, Mode::Chained>(a); });
    std::memset(ws.data(), 0x5A, ws.size());
    clear_sync();
    tiles([&] { tile_kernel<float, true, Mode::Chained>(a); });
  } else {
    tiles([&] { tile_kernel<float, false, Mode::Publish1>(a); });
    carries([&] { carry_kernel<false>(a.agg, a.car1, decay, l.tiles, l.groups, T, C, l.warps); });
    tiles([&] { tile_kernel<float, false, Mode::Final>(a); });
    std::memset(ws.data(), 0x5A, ws.size());
    tiles([&] { tile_kernel<float, true, Mode::Publish1>(a); });
    carries([&] { carry_kernel<true>(a.agg, a.car1, decay, l.tiles, l.groups, T, C, l.warps); });
    tiles([&] { tile_kernel<float, true, Mode::Publish2>(a); });
    carries([&] { carry_kernel<true>(a.agg, a.car2, decay, l.tiles, l.groups, T, C, l.warps); });
    tiles([&] { tile_kernel<float, true, Mode::Final>(a); });
  }
  o.ddecay.assign(size_t(C), 0.0);
  o.dfirst.assign(size_t(C), 0.0);
  for (int64_t r = 0; r < p.B * l.tiles; ++r)
    for (int64_t c = 0; c < C; ++c) {
      o.ddecay[size_t(c)] += double(a.part[(r * 2 + 0) * C + c]) / double(T);
      o.dfirst[size_t(c)] += double(a.part[(r * 2 + 1) * C + c]) / double(T);
    }
  return o;
}

Outputs cpu(const Problem& p) {
  const size_t n = p.k.size();
  Outputs o{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n), {}, {}};
  std::vector<float> dd(size_t(p.C), 0.f), df(size_t(p.C), 0.f);
  bi_wkv_forward_cpu<float>(o.y.data(), p.k.data(), p.v.data(), p.decay.data(), p.first.data(), p.B, p.T, p.C, nullptr);
  bi_wkv_backward_cpu<float>(o.dk.data(), o.dv.data(), dd.data(), df.data(), p.dy.data(), p.k.data(), p.v.data(),
                             p.decay.data(), p.first.data(), p.B, p.T, p.C, nullptr);
  o.ddecay.assign(dd.begin(), dd.end());
  o.dfirst.assign(df.begin(), df.end());
  return o;
}

// Same algorithm and arithmetic as the CPU implementation: agreement to float rounding (the compiler
// may contract differently in the two places), NaN never passes.
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

struct Case {
  int64_t B, T, C;
};
// one tile with 1, 2 and 16 warps; several tiles, partial last tiles, partial channel groups
const Case kCases[] = {{1, 1, 1}, {1, 3, 5}, {2, 17, 7}, {1, 64, 33}, {1, 65, 33}, {2, 130, 40}, {1, 300, 33}};

TEST(BiWkvEmulated, KernelMatchesCpuInEveryMode) {
  uint64_t seed = 1;
  for (const Case& c : kCases) {
    Problem p = make(c.B, c.T, c.C, seed += 10);
    Outputs want = cpu(p);
    const Layout l = layout(c.B, c.T, c.C);
    const std::string shape = "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " C=" + std::to_string(c.C);
    // chained: the fewest resident blocks that guarantee progress (one sequence's tiles), and more
    expect_agree(run(p, Algo::Chained, unsigned(l.tiles), seed), want, shape + " chained, resident = tiles");
    expect_agree(run(p, Algo::Chained, unsigned(3 * l.tiles), seed + 1), want, shape + " chained");
    expect_agree(run(p, Algo::MultiPass, 4, seed + 2), want, shape + " multi-pass");
  }
  EXPECT_EQ(emu::g_barrier_errors.load(), 0);
}

TEST(BiWkvEmulated, ResultsDoNotDependOnScheduling) {
  Problem p = make(2, 257, 40, 99);
  const Layout l = layout(2, 257, 40);
  for (Algo algo : {Algo::Chained, Algo::MultiPass}) {
    Outputs a = run(p, algo, unsigned(l.tiles), 5), b = run(p, algo, unsigned(4 * l.tiles), 77);
    EXPECT_EQ(a.y, b.y);
    EXPECT_EQ(a.dk, b.dk);
    EXPECT_EQ(a.dv, b.dv);
    EXPECT_EQ(a.ddecay, b.ddecay);
    EXPECT_EQ(a.dfirst, b.dfirst);
  }
}

}  // namespace
}  // namespace drwkv::kernels
