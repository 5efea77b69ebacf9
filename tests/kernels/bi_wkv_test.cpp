// Bi-WKV on the CPU (kernels/bi_wkv.h). The exact variant's chunked evaluation (the CUDA algorithm run
// sequentially: fast fixed-scale chunks and the per-token path, any decomposition), forward and backward,
// against a direct O(T²) evaluation of the defining softmax form (MODEL.md §2.1) in f64, written here;
// the compat variant's closed-form weights against an independent evaluation built from recurrences
// over the official kernel's segments, and its gradient against central finite differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_chunk.h"
#include "kernels/bi_wkv_plan.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {

struct Problem {
  int64_t B, T, C;
  std::vector<double> k, v, dy, decay, first;
};

std::vector<double> uniform(int64_t n, uint64_t seed, double lo, double hi) {
  return testing::random_uniform(Shape{n}, DType::F64, Device::cpu(), seed, lo, hi).to_vector<double>();
}

// w = decay/T and u = first/T are drawn directly in [w_lo, w_hi] and [-2, 2].
Problem make_problem(int64_t B, int64_t T, int64_t C, double k_range, double w_lo, double w_hi, uint64_t seed) {
  Problem p{B, T, C, {}, {}, {}, {}, {}};
  p.k = uniform(B * T * C, seed, -k_range, k_range);
  p.v = uniform(B * T * C, seed + 1, -1, 1);
  p.dy = uniform(B * T * C, seed + 2, -1, 1);
  p.decay = uniform(C, seed + 3, w_lo, w_hi);
  p.first = uniform(C, seed + 4, -2, 2);
  for (int64_t c = 0; c < C; ++c) {
    p.decay[size_t(c)] *= double(T);
    p.first[size_t(c)] *= double(T);
  }
  return p;
}

struct Result {
  std::vector<double> y, dk, dv, ddecay, dfirst;
};

// The oracle's values and, per element, the sum of the magnitudes of the terms that make it up: the
// scale of the rounding error any evaluation order must be allowed (sums with cancellation).
struct Oracle {
  Result value, scale;
};

// Direct O(T²) evaluation of §2.1 as a softmax over ℓ_{t,i} = k_i − (|t−i|−1)w (i ≠ t), ℓ_{t,t} = u + k_t,
// and its gradient through the softmax: ∂L/∂ℓ_{t,i} = g_t p_{t,i} (v_i − y_t).
Oracle oracle(const Problem& p) {
  const int64_t T = p.T, C = p.C;
  auto zeros = [&](size_t n) {
    return Result{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n),
                  std::vector<double>(size_t(C)), std::vector<double>(size_t(C))};
  };
  Oracle o{zeros(p.k.size()), zeros(p.k.size())};
  Result &r = o.value, &s = o.scale;
  std::vector<double> l(static_cast<size_t>(T)), pr(static_cast<size_t>(T));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const double w = p.decay[size_t(c)] / double(T), u = p.first[size_t(c)] / double(T);
      auto at = [&](int64_t t) { return size_t((b * T + t) * C + c); };
      for (int64_t t = 0; t < T; ++t) {
        double mx = -INFINITY;
        for (int64_t i = 0; i < T; ++i) {
          l[size_t(i)] = i == t ? u + p.k[at(i)] : p.k[at(i)] - double(std::abs(t - i) - 1) * w;
          mx = std::max(mx, l[size_t(i)]);
        }
        double den = 0, y = 0;
        for (int64_t i = 0; i < T; ++i) den += pr[size_t(i)] = std::exp(l[size_t(i)] - mx);
        for (int64_t i = 0; i < T; ++i) {
          y += (pr[size_t(i)] /= den) * p.v[at(i)];
          s.y[at(t)] += pr[size_t(i)] * std::fabs(p.v[at(i)]);
        }
        r.y[at(t)] = y;
        const double g = p.dy[at(t)];
        for (int64_t i = 0; i < T; ++i) {
          double gl = g * pr[size_t(i)] * (p.v[at(i)] - y);
          double sl = std::fabs(g) * pr[size_t(i)] * (std::fabs(p.v[at(i)]) + s.y[at(t)]);
          r.dk[at(i)] += gl;
          s.dk[at(i)] += sl;
          r.dv[at(i)] += g * pr[size_t(i)];
          s.dv[at(i)] += std::fabs(g) * pr[size_t(i)];
          if (i == t) {
            r.dfirst[size_t(c)] += gl / double(T);
            s.dfirst[size_t(c)] += sl / double(T);
          } else {
            r.ddecay[size_t(c)] -= gl * double(std::abs(t - i) - 1) / double(T);
            s.ddecay[size_t(c)] += sl * double(std::abs(t - i) - 1) / double(T);
          }
        }
      }
    }
  return o;
}

