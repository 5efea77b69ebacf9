// Schedule and respacing against the numbers of MODEL.md §6.
#include <gtest/gtest.h>

#include "models/diffusion.h"

namespace drwkv::models {
namespace {

TEST(Schedule, LinearTables) {
  Schedule s = Schedule::linear();
  ASSERT_EQ(s.size(), 1000);
  EXPECT_NEAR(s.alphas_cumprod[0], 0.9999, 1e-12);
  EXPECT_NEAR(s.alphas_cumprod[499], 0.0785872, 5e-8);
  EXPECT_NEAR(s.alphas_cumprod[999], 4.03583e-5, 5e-10);
  EXPECT_EQ(s.betas[999], 0.02);
  EXPECT_NEAR(s.posterior_variance[0], 0.0, 1e-300);
  EXPECT_EQ(s.posterior_log_variance_clipped[0], s.posterior_log_variance_clipped[1]);
}

TEST(Schedule, Respacing250) {
  std::vector<int> keep = space_timesteps(1000, "250").value();
  ASSERT_EQ(keep.size(), 250u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(keep[size_t(i)], 4 * i);
  std::vector<int> last(keep.end() - 5, keep.end());
  EXPECT_EQ(last, (std::vector<int>{983, 987, 991, 995, 999}));
  Schedule r = Schedule::linear().respace(keep);
  EXPECT_NEAR(r.betas[0], 1e-4, 1e-12);
  EXPECT_NEAR(r.betas[1], 5.99066e-4, 5e-10);
  EXPECT_NEAR(r.betas[249], 0.0775193, 5e-8);
  EXPECT_EQ(r.timestep_map[249], 999);
}

TEST(Schedule, Respacing50AndDdim50) {
  std::vector<int> k50 = space_timesteps(1000, "50").value();
  ASSERT_EQ(k50.size(), 50u);
  EXPECT_EQ(std::vector<int>(k50.begin(), k50.begin() + 6), (std::vector<int>{0, 20, 41, 61, 82, 102}));
  EXPECT_EQ(std::vector<int>(k50.end() - 3, k50.end()), (std::vector<int>{958, 979, 999}));
  std::vector<int> d50 = space_timesteps(1000, "ddim50").value();
  ASSERT_EQ(d50.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(d50[size_t(i)], 20 * i);
  EXPECT_EQ(space_timesteps(1000, "ddim250").value().back(), 996);
  EXPECT_FALSE(space_timesteps(1000, "ddim0").ok());
  EXPECT_FALSE(space_timesteps(10, "20").ok());
  EXPECT_FALSE(space_timesteps(1000, "abc").ok());
}

}  // namespace
}  // namespace drwkv::models
