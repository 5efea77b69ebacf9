// Packers (data/pack.h).
#include "data/pack.h"

#include <dirent.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/dtype.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/file_util.h"
#include "data/idx.h"
#include "data/npy.h"
#include "data/writer.h"

namespace drwkv::data {

int64_t default_shard_size(int64_t bytes_per_sample) {
  int64_t s = (int64_t(256) << 20) / std::max<int64_t>(bytes_per_sample, 1);
  s = std::clamp<int64_t>(s, 1024, 65536);
  return s / 1024 * 1024;
}

// ---- Fashion-MNIST ------------------------------------------------------------------------------------
absl::StatusOr<std::string> pack_fmnist(const FmnistOptions& o) {
  if (o.split != "train" && o.split != "test")
    return absl::InvalidArgumentError("--split is '" + o.split + "', expected train or test");
  if (o.pad < 28) return absl::InvalidArgumentError(absl::StrFormat("--pad %d is below the image size 28", o.pad));
  const std::string stem = o.split == "train" ? "train" : "t10k";
  const std::string images_path = path_join(o.input, stem + "-images-idx3-ubyte.gz");
  const std::string labels_path = path_join(o.input, stem + "-labels-idx1-ubyte.gz");
  DRWKV_ASSIGN_OR_RETURN(IdxArray images, read_idx_gz(images_path, 3));
  DRWKV_ASSIGN_OR_RETURN(IdxArray labels, read_idx_gz(labels_path, 1));
  if (images.dims[1] != 28 || images.dims[2] != 28)
    return absl::InvalidArgumentError(absl::StrFormat("IDX file %s: images are %dx%d, expected 28x28", images_path,
                                                      images.dims[1], images.dims[2]));
  const int64_t n = images.dims[0];
  if (labels.dims[0] != n)
    return absl::InvalidArgumentError(absl::StrFormat("IDX files disagree: %s has %d images, %s has %d labels",
                                                      images_path, n, labels_path, labels.dims[0]));
  for (int64_t i = 0; i < n; ++i)
    if (labels.data[size_t(i)] > 9)
      return absl::InvalidArgumentError(
          absl::StrFormat("IDX file %s: label %d of sample %d is outside [0, 10)", labels_path, labels.data[size_t(i)], i));

  DatasetInfo info;
  info.kind = SampleKind::Image;
  info.x_elem = Elem::U8;
  info.channels = 1;
  info.height = info.width = o.pad;
  info.num_samples = n;
  info.shard_size = o.shard_size > 0 ? o.shard_size : default_shard_size(int64_t(o.pad) * o.pad + 12);
  info.num_classes = 10;
  info.source = "fashion-mnist " + o.split + " (" + images_path + ")";
  DRWKV_ASSIGN_OR_RETURN(auto writer, DatasetWriter::create(o.out, info));
  const int off = (o.pad - 28) / 2;
  std::vector<uint8_t> img(size_t(o.pad) * size_t(o.pad));
  for (int64_t i = 0; i < n; ++i) {
    std::fill(img.begin(), img.end(), 0);
    const uint8_t* src = images.data.data() + i * 28 * 28;
    for (int r = 0; r < 28; ++r) std::memcpy(&img[size_t((r + off) * o.pad + off)], src + r * 28, 28);
    SampleInput s;
    s.x = img.data();
    s.label = labels.data[size_t(i)];
    s.sample_id = uint64_t(i);
    DRWKV_RETURN_IF_ERROR(writer->add(s));
  }
  return writer->finish();
}

// ---- npy latents ----------------------------------------------------------------------------------------
namespace {
// Latents from one [N, ...] file or from a directory of per-sample files.
class LatentSource {
 public:
  static absl::StatusOr<LatentSource> open(const std::string& path, const char* flag) {
    LatentSource src;
    src.flag_ = flag;
    if (is_directory(path)) {
      DIR* d = opendir(path.c_str());
      if (!d) return absl::UnavailableError(absl::StrFormat("%s %s: cannot list: %s", flag, path, errno_text()));
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) src.files_.push_back(path_join(path, name));
      }
      closedir(d);
      std::sort(src.files_.begin(), src.files_.end());
      if (src.files_.empty()) return absl::NotFoundError(absl::StrFormat("%s %s: no .npy files", flag, path));
      DRWKV_ASSIGN_OR_RETURN(std::unique_ptr<NpyFile> first, NpyFile::open(src.files_[0]));
      if (first->shape().size() != 3)
        return absl::InvalidArgumentError(absl::StrFormat("%s: per-sample latents must be [C, h, w], got %d dims",
                                                          src.files_[0], first->shape().size()));
      src.shape_ = {int64_t(src.files_.size()), first->shape()[0], first->shape()[1], first->shape()[2]};
    } else {
      DRWKV_ASSIGN_OR_RETURN(src.file_, NpyFile::open(path));
      if (src.file_->shape().size() != 4)
        return absl::InvalidArgumentError(
            absl::StrFormat("%s %s: latents must be [N, C, h, w], got %d dims", flag, path, src.file_->shape().size()));
      src.shape_ = src.file_->shape();
    }
    return src;
  }
  const std::vector<int64_t>& shape() const { return shape_; }
  // Sample i converted to `out` (f16 or bf16 bits).
  absl::Status read(int64_t i, Elem out, uint16_t* dst) {
    const NpyFile* f = file_.get();
    std::unique_ptr<NpyFile> single;
    int64_t row = i;
    if (!f) {
      DRWKV_ASSIGN_OR_RETURN(single, NpyFile::open(files_[size_t(i)]));
      std::vector<int64_t> want(shape_.begin() + 1, shape_.end());
      if (single->shape() != want)
        return absl::InvalidArgumentError(absl::StrFormat("%s: shape differs from %s (expected [%d, %d, %d])",
                                                          files_[size_t(i)], files_[0], want[0], want[1], want[2]));
      f = single.get();
      row = -1;
    }
    // a per-sample file [C, h, w] is read whole: its C rows of h·w elements
    const int64_t n = shape_[1] * shape_[2] * shape_[3];
    const int64_t first = row < 0 ? 0 : row, count = row < 0 ? f->rows() : 1;
    if (f->type() == NpyType::F16 && out == Elem::F16) return f->read_raw(first, count, dst);
    if (!npy_type_is_float(f->type()))
      return absl::InvalidArgumentError(absl::StrFormat("%s %s holds %s, expected f2, f4 or f8 latents", flag_,
                                                        f->path(), npy_type_name(f->type())));
    buf_.resize(size_t(n));
    DRWKV_RETURN_IF_ERROR(f->read_f32(first, count, buf_.data()));
    for (int64_t k = 0; k < n; ++k)
      dst[k] = out == Elem::F16 ? f16::from_float(buf_[size_t(k)]) : bf16::from_float(buf_[size_t(k)]);
    return absl::OkStatus();
  }

