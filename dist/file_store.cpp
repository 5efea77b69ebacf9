// The shared-directory rendezvous store (dist/store.h).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "dist/store.h"

namespace drwkv::dist {
namespace {

bool valid_key(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == '/')) return false;
  }
  return true;
}

absl::Status errno_status(const std::string& what) {
  return absl::UnavailableError(absl::StrFormat("%s: %s", what, std::strerror(errno)));
}

absl::Status mkdirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      std::string prefix = dir.substr(0, i);
      if (mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST) return errno_status("cannot create " + prefix);
    }
  }
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return errno_status(dir + " is not a directory");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::open(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrFormat("file store directory '%s': expected an absolute path", dir));
  }
  DRWKV_RETURN_IF_ERROR(mkdirs(dir));
  return std::unique_ptr<FileStore>(new FileStore(dir));
}

std::string FileStore::path(const std::string& key) const {
  DRWKV_ASSERT(valid_key(key), "store key '%s' has characters outside [A-Za-z0-9_.-/]", key.c_str());
  std::string name = key;
  for (char& c : name) {
    if (c == '/') c = '@';
  }
  return dir_ + "/" + name;
}

absl::Status FileStore::set(const std::string& key, const std::string& value) {
  absl::Status s = write_and_rename(key, value);
  // rank 0 clearing a reused directory may remove our temporary file between write and rename
  for (int retry = 0; retry < 3 && absl::IsNotFound(s); ++retry) s = write_and_rename(key, value);
  return s;
}

absl::Status FileStore::write_and_rename(const std::string& key, const std::string& value) {
  static std::atomic<uint64_t> counter{0};
  std::string final_path = path(key);
  std::string tmp = absl::StrFormat("%s/.tmp.%d.%d", dir_, int(getpid()), counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return errno_status("cannot write " + tmp);
  size_t done = 0;
  while (done < value.size()) {
    ssize_t n = ::write(fd, value.data() + done, value.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = errno_status("cannot write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += size_t(n);
  }
  if (::close(fd) != 0) return errno_status("cannot write " + tmp);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    bool vanished = errno == ENOENT;
    absl::Status s = errno_status("cannot rename " + tmp + " to " + final_path);
    ::unlink(tmp.c_str());
    return vanished ? absl::NotFoundError(s.message()) : s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> FileStore::get(const std::string& key) {
  std::string p = path(key);
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return errno_status("cannot read " + p);
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = errno_status("cannot read " + p);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return std::optional<std::string>(std::move(out));
}

absl::Status FileStore::clear() { return remove_files(/*temporaries=*/false); }

absl::Status FileStore::remove_files(bool temporaries) {
  DIR* d = opendir(dir_.c_str());
  if (!d) return errno_status("cannot list " + dir_);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (!temporaries && n.rfind(".tmp.", 0) == 0) continue;  // another rank's write in flight
    names.push_back(n);
  }
  closedir(d);
  for (const std::string& n : names) {
    std::string p = dir_ + "/" + n;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return errno_status("cannot remove " + p);
  }
  return absl::OkStatus();
}

void FileStore::remove_all() {
  (void)remove_files(/*temporaries=*/true);
  ::rmdir(dir_.c_str());
}

}  // namespace drwkv::dist
