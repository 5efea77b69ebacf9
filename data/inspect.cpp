// Dataset / shard report (data/inspect.h).
#include "data/inspect.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/dtype.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/file_util.h"

namespace drwkv::data {

namespace {
// Row access shared by the dataset and the single-shard reports.
struct RowSource {
  const DatasetInfo* info;
  int64_t rows;
  std::function<absl::Status(Column, int64_t, void*)> read;
};

double element(const unsigned char* p, Elem e) {
  switch (e) {
    case Elem::U8: return *p;
    case Elem::F16: { uint16_t v; std::memcpy(&v, p, 2); return f16::to_float(v); }
    case Elem::BF16: { uint16_t v; std::memcpy(&v, p, 2); return float(bf16::from_bits(v)); }
    default: return 0;
  }
}

absl::StatusOr<Json> channel_stats(const RowSource& src, int64_t max_rows) {
  const DatasetInfo& i = *src.info;
  const int64_t rows = std::min(src.rows, std::max<int64_t>(max_rows, 1));
  const int64_t hw = i.height * i.width;
  std::vector<double> sum(size_t(i.channels)), sq(size_t(i.channels));
  std::vector<double> lo(size_t(i.channels), INFINITY), hi(size_t(i.channels), -INFINITY);
  int64_t nonfinite = 0;
  std::vector<unsigned char> buf(size_t(i.row_bytes(Column::X)));
  const int es = elem_size(i.x_elem);
  for (int64_t k = 0; k < rows; ++k) {
    int64_t r = rows == src.rows ? k : k * src.rows / rows;  // evenly spaced
    DRWKV_RETURN_IF_ERROR(src.read(Column::X, r, buf.data()));
    for (int64_t c = 0; c < i.channels; ++c) {
      for (int64_t p = 0; p < hw; ++p) {
        double v = element(buf.data() + (c * hw + p) * es, i.x_elem);
        if (!std::isfinite(v)) {
          ++nonfinite;
          continue;
        }
        sum[size_t(c)] += v;
        sq[size_t(c)] += v * v;
        lo[size_t(c)] = std::min(lo[size_t(c)], v);
        hi[size_t(c)] = std::max(hi[size_t(c)], v);
      }
    }
  }
  Json out = Json::object();
  out.set("rows", Json::integer(rows));
  out.set("nonfinite", Json::integer(nonfinite));
  Json chans = Json::array();
  const double cnt = double(rows * hw);
  for (int64_t c = 0; c < i.channels; ++c) {
    double mean = sum[size_t(c)] / cnt;
    double var = std::max(0.0, sq[size_t(c)] / cnt - mean * mean);
    chans.push(Json::object()
                   .set("mean", Json::number(mean))
                   .set("std", Json::number(std::sqrt(var)))
                   .set("min", Json::number(lo[size_t(c)]))
                   .set("max", Json::number(hi[size_t(c)])));
  }
  out.set("channels", std::move(chans));
  return out;
}

absl::StatusOr<Json> label_histogram(const RowSource& src) {
  std::map<int32_t, int64_t> counts;
  for (int64_t r = 0; r < src.rows; ++r) {
    int32_t label;
    DRWKV_RETURN_IF_ERROR(src.read(Column::Label, r, &label));
    ++counts[label];
  }
  Json h = Json::object();
  for (const auto& [label, n] : counts) h.set(std::to_string(label), Json::integer(n));
  return h;
}

Json info_json(const DatasetInfo& i) {
  Json j = Json::object();
  j.set("kind", Json::string(sample_kind_name(i.kind)));
  j.set("dtype", Json::string(elem_name(i.x_elem)));
  j.set("shape", Json::array().push(Json::integer(i.channels)).push(Json::integer(i.height)).push(Json::integer(i.width)));
  j.set("samples", Json::integer(i.num_samples));
  j.set("shard_size", Json::integer(i.shard_size));
  j.set("shard_count", Json::integer(i.shard_count()));
  j.set("num_classes", Json::integer(i.num_classes));
  j.set("normalisation", Json::string(i.normalisation));
  j.set("latent_scale_factor", Json::number(i.latent_scale_factor));
  j.set("image_encoder", Json::string(i.image_encoder));
  j.set("latent_flip", Json::boolean(i.has_latent_flip));
  if (i.has_text) {
    j.set("text", Json::object()
                      .set("encoder", Json::string(i.text_encoder))
                      .set("prefix", Json::string(i.text_prefix))
                      .set("emb", Json::string(absl::StrFormat("%s [%d, %d]", elem_name(i.text_elem), i.text_len, i.text_dim)))
                      .set("tokens", Json::boolean(i.has_tokens))
                      .set("pooled_width", Json::integer(i.pooled_dim))
                      .set("captions", Json::boolean(i.has_captions)));
  } else {
    j.set("text", Json());
  }
  j.set("source", Json::string(i.source));
  return j;
}
}  // namespace

absl::StatusOr<Json> inspect(const std::string& path, const InspectOptions& o) {
  Json report = Json::object();
  report.set("path", Json::string(path));
  if (is_directory(path)) {
    DRWKV_ASSIGN_OR_RETURN(Dataset ds, Dataset::open(path, OpenOptions{o.verify}));
    report.set("kind", Json::string("dataset"));
    report.set("fingerprint", Json::string(ds.fingerprint()));
    report.set("info", info_json(ds.info()));
    Json shards = Json::array();
    for (const ShardRecord& r : ds.manifest().shards)
      shards.push(Json::object()
                      .set("file", Json::string(r.file))
                      .set("samples", Json::integer(r.samples))
                      .set("first", Json::integer(r.first))
                      .set("bytes", Json::integer(r.bytes)));
    report.set("shards", std::move(shards));
    Json attrs = Json::object();
    for (const auto& [k, v] : ds.shard(0).attributes()) attrs.set(k, Json::string(v));
    report.set("shard0_attributes", std::move(attrs));
    RowSource src{&ds.info(), ds.size(), [&](Column c, int64_t g, void* dst) { return ds.read(c, g, dst); }};
    DRWKV_ASSIGN_OR_RETURN(Json stats, channel_stats(src, o.stats_samples));
    report.set("channel_stats", std::move(stats));
    DRWKV_ASSIGN_OR_RETURN(Json hist, label_histogram(src));
    report.set("label_histogram", std::move(hist));
    report.set("checksums", Json::string(o.verify ? "verified: every dataset of every shard matches"
                                                  : "not verified (use --verify); manifest and shard attributes agree"));
    return report;
  }
  DRWKV_ASSIGN_OR_RETURN(std::unique_ptr<Shard> shard, Shard::open(path));
  if (o.verify) DRWKV_RETURN_IF_ERROR(shard->verify_checksums());
  report.set("kind", Json::string("shard"));
  report.set("info", info_json(shard->info()));
  report.set("shard", Json::object()
                          .set("index", Json::integer(shard->index()))
                          .set("samples", Json::integer(shard->samples()))
                          .set("first", Json::integer(shard->first()))
                          .set("bytes", Json::integer(shard->file_bytes())));
  Json attrs = Json::object();
  for (const auto& [k, v] : shard->attributes()) attrs.set(k, Json::string(v));
  report.set("attributes", std::move(attrs));
  const Shard& s = *shard;
  RowSource src{&s.info(), s.samples(), [&](Column c, int64_t r, void* dst) { return s.read_rows(c, r, 1, dst); }};
  DRWKV_ASSIGN_OR_RETURN(Json stats, channel_stats(src, o.stats_samples));
  report.set("channel_stats", std::move(stats));
  DRWKV_ASSIGN_OR_RETURN(Json hist, label_histogram(src));
  report.set("label_histogram", std::move(hist));
  report.set("checksums", Json::string(o.verify ? "verified: every dataset matches its attribute" : "not verified (use --verify)"));
  return report;
}

std::string render_inspect(const Json& r) {
  std::string out;
  auto str = [&](const Json* j) -> std::string {
    if (!j) return "";
    if (j->is_string()) return j->as_string();
    return j->dump(0);
  };
  out += absl::StrFormat("%s %s\n", str(r.find("kind")), str(r.find("path")));
  if (const Json* fp = r.find("fingerprint")) out += "fingerprint: " + str(fp) + "\n";
  if (const Json* info = r.find("info")) {
    out += "facts:\n";
    for (const auto& [k, v] : info->members()) out += absl::StrFormat("  %-20s %s\n", k, str(&v));
  }
  if (const Json* shards = r.find("shards")) {
    out += "shards:\n";
    for (const Json& s : shards->items())
      out += absl::StrFormat("  %-28s %8s samples from %-10s %12s bytes\n", str(s.find("file")), str(s.find("samples")),
                             str(s.find("first")), str(s.find("bytes")));
  }
  if (const Json* s = r.find("shard")) out += "shard: " + s->dump(0) + "\n";
  const Json* attrs = r.find("attributes");
  if (!attrs) attrs = r.find("shard0_attributes");
  if (attrs) {
    out += r.find("attributes") ? "attributes:\n" : "attributes of shard 0:\n";
    for (const auto& [k, v] : attrs->members()) out += absl::StrFormat("  %-28s %s\n", k, str(&v));
  }
  if (const Json* st = r.find("channel_stats")) {
    out += absl::StrFormat("per-channel statistics of the stored values over %s rows (%s non-finite values):\n",
                           str(st->find("rows")), str(st->find("nonfinite")));
    int c = 0;
    for (const Json& ch : st->find("channels")->items())
      out += absl::StrFormat("  channel %d: mean %.6g  std %.6g  min %.6g  max %.6g\n", c++, ch.find("mean")->as_double(),
                             ch.find("std")->as_double(), ch.find("min")->as_double(), ch.find("max")->as_double());
  }
  if (const Json* h = r.find("label_histogram")) {
    out += "label histogram:\n";
    for (const auto& [k, v] : h->members()) out += absl::StrFormat("  %6s: %s\n", k, str(&v));
  }
  out += "checksums: " + str(r.find("checksums")) + "\n";
  return out;
}

}  // namespace drwkv::data
