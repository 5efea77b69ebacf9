// The NCCL backend on GPUs: collectives, the GradReducer on device buffers, agreed values, ZeRO-1 and
// the watchdog's tracking of device work. Skipped without a GPU.
//
// One process (ctest, label gpu): a world of 1 through a real NCCL communicator.
// Several GPUs of one node (docs/LAUNCH.md):
//   OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 4 build/tests/dist/dist_nccl_gpu_test
//   DRWKV_RENDEZVOUS=tcp://127.0.0.1:29555 mpirun -np 2 ... (NCCL id over TCP; MPI never started)
// Inputs are small integers, so sums are exact whatever NCCL's summation order, and the checks are
// exact; averages (ncclAvg) get a tolerance of one rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <thread>

#include "core/stream.h"
#include "dist/agree.h"
#include "dist/grad_reducer.h"
#include "dist/world.h"
#include "dist/zero.h"
#include "tests/support/testing.h"

namespace drwkv::dist {
namespace {

std::unique_ptr<World>& the_world() {
  static std::unique_ptr<World> w;
  return w;
}

class NcclEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!drwkv::testing::gpu_available()) return;
    DistOptions defaults;
    defaults.backend = Backend::Nccl;
    defaults.collective_timeout_s = 120;
    auto options = dist_options_from_env(system_env, defaults);
    auto w = options.ok() ? World::init(*options) : absl::StatusOr<std::unique_ptr<World>>(options.status());
    if (!w.ok()) {
      std::fprintf(stderr, "nccl test: %s\n", std::string(w.status().message()).c_str());
      std::exit(1);
    }
    the_world() = std::move(*w);
  }
  void TearDown() override { the_world().reset(); }
};
[[maybe_unused]] ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new NcclEnvironment);

Communicator& comm() { return the_world()->comm(); }
Device dev() { return comm().device(); }

// rank r's value of element i: a small integer
float value(int r, int64_t i) { return float((i * 7 + r * 3) % 13) - 6.0f; }

Tensor device_input(int r, int64_t n, DType dtype) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = value(r, i);
  return Tensor::from_vector(v, Shape{n}, dev(), dtype);
}

float sum_over_ranks(int64_t i) {
  float s = 0;
  for (int r = 0; r < comm().world_size(); ++r) s += value(r, i);
  return s;
}

TEST(Nccl, AllReduceF32AndBf16OnTheDevice) {
  DRWKV_REQUIRE_GPU();
  EXPECT_STREQ(comm().backend_name(), "nccl");
  const int W = comm().world_size();
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(1) << 20}) {
    for (DType dt : {DType::F32, DType::BF16}) {
      Tensor t = device_input(comm().rank(), n, dt);
      comm().all_reduce(t, ReduceOp::Sum);
      std::vector<float> got = t.to_vector<float>();
      int64_t bad = 0;
      for (int64_t i = 0; i < n; ++i) bad += got[size_t(i)] != sum_over_ranks(i);
      EXPECT_EQ(bad, 0) << dtype_name(dt) << " n=" << n;
      Tensor a = device_input(comm().rank(), n, dt);
      comm().all_reduce(a, ReduceOp::Avg);
      std::vector<float> avg = a.to_vector<float>();
      double tol = dt == DType::BF16 ? 0.05 : 1e-6;
      bad = 0;
      for (int64_t i = 0; i < n; ++i) bad += std::abs(avg[size_t(i)] - sum_over_ranks(i) / float(W)) > tol;
      EXPECT_EQ(bad, 0) << "avg " << dtype_name(dt) << " n=" << n;
    }
  }
  Tensor w = device_input(comm().rank(), 4097, DType::F32);
  comm().all_reduce_async(w, ReduceOp::Sum, DType::BF16)->join_current_stream();
  std::vector<float> got = w.to_vector<float>();
  for (int64_t i = 0; i < 4097; ++i) ASSERT_EQ(got[size_t(i)], sum_over_ranks(i)) << "bf16 wire, element " << i;
}

TEST(Nccl, AsyncCollectivesAreOrderedAfterTheCallersStream) {
  DRWKV_REQUIRE_GPU();
  // produced on the main stream, reduced on the comm stream, consumed on the main stream
  Tensor t = Tensor::zeros(Shape{1 << 22}, DType::F32, dev());
  t.fill_(double(comm().rank() + 1));
  WorkPtr work = comm().all_reduce_async(t, ReduceOp::Sum);
  work->join_current_stream();
  Tensor u = t.clone();  // on the main stream, after the join
  float want = float(comm().world_size() * (comm().world_size() + 1) / 2);
  EXPECT_EQ(u.to_vector<float>().back(), want);
  work->wait();
  EXPECT_TRUE(work->done());
}