template <typename E> std::vector<E> cast(const std::vector<double>& x) {
  std::vector<E> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = store_as<E>(x[i]);
  return r;
}
template <typename E> std::vector<double> widen(const std::vector<E>& x) {
  std::vector<double> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = load_as<double>(x[i]);
  return r;
}

// Runs the exact kernels in element type E (parameters in acc_t<E>); parameter gradients start from
// `init` to check that they accumulate.
template <typename E> Result run_exact(const Problem& p, double init = 0.0) {
  using A = acc_t<E>;
  std::vector<E> k = cast<E>(p.k), v = cast<E>(p.v), dy = cast<E>(p.dy), y(k.size()), dk(k.size()), dv(k.size());
  std::vector<A> decay = cast<A>(p.decay), first = cast<A>(p.first), dd(size_t(p.C), A(init)), df(size_t(p.C), A(init));
  bi_wkv_forward_cpu<E>(y.data(), k.data(), v.data(), decay.data(), first.data(), p.B, p.T, p.C, nullptr);
  bi_wkv_backward_cpu<E>(dk.data(), dv.data(), dd.data(), df.data(), dy.data(), k.data(), v.data(), decay.data(),
                         first.data(), p.B, p.T, p.C, nullptr);
  Result r{widen(y), widen(dk), widen(dv), widen(dd), widen(df)};
  for (auto* g : {&r.ddecay, &r.dfirst})
    for (double& x : *g) x -= init;
  return r;
}

// |a − e| ≤ rtol·|e| + atol·scale_i + floor elementwise (scale_i = 1 when `scale` is empty); names the
// first failure. `floor` absorbs results in the subnormal range of the computing type.
::testing::AssertionResult close(const std::vector<double>& a, const std::vector<double>& e, double rtol, double atol,
                                 const std::string& what, const std::vector<double>& scale = {}, double floor = 0) {
  if (a.size() != e.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
  for (size_t i = 0; i < a.size(); ++i) {
    double sc = scale.empty() ? 1.0 : scale[i];
    double err = std::fabs(a[i] - e[i]);
    if (!(err <= rtol * std::fabs(e[i]) + atol * sc + floor))
      return ::testing::AssertionFailure() << what << "[" << i << "]: got " << a[i] << ", expected " << e[i]
                                           << " (rtol " << rtol << ", atol " << atol << " × scale " << sc << ")";
  }
  return ::testing::AssertionSuccess();
}

// Relative to the oracle's term magnitudes: rounding of any summation order stays within atol·scale.
void expect_matches(const Result& got, const Oracle& want, double rtol, double atol, double floor,
                    const std::string& what) {
  EXPECT_TRUE(close(got.y, want.value.y, rtol, atol, what + " y", want.scale.y, floor));
  EXPECT_TRUE(close(got.dk, want.value.dk, rtol, atol, what + " dk", want.scale.dk, floor));
  EXPECT_TRUE(close(got.dv, want.value.dv, rtol, atol, what + " dv", want.scale.dv, floor));
  EXPECT_TRUE(close(got.ddecay, want.value.ddecay, rtol, atol, what + " ddecay", want.scale.ddecay, floor));
  EXPECT_TRUE(close(got.dfirst, want.value.dfirst, rtol, atol, what + " dfirst", want.scale.dfirst, floor));
}

struct Regime {
  const char* name;
  double k_range, w_lo, w_hi;
};
const Regime kRegimes[] = {
    {"moderate", 2.0, -0.3, 0.3},
    {"w positive", 2.0, 0.2, 1.5},
    {"w negative", 2.0, -1.0, -0.05},
    {"large |k|", 60.0, -0.5, 0.5},
    {"huge |k|, strong decay", 500.0, -3.0, 3.0},
};

TEST(BiWkvCpu, ExactMatchesQuadraticOracleInF64) {
  uint64_t seed = 100;
  // chunk boundaries (8, 9, 16), several warps, two-block clusters (T > 256)
  for (int64_t T : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 63, 64, 65, 100, 257, 300})
    for (const Regime& rg : kRegimes) {
      Problem p = make_problem(2, T, 3, rg.k_range, rg.w_lo, rg.w_hi, seed += 10);
      std::string what = "T=" + std::to_string(T) + " " + rg.name + " seed " + std::to_string(seed);
      expect_matches(run_exact<double>(p), oracle(p), 1e-10, 1e-12, 1e-290, what);
    }
}

