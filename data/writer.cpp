// Shard and dataset writer (data/writer.h).
#include "data/writer.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "data/file_util.h"
#include "data/xxhash64.h"

namespace drwkv::data {

namespace {
absl::Status h5_status(herr_t rc, const std::string& path, const std::string& what) {
  if (rc >= 0) return absl::OkStatus();
  return absl::UnavailableError(absl::StrFormat("writing %s: %s failed: %s", path, what, h5_error_text()));
}

// Creates a contiguous, unfiltered dataset with its storage allocated at creation and writes `data`.
absl::Status write_contiguous(hid_t file, const std::string& path, const char* name, Elem elem,
                              const std::vector<hsize_t>& dims, const void* data) {
  H5Id type = h5_type(elem);
  H5Id space(H5_CHECK(H5Screate_simple(int(dims.size()), dims.data(), nullptr)));
  H5Id dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
  H5_CHECK(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS));
  H5_CHECK(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY));
  H5_CHECK(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER));
  hid_t d = H5Dcreate2(file, name, type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT);
  if (d < 0) return h5_status(-1, path, absl::StrFormat("creating dataset '%s'", name));
  H5Id dset(d);
  return h5_status(H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path,
                   absl::StrFormat("writing dataset '%s'", name));
}

// A 1-D chunked, deflate-compressed dataset (captions: cold path, compressible text).
absl::Status write_chunked(hid_t file, const std::string& path, const char* name, Elem elem, hsize_t n,
                           const void* data) {
  H5Id type = h5_type(elem);
  hsize_t maxdims = H5S_UNLIMITED;
  H5Id space(H5_CHECK(H5Screate_simple(1, &n, &maxdims)));
  H5Id dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
  hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(n, hsize_t(1) << 16));
  H5_CHECK(H5Pset_chunk(dcpl.get(), 1, &chunk));
  H5_CHECK(H5Pset_deflate(dcpl.get(), 6));
  hid_t d = H5Dcreate2(file, name, type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT);
  if (d < 0) return h5_status(-1, path, absl::StrFormat("creating dataset '%s'", name));
  H5Id dset(d);
  if (n == 0) return absl::OkStatus();
  return h5_status(H5Dwrite(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path,
                   absl::StrFormat("writing dataset '%s'", name));
}
}  // namespace

