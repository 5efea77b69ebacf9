// Pack -> read round trips through real HDF5 files: pixels, labels, ids, f16 latents bit for bit (incl.
// special values), bf16, latent_flip, text (emb, len, tokens, pooled, UTF-8 captions), and the packers
// (npy files and directories, text attachment, Fashion-MNIST).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "data/dataset.h"
#include "data/file_util.h"
#include "data/idx.h"
#include "data/npy.h"
#include "data/pack.h"
#include "data/xxhash64.h"
#include "tests/data/data_testing.h"

namespace drwkv::data {
namespace {
using testing::Spec;
using testing::TempDir;

void expect_rows_equal(const Dataset& ds, const testing::Synthetic& d) {
  const DatasetInfo& i = d.info;
  std::vector<unsigned char> row(size_t(i.row_bytes(Column::X)));
  for (int64_t g = 0; g < i.num_samples; ++g) {
    ASSERT_TRUE(ds.read(Column::X, g, row.data()).ok());
    ASSERT_EQ(std::memcmp(row.data(), d.x_row(g), row.size()), 0) << "sample " << g;
    if (i.has_latent_flip) {
      ASSERT_TRUE(ds.read(Column::XFlip, g, row.data()).ok());
      ASSERT_EQ(std::memcmp(row.data(), d.x_flip.data() + g * i.row_bytes(Column::X), row.size()), 0) << "flip " << g;
    }
    int32_t label = 99;
    uint64_t id = 0;
    ASSERT_TRUE(ds.read(Column::Label, g, &label).ok());
    ASSERT_TRUE(ds.read(Column::SampleId, g, &id).ok());
    EXPECT_EQ(label, d.labels[size_t(g)]) << "sample " << g;
    EXPECT_EQ(id, d.ids[size_t(g)]) << "sample " << g;
  }
}

TEST(RoundTrip, ImagesLabelsIdsAndManifest) {
  TempDir tmp;
  Spec sp;
  sp.kind = SampleKind::Image;
  sp.c = 3, sp.h = 5, sp.w = 6, sp.n = 37, sp.s = 10;
  testing::Synthetic d = testing::make_synthetic(tmp.sub("ds"), sp);
  auto ds = Dataset::open(tmp.sub("ds"), OpenOptions{true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->num_shards(), 4);
  EXPECT_EQ(ds->shard(3).samples(), 7);
  EXPECT_EQ(ds->shard(3).first(), 30);
  EXPECT_TRUE(path_exists(tmp.sub("ds/shard-00003-of-00004.h5")));
  EXPECT_FALSE(path_exists(tmp.sub("ds/shard-00003-of-00004.h5.tmp")));
  EXPECT_EQ(ds->info().normalisation, kPixelNormalisation);
  std::string manifest = read_file(tmp.sub("ds/index.json")).value();
  EXPECT_EQ(ds->fingerprint(), hex64(xxh64(manifest.data(), manifest.size())));
  EXPECT_EQ(ds->fingerprint(), d.fingerprint);
  expect_rows_equal(*ds, d);
}

TEST(RoundTrip, F16LatentsAreBitExactIncludingSpecialValues) {
  TempDir tmp;
  Spec sp;
  sp.flip = true;
  testing::Synthetic d = testing::make_synthetic(tmp.sub("ds"), sp);
  auto ds = Dataset::open(tmp.sub("ds"), OpenOptions{true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->info().x_elem, Elem::F16);
  EXPECT_TRUE(ds->info().has_latent_flip);
  EXPECT_DOUBLE_EQ(ds->info().latent_scale_factor, 0.18215);
  // the synthetic data really holds the special patterns (NaN payload, inf, subnormal, -0)
  bool nan_payload = false;
  for (size_t k = 0; k + 1 < d.x.size(); k += 2) nan_payload |= d.x[k] == 0x01 && d.x[k + 1] == 0x7e;
  EXPECT_TRUE(nan_payload);
  expect_rows_equal(*ds, d);
}

TEST(RoundTrip, Bf16Latents) {
  TempDir tmp;
  Spec sp;
  sp.x_elem = Elem::BF16;
  sp.n = 12, sp.s = 12;
  testing::Synthetic d = testing::make_synthetic(tmp.sub("ds"), sp);
  auto ds = Dataset::open(tmp.sub("ds"), OpenOptions{true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->info().x_elem, Elem::BF16);
  expect_rows_equal(*ds, d);
}

TEST(RoundTrip, TextEmbeddingsLengthsTokensPooledCaptions) {
  TempDir tmp;
  Spec sp;
  sp.text = true, sp.tokens = true, sp.pooled = 6, sp.captions = true;
  sp.n = 23, sp.s = 8;
  testing::Synthetic d = testing::make_synthetic(tmp.sub("ds"), sp);
  auto ds = Dataset::open(tmp.sub("ds"), OpenOptions{true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  const DatasetInfo& i = ds->info();
  EXPECT_TRUE(i.has_text && i.has_tokens && i.has_captions);
  EXPECT_EQ(i.pooled_dim, 6);
  EXPECT_EQ(i.text_prefix, "<|endoftext|>");
  std::vector<unsigned char> emb(size_t(i.row_bytes(Column::TextEmb))), pooled(size_t(i.row_bytes(Column::TextPooled)));
  std::vector<int32_t> tok(size_t(i.text_len));
  for (int64_t g = 0; g < i.num_samples; ++g) {
    ASSERT_TRUE(ds->read(Column::TextEmb, g, emb.data()).ok());
    EXPECT_EQ(std::memcmp(emb.data(), d.emb.data() + g * emb.size(), emb.size()), 0) << g;
    ASSERT_TRUE(ds->read(Column::TextPooled, g, pooled.data()).ok());
    EXPECT_EQ(std::memcmp(pooled.data(), d.pooled.data() + g * pooled.size(), pooled.size()), 0) << g;
    uint16_t len = 999;
    ASSERT_TRUE(ds->read(Column::TextLen, g, &len).ok());
    EXPECT_EQ(len, d.lens[size_t(g)]);
    ASSERT_TRUE(ds->read(Column::TextTokens, g, tok.data()).ok());
    EXPECT_EQ(std::vector<int32_t>(tok), std::vector<int32_t>(d.tokens.begin() + g * i.text_len, d.tokens.begin() + (g + 1) * i.text_len));
    auto cap = ds->caption(g);
    ASSERT_TRUE(cap.ok()) << cap.status();
    EXPECT_EQ(*cap, d.captions[size_t(g)]) << g;
  }
  expect_rows_equal(*ds, d);
}

TEST(Writer, RefusesExistingDatasetsBadLabelsAndShortInput) {
  TempDir tmp;
  Spec sp;
  sp.n = 5, sp.s = 5;
  testing::make_synthetic(tmp.sub("ds"), sp);
  auto again = DatasetWriter::create(tmp.sub("ds"), testing::make_info(sp));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already holds a dataset"), std::string::npos);

  auto w = DatasetWriter::create(tmp.sub("short"), testing::make_info(sp));
  ASSERT_TRUE(w.ok());
  std::vector<uint16_t> x(4 * 8 * 8, 0x3c00);
  SampleInput s;
  s.x = x.data();
  s.label = 10;  // num_classes = 10
  absl::Status st = (*w)->add(s);
  EXPECT_NE(st.message().find("label 10 outside [-1, 10)"), std::string::npos) << st;
  s.label = 3;
  ASSERT_TRUE((*w)->add(s).ok());
  auto fp = (*w)->finish();
  ASSERT_FALSE(fp.ok());
  EXPECT_NE(fp.status().message().find("1 samples were added but 5 were declared"), std::string::npos);
  EXPECT_FALSE(path_exists(tmp.sub("short/index.json")));
  auto open = Dataset::open(tmp.sub("short"));
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("index.json does not exist"), std::string::npos) << open.status();
}

TEST(PackNpy, FileAndDirectoryFormsConvertAndCopy) {
  TempDir tmp;
  const int64_t n = 9, c = 4, h = 3, w = 5, e = c * h * w;
  std::vector<float> lat(static_cast<size_t>(n * e));
  for (size_t k = 0; k < lat.size(); ++k) lat[k] = float(int(rng_mix({7, k}) % 4001) - 2000) / 311.0f;
  std::vector<int64_t> labels{0, 4, -1, 2, 2, 1, 0, 3, 4};
  ASSERT_TRUE(write_npy(tmp.sub("lat.npy"), NpyType::F32, {n, c, h, w}, lat.data()).ok());
  ASSERT_TRUE(write_npy(tmp.sub("labels.npy"), NpyType::I64, {n}, labels.data()).ok());
  NpyPackOptions o;
  o.latents = tmp.sub("lat.npy");
  o.labels = tmp.sub("labels.npy");
  o.out = tmp.sub("a");
  o.shard_size = 4;
  ASSERT_TRUE(pack_npy(o).ok());
  // the same samples as one f16 file per sample: stored bit for bit
  ASSERT_TRUE(make_dirs(tmp.sub("per")).ok());
  std::vector<uint16_t> half(lat.size());
  for (size_t k = 0; k < lat.size(); ++k) half[k] = f16::from_float(lat[k]);
  for (int64_t g = 0; g < n; ++g)
    ASSERT_TRUE(write_npy(tmp.sub("per/s" + std::to_string(g) + ".npy"), NpyType::F16, {c, h, w}, half.data() + g * e).ok());
  o.latents = tmp.sub("per");
  o.out = tmp.sub("b");
  ASSERT_TRUE(pack_npy(o).ok());
  for (const char* which : {"a", "b"}) {
    auto ds = Dataset::open(tmp.sub(which), OpenOptions{true});
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ(ds->info().num_classes, 5);
    EXPECT_EQ(ds->num_shards(), 3);
    std::vector<uint16_t> row(static_cast<size_t>(e));
    for (int64_t g = 0; g < n; ++g) {
      ASSERT_TRUE(ds->read(Column::X, g, row.data()).ok());
      EXPECT_EQ(row, std::vector<uint16_t>(half.begin() + g * e, half.begin() + (g + 1) * e)) << which << " " << g;
      int32_t label;
      ASSERT_TRUE(ds->read(Column::Label, g, &label).ok());
      EXPECT_EQ(label, labels[size_t(g)]);
    }
  }
  // wrong-shaped labels are rejected with the file named
  std::vector<int64_t> short_labels{1, 2};
  ASSERT_TRUE(write_npy(tmp.sub("short.npy"), NpyType::I64, {2}, short_labels.data()).ok());
  o.latents = tmp.sub("lat.npy");
  o.labels = tmp.sub("short.npy");
  o.out = tmp.sub("c");
  auto bad = pack_npy(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("short.npy has shape [2], expected [9]"), std::string::npos) << bad.status();
}

TEST(PackText, AttachesEmbeddingsAndCaptionsToANewDataset) {
  TempDir tmp;
  Spec sp;
  sp.n = 6, sp.s = 4;
  testing::Synthetic d = testing::make_synthetic(tmp.sub("base"), sp);
  const int64_t L = 3, D = 5;
  std::vector<float> emb(size_t(sp.n * L * D));
  for (size_t k = 0; k < emb.size(); ++k) emb[k] = float(k % 13) * 0.37f - 2.0f;
  std::vector<int32_t> lens{0, 1, 2, 3, 3, 1};
  ASSERT_TRUE(write_npy(tmp.sub("emb.npy"), NpyType::F32, {sp.n, L, D}, emb.data()).ok());
  ASSERT_TRUE(write_npy(tmp.sub("len.npy"), NpyType::I32, {sp.n}, lens.data()).ok());
  ASSERT_TRUE(write_file_atomic(tmp.sub("cap.txt"), "a cat\nun caf\xc3\xa9\n\nx\ny\nlast\n").ok());
  TextPackOptions o;
  o.dataset = tmp.sub("base");
  o.emb = tmp.sub("emb.npy");
  o.len = tmp.sub("len.npy");
  o.captions = tmp.sub("cap.txt");
  o.out = tmp.sub("text");
  o.encoder = "clip-vit-l-14";
  auto fp = pack_text(o);
  ASSERT_TRUE(fp.ok()) << fp.status();
  auto ds = Dataset::open(tmp.sub("text"), OpenOptions{true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_NE(ds->fingerprint(), d.fingerprint);
  EXPECT_EQ(ds->info().text_encoder, "clip-vit-l-14");
  std::vector<uint16_t> row(static_cast<size_t>(L * D));
  for (int64_t g = 0; g < sp.n; ++g) {
    ASSERT_TRUE(ds->read(Column::TextEmb, g, row.data()).ok());
    for (int64_t k = 0; k < L * D; ++k) ASSERT_EQ(row[size_t(k)], f16::from_float(emb[size_t(g * L * D + k)]));
    uint16_t len;
    ASSERT_TRUE(ds->read(Column::TextLen, g, &len).ok());
    EXPECT_EQ(len, lens[size_t(g)]);
  }
  EXPECT_EQ(ds->caption(1).value(), "un caf\xc3\xa9");
  EXPECT_EQ(ds->caption(2).value(), "");
  EXPECT_EQ(ds->caption(5).value(), "last");
  expect_rows_equal(*ds, d);  // the latents, labels and ids are carried over
  // lengths beyond L are rejected
  lens[2] = 4;
  ASSERT_TRUE(write_npy(tmp.sub("len2.npy"), NpyType::I32, {sp.n}, lens.data()).ok());
  o.len = tmp.sub("len2.npy");
  o.out = tmp.sub("text2");
  auto bad = pack_text(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("length 4 of sample 2 outside [0, 3]"), std::string::npos) << bad.status();
}

TEST(PackFmnist, TestSplitPaddedWithBalancedLabels) {
  const std::string src = "/usr/share/datasets/fashion-mnist";
  if (!path_exists(src + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TempDir tmp;
  FmnistOptions o;
  o.input = src;
  o.split = "test";
  o.out = tmp.sub("fm");
  o.shard_size = 4096;
  ASSERT_TRUE(pack_fmnist(o).ok());
  auto ds = Dataset::open(tmp.sub("fm"), OpenOptions{true});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->size(), 10000);
  EXPECT_EQ(ds->num_shards(), 3);
  auto images = read_idx_gz(src + "/t10k-images-idx3-ubyte.gz", 3).value();
  auto labels = read_idx_gz(src + "/t10k-labels-idx1-ubyte.gz", 1).value();
  std::vector<int64_t> hist(10);
  std::vector<uint8_t> img(32 * 32);
  for (int64_t g = 0; g < 10000; ++g) {
    int32_t label;
    ASSERT_TRUE(ds->read(Column::Label, g, &label).ok());
    ASSERT_EQ(label, labels.data[size_t(g)]);
    ++hist[size_t(label)];
    if (g % 997 != 0) continue;
    ASSERT_TRUE(ds->read(Column::X, g, img.data()).ok());
    int64_t border = 0, mismatch = 0, nonzero = 0;
    for (int r = 0; r < 32; ++r)
      for (int c = 0; c < 32; ++c) {
        bool inside = r >= 2 && r < 30 && c >= 2 && c < 30;
        uint8_t v = img[size_t(r * 32 + c)];
        if (!inside) border += v;
        if (inside) mismatch += v != images.data[size_t(g * 784 + (r - 2) * 28 + (c - 2))];
        nonzero += v != 0;
      }
    EXPECT_EQ(border, 0);
    EXPECT_EQ(mismatch, 0);
    EXPECT_GT(nonzero, 50);
  }
  EXPECT_EQ(hist, std::vector<int64_t>(10, 1000));
}

}  // namespace
}  // namespace drwkv::data
