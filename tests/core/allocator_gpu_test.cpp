// Caching allocator: steady-state reuse without cudaMalloc, no leak over many cycles, peak counter.
#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "tests/support/testing.h"

namespace drwkv {
namespace {

TEST(AllocatorGpu, SteadyStateReusesBlocksAndDoesNotLeak) {
  DRWKV_REQUIRE_GPU();
  cuda_device_synchronize(0);
  AllocatorStats before = cuda_allocator_stats(0);
  auto step = [] {
    std::vector<Tensor> live;
    for (int64_t n : {1000, 1 << 20, 3 << 20, 17, 1 << 24}) live.push_back(Tensor::empty(Shape{n}, DType::F32, Device::cuda(0)));
  };
  step();
  AllocatorStats warm = cuda_allocator_stats(0);
  for (int i = 0; i < 1000; ++i) step();
  AllocatorStats after = cuda_allocator_stats(0);
  EXPECT_EQ(after.device_mallocs, warm.device_mallocs) << "steady state must not call cudaMalloc";
  EXPECT_EQ(after.current_bytes, before.current_bytes) << "everything returned";
  EXPECT_EQ(after.reserved_bytes, warm.reserved_bytes);
  EXPECT_EQ(after.allocations, warm.allocations + 5000);
}

TEST(AllocatorGpu, PeakCounter) {
  DRWKV_REQUIRE_GPU();
  cuda_allocator_reset_peak(0);
  int64_t base = cuda_allocator_stats(0).current_bytes;
  {
    Tensor a = Tensor::empty(Shape{8 << 20}, DType::U8, Device::cuda(0));
    Tensor b = Tensor::empty(Shape{4 << 20}, DType::U8, Device::cuda(0));
    EXPECT_EQ(cuda_allocator_stats(0).current_bytes, base + (12 << 20));
  }
  Tensor c = Tensor::empty(Shape{2 << 20}, DType::U8, Device::cuda(0));
  AllocatorStats s = cuda_allocator_stats(0);
  EXPECT_EQ(s.peak_bytes, base + (12 << 20));
  EXPECT_EQ(s.current_bytes, base + (2 << 20));
  EXPECT_EQ(cuda_allocator_round(100), 512u);
  EXPECT_EQ(cuda_allocator_round((1 << 20) + 1), size_t(2) << 20);
}

TEST(AllocatorGpu, EmptyCacheReturnsMemory) {
  DRWKV_REQUIRE_GPU();
  { Tensor a = Tensor::empty(Shape{64 << 20}, DType::U8, Device::cuda(0)); }
  EXPECT_GE(cuda_allocator_stats(0).cached_bytes, 64 << 20);
  cuda_allocator_empty_cache(0);
  EXPECT_EQ(cuda_allocator_stats(0).cached_bytes, 0);
}

}  // namespace
}  // namespace drwkv