TEST(BiWkvCpu, LongSequencesInF64) {
  // 138 and 513 chunks: clusters of 5 blocks of 8 warps and of 8 blocks of 16 warps, segments of 4 and
  // 5 chunks
  uint64_t seed = 300;
  for (int64_t T : {1100, 4100})
    for (const Regime& rg : {kRegimes[0], kRegimes[3]}) {
      Problem p = make_problem(1, T, 2, rg.k_range, rg.w_lo / 8, rg.w_hi / 8, seed += 10);
      expect_matches(run_exact<double>(p), oracle(p), 1e-10, 1e-12, 1e-290,
                     "T=" + std::to_string(T) + " " + rg.name + " seed " + std::to_string(seed));
    }
}

// Every decomposition gives the same sums (to rounding): forced plans against the oracle.
TEST(BiWkvCpu, AnyPlanMatchesQuadraticOracleInF64) {
  struct PlanCase {
    int cluster, warps, seg_chunks;
  };
  const PlanCase plans[] = {{1, 1, 0}, {3, 2, 0}, {8, 1, 0}, {2, 16, 1}, {4, 4, 2}, {1, 3, 9}};
  uint64_t seed = 700;
  for (int64_t T : {1, 9, 65, 203})
    for (const PlanCase& pc : plans)
      for (const Regime& rg : {kRegimes[0], kRegimes[2], kRegimes[4]}) {
        const bi_wkv_detail::Plan plan = bi_wkv_detail::make_plan(T, pc.cluster, pc.warps, pc.seg_chunks);
        if (!bi_wkv_detail::plan_valid(plan)) continue;  // e.g. 1 × 3 × 9 chunks < T = 203
        Problem p = make_problem(2, T, 3, rg.k_range, rg.w_lo, rg.w_hi, seed += 10);
        Result r{std::vector<double>(p.k.size()), std::vector<double>(p.k.size()), std::vector<double>(p.k.size()),
                 std::vector<double>(size_t(p.C), 0.0), std::vector<double>(size_t(p.C), 0.0)};
        bi_wkv_detail::bi_wkv_forward_cpu_plan<double>(plan, r.y.data(), p.k.data(), p.v.data(), p.decay.data(),
                                                       p.first.data(), p.B, T, p.C);
        bi_wkv_detail::bi_wkv_backward_cpu_plan<double>(plan, r.dk.data(), r.dv.data(), r.ddecay.data(),
                                                        r.dfirst.data(), p.dy.data(), p.k.data(), p.v.data(),
                                                        p.decay.data(), p.first.data(), p.B, T, p.C);
        expect_matches(r, oracle(p), 1e-10, 1e-12, 1e-290,
                       "T=" + std::to_string(T) + " plan " + std::to_string(plan.cluster) + "x" +
                           std::to_string(plan.warps) + "x" + std::to_string(plan.seg_chunks) + " " + rg.name);
      }
}

// Channels with 8·|w|·log2 e + |u|·log2 e beyond the fast path's range use the per-token path; both are
// exact, in any mixture.
TEST(BiWkvCpu, PerTokenPathForExtremeParameters) {
  uint64_t seed = 900;
  for (int64_t T : {3, 40, 130}) {
    Problem p = make_problem(2, T, 6, 30.0, -8.0, 8.0, seed += 10);  // |w| up to 8 per token, large |k|
    const double w[] = {-6.0, 5.0, 0.3, -0.2, 3.0, 0.5}, u[] = {1.0, -1.0, 40.0, -40.0, 0.0, 0.4};
    for (size_t c = 0; c < 6; ++c) {  // per-token path: strong w (0, 1, 4) or large |u| (2, 3); fast: 5
      p.decay[c] = w[c] * double(T);
      p.first[c] = u[c] * double(T);
    }
    for (int64_t c = 0; c < p.C; ++c)
      EXPECT_EQ(bi_wkv_detail::make_channel<double>(p.decay[size_t(c)], p.first[size_t(c)], T).fast, c == 5) << c;
    expect_matches(run_exact<double>(p), oracle(p), 1e-10, 1e-12, 1e-290, "extreme T=" + std::to_string(T));
  }
}

