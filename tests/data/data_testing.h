// Helpers for the data tests: temporary directories and synthetic datasets written through the real
// writer, with every stored value kept in memory for comparison. Values come from a keyed hash, never
// zeros; f16 latents include special bit patterns (subnormal, -0, max, inf, NaN with payload).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "data/file_util.h"
#include "data/writer.h"

namespace drwkv::data::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : std::string("/tmp")) + "/drwkv_data_XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_join(path_, name); }

 private:
  std::string path_;
};

struct Spec {
  SampleKind kind = SampleKind::Latent;
  Elem x_elem = Elem::F16;
  int64_t c = 4, h = 8, w = 8;
  int64_t n = 37, s = 10;
  int64_t num_classes = 10;
  bool flip = false;
  bool text = false;
  int64_t text_len = 5, text_dim = 7, pooled = 0;
  bool tokens = false, captions = false;
  uint64_t seed = 1;
};

struct Synthetic {
  DatasetInfo info;
  std::vector<unsigned char> x, x_flip, emb, pooled;  // all rows, concatenated
  std::vector<int32_t> labels, tokens;
  std::vector<uint16_t> lens;
  std::vector<uint64_t> ids;
  std::vector<std::string> captions;
  std::string fingerprint;
  const unsigned char* x_row(int64_t g) const { return x.data() + g * info.row_bytes(Column::X); }
};

inline uint16_t half_bits(uint64_t h, Elem e) {
  float v = float(int64_t(h % 20001) - 10000) / 997.0f;
  return e == Elem::F16 ? f16::from_float(v) : bf16::from_float(v);
}

inline DatasetInfo make_info(const Spec& sp) {
  DatasetInfo i;
  i.kind = sp.kind;
  i.x_elem = sp.kind == SampleKind::Image ? Elem::U8 : sp.x_elem;
  i.channels = sp.c;
  i.height = sp.h;
  i.width = sp.w;
  i.num_samples = sp.n;
  i.shard_size = sp.s;
  i.num_classes = sp.num_classes;
  i.latent_scale_factor = sp.kind == SampleKind::Latent ? 0.18215 : 1.0;
  i.image_encoder = sp.kind == SampleKind::Latent ? "test-vae" : "none";
  i.has_latent_flip = sp.flip;
  i.has_text = sp.text;
  if (sp.text) {
    i.text_len = sp.text_len;
    i.text_dim = sp.text_dim;
    i.pooled_dim = sp.pooled;
    i.has_tokens = sp.tokens;
    i.has_captions = sp.captions;
    i.text_encoder = "test-clip";
    i.text_prefix = "<|endoftext|>";
  }
  i.source = "synthetic";
  return i;
}

// Writes a synthetic dataset to `dir` and returns everything that was stored.
inline Synthetic make_synthetic(const std::string& dir, const Spec& sp) {
  Synthetic d;
  d.info = make_info(sp);
  const DatasetInfo& i = d.info;
  auto fill = [&](std::vector<unsigned char>& buf, int64_t bytes_per_row, Elem e, uint64_t tag) {
    buf.resize(size_t(bytes_per_row * sp.n));
    int es = elem_size(e);
    for (int64_t k = 0; k < int64_t(buf.size()) / es; ++k) {
      uint64_t hsh = rng_mix({sp.seed, tag, uint64_t(k)});
      if (es == 1) {
        buf[size_t(k)] = uint8_t(hsh >> 11);
      } else {
        uint16_t b = half_bits(hsh, e);
        static const uint16_t special[] = {0x0001, 0x8000, 0x7bff, 0x7c00, 0xfc00, 0x7e01, 0x03ff, 0x3c00};
        if (e == Elem::F16 && k % 97 < 8) b = special[k % 97];
        std::memcpy(&buf[size_t(k) * 2], &b, 2);
      }
    }
  };
  fill(d.x, i.row_bytes(Column::X), i.x_elem, 1);
  if (sp.flip) fill(d.x_flip, i.row_bytes(Column::X), i.x_elem, 2);
  if (sp.text) {
    fill(d.emb, i.row_bytes(Column::TextEmb), Elem::F16, 3);
    if (sp.pooled) fill(d.pooled, i.row_bytes(Column::TextPooled), Elem::F16, 4);
  }
  auto writer = DatasetWriter::create(dir, i);
  EXPECT_TRUE(writer.ok()) << writer.status();
  for (int64_t g = 0; g < sp.n; ++g) {
    uint64_t hsh = rng_mix({sp.seed, 5, uint64_t(g)});
    d.labels.push_back(sp.num_classes > 0 ? int32_t(hsh % uint64_t(sp.num_classes + 1)) - 1 : -1);
    d.ids.push_back(1000000 + uint64_t(g) * 7);
    SampleInput s;
    s.x = d.x.data() + g * i.row_bytes(Column::X);
    if (sp.flip) s.x_flip = d.x_flip.data() + g * i.row_bytes(Column::X);
    s.label = d.labels.back();
    s.sample_id = d.ids.back();
    if (sp.text) {
      s.text_emb = d.emb.data() + g * i.row_bytes(Column::TextEmb);
      d.lens.push_back(uint16_t(hsh % uint64_t(sp.text_len + 1)));
      s.text_len = d.lens.back();
      if (sp.tokens) {
        for (int64_t k = 0; k < sp.text_len; ++k) d.tokens.push_back(int32_t(rng_mix({sp.seed, 6, uint64_t(g), uint64_t(k)}) % 49408));
        s.text_tokens = d.tokens.data() + g * sp.text_len;
      }
      if (sp.pooled) s.text_pooled = d.pooled.data() + g * i.row_bytes(Column::TextPooled);
      if (sp.captions) {
        d.captions.push_back(g % 5 == 3 ? std::string() : "caf\xc3\xa9 \xe2\x98\x95 sample " + std::to_string(g));
        s.caption = d.captions.back();
      }
    }
    absl::Status st = (*writer)->add(s);
    EXPECT_TRUE(st.ok()) << st;
  }
  auto fp = (*writer)->finish();
  EXPECT_TRUE(fp.ok()) << fp.status();
  d.fingerprint = fp.ok() ? *fp : "";
  return d;
}

inline void copy_dir(const std::string& from, const std::string& to) {
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

}  // namespace drwkv::data::testing
