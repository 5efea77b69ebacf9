// gzip IDX reader (data/idx.h).
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "data/file_util.h"

namespace drwkv::data {

absl::StatusOr<IdxArray> read_idx_gz(const std::string& path, int expected_rank) {
  if (!path_exists(path)) return absl::NotFoundError(absl::StrFormat("IDX file %s does not exist", path));
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return absl::UnavailableError(absl::StrFormat("cannot open IDX file %s: %s", path, errno_text()));
  auto bad = [&](const std::string& what) {
    gzclose(f);
    return absl::InvalidArgumentError(absl::StrFormat("IDX file %s: %s", path, what));
  };
  auto read_exact = [&](void* dst, int64_t n) -> int64_t {
    int64_t done = 0;
    while (done < n) {
      int chunk = int(std::min<int64_t>(n - done, 1 << 30));
      int r = gzread(f, static_cast<char*>(dst) + done, unsigned(chunk));
      if (r <= 0) break;
      done += r;
    }
    return done;
  };
  unsigned char magic[4];
  if (read_exact(magic, 4) != 4) return bad("unreadable or shorter than the 4-byte magic (not gzip, or truncated)");
  uint32_t m = uint32_t(magic[0]) << 24 | uint32_t(magic[1]) << 16 | uint32_t(magic[2]) << 8 | magic[3];
  uint32_t want = 0x00000800u | uint32_t(expected_rank);
  if (m != want) return bad(absl::StrFormat("magic number 0x%08x, expected 0x%08x (u8 data, %d dimensions)", m, want,
                                            expected_rank));
  IdxArray a;
  int64_t n = 1;
  for (int d = 0; d < expected_rank; ++d) {
    unsigned char b[4];
    if (read_exact(b, 4) != 4) return bad("truncated header");
    int64_t v = int64_t(b[0]) << 24 | int64_t(b[1]) << 16 | int64_t(b[2]) << 8 | b[3];
    if (v <= 0) return bad(absl::StrFormat("dimension %d is %d", d, v));
    a.dims.push_back(v);
    n *= v;
  }
  if (n > (int64_t(1) << 34)) return bad("implausibly large");
  a.data.resize(size_t(n));
  int64_t got = read_exact(a.data.data(), n);
  if (got != n) return bad(absl::StrFormat("holds %d data bytes, the header declares %d (truncated)", got, n));
  unsigned char extra;
  if (read_exact(&extra, 1) != 0) return bad("has bytes after the declared data");
  int err = 0;
  gzerror(f, &err);
  if (err != Z_OK && err != Z_STREAM_END) return bad("gzip stream error");
  gzclose(f);
  return a;
}

}  // namespace drwkv::data
