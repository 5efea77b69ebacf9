// The epoch permutation (bijection for awkward N, reproducible, different across epochs and seeds), rank
// slicing (same multiset per step for W = 1, 2, 3 at fixed GB), resume state checks and sample keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "data/order.h"

namespace drwkv::data {
namespace {

std::vector<uint64_t> order_of(uint64_t n, uint64_t seed, uint64_t epoch) {
  Permutation p = epoch_permutation(n, seed, epoch);
  std::vector<uint64_t> v(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) v[size_t(i)] = p(i);
  return v;
}

TEST(Permutation, BijectionForAwkwardSizes) {
  for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 1000ull, 1025ull, 60000ull}) {
    for (uint64_t epoch : {0ull, 1ull, 5ull}) {
      std::vector<uint64_t> v = order_of(n, 42, epoch);
      std::vector<uint64_t> sorted = v;
      std::sort(sorted.begin(), sorted.end());
      for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[size_t(i)], i) << "n " << n << " epoch " << epoch;
    }
  }
}

TEST(Permutation, ReproducibleAndDifferentAcrossEpochsAndSeeds) {
  const uint64_t n = 60000;
  std::vector<uint64_t> a = order_of(n, 42, 0);
  EXPECT_EQ(a, order_of(n, 42, 0));
  auto same_positions = [](const std::vector<uint64_t>& x, const std::vector<uint64_t>& y) {
    int64_t k = 0;
    for (size_t i = 0; i < x.size(); ++i) k += x[i] == y[i];
    return k;
  };
  std::vector<uint64_t> identity(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) identity[size_t(i)] = i;
  // a random permutation has ~1 fixed point and agrees with another at ~1 position
  EXPECT_LT(same_positions(a, identity), 20);
  EXPECT_LT(same_positions(a, order_of(n, 42, 1)), 20);
  EXPECT_LT(same_positions(a, order_of(n, 43, 0)), 20);
  // neighbours are spread: the first 1000 positions cover many 1000-wide blocks
  std::set<uint64_t> blocks;
  for (size_t i = 0; i < 1000; ++i) blocks.insert(a[i] / 1000);
  EXPECT_GT(blocks.size(), 50u);
  // small n: both orders of 2 occur across epochs
  std::set<std::vector<uint64_t>> seen;
  for (uint64_t e = 0; e < 16; ++e) seen.insert(order_of(2, 9, e));
  EXPECT_EQ(seen.size(), 2u);
}

// Samples read by all ranks and micro-steps of one step.
std::multiset<uint64_t> step_samples(uint64_t n, uint64_t seed, const BatchGeometry& g0, int64_t step) {
  std::multiset<uint64_t> out;
  for (int r = 0; r < g0.world_size; ++r) {
    BatchGeometry g = g0;
    g.rank = r;
    for (int m = 0; m < g.accum; ++m) {
      int64_t first = g.first_slot(step, m);
      for (int64_t i = 0; i < g.micro_batch; ++i) {
        int64_t slot = first + i;
        out.insert(epoch_permutation(n, seed, uint64_t(slot) / n)(uint64_t(slot) % n));
      }
    }
  }
  return out;
}

TEST(RankSlicing, SameMultisetPerStepForAnyWorldSize) {
  const uint64_t n = 103, seed = 5;
  const int64_t gb = 12;
  const BatchGeometry ref{gb, 12, 0, 1, 1};
  for (BatchGeometry g : {BatchGeometry{gb, 6, 0, 2, 1}, BatchGeometry{gb, 4, 0, 3, 1}, BatchGeometry{gb, 2, 0, 3, 2},
                          BatchGeometry{gb, 3, 0, 1, 4}}) {
    ASSERT_TRUE(g.validate().ok());
    for (int64_t step = 0; step < 30; ++step)  // 30 steps of 12 cross three epoch boundaries of 103
      ASSERT_EQ(step_samples(n, seed, g, step), step_samples(n, seed, ref, step))
          << "W " << g.world_size << " b " << g.micro_batch << " accum " << g.accum << " step " << step;
  }
  // ranks of one micro-step read disjoint consecutive slot ranges
  BatchGeometry g{gb, 4, 1, 3, 1};
  EXPECT_EQ(g.first_slot(2, 0), 2 * 12 + 4);
  EXPECT_FALSE((BatchGeometry{gb, 5, 0, 2, 1}).validate().ok());
  EXPECT_FALSE((BatchGeometry{gb, 6, 2, 2, 1}).validate().ok());
}

TEST(Resume, JsonRoundTripAndChecks) {
  ResumeState s = initial_resume_state("0123456789abcdef", 18446744073709551615ull, 12);
  s.step = 9;
  s.micro_step = 1;
  s.micro_slots = 6;
  s.epoch = (9 * 12 + 6) / 103;
  auto back = ResumeState::from_json(s.to_json(), "ckpt");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  const BatchGeometry g{12, 6, 0, 1, 2};
  EXPECT_TRUE(check_resume(s, "0123456789abcdef", 103, s.seed, g).ok());
  auto err = [&](const ResumeState& st, const std::string& fp, uint64_t seed, const BatchGeometry& geo) {
    return std::string(check_resume(st, fp, 103, seed, geo).message());
  };
  EXPECT_NE(err(s, "ffffffffffffffff", s.seed, g).find("fingerprint 0123456789abcdef, but the dataset has fingerprint "
                                                      "ffffffffffffffff"),
            std::string::npos);
  EXPECT_NE(err(s, s.fingerprint, 3, g).find("seed"), std::string::npos);
  EXPECT_NE(err(s, s.fingerprint, s.seed, BatchGeometry{24, 12, 0, 1, 2}).find("global_batch 12, the run uses 24"),
            std::string::npos);
  EXPECT_NE(err(s, s.fingerprint, s.seed, BatchGeometry{12, 2, 0, 2, 3}).find("resume mid-step only with the same geometry"),
            std::string::npos);
  ResumeState boundary = s;
  boundary.micro_step = 0;
  boundary.micro_slots = 0;
  boundary.epoch = 9 * 12 / 103;
  EXPECT_TRUE(check_resume(boundary, s.fingerprint, 103, s.seed, BatchGeometry{12, 3, 0, 2, 2}).ok());  // W may change
  ResumeState bad_epoch = boundary;
  bad_epoch.epoch = 3;
  EXPECT_NE(err(bad_epoch, s.fingerprint, s.seed, g).find("inconsistent"), std::string::npos);
  EXPECT_FALSE(ResumeState::from_json("{\"fingerprint\": \"x\"}", "ckpt").ok());
}

TEST(SampleKeys, DistinctPerPurposeEpochAndSampleAndFlipIsBalanced) {
  std::set<uint64_t> keys;
  for (uint64_t e = 0; e < 3; ++e)
    for (uint64_t g = 0; g < 100; ++g)
      for (KeyPurpose p : {KeyPurpose::Timestep, KeyPurpose::Noise, KeyPurpose::LabelDrop, KeyPurpose::Flip})
        keys.insert(sample_key(7, e, g, p));
  EXPECT_EQ(keys.size(), 3u * 100u * 4u);
  EXPECT_NE(sample_key(7, 0, 0, KeyPurpose::Noise), sample_key(8, 0, 0, KeyPurpose::Noise));
  int flips = 0;
  for (uint64_t g = 0; g < 10000; ++g) flips += sample_flip(7, 0, g);
  EXPECT_GT(flips, 4800);
  EXPECT_LT(flips, 5200);
  EXPECT_EQ(sample_flip(7, 3, 11), sample_flip(7, 3, 11));
}

}  // namespace
}  // namespace drwkv::data
