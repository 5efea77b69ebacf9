// Shard reader (data/shard.h).
#include "data/shard.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "data/file_util.h"
#include "data/h5.h"
#include "data/xxhash64.h"

namespace drwkv::data {

namespace {
absl::Status bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrFormat("shard %s: %s", path, what));
}

bool link_exists(hid_t file, const char* path) {
  // Each component must exist for H5Lexists on the full path to be valid.
  std::string p(path);
  size_t slash = p.find('/');
  if (slash != std::string::npos && H5Lexists(file, p.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) return false;
  return H5Lexists(file, path, H5P_DEFAULT) > 0;
}

absl::Status pread_all(int fd, void* dst, int64_t bytes, int64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(dst);
  while (bytes > 0) {
    ssize_t n = ::pread(fd, p, size_t(bytes), off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::DataLossError(absl::StrFormat("shard %s: read failed at byte %d: %s", path, offset,
                                                          errno_text()));
    if (n == 0)
      return absl::DataLossError(absl::StrFormat("shard %s: unexpected end of file at byte %d (truncated?)", path,
                                                 offset));
    p += n;
    bytes -= n;
    offset += n;
  }
  return absl::OkStatus();
}

// Renders an attribute's value as text for inspect.
std::string attr_text(hid_t file, const std::string& where, const char* name) {
  H5Id attr(H5Aopen(file, name, H5P_DEFAULT));
  if (!attr.valid()) return "?";
  H5Id type(H5_CHECK(H5Aget_type(attr.get())));
  switch (H5Tget_class(type.get())) {
    case H5T_STRING: {
      absl::StatusOr<std::string> s = h5_read_attr_str(file, where, name);
      return s.ok() ? "\"" + *s + "\"" : "?";
    }
    case H5T_INTEGER: {
      absl::StatusOr<std::vector<int64_t>> v = h5_read_attr_i64s(file, where, name);
      if (!v.ok()) return "?";
      H5Id space(H5_CHECK(H5Aget_space(attr.get())));
      if (H5Sget_simple_extent_type(space.get()) == H5S_SCALAR) return std::to_string((*v)[0]);
      return shape_str(*v);
    }
    case H5T_FLOAT: {
      absl::StatusOr<double> d = h5_read_attr_f64(file, where, name);
      return d.ok() ? absl::StrFormat("%.9g", *d) : "?";
    }
    default: return "(unsupported type)";
  }
}

herr_t collect_attr_name(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}
}  // namespace

Shard::~Shard() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<Shard>> Shard::open(const std::string& path) {
  std::unique_ptr<Shard> s(new Shard());
  DRWKV_RETURN_IF_ERROR(s->load(path));
  return s;
}

absl::Status Shard::load(const std::string& path) {
  h5_silence();
  path_ = path;
  const std::string where = "shard " + path;
  DRWKV_ASSIGN_OR_RETURN(file_bytes_, file_size(path));
  hid_t f;
  {
    std::lock_guard<std::mutex> lock(h5_mu_);
    f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  }
  if (f < 0)
    return absl::DataLossError(absl::StrFormat("shard %s: cannot open as HDF5 (truncated or not an HDF5 file?): %s",
                                               path, h5_error_text()));
  H5Id file(f);
  hid_t root = file.get();

  // ---- attributes: identity first, then the completion marker, then the layout
  DRWKV_ASSIGN_OR_RETURN(std::string format, h5_read_attr_str(root, where, "format"));
  if (format != kShardFormat)
    return bad(path, absl::StrFormat("attribute 'format' is '%s', expected '%s'", format, kShardFormat));
  DRWKV_ASSIGN_OR_RETURN(int64_t version, h5_read_attr_i64(root, where, "format_version"));
  if (version != kFormatVersion)
    return bad(path, absl::StrFormat("attribute 'format_version' is %d; this build reads version %d", version,
                                     kFormatVersion));
  absl::StatusOr<int64_t> complete = h5_read_attr_i64(root, where, "complete");
  if (!complete.ok() && absl::IsNotFound(complete.status()))
    return absl::FailedPreconditionError(absl::StrFormat(
        "shard %s: missing attribute 'complete' (the writer did not finish this shard; re-pack it)", path));
  DRWKV_RETURN_IF_ERROR(complete.status());
  if (*complete != 1)
    return absl::FailedPreconditionError(absl::StrFormat(
        "shard %s: attribute 'complete' is %d, expected 1 (the writer did not finish this shard; re-pack it)", path,
        *complete));

  DatasetInfo& i = info_;
  DRWKV_ASSIGN_OR_RETURN(std::string kind, h5_read_attr_str(root, where, "layout_kind"));
  if (kind != "image" && kind != "latent")
    return bad(path, "attribute 'layout_kind' is '" + kind + "', expected 'image' or 'latent'");
  i.kind = kind == "image" ? SampleKind::Image : SampleKind::Latent;
  DRWKV_ASSIGN_OR_RETURN(std::string xdtype, h5_read_attr_str(root, where, "layout_dtype"));
  if (xdtype == "u8") {
    i.x_elem = Elem::U8;
  } else if (xdtype == "f16") {
    i.x_elem = Elem::F16;
  } else if (xdtype == "bf16") {
    i.x_elem = Elem::BF16;
  } else {
    return bad(path, "attribute 'layout_dtype' is '" + xdtype + "', expected u8, f16 or bf16");
  }
  DRWKV_ASSIGN_OR_RETURN(std::vector<int64_t> shape, h5_read_attr_i64s(root, where, "layout_shape"));
  if (shape.size() != 3) return bad(path, "attribute 'layout_shape' must hold 3 values [C, H, W]");
  i.channels = shape[0];
  i.height = shape[1];
  i.width = shape[2];
  DRWKV_ASSIGN_OR_RETURN(i.num_samples, h5_read_attr_i64(root, where, "dataset_samples"));
  DRWKV_ASSIGN_OR_RETURN(i.shard_size, h5_read_attr_i64(root, where, "shard_size"));
  DRWKV_ASSIGN_OR_RETURN(i.num_classes, h5_read_attr_i64(root, where, "num_classes"));
  DRWKV_ASSIGN_OR_RETURN(i.latent_scale_factor, h5_read_attr_f64(root, where, "latent_scale_factor"));
  DRWKV_ASSIGN_OR_RETURN(i.normalisation, h5_read_attr_str(root, where, "normalisation"));
  DRWKV_ASSIGN_OR_RETURN(i.image_encoder, h5_read_attr_str(root, where, "image_encoder"));
  DRWKV_ASSIGN_OR_RETURN(i.text_encoder, h5_read_attr_str(root, where, "text_encoder"));
  DRWKV_ASSIGN_OR_RETURN(i.text_prefix, h5_read_attr_str(root, where, "text_prefix"));
  DRWKV_ASSIGN_OR_RETURN(i.source, h5_read_attr_str(root, where, "source"));
  DRWKV_ASSIGN_OR_RETURN(index_, h5_read_attr_i64(root, where, "shard_index"));
  DRWKV_ASSIGN_OR_RETURN(int64_t shard_count, h5_read_attr_i64(root, where, "shard_count"));
  DRWKV_ASSIGN_OR_RETURN(samples_, h5_read_attr_i64(root, where, "sample_count"));
  DRWKV_ASSIGN_OR_RETURN(first_, h5_read_attr_i64(root, where, "first_global_index"));

  // ---- optional parts, discovered from the datasets present
  i.has_latent_flip = link_exists(root, "latent_flip");
  i.has_text = link_exists(root, "text/emb");
  if (i.has_text) {
    H5Id emb(H5Dopen2(root, "text/emb", H5P_DEFAULT));
    if (!emb.valid()) return bad(path, "cannot open dataset 'text/emb': " + h5_error_text());
    std::vector<int64_t> s = h5_dataset_shape(emb.get());
    if (s.size() != 3) return bad(path, "dataset 'text/emb' has shape " + shape_str(s) + ", expected [S, L, Dq]");
    i.text_len = s[1];
    i.text_dim = s[2];
    H5Id t(H5_CHECK(H5Dget_type(emb.get())));
    DRWKV_ASSIGN_OR_RETURN(i.text_elem, h5_classify(t.get(), where + ": dataset 'text/emb'"));
    i.has_tokens = link_exists(root, "text/tokens");
    if (link_exists(root, "text/pooled")) {
      H5Id pooled(H5Dopen2(root, "text/pooled", H5P_DEFAULT));
      if (!pooled.valid()) return bad(path, "cannot open dataset 'text/pooled': " + h5_error_text());
      std::vector<int64_t> ps = h5_dataset_shape(pooled.get());
      if (ps.size() != 2) return bad(path, "dataset 'text/pooled' has shape " + shape_str(ps) + ", expected [S, Dp]");
      i.pooled_dim = ps[1];
    }
    i.has_captions = link_exists(root, kCaptionBytes) || link_exists(root, kCaptionOffsets);
  }
  DRWKV_RETURN_IF_ERROR(i.validate(where));
  if (index_ < 0 || index_ >= shard_count || shard_count != i.shard_count())
    return bad(path, absl::StrFormat("attributes 'shard_index' = %d, 'shard_count' = %d do not fit %d samples in "
                                     "shards of %d (%d shards)",
                                     index_, shard_count, i.num_samples, i.shard_size, i.shard_count()));
  if (samples_ != i.shard_samples(index_))
    return bad(path, absl::StrFormat("attribute 'sample_count' is %d, expected %d for shard %d", samples_,
                                     i.shard_samples(index_), index_));
  if (first_ != index_ * i.shard_size)
    return bad(path, absl::StrFormat("attribute 'first_global_index' is %d, expected %d", first_,
                                     index_ * i.shard_size));

  // ---- hot datasets: type, shape, contiguous storage inside the file
  for (Column c : i.columns()) {
    const char* name = column_name(c, i.kind);
    if (!link_exists(root, name)) return bad(path, absl::StrFormat("missing dataset '%s'", name));
    H5Id d(H5Dopen2(root, name, H5P_DEFAULT));
    if (!d.valid()) return bad(path, absl::StrFormat("cannot open dataset '%s': %s", name, h5_error_text()));
    H5Id t(H5_CHECK(H5Dget_type(d.get())));
    absl::StatusOr<Elem> classified = h5_classify(t.get(), absl::StrFormat("%s: dataset '%s'", where, name));
    if (!classified.ok())
      return absl::InvalidArgumentError(absl::StrFormat("%s; dataset '%s' must be %s", classified.status().message(),
                                                        name, elem_name(i.column_elem(c))));
    Elem e = *classified;
    if (e != i.column_elem(c))
      return bad(path, absl::StrFormat("dataset '%s' has type %s, expected %s", name, elem_name(e),
                                       elem_name(i.column_elem(c))));
    std::vector<int64_t> want{samples_};
    for (int64_t v : i.row_shape(c)) want.push_back(v);
    std::vector<int64_t> have = h5_dataset_shape(d.get());
    if (have != want)
      return bad(path, absl::StrFormat("dataset '%s' has shape %s, expected %s", name, shape_str(have),
                                       shape_str(want)));
    H5Id dcpl(H5_CHECK(H5Dget_create_plist(d.get())));
    if (H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS || H5Pget_nfilters(dcpl.get()) != 0)
      return bad(path, absl::StrFormat("dataset '%s' is chunked or filtered; rows are read directly from the file, "
                                       "so it must be contiguous and unfiltered (re-pack with drwkv_data)",
                                       name));
    haddr_t off = H5Dget_offset(d.get());
    int64_t bytes = samples_ * i.row_bytes(c);
    if (off == HADDR_UNDEF) return bad(path, absl::StrFormat("dataset '%s' has no storage in the file", name));
    if (int64_t(off) + bytes > file_bytes_)
      return absl::DataLossError(absl::StrFormat(
          "shard %s: dataset '%s' ends at byte %d but the file has %d bytes (truncated)", path, name,
          int64_t(off) + bytes, file_bytes_));
    offsets_[size_t(c)] = int64_t(off);
  }

  // ---- captions: u64 offsets [S + 1] (read now) and u8 bytes [offsets[S]]
  if (i.has_captions) {
    for (const char* name : {kCaptionBytes, kCaptionOffsets})
      if (!link_exists(root, name)) return bad(path, absl::StrFormat("missing dataset '%s'", name));
    H5Id off(H5Dopen2(root, kCaptionOffsets, H5P_DEFAULT));
    H5Id bytes(H5Dopen2(root, kCaptionBytes, H5P_DEFAULT));
    if (!off.valid() || !bytes.valid()) return bad(path, "cannot open the caption datasets: " + h5_error_text());
    H5Id ot(H5_CHECK(H5Dget_type(off.get()))), bt(H5_CHECK(H5Dget_type(bytes.get())));
    DRWKV_ASSIGN_OR_RETURN(Elem oe, h5_classify(ot.get(), where + ": dataset 'text/caption_offsets'"));
    DRWKV_ASSIGN_OR_RETURN(Elem be, h5_classify(bt.get(), where + ": dataset 'text/caption_bytes'"));
    if (oe != Elem::U64 || be != Elem::U8)
      return bad(path, absl::StrFormat("caption datasets have types %s/%s, expected u64 offsets and u8 bytes",
                                       elem_name(oe), elem_name(be)));
    std::vector<int64_t> os = h5_dataset_shape(off.get()), bs = h5_dataset_shape(bytes.get());
    if (os != std::vector<int64_t>{samples_ + 1})
      return bad(path, absl::StrFormat("dataset '%s' has shape %s, expected [%d]", kCaptionOffsets, shape_str(os),
                                       samples_ + 1));
    caption_offsets_.resize(size_t(samples_ + 1));
    H5Id mt = h5_type(Elem::U64);
    if (H5Dread(off.get(), mt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, caption_offsets_.data()) < 0)
      return absl::DataLossError(absl::StrFormat("shard %s: cannot read '%s': %s", path, kCaptionOffsets,
                                                 h5_error_text()));
    bool monotone = caption_offsets_[0] == 0;
    for (size_t k = 1; k < caption_offsets_.size(); ++k) monotone = monotone && caption_offsets_[k] >= caption_offsets_[k - 1];
    if (!monotone || bs.size() != 1 || uint64_t(bs[0]) != caption_offsets_.back())
      return bad(path, absl::StrFormat("caption offsets are not a non-decreasing sequence from 0 to the length of "
                                       "'%s' (%s)",
                                       kCaptionBytes, shape_str(bs)));
  }

  // ---- checksum attributes for every dataset, and all attributes as text
  for (const std::string& p : i.dataset_paths()) {
    std::string attr = checksum_attr(p);
    DRWKV_ASSIGN_OR_RETURN(std::string hex, h5_read_attr_str(root, where, attr.c_str()));
    if (!parse_hex64(hex)) return bad(path, absl::StrFormat("attribute '%s' is '%s', expected 16 hex digits", attr, hex));
    checksums_.emplace_back(p, hex);
  }
  std::vector<std::string> names;
  hsize_t idx = 0;
  H5_CHECK(H5Aiterate2(root, H5_INDEX_NAME, H5_ITER_INC,
                       &idx, collect_attr_name, &names));
  for (const std::string& n : names) attributes_.emplace_back(n, attr_text(root, where, n.c_str()));

  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return absl::UnavailableError(absl::StrFormat("shard %s: cannot open: %s", path, errno_text()));
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
  std::lock_guard<std::mutex> lock(h5_mu_);
  file.reset();
  return absl::OkStatus();
}

absl::Status Shard::read_rows(Column c, int64_t row, int64_t count, void* dst) const {
  DRWKV_ASSERT(info_.has_column(c), "shard %s has no column %s", path_.c_str(), column_name(c, info_.kind));
  DRWKV_ASSERT(row >= 0 && count >= 0 && row + count <= samples_, "rows [%lld, %lld) outside shard %s of %lld rows",
               (long long)row, (long long)(row + count), path_.c_str(), (long long)samples_);
  int64_t rb = info_.row_bytes(c);
  return pread_all(fd_, dst, count * rb, offsets_[size_t(c)] + row * rb, path_);
}

absl::StatusOr<std::string> Shard::caption(int64_t row) const {
  if (!info_.has_captions) return absl::FailedPreconditionError(absl::StrFormat("shard %s has no captions", path_));
  DRWKV_ASSERT(row >= 0 && row < samples_, "caption row %lld outside shard %s", (long long)row, path_.c_str());
  hsize_t start = caption_offsets_[size_t(row)], n = caption_offsets_[size_t(row) + 1] - start;
  std::string out(size_t(n), '\0');
  if (n == 0) return out;
  std::lock_guard<std::mutex> lock(h5_mu_);
  h5_silence();
  H5Id file(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) return absl::DataLossError(absl::StrFormat("shard %s: cannot reopen: %s", path_, h5_error_text()));
  H5Id d(H5Dopen2(file.get(), kCaptionBytes, H5P_DEFAULT));
  if (!d.valid()) return absl::DataLossError(absl::StrFormat("shard %s: cannot open captions: %s", path_, h5_error_text()));
  H5Id fspace(H5_CHECK(H5Dget_space(d.get())));
  H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr));
  H5Id mspace(H5_CHECK(H5Screate_simple(1, &n, nullptr)));
  if (H5Dread(d.get(), H5T_NATIVE_UCHAR, mspace.get(), fspace.get(), H5P_DEFAULT, out.data()) < 0)
    return absl::DataLossError(absl::StrFormat("shard %s: cannot read caption %d: %s", path_, row, h5_error_text()));
  return out;
}

