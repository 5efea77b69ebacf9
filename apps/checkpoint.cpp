// Checkpoint files (apps/checkpoint.h; format in docs/CHECKPOINT.md).
#include "apps/checkpoint.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "data/file_util.h"
#include "data/h5.h"
#include "data/xxhash64.h"
#include "drwkv_version.h"

namespace drwkv::apps {
namespace fs = std::filesystem;

namespace {
const char* kGroups[] = {"params", "ema", "optimizer/m", "optimizer/v"};

absl::Status h5_error(const std::string& file, const std::string& what) {
  return absl::DataLossError(absl::StrFormat("checkpoint %s: %s", file, what));
}

using data::H5Id;

hid_t create_group_path(hid_t file, const std::string& path) {
  H5Id lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return H5Gcreate2(file, path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
}

std::string hex64(uint64_t v) { return absl::StrFormat("%016x", v); }

uint64_t tensor_checksum(const Tensor& t) { return data::xxh64(t.data(), t.nbytes(), 0); }

std::string now_string() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", std::localtime(&t));
  return buf;
}

// Writes the file at `path` (not atomically: the caller renames).
absl::Status write_file(const std::string& path, const Checkpoint& c) {
  data::h5_silence();
  H5Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file.valid()) return h5_error(path, "cannot create the file (directory missing or not writable?)");
  for (const char* g : kGroups) {
    H5Id grp(create_group_path(file.get(), g));
    if (!grp.valid()) return h5_error(path, absl::StrFormat("cannot create group %s", g));
    auto it = c.groups.find(g);
    if (it == c.groups.end()) continue;
    for (const auto& [name, tensor_in] : it->second) {
      Tensor t = tensor_in.to(Device::cpu(), DType::F32).contiguous();
      std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
      if (dims.empty()) dims.push_back(1);
      H5Id space(H5Screate_simple(int(dims.size()), dims.data(), nullptr));
      H5Id ds(H5Dcreate2(grp.get(), name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      if (!ds.valid() || H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()) < 0)
        return h5_error(path, absl::StrFormat("cannot write tensor %s/%s (disk full?)", g, name));
      data::h5_write_attr(ds.get(), "xxh64", hex64(tensor_checksum(t)));
    }
  }
  const CheckpointMeta& m = c.meta;
  hid_t root = file.get();
  data::h5_write_attr(root, "format", std::string(kCheckpointFormat));
  data::h5_write_attr(root, "format_version", int64_t(kCheckpointVersion));
  data::h5_write_attr(root, "step", m.step);
  data::h5_write_attr(root, "nonfinite_streak", m.nonfinite_streak);
  data::h5_write_attr(root, "seed", absl::StrFormat("%d", m.seed));  // u64 as text: no signed wrap
  data::h5_write_attr(root, "resume_state", m.resume_state);
  data::h5_write_attr(root, "dataset_fingerprint", m.dataset_fingerprint);
  data::h5_write_attr(root, "recipe", m.recipe_yaml);
  data::h5_write_attr(root, "model", m.model_name);
  data::h5_write_attr(root, "code_version", m.code_version.empty() ? code_version() : m.code_version);
  data::h5_write_attr(root, "created", m.created.empty() ? now_string() : m.created);
  data::h5_write_attr(root, "world_size", m.world_size);
  data::h5_write_attr(root, "parameter_count", m.parameter_count);
  if (H5Fflush(root, H5F_SCOPE_GLOBAL) < 0) return h5_error(path, "flush failed (disk full?)");
  data::h5_write_attr(root, "complete", int64_t(1));  // written last: a file without it was interrupted
  return absl::OkStatus();
}

void stats(const Tensor& t, TensorReport* r) {
  const float* p = t.data_ptr<float>();
  int64_t n = t.numel();
  double mn = n ? p[0] : 0, mx = n ? p[0] : 0, s = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    mn = std::min<double>(mn, p[i]);
    mx = std::max<double>(mx, p[i]);
    s += p[i];
  }
  double mean = n ? s / double(n) : 0;
  for (int64_t i = 0; i < n; ++i) s2 += (p[i] - mean) * (p[i] - mean);
  r->min = mn;
  r->max = mx;
  r->mean = mean;
  r->std = n ? std::sqrt(s2 / double(n)) : 0;
}

struct ListCtx {
  std::vector<std::string> names;
};
herr_t list_cb(hid_t, const char* name, const H5L_info_t*, void* op) {
  static_cast<ListCtx*>(op)->names.push_back(name);
  return 0;
}
}  // namespace

std::string code_version() { return DRWKV_CODE_VERSION; }

absl::Status write_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  std::string tmp = path + ".tmp";
  absl::Status st = write_file(tmp, ckpt);
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return st;
  }
  return data::publish_file(tmp, path);
}

