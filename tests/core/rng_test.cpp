// Philox fills on the host: statistics, determinism, offsets, per-row streams, reference values.
#include <gtest/gtest.h>

#include <cmath>

#include "core/philox.h"
#include "core/rng.h"

namespace drwkv {
namespace {

TEST(Philox, KnownAnswer) {
  // Philox4x32-10 known-answer vectors of the Random123 distribution (counter, key) -> output.
  philox::Words z = philox::block(0, 0, 0);
  EXPECT_EQ(z.x[0], 0x6627e8d5u);
  EXPECT_EQ(z.x[1], 0xe169c58du);
  EXPECT_EQ(z.x[2], 0xbc57ac4cu);
  EXPECT_EQ(z.x[3], 0x9b00dbd8u);
  // counter = all ones, key = all ones
  philox::Words o = philox::block(0xffffffffffffffffull, 0xffffffffffffffffull, 0xffffffffffffffffull);
  EXPECT_EQ(o.x[0], 0x408f276du);
  EXPECT_EQ(o.x[1], 0x41c83b0eu);
  EXPECT_EQ(o.x[2], 0xa20bc7c6u);
  EXPECT_EQ(o.x[3], 0x6d5451fdu);
}

TEST(Philox, DeterministicLogAndSinCos) {
  for (double x : {1e-9, 0.001, 0.3, 0.5, 0.7071, 0.9999999}) EXPECT_NEAR(philox::det_log(x), std::log(x), 1e-15 * std::fabs(std::log(x)) + 1e-16);
  for (double u = 0; u < 1; u += 0.0123) {
    double s, c;
    philox::det_sincos_2pi(u, &s, &c);
    EXPECT_NEAR(s, std::sin(2 * M_PI * u), 2e-15);
    EXPECT_NEAR(c, std::cos(2 * M_PI * u), 2e-15);
  }
}

TEST(Rng, UniformAndNormalStatistics) {
  Tensor u = Tensor::empty(Shape{1 << 16}, DType::F32);
  rng_uniform_(u, 42, 1);
  Tensor n = Tensor::empty(Shape{1 << 16}, DType::F64);
  rng_normal_(n, 42, 2, 0, 3.0, 2.0);
  double su = 0, mn = 1, mx = 0;
  for (float v : u.to_vector<float>()) {
    su += v;
    mn = std::min<double>(mn, v);
    mx = std::max<double>(mx, v);
  }
  EXPECT_GT(mn, 0.0);
  EXPECT_LT(mx, 1.0);
  EXPECT_NEAR(su / (1 << 16), 0.5, 0.01);
  double s = 0, s2 = 0;
  for (double v : n.to_vector<double>()) {
    s += v;
    s2 += v * v;
  }
  double mean = s / (1 << 16), var = s2 / (1 << 16) - mean * mean;
  EXPECT_NEAR(mean, 3.0, 0.03);
  EXPECT_NEAR(var, 4.0, 0.08);
}

TEST(Rng, SameKeySameNumbersAndOffsetsContinue) {
  Tensor a = Tensor::empty(Shape{100}, DType::F32), b = Tensor::empty(Shape{100}, DType::F32);
  rng_normal_(a, 7, 3);
  rng_normal_(b, 7, 3);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  // a fill starting at block offset 5 equals elements 20.. of the long fill
  Tensor tail = Tensor::empty(Shape{80}, DType::F32);
  rng_normal_(tail, 7, 3, 5);
  std::vector<float> av = a.to_vector<float>(), tv = tail.to_vector<float>();
  for (int i = 0; i < 80; ++i) EXPECT_EQ(tv[size_t(i)], av[size_t(i + 20)]) << i;
  Tensor other = Tensor::empty(Shape{100}, DType::F32);
  rng_normal_(other, 7, 4);
  EXPECT_NE(other.to_vector<float>(), av);
}

TEST(Rng, RowStreams) {
  Tensor t = Tensor::empty(Shape{3, 10}, DType::F32);
  rng_normal_rows_(t, 9, {11, 12, 11});
  std::vector<float> v = t.to_vector<float>();
  Tensor row = Tensor::empty(Shape{10}, DType::F32);
  rng_normal_(row, 9, 12);
  std::vector<float> r = row.to_vector<float>();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(v[size_t(10 + i)], r[size_t(i)]);
    EXPECT_EQ(v[size_t(i)], v[size_t(20 + i)]);
  }
  EXPECT_NE(rng_mix({1, 2}), rng_mix({2, 1}));
}

}  // namespace
}  // namespace drwkv
