// xxh64 against published vectors, the JSON reader/printer, and the hand-built HDF5 half types.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "data/h5.h"
#include "data/json.h"
#include "data/xxhash64.h"

namespace drwkv::data {
namespace {

TEST(Xxh64, KnownVectors) {
  EXPECT_EQ(hex64(xxh64("", 0)), "ef46db3751d8e999");
  EXPECT_EQ(hex64(xxh64("abc", 3)), "44bc2cf5ad770999");
  std::vector<unsigned char> v(100);
  std::iota(v.begin(), v.end(), 0);
  EXPECT_EQ(hex64(xxh64(v.data(), v.size())), "6ac1e58032166597");  // python xxhash.xxh64(bytes(range(100)))
}

TEST(Xxh64, StreamingEqualsOneShotForEverySplit) {
  std::vector<unsigned char> v(100);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<unsigned char>(i * 37 + 11);
  for (size_t n : {0u, 1u, 31u, 32u, 33u, 64u, 100u}) {
    uint64_t one = xxh64(v.data(), n);
    for (size_t a = 0; a <= n; ++a) {
      for (size_t b = a; b <= n; b += 7) {
        Xxh64 h;
        h.update(v.data(), a);
        h.update(v.data() + a, b - a);
        h.update(v.data() + b, n - b);
        ASSERT_EQ(h.digest(), one) << "n " << n << " splits " << a << ", " << b;
      }
    }
  }
}

TEST(Xxh64, HexRoundTrip) {
  EXPECT_EQ(parse_hex64("0123456789abcdef").value(), 0x0123456789abcdefull);
  EXPECT_EQ(hex64(0x0123456789abcdefull), "0123456789abcdef");
  EXPECT_FALSE(parse_hex64("0123456789abcde").has_value());
  EXPECT_FALSE(parse_hex64("0123456789abcdeg").has_value());
}

TEST(Json, RoundTripIsDeterministic) {
  const std::string text = R"({"a": [1, -2, 3.5, true, false, null], "b": {"c": "x\"\\\n\u00e9\ud83d\ude00"}, "big": 9007199254740993})";
  auto j = Json::parse(text, "t.json");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->find("a")->items().size(), 6u);
  EXPECT_TRUE(j->find("a")->items()[0].is_integer());
  EXPECT_DOUBLE_EQ(j->find("a")->items()[2].as_double(), 3.5);
  EXPECT_EQ(j->find("b")->find("c")->as_string(), "x\"\\\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(j->find("big")->as_int(), 9007199254740993LL);  // exact beyond 2^53
  auto again = Json::parse(j->dump(), "t2.json");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->dump(), j->dump());
  EXPECT_EQ(again->dump(0), j->dump(0));
}

TEST(Json, StrictErrorsNameTheFileAndLine) {
  for (const char* bad : {"{\"a\": 1,}", "{\"a\": 1, \"a\": 2}", "[1, 2", "{\"a\": 01}", "{\"a\": \"\\q\"}", "{} x",
                          "{\"a\": \"\\ud800\"}", "nul"}) {
    auto j = Json::parse(std::string("\n") + bad, "bad.json");
    ASSERT_FALSE(j.ok()) << bad;
    EXPECT_NE(j.status().message().find("bad.json:2: invalid JSON"), std::string::npos) << j.status();
  }
}

TEST(H5Types, HalfTypesHaveTheH5pyLayout) {
  h5_silence();
  H5Id f16t = h5_type(Elem::F16);
  size_t spos, epos, esize, mpos, msize;
  ASSERT_GE(H5Tget_fields(f16t.get(), &spos, &epos, &esize, &mpos, &msize), 0);
  EXPECT_EQ(H5Tget_size(f16t.get()), 2u);
  EXPECT_EQ(H5Tget_precision(f16t.get()), 16u);
  EXPECT_EQ(H5Tget_order(f16t.get()), H5T_ORDER_LE);
  EXPECT_EQ(H5Tget_ebias(f16t.get()), 15u);
  EXPECT_EQ((std::vector<size_t>{spos, epos, esize, mpos, msize}), (std::vector<size_t>{15, 10, 5, 0, 10}));
  for (Elem e : {Elem::U8, Elem::U16, Elem::I32, Elem::U64, Elem::F16, Elem::BF16, Elem::F32}) {
    H5Id t = h5_type(e);
    auto c = h5_classify(t.get(), "x");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(*c, e) << elem_name(e);
  }
  H5Id be(H5Tcopy(H5T_IEEE_F32BE));
  auto c = h5_classify(be.get(), "dataset 'latent'");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("dataset 'latent' has an unsupported HDF5 type (float, 4 bytes, big-endian)"),
            std::string::npos)
      << c.status();
}

}  // namespace
}  // namespace drwkv::data