absl::StatusOr<ShardRecord> write_shard(const std::string& dir, const DatasetInfo& info, int64_t shard_index,
                                        const std::vector<std::vector<unsigned char>>& columns,
                                        const std::vector<std::string>& captions) {
  h5_silence();
  DRWKV_RETURN_IF_ERROR(info.validate("write_shard"));
  const int64_t samples = info.shard_samples(shard_index);
  DRWKV_ASSERT(samples > 0, "shard %lld outside [0, %lld)", (long long)shard_index, (long long)info.shard_count());
  DRWKV_ASSERT(int(columns.size()) == kNumColumns, "write_shard: %zu column buffers", columns.size());
  ShardRecord rec;
  rec.file = info.shard_file(shard_index);
  rec.samples = samples;
  rec.first = shard_index * info.shard_size;
  const std::string final_path = path_join(dir, rec.file);
  const std::string tmp = final_path + ".tmp";

  hid_t f = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return absl::UnavailableError(absl::StrFormat("cannot create %s: %s", tmp, h5_error_text()));
  H5Id file(f);
  if (info.has_text) {
    H5Id group(H5_CHECK(H5Gcreate2(file.get(), "text", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  }

  for (Column c : info.columns()) {
    const char* name = column_name(c, info.kind);
    const auto& buf = columns[size_t(c)];
    DRWKV_ASSERT(int64_t(buf.size()) == samples * info.row_bytes(c), "column %s: %zu bytes for %lld rows of %lld", name,
                 buf.size(), (long long)samples, (long long)info.row_bytes(c));
    std::vector<hsize_t> dims{hsize_t(samples)};
    for (int64_t d : info.row_shape(c)) dims.push_back(hsize_t(d));
    DRWKV_RETURN_IF_ERROR(write_contiguous(file.get(), tmp, name, info.column_elem(c), dims, buf.data()));
    rec.checksums.emplace_back(name, hex64(xxh64(buf.data(), buf.size())));
  }
  if (info.has_text && info.has_captions) {
    DRWKV_ASSERT(int64_t(captions.size()) == samples, "%zu captions for %lld rows", captions.size(), (long long)samples);
    std::vector<uint64_t> offsets{0};
    std::string bytes;
    for (const std::string& s : captions) {
      bytes += s;
      offsets.push_back(bytes.size());
    }
    DRWKV_RETURN_IF_ERROR(write_chunked(file.get(), tmp, kCaptionBytes, Elem::U8, bytes.size(), bytes.data()));
    DRWKV_RETURN_IF_ERROR(write_chunked(file.get(), tmp, kCaptionOffsets, Elem::U64, offsets.size(), offsets.data()));
    rec.checksums.emplace_back(kCaptionBytes, hex64(xxh64(bytes.data(), bytes.size())));
    rec.checksums.emplace_back(kCaptionOffsets, hex64(xxh64(offsets.data(), offsets.size() * 8)));
  }

  hid_t root = file.get();
  h5_write_attr(root, "format", std::string(kShardFormat));
  h5_write_attr(root, "format_version", kFormatVersion);
  h5_write_attr(root, "shard_index", shard_index);
  h5_write_attr(root, "shard_count", info.shard_count());
  h5_write_attr(root, "shard_size", info.shard_size);
  h5_write_attr(root, "sample_count", samples);
  h5_write_attr(root, "first_global_index", rec.first);
  h5_write_attr(root, "dataset_samples", info.num_samples);
  h5_write_attr(root, "layout_kind", std::string(sample_kind_name(info.kind)));
  h5_write_attr(root, "layout_dtype", std::string(elem_name(info.x_elem)));
  h5_write_attr(root, "layout_shape", std::vector<int64_t>{info.channels, info.height, info.width});
  h5_write_attr(root, "normalisation", info.normalisation);
  h5_write_attr(root, "latent_scale_factor", info.latent_scale_factor);
  h5_write_attr(root, "image_encoder", info.image_encoder);
  h5_write_attr(root, "num_classes", info.num_classes);
  h5_write_attr(root, "text_encoder", info.text_encoder);
  h5_write_attr(root, "text_prefix", info.text_prefix);
  h5_write_attr(root, "source", info.source);
  h5_write_attr(root, "writer", std::string(kWriterName));
  h5_write_attr(root, "writer_version", std::string(kWriterVersion));
  for (const auto& [path, hex] : rec.checksums) h5_write_attr(root, checksum_attr(path).c_str(), hex);
  // Everything above reaches the file before the marker that says the shard is whole.
  DRWKV_RETURN_IF_ERROR(h5_status(H5Fflush(root, H5F_SCOPE_LOCAL), tmp, "H5Fflush"));
  h5_write_attr(root, "complete", int64_t(1));
  herr_t rc = H5Fclose(file.release());  // closed explicitly so that a close failure is reported
  if (rc < 0) return h5_status(rc, tmp, "H5Fclose");
  DRWKV_RETURN_IF_ERROR(publish_file(tmp, final_path));
  DRWKV_ASSIGN_OR_RETURN(rec.bytes, file_size(final_path));
  return rec;
}

// ---------------------------------------------------------------------------------------------------
DatasetWriter::DatasetWriter(std::string dir, DatasetInfo info) : dir_(std::move(dir)), info_(std::move(info)) {
  columns_.resize(kNumColumns);
}

DatasetWriter::~DatasetWriter() = default;

absl::StatusOr<std::unique_ptr<DatasetWriter>> DatasetWriter::create(const std::string& dir, DatasetInfo info) {
  if (info.normalisation.empty())
    info.normalisation = info.kind == SampleKind::Image ? kPixelNormalisation : kLatentNormalisation;
  DRWKV_RETURN_IF_ERROR(info.validate("dataset " + dir));
  if (path_exists(path_join(dir, kManifestFile)))
    return absl::AlreadyExistsError(absl::StrFormat(
        "%s already holds a dataset (%s exists); shards are write-once: choose a new directory", dir, kManifestFile));
  DRWKV_RETURN_IF_ERROR(make_dirs(dir));
  return std::unique_ptr<DatasetWriter>(new DatasetWriter(dir, std::move(info)));
}

absl::Status DatasetWriter::add(const SampleInput& s) {
  DRWKV_ASSERT(!finished_, "DatasetWriter::add after finish()");
  const int64_t g = added_;
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat("dataset %s, sample %d: %s", dir_, g, what));
  };
  if (g >= info_.num_samples) return bad(absl::StrFormat("more samples than the declared %d", info_.num_samples));
  if (s.label < -1 || (info_.num_classes == 0 && s.label != -1) ||
      (info_.num_classes > 0 && s.label >= info_.num_classes))
    return bad(absl::StrFormat("label %d outside [-1, %d)", s.label, std::max<int64_t>(info_.num_classes, 0)));
  if (!s.x) return bad("no sample data");
  if (info_.has_latent_flip && !s.x_flip) return bad("the dataset stores latent_flip but the sample has none");
  if (info_.has_text) {
    if (!s.text_emb) return bad("no text embedding");
    if (s.text_len < 0 || s.text_len > info_.text_len)
      return bad(absl::StrFormat("text length %d outside [0, %d]", s.text_len, info_.text_len));
    if (info_.has_tokens && !s.text_tokens) return bad("no text tokens");
    if (info_.pooled_dim > 0 && !s.text_pooled) return bad("no pooled text embedding");
  }
  auto append = [&](Column c, const void* p) {
    auto& buf = columns_[size_t(c)];
    const auto* b = static_cast<const unsigned char*>(p);
    buf.insert(buf.end(), b, b + info_.row_bytes(c));
  };
  append(Column::X, s.x);
  if (info_.has_latent_flip) append(Column::XFlip, s.x_flip);
  append(Column::Label, &s.label);
  append(Column::SampleId, &s.sample_id);
  if (info_.has_text) {
    append(Column::TextEmb, s.text_emb);
    uint16_t len = uint16_t(s.text_len);
    append(Column::TextLen, &len);
    if (info_.has_tokens) append(Column::TextTokens, s.text_tokens);
    if (info_.pooled_dim > 0) append(Column::TextPooled, s.text_pooled);
    if (info_.has_captions) captions_.emplace_back(s.caption);
  }
  ++added_;
  int64_t shard = (added_ - 1) / info_.shard_size;
  if (added_ - shard * info_.shard_size == info_.shard_samples(shard)) return flush_shard();
  return absl::OkStatus();
}

absl::Status DatasetWriter::flush_shard() {
  int64_t shard = int64_t(records_.size());
  DRWKV_ASSIGN_OR_RETURN(ShardRecord rec, write_shard(dir_, info_, shard, columns_, captions_));
  records_.push_back(std::move(rec));
  for (auto& c : columns_) c.clear();
  captions_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> DatasetWriter::finish() {
  DRWKV_ASSERT(!finished_, "DatasetWriter::finish called twice");
  if (added_ != info_.num_samples)
    return absl::FailedPreconditionError(absl::StrFormat(
        "dataset %s: %d samples were added but %d were declared; index.json not written", dir_, added_,
        info_.num_samples));
  finished_ = true;
  Manifest m;
  m.info = info_;
  m.shards = records_;
  std::string bytes = manifest_json(m).dump();
  DRWKV_RETURN_IF_ERROR(write_file_atomic(path_join(dir_, kManifestFile), bytes));
  return fingerprint_of(bytes);
}

}  // namespace drwkv::data