TEST(BiWkvCpu, ParameterGradientsAccumulate) {
  Problem p = make_problem(2, 37, 3, 2.0, -0.5, 0.5, 3);
  Result fresh = run_exact<double>(p), added = run_exact<double>(p, 0.25);  // run_exact subtracts the start
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(added.ddecay[c], fresh.ddecay[c], 1e-16) << c;
    EXPECT_NEAR(added.dfirst[c], fresh.dfirst[c], 1e-16) << c;
  }
  EXPECT_EQ(added.dk, fresh.dk);
}

TEST(BiWkvCpu, ExactF32AndBf16StayCloseToF64) {
  for (int64_t T : {1, 7, 130, 1000}) {
    Problem p = make_problem(2, T, 5, 3.0, -0.5, 0.5, 7 + uint64_t(T));
    expect_matches(run_exact<float>(p), oracle(p), 1e-4, 1e-5, 1e-30, "f32 T=" + std::to_string(T));
    // bf16 inputs: compare against the oracle on the same rounded inputs
    Problem q = p;
    for (auto* x : {&q.k, &q.v, &q.dy})
      for (double& e : *x) e = double(float(bf16(float(e))));
    expect_matches(run_exact<bf16>(q), oracle(q), 1e-2, 1e-2, 1e-30, "bf16 T=" + std::to_string(T));
  }
}

// ---- official_compat ------------------------------------------------------------------------------------

// Independent evaluation of the official kernel's output: the per-segment recurrences whose sum gives
// the §2.6 weights — a right sum decayed one extra step, earlier segments decayed one extra step, the
// in-segment left sum, and the in-segment correction κ_t = e^{w}κ_{t−1} + (1 − e^{w})e^{k_t}(v_t, 1).
std::vector<double> compat_by_recurrences(const Problem& p) {
  const int64_t T = p.T, C = p.C, S = (T + 31) / 32;
  std::vector<double> y(p.k.size());
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const double w = p.decay[size_t(c)] / double(T), u = p.first[size_t(c)] / double(T);
      auto at = [&](int64_t t) { return size_t((b * T + t) * C + c); };
      auto ek = [&](int64_t t) { return std::exp(p.k[at(t)]); };
      std::vector<double> rho_n(static_cast<size_t>(T), 0.0), rho_d(rho_n);
      for (int64_t t = T - 2; t >= 0; --t) {
        rho_n[size_t(t)] = std::exp(-w) * (rho_n[size_t(t + 1)] + ek(t + 1) * p.v[at(t + 1)]);
        rho_d[size_t(t)] = std::exp(-w) * (rho_d[size_t(t + 1)] + ek(t + 1));
      }
      double big_n = 0, big_d = 0;  // Σ_{i<t0} e^{−(t0−i)w} e^{k_i}(v_i, 1) at the current segment start t0
      for (int64_t t0 = 0; t0 < T; t0 += S) {
        double sig_n = 0, sig_d = 0, kap_n = 0, kap_d = 0;
        for (int64_t t = t0; t < std::min(T, t0 + S); ++t) {
          if (t > t0) {
            sig_n = std::exp(-w) * sig_n + ek(t - 1) * p.v[at(t - 1)];
            sig_d = std::exp(-w) * sig_d + ek(t - 1);
            kap_n = std::exp(w) * kap_n + (1 - std::exp(w)) * ek(t) * p.v[at(t)];
            kap_d = std::exp(w) * kap_d + (1 - std::exp(w)) * ek(t);
          }
          double lam = std::exp(-double(t - t0) * w);
          double num = rho_n[size_t(t)] + lam * big_n + sig_n + kap_n + std::exp(u) * ek(t) * p.v[at(t)];
          double den = rho_d[size_t(t)] + lam * big_d + sig_d + kap_d + std::exp(u) * ek(t);
          y[at(t)] = num / den;
        }
        for (int64_t i = t0; i < std::min(T, t0 + S); ++i) {  // move the earlier-segment sum to the next start
          big_n = std::exp(-w) * (big_n + ek(i) * p.v[at(i)]);
          big_d = std::exp(-w) * (big_d + ek(i));
        }
      }
    }
  return y;
}

std::vector<double> compat_forward(const Problem& p) {
  std::vector<double> y(p.k.size());
  bi_wkv_compat_forward_cpu<double>(y.data(), p.k.data(), p.v.data(), p.decay.data(), p.first.data(), p.B, p.T, p.C,
                                    nullptr);
  return y;
}