 private:
  std::string flag_;
  std::unique_ptr<NpyFile> file_;
  std::vector<std::string> files_;
  std::vector<int64_t> shape_;
  std::vector<float> buf_;
};

// A [N] integer column read whole.
absl::StatusOr<std::vector<int64_t>> read_column(const std::string& path, int64_t n, const char* flag) {
  DRWKV_ASSIGN_OR_RETURN(std::unique_ptr<NpyFile> f, NpyFile::open(path));
  if (f->shape() != std::vector<int64_t>{n})
    return absl::InvalidArgumentError(absl::StrFormat("%s %s has shape %s, expected [%d]", flag, path,
                                                      shape_str(f->shape()), n));
  std::vector<int64_t> v(static_cast<size_t>(n));
  DRWKV_RETURN_IF_ERROR(f->read_i64(0, n, v.data()));
  return v;
}
}  // namespace

absl::StatusOr<std::string> pack_npy(const NpyPackOptions& o) {
  if (o.dtype != Elem::F16 && o.dtype != Elem::BF16)
    return absl::InvalidArgumentError("latents are stored as f16 or bf16");
  DRWKV_ASSIGN_OR_RETURN(LatentSource lat, LatentSource::open(o.latents, "--latents"));
  const std::vector<int64_t> shape = lat.shape();
  const int64_t n = shape[0];
  std::unique_ptr<LatentSource> flip;
  if (!o.latent_flip.empty()) {
    DRWKV_ASSIGN_OR_RETURN(LatentSource f, LatentSource::open(o.latent_flip, "--latent-flip"));
    if (f.shape() != shape)
      return absl::InvalidArgumentError(absl::StrFormat("--latent-flip %s has shape %s, --latents has %s", o.latent_flip,
                                                        shape_str(f.shape()), shape_str(shape)));
    flip = std::make_unique<LatentSource>(std::move(f));
  }
  std::vector<int64_t> labels(static_cast<size_t>(n), -1), ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = i;
  int64_t max_label = -1;
  if (!o.labels.empty()) {
    DRWKV_ASSIGN_OR_RETURN(labels, read_column(o.labels, n, "--labels"));
    for (int64_t i = 0; i < n; ++i) {
      if (labels[size_t(i)] < -1 || labels[size_t(i)] > INT32_MAX)
        return absl::InvalidArgumentError(
            absl::StrFormat("--labels %s: label %d of sample %d is below -1 or too large", o.labels, labels[size_t(i)], i));
      max_label = std::max(max_label, labels[size_t(i)]);
    }
  }
  if (!o.ids.empty()) {
    DRWKV_ASSIGN_OR_RETURN(ids, read_column(o.ids, n, "--ids"));
    for (int64_t v : ids)
      if (v < 0) return absl::InvalidArgumentError("--ids " + o.ids + " holds a negative id");
  }
  DatasetInfo info;
  info.kind = SampleKind::Latent;
  info.x_elem = o.dtype;
  info.channels = shape[1];
  info.height = shape[2];
  info.width = shape[3];
  info.num_samples = n;
  info.num_classes = o.num_classes >= 0 ? o.num_classes : max_label + 1;
  if (max_label >= info.num_classes)
    return absl::InvalidArgumentError(absl::StrFormat("--labels %s holds label %d but --num-classes is %d", o.labels,
                                                      max_label, info.num_classes));
  info.latent_scale_factor = o.scale_factor;
  info.image_encoder = o.encoder;
  info.has_latent_flip = flip != nullptr;
  info.source = o.source.empty() ? o.latents : o.source;
  int64_t row = info.row_bytes(Column::X) * (flip ? 2 : 1) + 12;
  info.shard_size = o.shard_size > 0 ? o.shard_size : default_shard_size(row);
  DRWKV_ASSIGN_OR_RETURN(auto writer, DatasetWriter::create(o.out, info));
  const size_t elems = size_t(shape[1] * shape[2] * shape[3]);
  std::vector<uint16_t> x(elems), xf(elems);
  for (int64_t i = 0; i < n; ++i) {
    DRWKV_RETURN_IF_ERROR(lat.read(i, o.dtype, x.data()));
    if (flip) DRWKV_RETURN_IF_ERROR(flip->read(i, o.dtype, xf.data()));
    SampleInput s;
    s.x = x.data();
    s.x_flip = flip ? xf.data() : nullptr;
    s.label = int32_t(labels[size_t(i)]);
    s.sample_id = uint64_t(ids[size_t(i)]);
    DRWKV_RETURN_IF_ERROR(writer->add(s));
  }
  return writer->finish();
}

