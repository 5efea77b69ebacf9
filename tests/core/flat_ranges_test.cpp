// Cutting a flat parameter layout into bounded contiguous ranges (core/flat_ranges.h): the gradient
// reducer's buckets and the parameter store's gradient segments.
#include <gtest/gtest.h>

#include "core/flat_ranges.h"

namespace drwkv {
namespace {

TEST(PlanFlatRanges, ReverseRegistrationOrderWithinTheByteLimit) {
  // 4-byte elements, 40-byte ranges (10 elements)
  std::vector<FlatSlot> p = {{0, 3}, {3, 3}, {8, 4}, {12, 25}, {37, 2}, {39, 2}, {41, 6}};
  std::vector<FlatRange> b = plan_flat_ranges(p, 4, 40);
  ASSERT_EQ(b.size(), 4u);
  // last parameters first: 6, 5 and 4 fill [37, 47) = exactly 10 elements
  EXPECT_EQ(b[0].first_param, 4);
  EXPECT_EQ(b[0].last_param, 6);
  EXPECT_EQ(b[0].begin, 37);
  EXPECT_EQ(b[0].end, 47);
  EXPECT_EQ(b[1].first_param, 3);  // 25 elements > 10: a range of its own
  EXPECT_EQ(b[1].last_param, 3);
  EXPECT_EQ(b[2].first_param, 1);  // [3, 12): the gap [6, 8) travels too
  EXPECT_EQ(b[2].last_param, 2);
  EXPECT_EQ(b[2].begin, 3);
  EXPECT_EQ(b[2].end, 12);
  EXPECT_EQ(b[3].first_param, 0);
  EXPECT_EQ(b[3].last_param, 0);
}

TEST(PlanFlatRangesDeathTest, OverlappingTableIsAProgrammingError) {
  std::vector<FlatSlot> p = {{0, 4}, {2, 4}};
  EXPECT_DEATH(plan_flat_ranges(p, 4, 1024), "inside parameter 0");
}

}  // namespace
}  // namespace drwkv
