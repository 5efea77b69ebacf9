// POSIX file helpers (data/file_util.h).
#include "data/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace drwkv::data {

std::string errno_text() { return std::strerror(errno); }

std::string path_join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::StatusOr<int64_t> file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrFormat("%s does not exist", path));
    return absl::UnavailableError(absl::StrFormat("cannot stat %s: %s", path, errno_text()));
  }
  return int64_t(st.st_size);
}

absl::StatusOr<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrFormat("%s does not exist", path));
    return absl::UnavailableError(absl::StrFormat("cannot open %s: %s", path, errno_text()));
  }
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string e = errno_text();
      ::close(fd);
      return absl::UnavailableError(absl::StrFormat("cannot read %s: %s", path, e));
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return out;
}

absl::Status make_dirs(const std::string& dir) {
  if (dir.empty() || is_directory(dir)) return absl::OkStatus();
  size_t slash = dir.find_last_of('/', dir.size() > 1 ? dir.size() - 2 : 0);
  if (slash != std::string::npos && slash > 0) {
    absl::Status s = make_dirs(dir.substr(0, slash));
    if (!s.ok()) return s;
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return absl::UnavailableError(absl::StrFormat("cannot create directory %s: %s", dir, errno_text()));
  return absl::OkStatus();
}

namespace {
absl::Status fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrFormat("cannot open %s for fsync: %s", path, errno_text()));
  int rc = ::fsync(fd);
  std::string e = rc != 0 ? errno_text() : "";
  ::close(fd);
  if (rc != 0) return absl::UnavailableError(absl::StrFormat("fsync of %s failed: %s", path, e));
  return absl::OkStatus();
}
std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
}  // namespace

absl::Status publish_file(const std::string& tmp, const std::string& final_path) {
  absl::Status s = fsync_path(tmp, false);
  if (!s.ok()) return s;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    return absl::UnavailableError(absl::StrFormat("cannot rename %s to %s: %s", tmp, final_path, errno_text()));
  return fsync_path(dir_of(final_path), true);
}

absl::Status write_file_atomic(const std::string& final_path, const std::string& bytes) {
  std::string tmp = final_path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrFormat("cannot create %s: %s", tmp, errno_text()));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string e = errno_text();
      ::close(fd);
      return absl::UnavailableError(absl::StrFormat("cannot write %s: %s", tmp, e));
    }
    done += size_t(n);
  }
  if (::close(fd) != 0) return absl::UnavailableError(absl::StrFormat("cannot close %s: %s", tmp, errno_text()));
  return publish_file(tmp, final_path);
}

}  // namespace drwkv::data