// ---- text ---------------------------------------------------------------------------------------------
namespace {
absl::Status read_half_rows(const NpyFile& f, int64_t row, Elem out, std::vector<uint16_t>& dst, std::vector<float>& tmp) {
  const int64_t n = f.row_elements();
  dst.resize(size_t(n));
  if (f.type() == NpyType::F16 && out == Elem::F16) return f.read_raw(row, 1, dst.data());
  if (!npy_type_is_float(f.type()))
    return absl::InvalidArgumentError(absl::StrFormat("%s holds %s, expected f2 or f4", f.path(), npy_type_name(f.type())));
  tmp.resize(size_t(n));
  DRWKV_RETURN_IF_ERROR(f.read_f32(row, 1, tmp.data()));
  for (int64_t k = 0; k < n; ++k)
    dst[size_t(k)] = out == Elem::F16 ? f16::from_float(tmp[size_t(k)]) : bf16::from_float(tmp[size_t(k)]);
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::string> pack_text(const TextPackOptions& o) {
  DRWKV_ASSIGN_OR_RETURN(Dataset in, Dataset::open(o.dataset));
  if (in.info().has_text)
    return absl::InvalidArgumentError("--dataset " + o.dataset + " already has text embeddings");
  if (o.dtype != Elem::F16 && o.dtype != Elem::BF16) return absl::InvalidArgumentError("text is stored as f16 or bf16");
  const int64_t n = in.size();
  DRWKV_ASSIGN_OR_RETURN(std::unique_ptr<NpyFile> emb, NpyFile::open(o.emb));
  if (emb->shape().size() != 3 || emb->shape()[0] != n)
    return absl::InvalidArgumentError(absl::StrFormat("--emb %s has shape %s, expected [%d, L, Dq]", o.emb,
                                                      shape_str(emb->shape()), n));
  const int64_t L = emb->shape()[1];
  DRWKV_ASSIGN_OR_RETURN(std::vector<int64_t> lens, read_column(o.len, n, "--len"));
  for (int64_t i = 0; i < n; ++i)
    if (lens[size_t(i)] < 0 || lens[size_t(i)] > L)
      return absl::InvalidArgumentError(
          absl::StrFormat("--len %s: length %d of sample %d outside [0, %d]", o.len, lens[size_t(i)], i, L));
  std::unique_ptr<NpyFile> tokens, pooled;
  if (!o.tokens.empty()) {
    DRWKV_ASSIGN_OR_RETURN(tokens, NpyFile::open(o.tokens));
    if (tokens->shape() != std::vector<int64_t>{n, L})
      return absl::InvalidArgumentError(absl::StrFormat("--tokens %s has shape %s, expected [%d, %d]", o.tokens,
                                                        shape_str(tokens->shape()), n, L));
  }
  if (!o.pooled.empty()) {
    DRWKV_ASSIGN_OR_RETURN(pooled, NpyFile::open(o.pooled));
    if (pooled->shape().size() != 2 || pooled->shape()[0] != n)
      return absl::InvalidArgumentError(absl::StrFormat("--pooled %s has shape %s, expected [%d, Dp]", o.pooled,
                                                        shape_str(pooled->shape()), n));
  }
  std::vector<std::string> captions;
  if (!o.captions.empty()) {
    DRWKV_ASSIGN_OR_RETURN(std::string text, read_file(o.captions));
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      captions.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
    if (int64_t(captions.size()) != n)
      return absl::InvalidArgumentError(absl::StrFormat("--captions %s has %d lines, expected one per sample (%d)",
                                                        o.captions, captions.size(), n));
  }
  DatasetInfo info = in.info();
  info.has_text = true;
  info.text_len = L;
  info.text_dim = emb->shape()[2];
  info.text_elem = o.dtype;
  info.has_tokens = tokens != nullptr;
  info.pooled_dim = pooled ? pooled->shape()[1] : 0;
  info.has_captions = !captions.empty();
  info.text_encoder = o.encoder;
  info.text_prefix = o.prefix;
  DRWKV_ASSIGN_OR_RETURN(auto writer, DatasetWriter::create(o.out, info));

  std::vector<unsigned char> x(static_cast<size_t>(info.row_bytes(Column::X))), xf(x.size());
  std::vector<uint16_t> e, p;
  std::vector<float> tmp;
  std::vector<int64_t> tok64(static_cast<size_t>(L));
  std::vector<int32_t> tok(static_cast<size_t>(L));
  for (int64_t g = 0; g < n; ++g) {
    SampleInput s;
    DRWKV_RETURN_IF_ERROR(in.read(Column::X, g, x.data()));
    s.x = x.data();
    if (info.has_latent_flip) {
      DRWKV_RETURN_IF_ERROR(in.read(Column::XFlip, g, xf.data()));
      s.x_flip = xf.data();
    }
    DRWKV_RETURN_IF_ERROR(in.read(Column::Label, g, &s.label));
    DRWKV_RETURN_IF_ERROR(in.read(Column::SampleId, g, &s.sample_id));
    DRWKV_RETURN_IF_ERROR(read_half_rows(*emb, g, o.dtype, e, tmp));
    s.text_emb = e.data();
    s.text_len = lens[size_t(g)];
    if (tokens) {
      DRWKV_RETURN_IF_ERROR(tokens->read_i64(g, 1, tok64.data()));
      for (int64_t k = 0; k < L; ++k) {
        if (tok64[size_t(k)] < INT32_MIN || tok64[size_t(k)] > INT32_MAX)
          return absl::InvalidArgumentError(absl::StrFormat("--tokens %s: token %d of sample %d does not fit i32",
                                                            o.tokens, tok64[size_t(k)], g));
        tok[size_t(k)] = int32_t(tok64[size_t(k)]);
      }
      s.text_tokens = tok.data();
    }
    if (pooled) {
      DRWKV_RETURN_IF_ERROR(read_half_rows(*pooled, g, o.dtype, p, tmp));
      s.text_pooled = p.data();
    }
    if (!captions.empty()) s.caption = captions[size_t(g)];
    DRWKV_RETURN_IF_ERROR(writer->add(s));
  }
  return writer->finish();
}

}  // namespace drwkv::data
