// Rank-aware logging (core/log.h).
#include "core/log.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace drwkv {
namespace {
int g_rank = 0;
int g_world = 1;
std::mutex g_mutex;

void vlog(const char* level, const char* fmt, va_list ap) {
  char prefix[64];
  char body[4096];
  std::vsnprintf(body, sizeof body, fmt, ap);
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "%s%s %s\n", log_prefix(prefix, sizeof prefix), level, body);
  std::fflush(stderr);
}
}  // namespace

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world = world_size;
}
int log_rank() { return g_rank; }
int log_world_size() { return g_world; }

const char* log_prefix(char* buf, int size) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  if (g_world > 1) {
    std::snprintf(buf, size_t(size), "[drwkv r%d/%d %02d:%02d:%02d]", g_rank, g_world, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
  } else {
    std::snprintf(buf, size_t(size), "[drwkv %02d:%02d:%02d]", tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

#define DRWKV_LOG_IMPL(level, cond)  \
  if (!(cond)) return;               \
  va_list ap;                        \
  va_start(ap, fmt);                 \
  vlog(level, fmt, ap);              \
  va_end(ap);

void log_info(const char* fmt, ...) { DRWKV_LOG_IMPL("", true) }
void log_info0(const char* fmt, ...) { DRWKV_LOG_IMPL("", g_rank == 0) }
void log_warn(const char* fmt, ...) { DRWKV_LOG_IMPL(" WARNING", true) }
void log_error(const char* fmt, ...) { DRWKV_LOG_IMPL(" ERROR", true) }

}  // namespace drwkv
