// index.json writer and strict reader (data/manifest.h).
#include "data/manifest.h"

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "data/xxhash64.h"

namespace drwkv::data {

Json manifest_json(const Manifest& m) {
  const DatasetInfo& i = m.info;
  Json layout = Json::object();
  layout.set("kind", Json::string(sample_kind_name(i.kind)));
  layout.set("dtype", Json::string(elem_name(i.x_elem)));
  layout.set("shape", Json::array().push(Json::integer(i.channels)).push(Json::integer(i.height)).push(Json::integer(i.width)));
  Json text;  // null without text
  if (i.has_text) {
    text = Json::object();
    text.set("encoder", Json::string(i.text_encoder));
    text.set("prefix", Json::string(i.text_prefix));
    text.set("dtype", Json::string(elem_name(i.text_elem)));
    text.set("length", Json::integer(i.text_len));
    text.set("width", Json::integer(i.text_dim));
    text.set("tokens", Json::boolean(i.has_tokens));
    text.set("pooled_width", Json::integer(i.pooled_dim));
    text.set("captions", Json::boolean(i.has_captions));
  }
  Json shards = Json::array();
  for (const ShardRecord& r : m.shards) {
    Json sums = Json::object();
    for (const auto& [path, hex] : r.checksums) sums.set(path, Json::string(hex));
    shards.push(Json::object()
                    .set("file", Json::string(r.file))
                    .set("samples", Json::integer(r.samples))
                    .set("first", Json::integer(r.first))
                    .set("bytes", Json::integer(r.bytes))
                    .set("xxh64", std::move(sums)));
  }
  Json root = Json::object();
  root.set("format", Json::string(kManifestFormat));
  root.set("format_version", Json::integer(kFormatVersion));
  root.set("samples", Json::integer(i.num_samples));
  root.set("shard_size", Json::integer(i.shard_size));
  root.set("shard_count", Json::integer(i.shard_count()));
  root.set("layout", std::move(layout));
  root.set("normalisation", Json::string(i.normalisation));
  root.set("latent_scale_factor", Json::number(i.latent_scale_factor));
  root.set("image_encoder", Json::string(i.image_encoder));
  root.set("latent_flip", Json::boolean(i.has_latent_flip));
  root.set("num_classes", Json::integer(i.num_classes));
  root.set("text", std::move(text));
  root.set("source", Json::string(i.source));
  root.set("writer", Json::string(m.writer));
  root.set("writer_version", Json::string(m.writer_version));
  root.set("shards", std::move(shards));
  return root;
}

namespace {
// Typed member access with messages naming the manifest and the key path.
class Reader {
 public:
  explicit Reader(const std::string& where) : where_(where) {}
  absl::StatusOr<const Json*> get(const Json& obj, const std::string& ctx, const char* key, Json::Type t) const {
    const Json* v = obj.find(key);
    std::string path = ctx.empty() ? key : ctx + "." + key;
    if (!v) return absl::InvalidArgumentError(absl::StrFormat("%s: missing key '%s'", where_, path));
    bool ok = v->type() == t;
    if (!ok)
      return absl::InvalidArgumentError(absl::StrFormat("%s: key '%s' is %s, expected %s", where_, path,
                                                        json_type_name(v->type()), json_type_name(t)));
    return v;
  }
  absl::StatusOr<int64_t> integer(const Json& obj, const std::string& ctx, const char* key) const {
    DRWKV_ASSIGN_OR_RETURN(const Json* v, get(obj, ctx, key, Json::Type::Number));
    if (!v->is_integer())
      return absl::InvalidArgumentError(absl::StrFormat("%s: key '%s' must be an integer", where_,
                                                        ctx.empty() ? std::string(key) : ctx + "." + key));
    return v->as_int();
  }
  absl::StatusOr<std::string> string(const Json& obj, const std::string& ctx, const char* key) const {
    DRWKV_ASSIGN_OR_RETURN(const Json* v, get(obj, ctx, key, Json::Type::String));
    return v->as_string();
  }
  absl::StatusOr<bool> boolean(const Json& obj, const std::string& ctx, const char* key) const {
    DRWKV_ASSIGN_OR_RETURN(const Json* v, get(obj, ctx, key, Json::Type::Bool));
    return v->as_bool();
  }
  absl::Status bad(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s", where_, what));
  }

