// absl::Status helpers (core/status.h).
#include "core/status.h"

#include <cstdio>
#include <cstdlib>

#include "core/log.h"

namespace drwkv {
void die_with_status(const absl::Status& s, const char* what) {
  if (what && *what) {
    log_error("%s: %s", what, std::string(s.message()).c_str());
  } else {
    log_error("%s", std::string(s.message()).c_str());
  }
  std::exit(2);
}
}  // namespace drwkv