absl::StatusOr<Checkpoint> read_checkpoint(const std::string& path, bool verify, std::vector<TensorReport>* reports,
                                           bool load_tensors) {
  data::h5_silence();
  if (!fs::exists(path)) return absl::NotFoundError(absl::StrFormat("checkpoint %s: no such file", path));
  if (H5Fis_hdf5(path.c_str()) <= 0) return h5_error(path, "not an HDF5 file (truncated or corrupted?)");
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) return h5_error(path, "cannot open (truncated or corrupted?)");
  const std::string where = "checkpoint " + path;
  hid_t root = file.get();
  Checkpoint c;
  CheckpointMeta& m = c.meta;
  absl::Status st = absl::OkStatus();
  auto get_i64 = [&](const char* name, int64_t* out) {
    if (!st.ok()) return;
    absl::StatusOr<int64_t> v = data::h5_read_attr_i64(root, where, name);
    if (v.ok()) *out = *v; else st = v.status();
  };
  auto get_str = [&](const char* name, std::string* out) {
    if (!st.ok()) return;
    absl::StatusOr<std::string> v = data::h5_read_attr_str(root, where, name);
    if (v.ok()) *out = *v; else st = v.status();
  };
  std::string format, seed;
  int64_t version = 0, complete = 0;
  get_str("format", &format);
  if (st.ok() && format != kCheckpointFormat)
    return h5_error(path, absl::StrFormat("attribute 'format' is '%s', expected '%s'", format, kCheckpointFormat));
  get_i64("format_version", &version);
  if (st.ok() && version != kCheckpointVersion)
    return h5_error(path, absl::StrFormat("format_version %d, this build reads %d", version, kCheckpointVersion));
  if (!data::h5_has_attr(root, "complete")) return h5_error(path, "attribute 'complete' missing: the write was interrupted");
  get_i64("complete", &complete);
  get_i64("step", &m.step);
  get_i64("nonfinite_streak", &m.nonfinite_streak);
  get_str("seed", &seed);
  get_str("resume_state", &m.resume_state);
  get_str("dataset_fingerprint", &m.dataset_fingerprint);
  get_str("recipe", &m.recipe_yaml);
  get_str("model", &m.model_name);
  get_str("code_version", &m.code_version);
  get_str("created", &m.created);
  get_i64("world_size", &m.world_size);
  get_i64("parameter_count", &m.parameter_count);
  if (!st.ok()) return absl::DataLossError(st.message());
  m.seed = std::strtoull(seed.c_str(), nullptr, 10);
  for (const char* g : kGroups) {
    H5Id grp(H5Gopen2(root, g, H5P_DEFAULT));
    if (!grp.valid()) return h5_error(path, absl::StrFormat("group '%s' is missing", g));
    ListCtx list;
    H5Literate(grp.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, list_cb, &list);
    TensorGroup& out = c.groups[g];
    for (const std::string& name : list.names) {
      H5Id ds(H5Dopen2(grp.get(), name.c_str(), H5P_DEFAULT));
      if (!ds.valid()) return h5_error(path, absl::StrFormat("tensor %s/%s cannot be opened", g, name));
      Shape shape(data::h5_dataset_shape(ds.get()));
      TensorReport rep;
      rep.group = g;
      rep.name = name;
      rep.shape = shape;
      rep.dtype = "f32";
      rep.bytes = shape.numel() * 4;
      if (!load_tensors && !verify && !reports) continue;
      Tensor t = Tensor::empty(shape, DType::F32);
      if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()) < 0)
        return h5_error(path, absl::StrFormat("tensor %s/%s cannot be read (truncated file?)", g, name));
      absl::StatusOr<std::string> stored = data::h5_read_attr_str(ds.get(), where + " " + g + "/" + name, "xxh64");
      if (!stored.ok()) return h5_error(path, absl::StrFormat("tensor %s/%s has no checksum", g, name));
      std::string want = *stored;
      rep.checksum_ok = want == hex64(tensor_checksum(t));
      if (verify && !rep.checksum_ok)
        return h5_error(path, absl::StrFormat("tensor %s/%s fails its checksum (stored %s, computed %s)", g, name, want,
                                              hex64(tensor_checksum(t))));
      if (reports) {
        stats(t, &rep);
        reports->push_back(rep);
      }
      if (load_tensors) out.emplace_back(name, t);
    }
  }
  return c;
}

std::string checkpoint_path(const std::string& dir, int64_t step) {
  return (fs::path(dir) / absl::StrFormat("ckpt-%08d.h5", step)).string();
}

absl::Status save_checkpoint(const std::string& dir, const Checkpoint& ckpt, int64_t keep_last) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrFormat("checkpoint directory %s: %s", dir, ec.message()));
  std::string path = checkpoint_path(dir, ckpt.meta.step);
  absl::Status st = write_checkpoint(path, ckpt);
  if (!st.ok()) return st;
  // `latest` names the newest checkpoint; replaced atomically too
  st = data::write_file_atomic((fs::path(dir) / "latest").string(), fs::path(path).filename().string() + "\n");
  if (!st.ok()) return st;
  // keep the newest `keep_last`
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("ckpt-", 0) == 0 && e.path().extension() == ".h5") all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + size_t(keep_last) < all.size(); ++i) fs::remove(all[i], ec);
  return absl::OkStatus();
}

absl::StatusOr<std::string> find_resume_checkpoint(const std::string& dir, std::vector<std::string>* skipped) {
  std::vector<std::string> candidates;
  std::ifstream latest((fs::path(dir) / "latest").string());
  std::string name;
  if (latest && std::getline(latest, name) && !name.empty()) candidates.push_back((fs::path(dir) / name).string());
  std::vector<fs::path> all;
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("ckpt-", 0) == 0 && e.path().extension() == ".h5") all.push_back(e.path());
  std::sort(all.rbegin(), all.rend());
  for (const fs::path& p : all) candidates.push_back(p.string());
  for (const std::string& c : candidates) {
    absl::StatusOr<Checkpoint> r = read_checkpoint(c, /*verify=*/true, nullptr, /*load_tensors=*/false);
    if (r.ok()) return c;
    if (skipped) skipped->push_back(std::string(r.status().message()));
  }
  return absl::NotFoundError(absl::StrFormat("no valid checkpoint in %s", dir));
}

}  // namespace drwkv::apps
