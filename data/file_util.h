// Small POSIX file helpers for the data package: atomic publication of written files (DATA.md
// "Writer: write NAME.tmp, close, fsync, rename, fsync the directory"), whole-file reads and sizes.
// Every failure is an absl::Status naming the path and the system error.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace drwkv::data {

// strerror(errno) for the current errno.
std::string errno_text();
std::string path_join(const std::string& dir, const std::string& name);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
absl::StatusOr<int64_t> file_size(const std::string& path);
absl::StatusOr<std::string> read_file(const std::string& path);
// Creates the directory (and missing parents).
absl::Status make_dirs(const std::string& dir);

// fsync(tmp), rename(tmp, final), fsync(directory of final): after it returns OK, `final` has the
// complete contents even after a crash, and no reader ever sees a partial `final`.
absl::Status publish_file(const std::string& tmp, const std::string& final_path);
// Writes `bytes` to final_path + ".tmp" and publishes it.
absl::Status write_file_atomic(const std::string& final_path, const std::string& bytes);

}  // namespace drwkv::data
