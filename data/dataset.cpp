// Dataset open and validation (data/dataset.h).
#include "data/dataset.h"

#include <sys/resource.h>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "data/file_util.h"

namespace drwkv::data {

Dataset::Dataset(Dataset&&) noexcept = default;
Dataset& Dataset::operator=(Dataset&&) noexcept = default;
Dataset::~Dataset() = default;

namespace {
// One descriptor per shard stays open: raise the soft limit on open files up to the hard limit if a
// large dataset needs it.
void ensure_fd_limit(int64_t shards) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = rlim_t(shards + 256);
  if (rl.rlim_cur >= want) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
  setrlimit(RLIMIT_NOFILE, &rl);
}
}  // namespace

absl::StatusOr<Dataset> Dataset::open(const std::string& dir, const OpenOptions& options) {
  const std::string mpath = path_join(dir, kManifestFile);
  if (!is_directory(dir)) return absl::NotFoundError(absl::StrFormat("dataset directory %s does not exist", dir));
  absl::StatusOr<std::string> bytes = read_file(mpath);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status()))
      return absl::NotFoundError(absl::StrFormat(
          "%s does not exist: %s is not a packed dataset (or its packing did not finish)", mpath, dir));
    return bytes.status();
  }
  Dataset ds;
  ds.dir_ = dir;
  ds.fingerprint_ = fingerprint_of(*bytes);
  DRWKV_ASSIGN_OR_RETURN(ds.manifest_, parse_manifest(*bytes, mpath));
  const Manifest& m = ds.manifest_;
  ensure_fd_limit(int64_t(m.shards.size()));

  for (size_t k = 0; k < m.shards.size(); ++k) {
    const ShardRecord& rec = m.shards[k];
    const std::string path = path_join(dir, rec.file);
    absl::StatusOr<int64_t> size = file_size(path);
    if (!size.ok() && absl::IsNotFound(size.status()))
      return absl::NotFoundError(absl::StrFormat("%s lists shard '%s' (shard %d of %d) but %s does not exist", mpath,
                                                 rec.file, k, m.shards.size(), path));
    DRWKV_RETURN_IF_ERROR(size.status());
    if (*size != rec.bytes)
      return absl::DataLossError(absl::StrFormat(
          "shard %s: file has %d bytes but %s records %d (truncated or rewritten; re-pack the dataset)", path, *size,
          mpath, rec.bytes));
    DRWKV_ASSIGN_OR_RETURN(std::unique_ptr<Shard> shard, Shard::open(path));
    std::vector<std::string> diff = info_differences(m.info, shard->info());
    if (!diff.empty())
      return absl::InvalidArgumentError(absl::StrFormat("shard %s disagrees with %s (manifest vs shard): %s", path,
                                                        mpath, absl::StrJoin(diff, "; ")));
    if (shard->index() != int64_t(k))
      return absl::InvalidArgumentError(
          absl::StrFormat("shard %s: attribute 'shard_index' is %d, expected %d", path, shard->index(), k));
    if (shard->checksums() != rec.checksums) {
      for (size_t j = 0; j < rec.checksums.size() && j < shard->checksums().size(); ++j) {
        const auto& [p, hex] = rec.checksums[j];
        const auto& [sp, shex] = shard->checksums()[j];
        if (p != sp || hex != shex)
          return absl::DataLossError(absl::StrFormat(
              "shard %s: attribute '%s' records xxh64 %s for dataset '%s', but %s records %s", path,
              checksum_attr(sp), shex, p, mpath, hex));
      }
      return absl::DataLossError(absl::StrFormat("shard %s: its datasets differ from those listed in %s", path, mpath));
    }
    if (options.verify_checksums) DRWKV_RETURN_IF_ERROR(shard->verify_checksums());
    ds.shards_.push_back(std::move(shard));
  }
  return ds;
}

absl::Status Dataset::read(Column c, int64_t g, void* dst) const {
  DRWKV_ASSERT(g >= 0 && g < size(), "sample %lld outside the dataset's %lld samples", (long long)g, (long long)size());
  int64_t s = info().shard_size;
  return shards_[size_t(g / s)]->read_rows(c, g % s, 1, dst);
}

absl::StatusOr<std::string> Dataset::caption(int64_t g) const {
  DRWKV_ASSERT(g >= 0 && g < size(), "sample %lld outside the dataset's %lld samples", (long long)g, (long long)size());
  int64_t s = info().shard_size;
  return shards_[size_t(g / s)]->caption(g % s);
}

absl::Status Dataset::verify_checksums() const {
  for (const auto& s : shards_) DRWKV_RETURN_IF_ERROR(s->verify_checksums());
  return absl::OkStatus();
}

}  // namespace drwkv::data
