// GradReducer across real processes (mpirun -np 2 and 3, MPI backend on CPU): many tiny parameters and
// one larger than a bucket, padding between parameters, grad-ready hooks in a different random order on
// every rank, gradient accumulation, parameters that receive no gradient, bf16 on the wire, and the
// start-of-training parameter broadcast. Expected values are the rank-order average, bitwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "dist/grad_reducer.h"
#include "dist/zero.h"
#include "tests/dist/dist_test_world.h"

namespace drwkv::dist {
namespace {

using testing::test_world;

constexpr int64_t kBucketBytes = 1024;  // 256 f32: many buckets

// 150 tiny parameters, one of 10000 elements (40 kB > a bucket) in the middle, and 4 elements of
// padding after every 7th parameter.
struct Table {
  std::vector<FlatSlot> params;
  int64_t total = 0;
  int huge = 0;
};
Table make_table() {
  Table t;
  int64_t off = 0;
  for (int i = 0; i < 151; ++i) {
    int64_t n = i == 75 ? 10000 : 1 + (i * 7) % 17;
    if (i == 75) t.huge = i;
    t.params.push_back(FlatSlot{off, n});
    off += n + (i % 7 == 6 ? 4 : 0);
  }
  t.total = off + 3;
  return t;
}

float grad_value(int rank, int param, int64_t j, int micro = 0) {
  return float((rank * 131 + param * 17 + j * 3 + micro * 7) % 97) / 32.0f - 1.5f + 0.001f * float(rank);
}

// Writes (or, accumulate = true, adds) the local gradients of the listed parameters.
void backward_into(Tensor& grads, const Table& t, int rank, int micro, bool accumulate) {
  float* g = grads.data_ptr<float>();
  for (int p = 0; p < int(t.params.size()); ++p) {
    for (int64_t j = 0; j < t.params[size_t(p)].numel; ++j) {
      float v = grad_value(rank, p, j, micro);
      float& slot = g[t.params[size_t(p)].offset + j];
      slot = accumulate ? slot + v : v;
    }
  }
}

// Checks every element against `want(param, j)`; padding must stay zero.
template <typename F>
void expect_grads(const Tensor& grads, const Table& t, F want, const char* what) {
  const float* g = grads.data_ptr<float>();
  std::vector<bool> is_param(size_t(t.total), false);
  int64_t bad = 0;
  std::string first;
  for (int p = 0; p < int(t.params.size()); ++p) {
    for (int64_t j = 0; j < t.params[size_t(p)].numel; ++j) {
      int64_t k = t.params[size_t(p)].offset + j;
      is_param[size_t(k)] = true;
      float w = want(p, j);
      if (std::memcmp(&g[k], &w, 4) != 0) {
        if (first.empty()) first = strprintf("param %d element %lld: got %.9g, want %.9g", p, (long long)j, g[k], w);
        ++bad;
      }
    }
  }
  for (int64_t k = 0; k < t.total; ++k) {
    if (!is_param[size_t(k)] && g[k] != 0.0f) {
      if (first.empty()) first = strprintf("padding element %lld is %g", (long long)k, g[k]);
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << first;
}

// Rank-order average of f(rank) in f32.
template <typename F>
float rank_avg(int world, F f) {
  float acc = f(0);
  for (int r = 1; r < world; ++r) acc = acc + f(r);
  return acc / float(world);
}

TEST(GradReducer, BucketsOfTheirOwnReducedToTheirOwnersGiveEachShardTheAverage) {
  // gradients in one buffer per bucket (the parameter store's segments), ZeRO-1 owners: each rank's shard
  // elements hold bitwise the all-reduce's average; elements it does not own keep its local values
  Communicator& c = test_world().comm();
  Table t = make_table();
  const ShardLayout layout = ShardLayout::make(t.total, c.world_size(), 8);
  std::vector<FlatRange> buckets = plan_flat_ranges(t.params, 4, kBucketBytes);
  for (size_t k = 0; k < buckets.size(); ++k) buckets[k].end = k == 0 ? layout.padded_numel : buckets[k - 1].begin;
  std::vector<Tensor> own(buckets.size());
  Tensor local = Tensor::zeros(Shape{layout.padded_numel}, DType::F32);
  backward_into(local, t, c.rank(), 0, false);
  for (size_t k = 0; k < buckets.size(); ++k)
    own[k] = local.narrow(0, buckets[k].begin, buckets[k].end - buckets[k].begin).clone();
  GradReducerOptions opt;
  opt.owners = layout;
  GradReducer red(c, buckets, int(t.params.size()), [&](int k) { return own[size_t(k)]; }, opt);
  for (int p = int(t.params.size()) - 1; p >= 0; --p) red.mark_ready(p);
  red.finish();
  Tensor all = Tensor::zeros(Shape{layout.padded_numel}, DType::F32);
  for (size_t k = 0; k < buckets.size(); ++k)
    all.narrow(0, buckets[k].begin, buckets[k].end - buckets[k].begin).copy_(own[k]);
  Tensor reduced = local.clone();
  c.all_reduce(reduced, ReduceOp::Avg);
  const float *got = all.data_ptr<float>(), *avg = reduced.data_ptr<float>(), *mine = local.data_ptr<float>();
  int64_t bad = 0;
  for (int64_t e = 0; e < layout.padded_numel; ++e) {
    const bool owned = e >= layout.begin(c.rank()) && e < layout.end(c.rank());
    bad += std::memcmp(&got[e], owned ? &avg[e] : &mine[e], 4) != 0;
  }
  EXPECT_EQ(bad, 0) << "elements differing from the all-reduce (owned) or the local values (not owned)";
}

TEST(GradReducer, BucketsCoverTheTableAndTheHugeParameterIsAlone) {
  Table t = make_table();
  Tensor grads = Tensor::zeros(Shape{t.total}, DType::F32);
  GradReducer red(test_world().comm(), grads, t.params, {kBucketBytes});
  const auto& b = red.buckets();
  ASSERT_GT(b.size(), 3u);
  EXPECT_EQ(b.front().last_param, 150) << "the last registered parameter goes first";
  EXPECT_EQ(b.back().first_param, 0);
  int covered = 0;
  for (const FlatRange& k : b) {
    covered += k.last_param - k.first_param + 1;
    if (k.first_param <= t.huge && t.huge <= k.last_param) {
      EXPECT_EQ(k.first_param, k.last_param) << "the parameter larger than a bucket has a bucket of its own";
    } else {
      EXPECT_LE((k.end - k.begin) * 4, kBucketBytes);
    }
  }
  EXPECT_EQ(covered, 151);
}

TEST(GradReducer, HooksInRandomOrderPerRankGiveTheAverageOverRanks) {
  Communicator& c = test_world().comm();
  Table t = make_table();
  Tensor grads = Tensor::zeros(Shape{t.total}, DType::F32);
  GradReducer red(c, grads, t.params, {kBucketBytes});
  std::mt19937 rng(uint32_t(1234 + c.rank()));
  for (int step = 0; step < 3; ++step) {
    grads.zero_();
    backward_into(grads, t, c.rank(), step, false);
    std::vector<int> order(t.params.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
    if (step == 2) {
      std::reverse(order.begin(), order.end());  // the backward order: every bucket launches early
    } else {
      std::shuffle(order.begin(), order.end(), rng);
    }
    for (int p : order) red.mark_ready(p);
    red.finish();
    expect_grads(grads, t, [&](int p, int64_t j) {
      return rank_avg(c.world_size(), [&](int r) { return grad_value(r, p, j, step); });
    }, "average after finish()");
    EXPECT_EQ(red.last_step().launched_during_backward + red.last_step().launched_in_finish, int(red.buckets().size()));
    EXPECT_EQ(red.last_step().params_without_grad, 0);
    if (step == 2) {
      EXPECT_EQ(red.last_step().launched_in_finish, 0) << "in backward order each bucket launches when complete";
    }
  }
}

TEST(GradReducer, GradientAccumulationReducesOnlyOnTheLastMicroBatch) {
  Communicator& c = test_world().comm();
  Table t = make_table();
  Tensor grads = Tensor::zeros(Shape{t.total}, DType::F32);
  GradReducer red(c, grads, t.params, {kBucketBytes});
  for (int micro = 0; micro < 3; ++micro) {
    bool last = micro == 2;
    red.set_reduce(last);
    backward_into(grads, t, c.rank(), micro, /*accumulate=*/true);
    for (int p = int(t.params.size()) - 1; p >= 0; --p) red.mark_ready(p);
    red.finish();
    if (!last) {
      // nothing travelled: the buffer holds this rank's local sums
      expect_grads(grads, t, [&](int p, int64_t j) {
        float acc = 0;
        for (int m = 0; m <= micro; ++m) acc = acc + grad_value(c.rank(), p, j, m);
        return acc;
      }, "local accumulation");
    }
  }
  expect_grads(grads, t, [&](int p, int64_t j) {
    return rank_avg(c.world_size(), [&](int r) {
      float acc = 0;
      for (int m = 0; m < 3; ++m) acc = acc + grad_value(r, p, j, m);
      return acc;
    });
  }, "average of the accumulated gradients");
}

TEST(GradReducer, ParametersWithoutGradientStillTakePart) {
  Communicator& c = test_world().comm();
  Table t = make_table();
  Tensor grads = Tensor::zeros(Shape{t.total}, DType::F32);
  GradReducer red(c, grads, t.params, {kBucketBytes});
  const int unused_everywhere = 140;  // e.g. a layer skipped this step
  const int unused_on_rank1 = 3;      // e.g. a branch only some ranks' data reach
  backward_into(grads, t, c.rank(), 0, false);
  auto zero_param = [&](int p) {
    grads.narrow(0, t.params[size_t(p)].offset, t.params[size_t(p)].numel).zero_();
  };
  zero_param(unused_everywhere);
  if (c.rank() == 1) zero_param(unused_on_rank1);
  std::vector<int> order;
  for (int p = int(t.params.size()) - 1; p >= 0; --p) {
    if (p == unused_everywhere || (c.rank() == 1 && p == unused_on_rank1)) continue;
    order.push_back(p);
  }
  std::shuffle(order.begin(), order.end(), std::mt19937(uint32_t(c.rank())));
  for (int p : order) red.mark_ready(p);
  red.finish();
  expect_grads(grads, t, [&](int p, int64_t j) {
    return rank_avg(c.world_size(), [&](int r) {
      if (p == unused_everywhere || (r == 1 && p == unused_on_rank1)) return 0.0f;
      return grad_value(r, p, j, 0);
    });
  }, "average with missing gradients as zeros");
  EXPECT_GE(red.last_step().launched_in_finish, 1);
  EXPECT_EQ(red.last_step().params_without_grad, c.rank() == 1 ? 2 : 1);
}

TEST(GradReducer, Bf16OnTheWire) {
  Communicator& c = test_world().comm();
  Table t = make_table();
  Tensor grads = Tensor::zeros(Shape{t.total}, DType::F32);
  GradReducerOptions o;
  o.bucket_bytes = kBucketBytes;
  o.wire_dtype = DType::BF16;
  GradReducer red(c, grads, t.params, o);
  backward_into(grads, t, c.rank(), 5, false);
  for (int p = int(t.params.size()) - 1; p >= 0; --p) red.mark_ready(p);
  red.finish();
  expect_grads(grads, t, [&](int p, int64_t j) {
    float acc = rank_avg(c.world_size(), [&](int r) { return float(bf16(grad_value(r, p, j, 5))); });
    return float(bf16(acc));
  }, "bf16 wire");
}

TEST(GradReducer, BroadcastParametersFromRankZero) {
  Communicator& c = test_world().comm();
  const int64_t n = 100001;
  Tensor params = Tensor::full(Shape{n}, double(c.rank() + 1) * 0.5, DType::F32);
  params.narrow(0, 17, 3).fill_(-double(c.rank()));
  broadcast_parameters(c, params, 0, /*chunk_bytes=*/4096);
  std::vector<float> v = params.to_vector<float>();
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad += v[size_t(i)] != ((i >= 17 && i < 20) ? 0.0f : 0.5f);
  EXPECT_EQ(bad, 0) << "elements differing from rank 0's parameters";
}

}  // namespace
}  // namespace drwkv::dist
