// The pure parts of dist/, in one process: the ZeRO-1 shard layout, rank-order host
// reductions, heartbeat encoding and the watchdog's diagnosis of a hung run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "dist/host_reduce.h"
#include "dist/rendezvous.h"
#include "dist/watchdog.h"
#include "dist/zero.h"

namespace drwkv::dist {
namespace {

TEST(ShardLayout, PaddingAndOwnership) {
  ShardLayout l = ShardLayout::make(1000, 3, 128);
  EXPECT_EQ(l.padded_numel, 1152);  // 3 x 128 x 3
  EXPECT_EQ(l.shard_numel, 384);
  EXPECT_EQ(l.padding(), 152);
  EXPECT_EQ(l.valid(0), 384);
  EXPECT_EQ(l.valid(1), 384);
  EXPECT_EQ(l.valid(2), 232);
  EXPECT_EQ(zero1_bytes_saved_per_rank(l, 8), (1000 - 384) * 8);
  ShardLayout tiny = ShardLayout::make(5, 4, 128);
  EXPECT_EQ(tiny.valid(1), 0);
  EXPECT_LT(zero1_bytes_saved_per_rank(tiny, 8), 0) << "padding outweighs the saving for tiny buffers";
  // 300 MB of f32 gradients (DRWKV-B/2) over 8 ranks: 7/8 of 600 MB of AdamW state saved per rank
  ShardLayout big = ShardLayout::make(75'000'000, 8);
  EXPECT_EQ(zero1_bytes_saved_per_rank(big, 8), (75'000'000 - big.shard_numel) * 8);
}

TEST(HostReduce, Bf16IsSummedInF32AndRoundedOnce) {
  // 1 + 2^-8 + 2^-8: rounding after each step would lose both small terms (bf16 has 8 mantissa bits)
  std::vector<bf16> blocks = {bf16(1.0f), bf16(std::ldexp(1.0f, -8)), bf16(std::ldexp(1.0f, -8))};
  bf16 out;
  reduce_blocks(blocks.data(), 3, 1, DType::BF16, ReduceOp::Sum, &out);
  EXPECT_EQ(float(out), float(bf16(1.0f + std::ldexp(1.0f, -7))));
  std::vector<float> f = {1.0f, 2.0f, 4.0f};
  float avg;
  reduce_blocks(f.data(), 3, 1, DType::F32, ReduceOp::Avg, &avg);
  EXPECT_EQ(avg, 7.0f / 3.0f);
}

TEST(HostReduce, RowsPerOp) {
  std::vector<double> rows = {1, 5, -1, 2, std::nan(""), -3};  // 2 ranks x 3 values
  std::vector<HostOp> ops = {HostOp::Sum, HostOp::Max, HostOp::Min};
  std::vector<double> out(3);
  reduce_host_rows(rows, 2, ops, out);
  EXPECT_EQ(out[0], 3);
  EXPECT_TRUE(std::isnan(out[1]));
  EXPECT_EQ(out[2], -3);
}

TEST(Rendezvous, HexRoundTrip) {
  std::string bytes("\x00\x01\xfe\xff id", 7);
  auto back = hex_decode(hex_encode(bytes));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, bytes);
  EXPECT_FALSE(hex_decode("0g").ok());
}

Heartbeat hb(uint64_t beat, uint64_t started, const char* current = "idle", int64_t step = 5) {
  Heartbeat h;
  h.beat = beat;
  h.started = started;
  h.completed = started;
  h.step = step;
  h.current = current;
  return h;
}

TEST(Watchdog, HeartbeatEncoding) {
  Heartbeat h = hb(7, 12, "all_reduce f32[10] avg (collective #12)");
  auto d = Heartbeat::decode(h.encode());
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->beat, 7u);
  EXPECT_EQ(d->started, 12u);
  EXPECT_EQ(d->step, 5);
  EXPECT_EQ(d->current, h.current);
  EXPECT_FALSE(Heartbeat::decode("garbage").has_value());
}

TEST(Watchdog, DiagnosisNamesTheRankThatStopped) {
  Heartbeat me = hb(10, 12);
  std::vector<std::optional<Heartbeat>> first = {hb(10, 12), hb(4, 11), hb(9, 12)};
  std::vector<std::optional<Heartbeat>> second = {hb(12, 12), hb(4, 11), hb(11, 12)};
  Diagnosis d = diagnose(0, me, first, second, {}, 2.5);
  EXPECT_EQ(d.failed, std::vector<int>{1});
  EXPECT_NE(d.text.find("rank 1 stopped: no heartbeat for 2.5 s"), std::string::npos) << d.text;
}

TEST(Watchdog, DiagnosisPrefersDeadRanksOverLateOnes) {
  Heartbeat me = hb(10, 12);
  std::vector<std::optional<Heartbeat>> beats = {hb(10, 12), hb(4, 12), hb(9, 10)};
  std::vector<std::optional<Heartbeat>> later = {hb(12, 12), hb(5, 12), hb(11, 10)};
  Diagnosis d = diagnose(0, me, beats, later, {1}, 2.5);
  EXPECT_EQ(d.failed, std::vector<int>{1});
  EXPECT_NE(d.text.find("rank 1 died"), std::string::npos) << d.text;
  Diagnosis late = diagnose(0, me, beats, later, {}, 2.5);
  EXPECT_EQ(late.failed, std::vector<int>{2});
  EXPECT_NE(late.text.find("rank 2 is alive but behind: it has issued 10 collectives, this rank 12"),
            std::string::npos)
      << late.text;
}

TEST(Watchdog, DiagnosisOfTheLateRankItselfAndOfAHungCollective) {
  std::vector<std::optional<Heartbeat>> a = {hb(1, 13), hb(1, 12), hb(1, 13)};
  std::vector<std::optional<Heartbeat>> b = {hb(2, 13), hb(2, 12), hb(2, 13)};
  Diagnosis d = diagnose(1, hb(2, 12), a, b, {}, 1);
  EXPECT_EQ(d.failed, std::vector<int>{1});
  EXPECT_NE(d.text.find("this rank (1) is behind"), std::string::npos) << d.text;
  std::vector<std::optional<Heartbeat>> same = {hb(2, 12), hb(2, 12), hb(2, 12)};
  Diagnosis none = diagnose(1, hb(2, 12), a, same, {}, 1);
  EXPECT_TRUE(none.failed.empty()) << none.text;
  std::vector<std::optional<Heartbeat>> missing = {hb(2, 12), std::nullopt, hb(2, 12)};
  std::vector<std::optional<Heartbeat>> missing_later = {hb(3, 12), std::nullopt, hb(3, 12)};
  Diagnosis never = diagnose(0, hb(2, 12), missing, missing_later, {}, 1);
  EXPECT_EQ(never.failed, std::vector<int>{1});
  EXPECT_EQ(rank_list({1, 3}), "ranks 1, 3");
}

}  // namespace
}  // namespace drwkv::dist
