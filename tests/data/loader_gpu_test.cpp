// The loader with a CUDA target: page-locked staging buffers, asynchronous host-to-device copies on the
// consumer's current stream, and batches identical to the CPU loader's (also on a non-default stream and
// while the previous batch's copy may still be in flight).
#include <gtest/gtest.h>

#include <cstring>

#include "core/stream.h"
#include "data/loader.h"
#include "tests/data/data_testing.h"
#include "tests/support/testing.h"

namespace drwkv::data {
namespace {
using testing::Spec;
using testing::TempDir;

LoaderConfig config(Device device) {
  LoaderConfig c;
  c.global_batch = 16;
  c.micro_batch = 8;
  c.accum = 2;
  c.seed = 3;
  c.threads = 3;
  c.depth = 3;
  c.flip = true;
  c.device = device;
  return c;
}

TEST(LoaderGpu, PinnedBuffersAndDeviceBatchesMatchTheCpuLoader) {
  DRWKV_REQUIRE_GPU();
  TempDir tmp;
  Spec sp;
  sp.text = true, sp.tokens = true, sp.n = 45, sp.s = 16;
  testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  ResumeState start = initial_resume_state(ds.fingerprint(), 3, 16);
  auto cpu = Loader::create(ds, config(Device::cpu()), start).value();
  auto gpu = Loader::create(ds, config(Device::cuda(0)), start).value();
  EXPECT_TRUE(gpu->host_buffers_pinned());
  EXPECT_FALSE(cpu->host_buffers_pinned());
  // half of the batches are taken under a guard on the context's second stream
  Stream side = Context::get(0).comm_stream();
  std::vector<Batch> held;  // keep device batches alive so that ring slots are reused with copies pending
  for (int k = 0; k < 12; ++k) {
    Batch c = cpu->next().value();
    Batch g;
    if (k % 2) {
      StreamGuard guard(side);
      g = gpu->next().value();
    } else {
      g = gpu->next().value();
    }
    ASSERT_TRUE(g.x.is_cuda());
    ASSERT_TRUE(g.labels.is_cuda() && g.text_emb.is_cuda() && g.text_len.is_cuda() && g.text_tokens.is_cuda());
    EXPECT_EQ(g.x.dtype(), DType::F16);
    EXPECT_EQ(g.sample_ids, c.sample_ids);
    EXPECT_EQ(g.flipped, c.flipped);
    // to_vector synchronises the tensor's device stream; the copy was queued on the current stream of this
    // thread at next() time, so synchronise both streams before reading
    side.synchronize();
    Context::get(0).main_stream().synchronize();
    Tensor gh = Tensor::empty(g.x.shape(), g.x.dtype());
    gh.copy_(g.x);
    EXPECT_EQ(std::memcmp(gh.data(), c.x.data(), c.x.nbytes()), 0) << "batch " << k;
    EXPECT_EQ(g.labels.to_vector<int32_t>(), c.labels.to_vector<int32_t>());
    EXPECT_EQ(g.text_len.to_vector<int32_t>(), c.text_len.to_vector<int32_t>());
    EXPECT_EQ(g.text_tokens.to_vector<int32_t>(), c.text_tokens.to_vector<int32_t>());
    Tensor eh = Tensor::empty(g.text_emb.shape(), g.text_emb.dtype());
    eh.copy_(g.text_emb);
    EXPECT_EQ(std::memcmp(eh.data(), c.text_emb.data(), c.text_emb.nbytes()), 0);
    held.push_back(std::move(g));
  }
  gpu.reset();  // waits for in-flight copies before releasing pinned memory
  cuda_device_synchronize(0);
}

TEST(LoaderGpu, DestroyWhileCopiesAreQueued) {
  DRWKV_REQUIRE_GPU();
  TempDir tmp;
  Spec sp;
  sp.n = 300, sp.s = 128, sp.c = 4, sp.h = 32, sp.w = 32;
  testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  LoaderConfig c = config(Device::cuda(0));
  c.global_batch = 64, c.micro_batch = 64, c.accum = 1, c.depth = 2, c.threads = 4;
  auto l = Loader::create(ds, c, initial_resume_state(ds.fingerprint(), 3, 64)).value();
  for (int k = 0; k < 7; ++k) ASSERT_TRUE(l->next().ok());  // crosses an epoch boundary (300 samples)
  l.reset();
  cuda_device_synchronize(0);
}

}  // namespace
}  // namespace drwkv::data
