// Collectives of the communicator across real processes (mpirun -np 2 and 3, MPI backend on CPU).
//
// Every rank knows every rank's inputs (a hash of rank and index), so each checks its result against
// the serial rank-order reduction ((x_0 + x_1) + x_2) computed locally. The MPI backend promises
// exactly that sum, so the comparisons are bitwise (f32, bf16, f64, integers, bf16 on the wire), and
// the results are also compared bitwise across ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "dist/communicator.h"
#include "tests/dist/dist_test_world.h"

namespace drwkv::dist {
namespace {

using testing::test_world;

// A value with a full 24-bit mantissa and an exponent in [-10, 10] from (rank, index, salt), the same on
// every machine: sums of such values round, so a different summation order shows in the bits.
float input_value(int rank, int64_t i, uint32_t salt = 0) {
  uint64_t x = uint64_t(rank + 1) * 0x9E3779B97F4A7C15ull ^ uint64_t(i) * 0xBF58476D1CE4E5B9ull ^ salt;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  float unit = float(int64_t(x >> 40) - (int64_t(1) << 23)) / float(1 << 23);  // [-1, 1)
  return std::ldexp(unit, int((x >> 8) % 21) - 10);
}

template <typename T>
Tensor make_input(int rank, int64_t n, uint32_t salt = 0) {
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_integral_v<T>) {
      v[size_t(i)] = T(int64_t(input_value(rank, i, salt) * 1000.0f));
    } else {
      v[size_t(i)] = T(input_value(rank, i, salt));
    }
  }
  return Tensor::from_vector(v, Shape{n}, Device::cpu(), dtype_v<T>);
}

uint64_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}
uint64_t bits_of(double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  return u;
}
uint64_t bits_of(bf16 v) { return v.bits; }
uint64_t bits_of(int32_t v) { return uint64_t(uint32_t(v)); }
uint64_t bits_of(int64_t v) { return uint64_t(v); }

// Every rank holds the same bytes as rank 0.
void expect_same_on_all_ranks(const Tensor& t) {
  Communicator& c = test_world().comm();
  Tensor bytes = t.view(Shape{t.numel()});  // same dtype; gather as is
  Tensor all = Tensor::empty(Shape{t.numel() * c.world_size()}, t.dtype());
  c.all_gather(bytes, all);
  const char* p = static_cast<const char*>(all.data());
  for (int r = 1; r < c.world_size(); ++r) {
    EXPECT_EQ(std::memcmp(p, p + size_t(r) * t.nbytes(), t.nbytes()), 0) << "rank " << r << " differs from rank 0";
  }
}

template <typename T, typename A>
void check_all_reduce(ReduceOp op) {
  Communicator& c = test_world().comm();
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(100003)}) {
    Tensor t = make_input<T>(c.rank(), n);
    c.all_reduce(t, op);
    const T* got = t.data_ptr<T>();
    int64_t bad = 0, first_bad = -1;
    // the reference for all elements at once (make_input per element would be quadratic)
    std::vector<Tensor> inputs;
    for (int r = 0; r < c.world_size(); ++r) inputs.push_back(make_input<T>(r, n));
    for (int64_t i = 0; i < n; ++i) {
      A acc = load_as<A>(inputs[0].data_ptr<T>()[i]);
      for (int r = 1; r < c.world_size(); ++r) acc = acc + load_as<A>(inputs[size_t(r)].data_ptr<T>()[i]);
      if (op == ReduceOp::Avg) acc = acc / A(c.world_size());
      T want = store_as<T, A>(acc);
      if (bits_of(got[i]) != bits_of(want)) {
        if (first_bad < 0) first_bad = i;
        ++bad;
      }
    }
    EXPECT_EQ(bad, 0) << dtype_name(dtype_v<T>) << " n=" << n << ": first mismatch at element " << first_bad
                      << " of the rank-order reference";
    expect_same_on_all_ranks(t);
  }
}

TEST(Collectives, AllReduceSumAndAvgAreTheRankOrderSumBitwise) {
  check_all_reduce<float, float>(ReduceOp::Sum);
  check_all_reduce<float, float>(ReduceOp::Avg);
  check_all_reduce<bf16, float>(ReduceOp::Sum);
  check_all_reduce<bf16, float>(ReduceOp::Avg);
  check_all_reduce<double, double>(ReduceOp::Sum);
  check_all_reduce<int32_t, int64_t>(ReduceOp::Sum);
  check_all_reduce<int64_t, int64_t>(ReduceOp::Sum);
}

