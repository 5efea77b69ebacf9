// The per-op profiler on the GPU: launches are attributed to their family names with their calls and
// times, and the stream's idle time and the host's time before a launch are measured (a host pause
// between two launches on a drained stream shows in both); disabled, it records nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "autograd/elementwise_ops.h"
#include "autograd/profiler.h"
#include "core/stream.h"
#include "tests/support/testing.h"

namespace drwkv::autograd {
namespace {
const Device kGpu = Device::cuda(0);

const ProfileEntry* find(const std::vector<ProfileEntry>& rep, const std::string& name) {
  for (const ProfileEntry& e : rep)
    if (e.name == name) return &e;
  return nullptr;
}

TEST(ProfilerGpu, AttributesLaunchesAndMeasuresTheIdleTimeBeforeThem) {
  DRWKV_REQUIRE_GPU();
  Tensor x = testing::random_uniform(Shape{1 << 20}, DType::F32, Device::cpu(), 1).to(kGpu);
  NoGradGuard ng;
  profiler_reset();
  profiler_enable(true);
  Variable a = silu(Variable(x));
  Variable b = silu(a);
  current_stream(kGpu).synchronize();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the stream is empty meanwhile
  Variable c = add(a, b);
  profiler_enable(false);
  std::vector<ProfileEntry> rep = profiler_report();
  const ProfileEntry* unary = find(rep, "unary_forward");
  const ProfileEntry* binary = find(rep, "binary");
  ASSERT_NE(unary, nullptr);
  ASSERT_NE(binary, nullptr);
  EXPECT_EQ(unary->calls, 2);
  EXPECT_EQ(binary->calls, 1);
  EXPECT_GT(unary->total_ms, 0.0);
  EXPECT_GT(binary->total_ms, 0.0);
  // the two unary launches were queued back to back; the add waited for the host's pause
  EXPECT_LT(unary->idle_before_ms, 5.0);
  EXPECT_GE(binary->idle_before_ms, 25.0);
  EXPECT_GE(binary->host_before_ms, 29.0);
  EXPECT_LT(binary->idle_before_ms, binary->host_before_ms + 5.0);

  profiler_reset();
  Variable d = silu(Variable(x));  // not enabled: nothing recorded
  EXPECT_TRUE(profiler_report().empty());
}

}  // namespace
}  // namespace drwkv::autograd
