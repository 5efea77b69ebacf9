// The CPU launchers of kernels/embed.h and kernels/loss.h: gather, the table-gradient contract
// (overwrite zeroes unselected rows, accumulate adds, position order), MSE value and backward flags.
#include <gtest/gtest.h>

#include "kernels/embed.h"
#include "kernels/loss.h"
#include "tests/support/testing.h"

namespace drwkv::kernels {
namespace {

TEST(EmbedCpu, GatherAndTableGradient) {
  const int64_t R = 4, C = 3;
  std::vector<bf16> table;
  for (int i = 0; i < R * C; ++i) table.push_back(bf16(float(i) + 0.5f));
  std::vector<int32_t> ids = {3, 3, 0, 3};
  std::vector<bf16> out(ids.size() * C);
  embedding_forward_cpu<bf16>(out.data(), table.data(), ids.data(), int64_t(ids.size()), R, C);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(out[i * C + size_t(c)].bits, table[size_t(ids[i] * C + c)].bits);

  std::vector<bf16> dout;
  for (int i = 0; i < 12; ++i) dout.push_back(bf16(float(i)));
  std::vector<float> dtable(R * C, 7.f);
  embedding_backward_cpu<bf16>(dtable.data(), dout.data(), ids.data(), 4, R, C, false, nullptr);
  // row 3 = positions 0, 1, 3; row 0 = position 2; rows 1, 2 are zeroed
  EXPECT_EQ(dtable, (std::vector<float>{6, 7, 8, 0, 0, 0, 0, 0, 0, 0 + 3 + 9, 1 + 4 + 10, 2 + 5 + 11}));
  embedding_backward_cpu<bf16>(dtable.data(), dout.data(), ids.data(), 4, R, C, true, nullptr);
  EXPECT_EQ(dtable, (std::vector<float>{12, 14, 16, 0, 0, 0, 0, 0, 0, 24, 30, 36}));
}

TEST(EmbedCpu, OutOfRangeIdFails) {
  std::vector<float> table(6, 1.f), out(3), dtable(6);
  std::vector<int32_t> bad = {2};
  EXPECT_DEATH(embedding_forward_cpu<float>(out.data(), table.data(), bad.data(), 1, 2, 3),
               "id 2 at position 0 is outside the table of 2 rows");
  EXPECT_DEATH(embedding_backward_cpu<float>(dtable.data(), out.data(), bad.data(), 1, 2, 3, false, nullptr),
               "outside the table");
}

TEST(LossCpu, MseValueAndBackwardFlags) {
  std::vector<float> a = {1, 2, 3, 4, 5}, b = {0, 2, 5, 1, 5};
  std::vector<float> out(kMseBuffer, -1.f);
  mse_forward_cpu<float>(out.data(), a.data(), b.data(), 5);
  EXPECT_FLOAT_EQ(out[0], (1.f + 0 + 4 + 9 + 0) / 5);
  const float g = 0.5f;  // dloss
  std::vector<float> da(5, 100.f), db(5, 100.f);
  mse_backward_cpu<float>(da.data(), db.data(), &g, a.data(), b.data(), 5, false, true);
  for (int i = 0; i < 5; ++i) {
    const float want = 2 * g * (a[size_t(i)] - b[size_t(i)]) / 5;
    EXPECT_FLOAT_EQ(da[size_t(i)], want) << i;            // overwritten
    EXPECT_FLOAT_EQ(db[size_t(i)], 100.f - want) << i;    // accumulated
  }
  // da may alias a; db absent
  std::vector<float> a2 = a;
  mse_backward_cpu<float>(a2.data(), nullptr, &g, a2.data(), b.data(), 5, false, false);
  for (int i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(a2[size_t(i)], da[size_t(i)]);
}

}  // namespace
}  // namespace drwkv::kernels