TEST(Collectives, AllReduceWithBf16OnTheWire) {
  Communicator& c = test_world().comm();
  const int64_t n = 4099;
  Tensor t = make_input<float>(c.rank(), n);
  c.all_reduce_async(t, ReduceOp::Avg, DType::BF16)->wait();
  std::vector<Tensor> inputs;
  for (int r = 0; r < c.world_size(); ++r) inputs.push_back(make_input<float>(r, n));
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    float acc = float(bf16(inputs[0].data_ptr<float>()[i]));
    for (int r = 1; r < c.world_size(); ++r) acc = acc + float(bf16(inputs[size_t(r)].data_ptr<float>()[i]));
    float want = float(bf16(acc / float(c.world_size())));
    bad += bits_of(t.data_ptr<float>()[i]) != bits_of(want);
  }
  EXPECT_EQ(bad, 0) << "elements differing from the bf16 wire reference";
}

TEST(Collectives, AsyncCollectivesCompleteInIssueOrderAndOverlapTheCaller) {
  Communicator& c = test_world().comm();
  std::vector<Tensor> ts;
  std::vector<WorkPtr> work;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(Tensor::full(Shape{1000 + k}, double(c.rank() + k), DType::F32));
    work.push_back(c.all_reduce_async(ts.back(), ReduceOp::Sum));
  }
  for (int k = 3; k >= 0; --k) work[size_t(k)]->wait();
  for (int k = 0; k < 4; ++k) {
    EXPECT_TRUE(work[size_t(k)]->done());
    double want = 0;
    for (int r = 0; r < c.world_size(); ++r) want += r + k;
    EXPECT_EQ(ts[size_t(k)].to_vector<float>().back(), float(want)) << "tensor " << k;
  }
}

TEST(Collectives, BroadcastFromEveryRoot) {
  Communicator& c = test_world().comm();
  for (int root = 0; root < c.world_size(); ++root) {
    Tensor t = make_input<int64_t>(c.rank(), 513);
    c.broadcast(t, root);
    Tensor want = make_input<int64_t>(root, 513);
    EXPECT_EQ(std::memcmp(t.data(), want.data(), t.nbytes()), 0) << "root " << root;
    Tensor b = Tensor::full(Shape{3}, double(c.rank() + 7), DType::U8);
    c.broadcast(b, root);
    EXPECT_EQ(b.to_vector<uint8_t>(), std::vector<uint8_t>(3, uint8_t(root + 7)));
  }
}

TEST(Collectives, AllGatherAndInPlaceAllGather) {
  Communicator& c = test_world().comm();
  const int W = c.world_size();
  const int64_t n = 37;
  Tensor shard = make_input<float>(c.rank(), n);
  Tensor out = Tensor::zeros(Shape{n * W}, DType::F32);
  c.all_gather(shard, out);
  Tensor in_place = Tensor::zeros(Shape{n * W}, DType::F32);
  in_place.narrow(0, n * c.rank(), n).copy_(shard);
  c.all_gather(in_place.narrow(0, n * c.rank(), n), in_place);
  for (int r = 0; r < W; ++r) {
    Tensor want = make_input<float>(r, n);
    EXPECT_EQ(std::memcmp(static_cast<char*>(out.data()) + size_t(r) * want.nbytes(), want.data(), want.nbytes()), 0)
        << "block of rank " << r;
    EXPECT_EQ(std::memcmp(static_cast<char*>(in_place.data()) + size_t(r) * want.nbytes(), want.data(),
                          want.nbytes()),
              0)
        << "in-place block of rank " << r;
  }
}

TEST(Collectives, ReduceScatterIsTheOwnBlockOfTheAllReduce) {
  Communicator& c = test_world().comm();
  const int W = c.world_size();
  const int64_t n = 129;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
    Tensor in = make_input<float>(c.rank(), n * W, 5);
    Tensor full = in.clone();
    Tensor shard = Tensor::zeros(Shape{n}, DType::F32);
    c.reduce_scatter(in, shard, op);
    // the same elements through reduce_scatter's and all_reduce's block partition: the rank-order sum
    c.all_reduce(full, op);
    EXPECT_EQ(std::memcmp(shard.data(), full.narrow(0, n * c.rank(), n).contiguous().data(), shard.nbytes()), 0)
        << (op == ReduceOp::Avg ? "avg" : "sum");
  }
}

TEST(Collectives, HostValuesAreReducedInRankOrderAndNanIsNeverLost) {
  Communicator& c = test_world().comm();
  const int W = c.world_size();
  std::vector<double> local = {0.1 * (c.rank() + 1), double(c.rank()), -double(c.rank()),
                               c.rank() == W - 1 ? std::nan("") : 1.0};
  std::vector<HostOp> ops = {HostOp::Sum, HostOp::Max, HostOp::Min, HostOp::Max};
  std::vector<double> got = c.all_reduce_host(local, ops);
  double sum = 0.1;
  for (int r = 1; r < W; ++r) sum = sum + 0.1 * (r + 1);
  EXPECT_EQ(bits_of(got[0]), bits_of(sum));
  EXPECT_EQ(got[1], double(W - 1));
  EXPECT_EQ(got[2], -double(W - 1));
  EXPECT_TRUE(std::isnan(got[3]));
  c.barrier();
}

}  // namespace
}  // namespace drwkv::dist
