// Agreed step decisions and ZeRO-1 building blocks across real processes (mpirun -np 2 and 3, MPI
// backend on CPU). A NaN injected into one rank's gradients makes every rank skip the same step and
// nobody hangs; norms and metric sums are bitwise the same on every rank; reduce_scatter + all_gather
// of the ZeRO-1 layout reproduce the all-reduce exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "dist/agree.h"
#include "dist/grad_reducer.h"
#include "dist/zero.h"
#include "tests/dist/dist_test_world.h"

namespace drwkv::dist {
namespace {

using testing::test_world;

double sum_of_squares(const Tensor& t) {
  double s = 0;
  for (float v : t.to_vector<float>()) s += double(v) * double(v);
  return s;
}

uint64_t bits(double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  return u;
}

// The agreed values are identical on every rank: gather their bits and compare with rank 0's.
void expect_agreed(Communicator& c, const AgreedStep& a) {
  std::vector<double> mine = {a.grad_norm, a.skip ? 1.0 : 0.0};
  mine.insert(mine.end(), a.sums.begin(), a.sums.end());
  std::vector<double> all(mine.size() * size_t(c.world_size()));
  c.all_gather_host(mine, all);
  for (int r = 1; r < c.world_size(); ++r) {
    for (size_t i = 0; i < mine.size(); ++i) {
      EXPECT_EQ(bits(all[size_t(r) * mine.size() + i]), bits(all[i])) << "value " << i << " of rank " << r;
    }
  }
}

TEST(Agree, NanOnOneRankMakesEveryRankSkipTheSameStep) {
  Communicator& c = test_world().comm();
  const int W = c.world_size();
  std::vector<FlatSlot> params = {{0, 100}, {100, 1000}, {1100, 7}};
  Tensor grads = Tensor::zeros(Shape{1107}, DType::F32);
  GradReducer red(c, grads, params, {1024});
  for (int step = 0; step < 3; ++step) {
    const int bad_rank = step == 1 ? W - 1 : -1;  // step 1: the last rank's loss went NaN
    grads.fill_(0.25 * (c.rank() + 1));
    float loss = 1.0f + float(c.rank());
    if (c.rank() == bad_rank) {
      loss = std::nanf("");
      grads.narrow(0, 500, 1).fill_(std::nan(""));  // its backward produced NaN gradients too
    }
    // every rank takes part in the reduction, whatever its loss
    for (int p = 2; p >= 0; --p) red.mark_ready(p);
    red.finish();
    LocalStepStats local;
    local.grad_sq_sum = sum_of_squares(grads);
    local.nonfinite = !std::isfinite(loss);
    local.sums = {std::isfinite(loss) ? double(loss) : 0.0, 1.0};
    AgreedStep a = agree_step(c, local);
    EXPECT_EQ(a.skip, step == 1) << "step " << step;
    if (step != 1) {
      double mean = 0.25;
      for (int r = 1; r < W; ++r) mean += 0.25 * (r + 1);
      mean /= W;
      EXPECT_NEAR(a.grad_norm, std::sqrt(1107.0) * mean, 1e-4);
      EXPECT_EQ(a.sums[1], double(W));
    }
    expect_agreed(c, a);
  }
}

TEST(Agree, ShardedNormSumsOverRanksAndHelpersAgree) {
  Communicator& c = test_world().comm();
  LocalStepStats local;
  local.grad_is_sharded = true;
  local.grad_sq_sum = double(c.rank() + 1);
  AgreedStep a = agree_step(c, local);
  double want = 1;
  for (int r = 1; r < c.world_size(); ++r) want = want + double(r + 1);
  EXPECT_EQ(bits(a.grad_norm), bits(std::sqrt(want)));
  EXPECT_FALSE(a.skip);
  EXPECT_TRUE(agree_any(c, c.rank() == 1));
  EXPECT_FALSE(agree_any(c, false));
  EXPECT_EQ(agree_sum(c, 2.0), 2.0 * c.world_size());
  EXPECT_EQ(clip_coefficient(2.0, 1.0), 0.5);
  EXPECT_EQ(clip_coefficient(0.5, 1.0), 1.0);
  EXPECT_EQ(clip_coefficient(5.0, 0.0), 1.0);
}

TEST(Zero1, ReduceScatterThenAllGatherMatchTheAllReduce) {
  Communicator& c = test_world().comm();
  const int W = c.world_size();
  const int64_t numel = 10007;
  ShardLayout l = ShardLayout::make(numel, W);
  EXPECT_EQ(l.padded_numel % (W * 128), 0);
  EXPECT_GE(l.padded_numel, numel);
  EXPECT_LT(l.padding(), W * 128);
  int64_t valid = 0;
  for (int r = 0; r < W; ++r) valid += l.valid(r);
  EXPECT_EQ(valid, numel);

  Tensor grads = Tensor::zeros(Shape{l.padded_numel}, DType::F32);
  std::vector<float> g(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) g[size_t(i)] = float((i * 31 + c.rank() * 7) % 101) / 16.0f - 3.0f;
  grads.narrow(0, 0, numel).copy_(Tensor::from_vector(g, Shape{numel}));
  Tensor reference = grads.clone();
  c.all_reduce(reference, ReduceOp::Avg);

  Tensor shard = Tensor::zeros(Shape{l.shard_numel}, DType::F32);
  zero1_reduce_scatter(c, grads, shard, l);
  Tensor want = reference.narrow(0, l.begin(c.rank()), l.shard_numel).contiguous();
  EXPECT_EQ(std::memcmp(shard.data(), want.data(), shard.nbytes()), 0) << "own shard of the reduced gradients";

  // "optimizer": each rank updates its own shard of the parameters, then all_gather
  Tensor params = Tensor::zeros(Shape{l.padded_numel}, DType::F32);
  params.narrow(0, l.begin(c.rank()), l.shard_numel).copy_(shard);
  zero1_all_gather(c, params, l);
  EXPECT_EQ(std::memcmp(params.data(), reference.data(), params.nbytes()), 0) << "gathered parameters";

  // AdamW keeps 8 bytes of state per element; each rank holds 1/W of it
  EXPECT_EQ(zero1_bytes_saved_per_rank(l, 8), (numel - l.shard_numel) * 8);
  if (c.rank() == 0) {
    std::printf("ZeRO-1 over %d ranks: %lld elements (+%lld padding), shard %lld, AdamW state saved per rank: %lld bytes\n",
                W, (long long)numel, (long long)l.padding(), (long long)l.shard_numel,
                (long long)zero1_bytes_saved_per_rank(l, 8));
  }
}

}  // namespace
}  // namespace drwkv::dist
