// absl::Status helpers for APIs that can fail on user input (recipes, flags, data files, checkpoints).
// Messages should name the file, key or tensor and say what was expected.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

#define DRWKV_STATUS_CONCAT_INNER(a, b) a##b
#define DRWKV_STATUS_CONCAT(a, b) DRWKV_STATUS_CONCAT_INNER(a, b)

#define DRWKV_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::absl::Status drwkv_status_ = (expr);     \
    if (!drwkv_status_.ok()) return drwkv_status_; \
  } while (0)

#define DRWKV_ASSIGN_OR_RETURN(lhs, expr) \
  DRWKV_ASSIGN_OR_RETURN_IMPL(DRWKV_STATUS_CONCAT(drwkv_statusor_, __LINE__), lhs, expr)
#define DRWKV_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

namespace drwkv {
// Logs the status (prefixed by `what`) and exits with status 2: for programs' mains.
[[noreturn]] void die_with_status(const absl::Status& s, const char* what = "");

// Unwraps a StatusOr in a program's main, exiting with the status message on error.
template <typename T>
T value_or_die(absl::StatusOr<T> s, const char* what = "") {
  if (!s.ok()) die_with_status(s.status(), what);
  return std::move(s).value();
}
inline void ok_or_die(const absl::Status& s, const char* what = "") {
  if (!s.ok()) die_with_status(s, what);
}
}  // namespace drwkv