absl::StatusOr<std::string> Shard::compute_checksum(const std::string& dataset_path) const {
  for (Column c : info_.columns()) {
    if (dataset_path != column_name(c, info_.kind)) continue;
    Xxh64 h;
    std::vector<char> buf(size_t(4) << 20);
    int64_t total = samples_ * info_.row_bytes(c), done = 0;
    while (done < total) {
      int64_t n = std::min<int64_t>(int64_t(buf.size()), total - done);
      DRWKV_RETURN_IF_ERROR(pread_all(fd_, buf.data(), n, offsets_[size_t(c)] + done, path_));
      h.update(buf.data(), size_t(n));
      done += n;
    }
    return hex64(h.digest());
  }
  if (info_.has_captions && (dataset_path == kCaptionBytes || dataset_path == kCaptionOffsets)) {
    std::lock_guard<std::mutex> lock(h5_mu_);
    h5_silence();
    H5Id file(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file.valid()) return absl::DataLossError(absl::StrFormat("shard %s: cannot reopen: %s", path_, h5_error_text()));
    H5Id d(H5Dopen2(file.get(), dataset_path.c_str(), H5P_DEFAULT));
    bool bytes = dataset_path == kCaptionBytes;
    std::vector<unsigned char> data(size_t(bytes ? caption_offsets_.back() : caption_offsets_.size() * 8));
    H5Id mt = h5_type(bytes ? Elem::U8 : Elem::U64);
    if (!d.valid() || (!data.empty() && H5Dread(d.get(), mt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0))
      return absl::DataLossError(absl::StrFormat("shard %s: cannot read dataset '%s': %s", path_, dataset_path,
                                                 h5_error_text()));
    return hex64(xxh64(data.data(), data.size()));
  }
  return absl::NotFoundError(absl::StrFormat("shard %s has no dataset '%s'", path_, dataset_path));
}

absl::Status Shard::verify_checksums() const {
  for (const auto& [p, recorded] : checksums_) {
    DRWKV_ASSIGN_OR_RETURN(std::string actual, compute_checksum(p));
    if (actual != recorded)
      return absl::DataLossError(absl::StrFormat(
          "shard %s: dataset '%s' has xxh64 %s but attribute '%s' records %s (the data is corrupt)", path_, p, actual,
          checksum_attr(p), recorded));
  }
  return absl::OkStatus();
}

}  // namespace drwkv::data
