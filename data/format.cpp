// Format names and dataset facts (data/format.h).
#include "data/format.h"

#include <type_traits>

#include "absl/strings/str_format.h"

namespace drwkv::data {

const char* sample_kind_name(SampleKind k) { return k == SampleKind::Image ? "image" : "latent"; }

const char* column_name(Column c, SampleKind kind) {
  switch (c) {
    case Column::X: return kind == SampleKind::Image ? "image" : "latent";
    case Column::XFlip: return "latent_flip";
    case Column::Label: return "label";
    case Column::SampleId: return "sample_id";
    case Column::TextEmb: return "text/emb";
    case Column::TextLen: return "text/len";
    case Column::TextTokens: return "text/tokens";
    case Column::TextPooled: return "text/pooled";
  }
  return "?";
}

std::string checksum_attr(const std::string& dataset_path) {
  std::string s = "xxh64_" + dataset_path;
  for (char& c : s)
    if (c == '/') c = '_';
  return s;
}

int64_t DatasetInfo::shard_samples(int64_t k) const {
  if (k < 0 || k >= shard_count()) return 0;
  return k + 1 < shard_count() ? shard_size : num_samples - k * shard_size;
}

std::string DatasetInfo::shard_file(int64_t k) const {
  return absl::StrFormat("shard-%05d-of-%05d.h5", k, shard_count());
}

std::vector<int64_t> DatasetInfo::row_shape(Column c) const {
  switch (c) {
    case Column::X:
    case Column::XFlip: return {channels, height, width};
    case Column::Label:
    case Column::SampleId:
    case Column::TextLen: return {};
    case Column::TextEmb: return {text_len, text_dim};
    case Column::TextTokens: return {text_len};
    case Column::TextPooled: return {pooled_dim};
  }
  return {};
}

Elem DatasetInfo::column_elem(Column c) const {
  switch (c) {
    case Column::X:
    case Column::XFlip: return x_elem;
    case Column::Label: return Elem::I32;
    case Column::SampleId: return Elem::U64;
    case Column::TextEmb: return text_elem;
    case Column::TextLen: return Elem::U16;
    case Column::TextTokens: return Elem::I32;
    case Column::TextPooled: return text_elem;
  }
  return Elem::U8;
}

bool DatasetInfo::has_column(Column c) const {
  switch (c) {
    case Column::X:
    case Column::Label:
    case Column::SampleId: return true;
    case Column::XFlip: return has_latent_flip;
    case Column::TextEmb:
    case Column::TextLen: return has_text;
    case Column::TextTokens: return has_text && has_tokens;
    case Column::TextPooled: return has_text && pooled_dim > 0;
  }
  return false;
}

int64_t DatasetInfo::row_bytes(Column c) const {
  int64_t n = elem_size(column_elem(c));
  for (int64_t d : row_shape(c)) n *= d;
  return n;
}

std::vector<Column> DatasetInfo::columns() const {
  std::vector<Column> out;
  for (int i = 0; i < kNumColumns; ++i)
    if (has_column(Column(i))) out.push_back(Column(i));
  return out;
}

std::vector<std::string> DatasetInfo::dataset_paths() const {
  std::vector<std::string> out;
  for (Column c : columns()) out.push_back(column_name(c, kind));
  if (has_text && has_captions) {
    out.push_back(kCaptionBytes);
    out.push_back(kCaptionOffsets);
  }
  return out;
}

absl::Status DatasetInfo::validate(const std::string& where) const {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s", where, what));
  };
  if (channels <= 0 || height <= 0 || width <= 0)
    return bad(absl::StrFormat("layout shape [%d, %d, %d] must be positive", channels, height, width));
  if (kind == SampleKind::Image && x_elem != Elem::U8)
    return bad(absl::StrFormat("image samples are u8, got %s", elem_name(x_elem)));
  if (kind == SampleKind::Latent && x_elem != Elem::F16 && x_elem != Elem::BF16)
    return bad(absl::StrFormat("latent samples are f16 or bf16, got %s", elem_name(x_elem)));
  if (kind == SampleKind::Image && has_latent_flip) return bad("latent_flip is only valid for latent datasets");
  if (num_samples <= 0) return bad(absl::StrFormat("sample count %d must be positive", num_samples));
  if (shard_size <= 0) return bad(absl::StrFormat("shard size %d must be positive", shard_size));
  if (num_classes < 0) return bad(absl::StrFormat("num_classes %d must be >= 0", num_classes));
  if (!(latent_scale_factor > 0)) return bad(absl::StrFormat("latent_scale_factor %g must be > 0", latent_scale_factor));
  if (has_text) {
    if (text_len <= 0 || text_dim <= 0)
      return bad(absl::StrFormat("text embedding shape [%d, %d] must be positive", text_len, text_dim));
    if (text_len > 65535) return bad("text length above 65535 does not fit text/len (u16)");
    if (text_elem != Elem::F16 && text_elem != Elem::BF16)
      return bad(absl::StrFormat("text embeddings are f16 or bf16, got %s", elem_name(text_elem)));
    if (pooled_dim < 0) return bad("pooled width must be >= 0");
  } else if (has_tokens || pooled_dim != 0 || has_captions) {
    return bad("text tokens, pooled embeddings and captions need text embeddings (text/emb)");
  }
  return absl::OkStatus();
}

std::vector<std::string> info_differences(const DatasetInfo& a, const DatasetInfo& b) {
  std::vector<std::string> d;
  auto text = [](const auto& v) -> std::string {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, std::string>) {
      return "'" + v + "'";
    } else if constexpr (std::is_same_v<T, bool>) {
      return v ? "true" : "false";
    } else if constexpr (std::is_floating_point_v<T>) {
      return absl::StrFormat("%.9g", v);
    } else {
      return std::to_string(v);
    }
  };
  auto cmp = [&](const char* what, const auto& x, const auto& y) {
    if (!(x == y)) d.push_back(absl::StrFormat("%s: %s vs %s", what, text(x), text(y)));
  };
  cmp("layout kind", std::string(sample_kind_name(a.kind)), std::string(sample_kind_name(b.kind)));
  cmp("sample dtype", std::string(elem_name(a.x_elem)), std::string(elem_name(b.x_elem)));
  cmp("channels", a.channels, b.channels);
  cmp("height", a.height, b.height);
  cmp("width", a.width, b.width);
  cmp("dataset samples", a.num_samples, b.num_samples);
  cmp("shard size", a.shard_size, b.shard_size);
  cmp("num_classes", a.num_classes, b.num_classes);
  cmp("latent_scale_factor", a.latent_scale_factor, b.latent_scale_factor);
  cmp("normalisation", a.normalisation, b.normalisation);
  cmp("image_encoder", a.image_encoder, b.image_encoder);
  cmp("latent_flip", a.has_latent_flip, b.has_latent_flip);
  cmp("text", a.has_text, b.has_text);
  if (a.has_text && b.has_text) {
    cmp("text length", a.text_len, b.text_len);
    cmp("text width", a.text_dim, b.text_dim);
    cmp("text dtype", std::string(elem_name(a.text_elem)), std::string(elem_name(b.text_elem)));
    cmp("text tokens", a.has_tokens, b.has_tokens);
    cmp("pooled width", a.pooled_dim, b.pooled_dim);
    cmp("captions", a.has_captions, b.has_captions);
    cmp("text_encoder", a.text_encoder, b.text_encoder);
    cmp("text_prefix", a.text_prefix, b.text_prefix);
  }
  return d;
}

}  // namespace drwkv::data