 private:
  const std::string& where_;
};

absl::StatusOr<Elem> elem_from_name(const std::string& s) {
  for (Elem e : {Elem::U8, Elem::U16, Elem::I32, Elem::U64, Elem::F16, Elem::BF16, Elem::F32})
    if (s == elem_name(e)) return e;
  return absl::InvalidArgumentError("unknown element type '" + s + "'");
}
}  // namespace

absl::StatusOr<Manifest> parse_manifest(std::string_view bytes, const std::string& where) {
  DRWKV_ASSIGN_OR_RETURN(Json root, Json::parse(bytes, where));
  Reader r(where);
  if (!root.is_object()) return r.bad("the manifest must be a JSON object");
  DRWKV_ASSIGN_OR_RETURN(std::string format, r.string(root, "", "format"));
  if (format != kManifestFormat)
    return r.bad(absl::StrFormat("format is '%s', expected '%s'", format, kManifestFormat));
  DRWKV_ASSIGN_OR_RETURN(int64_t version, r.integer(root, "", "format_version"));
  if (version != kFormatVersion)
    return r.bad(absl::StrFormat("format_version %d is not supported (this build reads version %d)", version,
                                 kFormatVersion));
  Manifest m;
  DatasetInfo& i = m.info;
  DRWKV_ASSIGN_OR_RETURN(i.num_samples, r.integer(root, "", "samples"));
  DRWKV_ASSIGN_OR_RETURN(i.shard_size, r.integer(root, "", "shard_size"));
  DRWKV_ASSIGN_OR_RETURN(int64_t shard_count, r.integer(root, "", "shard_count"));
  DRWKV_ASSIGN_OR_RETURN(const Json* layout, r.get(root, "", "layout", Json::Type::Object));
  DRWKV_ASSIGN_OR_RETURN(std::string kind, r.string(*layout, "layout", "kind"));
  if (kind != "image" && kind != "latent") return r.bad("layout.kind is '" + kind + "', expected image or latent");
  i.kind = kind == "image" ? SampleKind::Image : SampleKind::Latent;
  DRWKV_ASSIGN_OR_RETURN(std::string dtype, r.string(*layout, "layout", "dtype"));
  absl::StatusOr<Elem> xe = elem_from_name(dtype);
  if (!xe.ok()) return r.bad("layout.dtype: " + std::string(xe.status().message()));
  i.x_elem = *xe;
  DRWKV_ASSIGN_OR_RETURN(const Json* shape, r.get(*layout, "layout", "shape", Json::Type::Array));
  if (shape->items().size() != 3) return r.bad("layout.shape must have 3 entries [C, H, W]");
  for (const Json& d : shape->items())
    if (!d.is_integer()) return r.bad("layout.shape entries must be integers");
  i.channels = shape->items()[0].as_int();
  i.height = shape->items()[1].as_int();
  i.width = shape->items()[2].as_int();
  DRWKV_ASSIGN_OR_RETURN(i.normalisation, r.string(root, "", "normalisation"));
  DRWKV_ASSIGN_OR_RETURN(const Json* scale, r.get(root, "", "latent_scale_factor", Json::Type::Number));
  i.latent_scale_factor = scale->as_double();
  DRWKV_ASSIGN_OR_RETURN(i.image_encoder, r.string(root, "", "image_encoder"));
  DRWKV_ASSIGN_OR_RETURN(i.has_latent_flip, r.boolean(root, "", "latent_flip"));
  DRWKV_ASSIGN_OR_RETURN(i.num_classes, r.integer(root, "", "num_classes"));
  const Json* text = root.find("text");
  if (!text) return r.bad("missing key 'text' (null when the dataset has no text)");
  if (text->is_object()) {
    i.has_text = true;
    DRWKV_ASSIGN_OR_RETURN(i.text_encoder, r.string(*text, "text", "encoder"));
    DRWKV_ASSIGN_OR_RETURN(i.text_prefix, r.string(*text, "text", "prefix"));
    DRWKV_ASSIGN_OR_RETURN(std::string te, r.string(*text, "text", "dtype"));
    absl::StatusOr<Elem> tel = elem_from_name(te);
    if (!tel.ok()) return r.bad("text.dtype: " + std::string(tel.status().message()));
    i.text_elem = *tel;
    DRWKV_ASSIGN_OR_RETURN(i.text_len, r.integer(*text, "text", "length"));
    DRWKV_ASSIGN_OR_RETURN(i.text_dim, r.integer(*text, "text", "width"));
    DRWKV_ASSIGN_OR_RETURN(i.has_tokens, r.boolean(*text, "text", "tokens"));
    DRWKV_ASSIGN_OR_RETURN(i.pooled_dim, r.integer(*text, "text", "pooled_width"));
    DRWKV_ASSIGN_OR_RETURN(i.has_captions, r.boolean(*text, "text", "captions"));
  } else if (!text->is_null()) {
    return r.bad("key 'text' must be an object or null");
  }
  DRWKV_ASSIGN_OR_RETURN(i.source, r.string(root, "", "source"));
  DRWKV_ASSIGN_OR_RETURN(m.writer, r.string(root, "", "writer"));
  DRWKV_ASSIGN_OR_RETURN(m.writer_version, r.string(root, "", "writer_version"));
  DRWKV_RETURN_IF_ERROR(i.validate(where));
  if (shard_count != i.shard_count())
    return r.bad(absl::StrFormat("shard_count is %d, but %d samples in shards of %d need %d", shard_count,
                                 i.num_samples, i.shard_size, i.shard_count()));

  DRWKV_ASSIGN_OR_RETURN(const Json* shards, r.get(root, "", "shards", Json::Type::Array));
  if (int64_t(shards->items().size()) != shard_count)
    return r.bad(absl::StrFormat("lists %zu shards, expected shard_count = %d", shards->items().size(), shard_count));
  std::vector<std::string> paths = i.dataset_paths();
  for (int64_t k = 0; k < shard_count; ++k) {
    const Json& s = shards->items()[size_t(k)];
    std::string ctx = absl::StrFormat("shards[%d]", k);
    if (!s.is_object()) return r.bad(ctx + " must be an object");
    ShardRecord rec;
    DRWKV_ASSIGN_OR_RETURN(rec.file, r.string(s, ctx, "file"));
    DRWKV_ASSIGN_OR_RETURN(rec.samples, r.integer(s, ctx, "samples"));
    DRWKV_ASSIGN_OR_RETURN(rec.first, r.integer(s, ctx, "first"));
    DRWKV_ASSIGN_OR_RETURN(rec.bytes, r.integer(s, ctx, "bytes"));
    if (rec.file != i.shard_file(k))
      return r.bad(absl::StrFormat("%s.file is '%s', expected '%s'", ctx, rec.file, i.shard_file(k)));
    if (rec.samples != i.shard_samples(k))
      return r.bad(absl::StrFormat("%s.samples is %d, expected %d", ctx, rec.samples, i.shard_samples(k)));
    if (rec.first != k * i.shard_size)
      return r.bad(absl::StrFormat("%s.first is %d, expected %d", ctx, rec.first, k * i.shard_size));
    if (rec.bytes <= 0) return r.bad(absl::StrFormat("%s.bytes must be positive", ctx));
    DRWKV_ASSIGN_OR_RETURN(const Json* sums, r.get(s, ctx, "xxh64", Json::Type::Object));
    for (const std::string& p : paths) {
      DRWKV_ASSIGN_OR_RETURN(std::string hex, r.string(*sums, ctx + ".xxh64", p.c_str()));
      if (!parse_hex64(hex))
        return r.bad(absl::StrFormat("%s.xxh64.%s is '%s', expected 16 hex digits", ctx, p, hex));
      rec.checksums.emplace_back(p, hex);
    }
    if (sums->members().size() != paths.size())
      return r.bad(absl::StrFormat("%s.xxh64 has %zu entries, expected %zu (one per dataset)", ctx,
                                   sums->members().size(), paths.size()));
    m.shards.push_back(std::move(rec));
  }
  return m;
}

std::string fingerprint_of(std::string_view manifest_bytes) {
  return hex64(xxh64(manifest_bytes.data(), manifest_bytes.size()));
}

}  // namespace drwkv::data
