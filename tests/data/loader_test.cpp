// The prefetching loader on real shards: batch contents, independence of the thread count, rank
// slicing through the loader, exact resume at every micro-step, flip (images exact, latent_flip rows,
// mirrored latents), text columns, clean shutdown mid-epoch, read errors surfacing from next().
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "data/loader.h"
#include "tests/data/data_testing.h"

namespace drwkv::data {
namespace {
using testing::Spec;
using testing::TempDir;

struct Rows {  // a batch brought to comparable host values
  std::vector<unsigned char> x;
  std::vector<int32_t> labels, lens;
  std::vector<int64_t> ids, epochs;
  std::vector<uint8_t> flipped;
  int64_t step;
  int micro;
  bool operator==(const Rows&) const = default;
};

Rows rows_of(const Batch& b) {
  Rows r;
  const auto* p = static_cast<const unsigned char*>(b.x.data());
  r.x.assign(p, p + b.x.nbytes());
  r.labels = b.labels.to_vector<int32_t>();
  if (b.text_len.defined()) r.lens = b.text_len.to_vector<int32_t>();
  r.ids = b.sample_ids;
  r.epochs = b.epochs;
  r.flipped = b.flipped;
  r.step = b.step;
  r.micro = b.micro_step;
  return r;
}

std::vector<Rows> run(const Dataset& ds, LoaderConfig cfg, const ResumeState& start, int count,
                      ResumeState* after = nullptr) {
  auto l = Loader::create(ds, cfg, start);
  EXPECT_TRUE(l.ok()) << l.status();
  std::vector<Rows> out;
  for (int k = 0; k < count; ++k) {
    auto b = (*l)->next();
    EXPECT_TRUE(b.ok()) << b.status();
    out.push_back(rows_of(*b));
  }
  if (after) *after = (*l)->position();
  return out;
}

LoaderConfig config(int64_t gb, int64_t b, int world, int rank, int accum, int threads = 2, int depth = 3) {
  LoaderConfig c;
  c.global_batch = gb;
  c.micro_batch = b;
  c.world_size = world;
  c.rank = rank;
  c.accum = accum;
  c.seed = 77;
  c.threads = threads;
  c.depth = depth;
  return c;
}

TEST(Loader, BatchesHoldTheDatasetRowsInPermutationOrder) {
  TempDir tmp;
  Spec sp;
  sp.n = 37, sp.s = 10;
  testing::Synthetic d = testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  ResumeState start = initial_resume_state(ds.fingerprint(), 77, 8);
  std::vector<Rows> got = run(ds, config(8, 8, 1, 0, 1), start, 10);  // 80 slots: three epochs of 37
  std::multiset<int64_t> epoch0;
  const int64_t rb = d.info.row_bytes(Column::X);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(got[size_t(k)].step, k);
    for (int i = 0; i < 8; ++i) {
      int64_t slot = k * 8 + i, g = got[size_t(k)].ids[size_t(i)];
      EXPECT_EQ(g, int64_t(epoch_permutation(37, 77, uint64_t(slot / 37))(uint64_t(slot % 37))));
      EXPECT_EQ(got[size_t(k)].epochs[size_t(i)], slot / 37);
      EXPECT_EQ(got[size_t(k)].labels[size_t(i)], d.labels[size_t(g)]);
      EXPECT_EQ(std::memcmp(got[size_t(k)].x.data() + i * rb, d.x_row(g), size_t(rb)), 0) << "slot " << slot;
      if (slot < 37) epoch0.insert(g);
    }
  }
  EXPECT_EQ(epoch0.size(), 37u);
  EXPECT_EQ(std::set<int64_t>(epoch0.begin(), epoch0.end()).size(), 37u);  // every sample once per epoch
}

TEST(Loader, SameBatchesWithOneAndFourThreads) {
  TempDir tmp;
  Spec sp;
  sp.kind = SampleKind::Image, sp.c = 3, sp.h = 7, sp.w = 9, sp.n = 53, sp.s = 16;
  testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  ResumeState start = initial_resume_state(ds.fingerprint(), 77, 10);
  LoaderConfig one = config(10, 5, 1, 0, 2, 1, 1), four = config(10, 5, 1, 0, 2, 4, 6);
  one.flip = four.flip = true;
  EXPECT_EQ(run(ds, one, start, 25), run(ds, four, start, 25));
}

TEST(Loader, RanksOfAnyWorldSizeCoverTheSameSamplesPerStep) {
  TempDir tmp;
  Spec sp;
  sp.n = 29, sp.s = 8;
  testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  const int64_t gb = 12, steps = 7;
  ResumeState start = initial_resume_state(ds.fingerprint(), 77, gb);
  // W = 1 reference: one micro-batch of 12 per step
  std::vector<Rows> ref = run(ds, config(gb, 12, 1, 0, 1), start, int(steps));
  for (int world : {1, 2, 3}) {
    for (int accum : {1, 2}) {
      int64_t b = gb / (world * accum);
      std::vector<std::multiset<int64_t>> per_step(steps);
      std::vector<std::vector<unsigned char>> xs(steps);
      for (int r = 0; r < world; ++r) {
        std::vector<Rows> got = run(ds, config(gb, b, world, r, accum), start, int(steps * accum));
        for (const Rows& rows : got) per_step[size_t(rows.step)].insert(rows.ids.begin(), rows.ids.end());
      }
      for (int64_t s = 0; s < steps; ++s) {
        std::multiset<int64_t> want(ref[size_t(s)].ids.begin(), ref[size_t(s)].ids.end());
        EXPECT_EQ(per_step[size_t(s)], want) << "W " << world << " accum " << accum << " step " << s;
      }
    }
  }
}

TEST(Loader, ResumeAtAnyMicroStepGivesTheExactNextExamples) {
  TempDir tmp;
  Spec sp;
  sp.n = 31, sp.s = 8;
  testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  LoaderConfig cfg = config(12, 3, 2, 1, 2);  // rank 1 of 2, accum 2
  cfg.flip = true;
  ResumeState start = initial_resume_state(ds.fingerprint(), 77, 12);
  std::vector<Rows> all = run(ds, cfg, start, 16);
  for (int k = 0; k < 15; ++k) {
    ResumeState mid;
    run(ds, cfg, start, k, &mid);
    auto json = ResumeState::from_json(mid.to_json(), "ckpt").value();  // through its serialised form
    EXPECT_EQ(json.step, k / 2);
    EXPECT_EQ(json.micro_step, k % 2);
    std::vector<Rows> resumed = run(ds, cfg, json, 16 - k);
    for (int j = k; j < 16; ++j) ASSERT_EQ(resumed[size_t(j - k)], all[size_t(j)]) << "resume after " << k << " at " << j;
  }
  // at a step boundary the world size may change: rank 0 of 1 continues with the same samples
  ResumeState at4;
  run(ds, cfg, start, 8, &at4);
  std::vector<Rows> single = run(ds, config(12, 12, 1, 0, 1), at4, 2);
  std::vector<Rows> ref = run(ds, config(12, 12, 1, 0, 1), start, 6);
  EXPECT_EQ(single[0].ids, ref[4].ids);
  EXPECT_EQ(single[1].ids, ref[5].ids);
}

TEST(Loader, FlipMirrorsImagesExactlyAndUsesLatentFlipRows) {
  TempDir tmp;
  for (int variant = 0; variant < 3; ++variant) {
    Spec sp;
    sp.n = 40, sp.s = 16;
    if (variant == 0) sp.kind = SampleKind::Image, sp.c = 3, sp.h = 4, sp.w = 5;
    if (variant == 1) sp.flip = true;
    std::string dir = tmp.sub("v" + std::to_string(variant));
    testing::Synthetic d = testing::make_synthetic(dir, sp);
    Dataset ds = Dataset::open(dir).value();
    LoaderConfig cfg = config(40, 40, 1, 0, 1);
    cfg.flip = true;
    Rows r = run(ds, cfg, initial_resume_state(ds.fingerprint(), 77, 40), 1)[0];
    const int64_t rb = d.info.row_bytes(Column::X), es = elem_size(d.info.x_elem), w = sp.w;
    int flipped = 0;
    for (int i = 0; i < 40; ++i) {
      int64_t g = r.ids[size_t(i)];
      const unsigned char* got = r.x.data() + i * rb;
      std::vector<unsigned char> want(d.x_row(g), d.x_row(g) + rb);
      if (r.flipped[size_t(i)]) {
        ++flipped;
        EXPECT_EQ(r.flipped[size_t(i)], sample_flip(77, 0, uint64_t(g)));
        if (variant == 1) {
          want.assign(d.x_flip.data() + g * rb, d.x_flip.data() + (g + 1) * rb);
        } else {
          for (int64_t row = 0; row < sp.c * sp.h; ++row)
            for (int64_t x = 0; x < w; ++x)
              std::memcpy(&want[size_t((row * w + x) * es)], d.x_row(g) + (row * w + (w - 1 - x)) * es, size_t(es));
        }
      }
      EXPECT_EQ(std::memcmp(got, want.data(), size_t(rb)), 0) << "variant " << variant << " row " << i;
    }
    EXPECT_GT(flipped, 8);
    EXPECT_LT(flipped, 32);
  }
}

TEST(Loader, DeliversTextColumns) {
  TempDir tmp;
  Spec sp;
  sp.text = true, sp.tokens = true, sp.pooled = 3, sp.n = 9, sp.s = 4;
  testing::Synthetic d = testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  auto l = Loader::create(ds, config(9, 9, 1, 0, 1), initial_resume_state(ds.fingerprint(), 77, 9)).value();
  Batch b = l->next().value();
  EXPECT_EQ(b.text_emb.shape(), (Shape{9, 5, 7}));
  EXPECT_EQ(b.text_emb.dtype(), DType::F16);
  EXPECT_EQ(b.text_pooled.shape(), (Shape{9, 3}));
  EXPECT_EQ(b.text_tokens.shape(), (Shape{9, 5}));
  const int64_t rb = d.info.row_bytes(Column::TextEmb);
  for (int i = 0; i < 9; ++i) {
    int64_t g = b.sample_ids[size_t(i)];
    EXPECT_EQ(b.text_len.to_vector<int32_t>()[size_t(i)], d.lens[size_t(g)]);
    EXPECT_EQ(std::memcmp(static_cast<const char*>(b.text_emb.data()) + i * rb, d.emb.data() + g * rb, size_t(rb)), 0);
    EXPECT_EQ(b.text_tokens.to_vector<int32_t>()[size_t(i * 5 + 2)], d.tokens[size_t(g * 5 + 2)]);
    EXPECT_EQ(b.source_ids[size_t(i)], d.ids[size_t(g)]);
  }
}

TEST(Loader, ShutsDownCleanlyMidEpochAndRejectsBadConfigs) {
  TempDir tmp;
  Spec sp;
  sp.n = 200, sp.s = 64;
  testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  ResumeState start = initial_resume_state(ds.fingerprint(), 77, 4);
  for (int consumed : {0, 1, 3}) {
    auto l = Loader::create(ds, config(4, 4, 1, 0, 1, 4, 8), start).value();
    for (int k = 0; k < consumed; ++k) ASSERT_TRUE(l->next().ok());
    l.reset();  // joins the workers while they are blocked on a full ring
  }
  auto bad = Loader::create(ds, config(4, 3, 1, 0, 1), start);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("global_batch 4 != world_size 1 x micro_batch 3 x accum 1"), std::string::npos);
  LoaderConfig cuda = config(4, 4, 1, 0, 1);
  cuda.device = Device::cuda(0);
  if (cuda_device_count() == 0) {
    EXPECT_FALSE(Loader::create(ds, cuda, start).ok());
  }
  ResumeState other = start;
  other.fingerprint = "0000000000000000";
  EXPECT_FALSE(Loader::create(ds, config(4, 4, 1, 0, 1), other).ok());
}

TEST(Loader, ReadErrorsSurfaceFromNext) {
  TempDir tmp;
  Spec sp;
  sp.n = 64, sp.s = 16;
  testing::make_synthetic(tmp.sub("ds"), sp);
  Dataset ds = Dataset::open(tmp.sub("ds")).value();
  for (int k = 0; k < 4; ++k)  // every shard loses its data after the open
    ASSERT_EQ(::truncate(tmp.sub("ds/shard-0000" + std::to_string(k) + "-of-00004.h5").c_str(), 100), 0);
  auto l = Loader::create(ds, config(8, 8, 1, 0, 1, 3, 4), initial_resume_state(ds.fingerprint(), 77, 8)).value();
  auto b = l->next();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(b.status().message().find("unexpected end of file"), std::string::npos) << b.status();
  EXPECT_NE(b.status().message().find(tmp.sub("ds/shard-")), std::string::npos);
  EXPECT_FALSE(l->next().ok());  // and stays failed
}

}  // namespace
}  // namespace drwkv::data