TEST(Nccl, BroadcastAllGatherReduceScatter) {
  DRWKV_REQUIRE_GPU();
  const int W = comm().world_size();
  Tensor b = Tensor::full(Shape{333}, double(comm().rank() + 10), DType::F32, dev());
  comm().broadcast(b, W - 1);
  EXPECT_EQ(b.to_vector<float>()[100], float(W - 1 + 10));
  const int64_t n = 1000;
  Tensor shard = device_input(comm().rank(), n, DType::F32);
  Tensor all = Tensor::zeros(Shape{n * W}, DType::F32, dev());
  comm().all_gather(shard, all);
  std::vector<float> g = all.to_vector<float>();
  for (int r = 0; r < W; ++r) EXPECT_EQ(g[size_t(r * n + 7)], value(r, 7)) << "block " << r;
  Tensor in = device_input(comm().rank(), n * W, DType::F32);
  Tensor mine = Tensor::zeros(Shape{n}, DType::F32, dev());
  comm().reduce_scatter(in, mine, ReduceOp::Sum);
  std::vector<float> m = mine.to_vector<float>();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(m[size_t(i)], sum_over_ranks(comm().rank() * n + i)) << i;
  // reduce to the last rank: the sum there, the others' input untouched
  Tensor red = device_input(comm().rank(), n, DType::F32);
  comm().reduce_async(red, ReduceOp::Sum, W - 1)->join_current_stream();
  std::vector<float> rv = red.to_vector<float>();
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(rv[size_t(i)], comm().rank() == W - 1 ? sum_over_ranks(i) : value(comm().rank(), i)) << i;
}

TEST(Nccl, GradReducerOnDeviceBuffers) {
  DRWKV_REQUIRE_GPU();
  std::vector<FlatSlot> table;
  int64_t off = 0;
  for (int i = 0; i < 300; ++i) {
    int64_t numel = i == 150 ? (int64_t(3) << 20) : 1 + (i * 13) % 300;  // one parameter of 12 MB
    table.push_back({off, numel});
    off += (numel + 63) / 64 * 64;  // 256-byte aligned slots, padding in between
  }
  Tensor grads = Tensor::zeros(Shape{off}, DType::F32, dev());
  GradReducerOptions o;
  o.bucket_bytes = 1 << 20;
  o.op = ReduceOp::Sum;
  GradReducer red(comm(), grads, table, o);
  std::vector<float> host(static_cast<size_t>(off), 0.0f);
  for (const FlatSlot& p : table) {
    for (int64_t j = 0; j < p.numel; ++j) host[size_t(p.offset + j)] = value(comm().rank(), p.offset + j);
  }
  std::mt19937 rng(uint32_t(comm().rank() + 7));
  for (int step = 0; step < 2; ++step) {
    grads.copy_(Tensor::from_vector(host, Shape{off}));
    std::vector<int> order(table.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
    std::shuffle(order.begin(), order.end(), rng);
    for (int p : order) red.mark_ready(p);
    red.finish();
    std::vector<float> got = grads.to_vector<float>();
    int64_t bad = 0;
    for (const FlatSlot& p : table) {
      for (int64_t j = 0; j < p.numel; ++j) bad += got[size_t(p.offset + j)] != sum_over_ranks(p.offset + j);
    }
    EXPECT_EQ(bad, 0) << "step " << step;
  }
}

TEST(Nccl, AgreedValuesAndZero1) {
  DRWKV_REQUIRE_GPU();
  const int W = comm().world_size();
  LocalStepStats local;
  local.grad_sq_sum = 4.0;
  local.nonfinite = comm().rank() == W - 1;
  local.sums = {double(comm().rank())};
  AgreedStep a = agree_step(comm(), local);
  EXPECT_TRUE(a.skip);
  EXPECT_EQ(a.grad_norm, 2.0);
  EXPECT_EQ(a.sums[0], double(W * (W - 1) / 2));

  ShardLayout l = ShardLayout::make(100003, W);
  Tensor grads = Tensor::zeros(Shape{l.padded_numel}, DType::F32, dev());
  grads.narrow(0, 0, 100003).copy_(device_input(comm().rank(), 100003, DType::F32));
  Tensor shard = Tensor::zeros(Shape{l.shard_numel}, DType::F32, dev());
  zero1_reduce_scatter(comm(), grads, shard, l, ReduceOp::Sum);
  Tensor params = Tensor::zeros(Shape{l.padded_numel}, DType::F32, dev());
  params.narrow(0, l.begin(comm().rank()), l.shard_numel).copy_(shard);
  zero1_all_gather(comm(), params, l);
  std::vector<float> p = params.to_vector<float>();
  for (int64_t i = 0; i < 100003; i += 97) ASSERT_EQ(p[size_t(i)], sum_over_ranks(i)) << i;
  EXPECT_EQ(p.back(), 0.0f) << "padding stays zero";
}

TEST(Nccl, WatchdogTracksDeviceWorkToCompletion) {
  DRWKV_REQUIRE_GPU();
  Watchdog* wd = the_world()->watchdog();
  ASSERT_NE(wd, nullptr);
  Tensor t = Tensor::full(Shape{1 << 20}, 1.0, DType::F32, dev());
  comm().all_reduce_async(t, ReduceOp::Sum)->wait();
  Heartbeat h;
  for (int i = 0; i < 100; ++i) {
    h = wd->heartbeat();
    if (h.completed == h.started) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(h.started, 0u);
  EXPECT_EQ(h.completed, h.started) << "the watchdog polls each collective's completion event";
}

}  // namespace
}  // namespace drwkv::dist
