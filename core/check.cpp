// Implementation of the fatal-error helper and printf-style formatting (core/check.h).
#include "core/check.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/log.h"

namespace drwkv {
namespace {
std::function<void()>& fatal_hook() {
  static std::function<void()> hook;
  return hook;
}
}  // namespace

std::string strprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string s(n > 0 ? size_t(n) : 0, '\0');
  if (n > 0) std::vsnprintf(s.data(), size_t(n) + 1, fmt, ap2);
  va_end(ap2);
  return s;
}

void set_fatal_hook(std::function<void()> hook) { fatal_hook() = std::move(hook); }

void fail(const char* file, int line, const char* statement, const std::string& message) {
  static std::once_flag once;
  char prefix[64];
  std::fprintf(stderr, "%s FATAL %s:%d: `%s` failed: %s\n", log_prefix(prefix, sizeof prefix), file, line,
               statement, message.c_str());
  std::fflush(stderr);
  std::call_once(once, [] {
    if (fatal_hook()) fatal_hook()();
  });
  std::abort();
}

}  // namespace drwkv