TEST(BiWkvCompatCpu, ClosedFormMatchesSegmentRecurrences) {
  uint64_t seed = 500;
  for (int64_t T : {1, 2, 3, 17, 32, 33, 64, 65, 100, 200})
    for (auto [lo, hi] : {std::pair{-0.4, 0.4}, std::pair{0.1, 0.6}, std::pair{-0.6, -0.1}}) {
      Problem p = make_problem(2, T, 3, 2.0, lo, hi, seed += 10);
      EXPECT_TRUE(close(compat_forward(p), compat_by_recurrences(p), 1e-11, 1e-13,
                        "compat y T=" + std::to_string(T) + " seed " + std::to_string(seed)));
    }
}

TEST(BiWkvCompatCpu, DiffersFromExactAsDocumented) {
  // §2.6: the kernel is not the definition; with DRWKV-sized decays it deviates by ~1e-3 at T = 256.
  Problem p = make_problem(1, 256, 4, 1.0, -5.0 / 256, 5.0 / 256, 77);
  std::vector<double> exact = oracle(p).value.y, compat = compat_forward(p);
  double max_dev = 0, scale = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    max_dev = std::max(max_dev, std::fabs(exact[i] - compat[i]));
    scale = std::max(scale, std::fabs(exact[i]));
  }
  EXPECT_GT(max_dev / scale, 1e-5);
  EXPECT_LT(max_dev / scale, 1e-1);
}

// Central differences of L = Σ P ⊙ y (P = dy) through the compat forward, for every input element.
TEST(BiWkvCompatCpu, BackwardMatchesFiniteDifferences) {
  for (int64_t T : {1, 3, 40, 70}) {
    Problem p = make_problem(2, T, 2, 1.5, -0.5, 0.5, 900 + uint64_t(T));
    Result got{{}, std::vector<double>(p.k.size()), std::vector<double>(p.k.size()), std::vector<double>(size_t(p.C), 0.5),
               std::vector<double>(size_t(p.C), 0.5)};
    bi_wkv_compat_backward_cpu<double>(got.dk.data(), got.dv.data(), got.ddecay.data(), got.dfirst.data(), p.dy.data(),
                                       p.k.data(), p.v.data(), p.decay.data(), p.first.data(), p.B, T, p.C, nullptr);
    for (auto* g : {&got.ddecay, &got.dfirst})
      for (double& x : *g) x -= 0.5;
    auto loss = [&](const Problem& q) {
      std::vector<double> y = compat_forward(q);
      double s = 0;
      for (size_t i = 0; i < y.size(); ++i) s += p.dy[i] * y[i];
      return s;
    };
    auto numeric = [&](std::vector<double> Problem::*field) {
      std::vector<double> g((p.*field).size());
      const double h = 1e-6;
      for (size_t i = 0; i < g.size(); ++i) {
        Problem q = p;
        (q.*field)[i] += h;
        double up = loss(q);
        (q.*field)[i] -= 2 * h;
        g[i] = (up - loss(q)) / (2 * h);
      }
      return g;
    };
    std::string what = "compat T=" + std::to_string(T);
    // central differences with h = 1e-6 on an O(1) loss carry ~1e-10 of rounding noise
    EXPECT_TRUE(close(got.dk, numeric(&Problem::k), 1e-6, 1e-8, what + " dk"));
    EXPECT_TRUE(close(got.dv, numeric(&Problem::v), 1e-6, 1e-8, what + " dv"));
    EXPECT_TRUE(close(got.ddecay, numeric(&Problem::decay), 1e-6, 1e-8, what + " ddecay"));
    EXPECT_TRUE(close(got.dfirst, numeric(&Problem::first), 1e-6, 1e-8, what + " dfirst"));
  }
}

TEST(BiWkvCompatCpu, F32MatchesF64) {
  Problem p = make_problem(2, 50, 3, 2.0, -0.3, 0.3, 31);
  std::vector<double> want = compat_forward(p);
  std::vector<float> k = cast<float>(p.k), v = cast<float>(p.v), y(k.size());
  std::vector<float> decay = cast<float>(p.decay), first = cast<float>(p.first);
  bi_wkv_compat_forward_cpu<float>(y.data(), k.data(), v.data(), decay.data(), first.data(), p.B, p.T, p.C, nullptr);
  EXPECT_TRUE(close(widen(y), want, 1e-4, 1e-6, "compat f32 y"));
}

}  // namespace
}  // namespace drwkv::kernels
