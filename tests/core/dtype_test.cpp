// bf16/f16 conversions: rounding to nearest even, special values, and the full f16 round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.h"

namespace drwkv {
namespace {

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::BF16), 2);
  EXPECT_EQ(dtype_size(DType::F64), 8);
  EXPECT_EQ(dtype_name(DType::U8), "u8");
  EXPECT_TRUE(dtype_is_float(DType::F16));
  EXPECT_FALSE(dtype_is_float(DType::I64));
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is exactly half way between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
  EXPECT_EQ(float(bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3·2^-8 is half way between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(float(bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  // just above the tie rounds up
  EXPECT_EQ(float(bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(float(bf16(-3.0f)), -3.0f);
  EXPECT_TRUE(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(float(bf16(std::numeric_limits<float>::infinity()))));
}

TEST(DType, F16RoundTripsEveryValue) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = f16::to_float(uint16_t(b));
    uint16_t back = f16::from_float(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16::to_float(back))) << b;
    } else {
      EXPECT_EQ(back, uint16_t(b)) << "bits 0x" << std::hex << b << " value " << f;
    }
  }
}

TEST(DType, F16RoundsToNearestEven) {
  EXPECT_EQ(float(f16(65504.0f)), 65504.0f);               // largest finite
  EXPECT_TRUE(std::isinf(float(f16(65520.0f))));           // rounds up past the largest
  EXPECT_EQ(float(f16(1.0f + std::ldexp(1.0f, -11))), 1.0f);  // tie to even
  EXPECT_EQ(float(f16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(float(f16(std::ldexp(1.0f, -25))), 0.0f);      // tie between 0 and 2^-24 -> 0 (even)
  EXPECT_EQ(float(f16(std::ldexp(1.5f, -25))), std::ldexp(1.0f, -24));
  EXPECT_EQ(float(f16(0.1f)), 0.0999755859375f);
}

}  // namespace
}  // namespace drwkv
