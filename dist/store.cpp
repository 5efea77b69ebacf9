// Helpers common to every rendezvous store: waiting for a key, and a barrier (dist/store.h).
#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "dist/store.h"

namespace drwkv::dist {
namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

absl::StatusOr<std::string> Store::wait(const std::string& key, double timeout_s) {
  double deadline = now_s() + timeout_s;
  double sleep_s = 0.001;
  while (true) {
    DRWKV_ASSIGN_OR_RETURN(std::optional<std::string> v, get(key));
    if (v) return *v;
    if (now_s() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrFormat("rendezvous store %s: key '%s' did not appear within %.0f s", address(), key, timeout_s));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
    sleep_s = std::min(sleep_s * 2, 0.1);
  }
}

absl::Status store_barrier(Store& store, const std::string& name, int rank, int world_size, double timeout_s) {
  std::string prefix = "barrier/" + name + "/";
  DRWKV_RETURN_IF_ERROR(store.set(prefix + std::to_string(rank), "1"));
  std::vector<bool> arrived(size_t(world_size), false);
  arrived[size_t(rank)] = true;
  double deadline = now_s() + timeout_s;
  double sleep_s = 0.001;
  while (true) {
    int missing = 0;
    for (int r = 0; r < world_size; ++r) {
      if (arrived[size_t(r)]) continue;
      DRWKV_ASSIGN_OR_RETURN(std::optional<std::string> v, store.get(prefix + std::to_string(r)));
      if (v) {
        arrived[size_t(r)] = true;
      } else {
        ++missing;
      }
    }
    if (missing == 0) return absl::OkStatus();
    if (now_s() > deadline) {
      std::string who;
      for (int r = 0; r < world_size; ++r) {
        if (!arrived[size_t(r)]) who += (who.empty() ? "" : ", ") + std::to_string(r);
      }
      return absl::DeadlineExceededError(absl::StrFormat(
          "barrier '%s' in %s: after %.0f s, %d of %d ranks had not arrived (ranks %s)", name, store.address(),
          timeout_s, missing, world_size, who));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
    sleep_s = std::min(sleep_s * 2, 0.05);
  }
}

}  // namespace drwkv::dist
