// Start-up handshake over the rendezvous store (dist/rendezvous.h).
#include "dist/rendezvous.h"

#include <unistd.h>

#include <chrono>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace drwkv::dist {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Join {
  int world = 0;
  int local_rank = 0;
  std::string host;
  long pid = 0;
  std::string nonce;
};

bool parse_join(const std::string& s, Join* j) {
  std::istringstream in(s);
  return bool(in >> j->world >> j->local_rank >> j->host >> j->pid >> j->nonce);
}

std::string make_nonce() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) ^ rd() ^ uint64_t(getpid()) ^
               uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  return absl::StrFormat("%016x", v);
}

// Whether the first line of a value written by rank 0 (its list of join nonces) contains `nonce`.
bool nonce_listed(const std::string& value, const std::string& nonce) {
  std::istringstream in(value.substr(0, value.find('\n')));
  for (std::string n; in >> n;) {
    if (n == nonce) return true;
  }
  return false;
}

void pause(double* sleep_s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(*sleep_s));
  *sleep_s = std::min(*sleep_s * 2, 0.05);
}

}  // namespace

std::string hex_encode(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

absl::StatusOr<std::string> hex_decode(const std::string& hex) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2) return absl::DataLossError("odd-length hex string");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return absl::DataLossError("invalid hex digit");
    out[i] = char(hi * 16 + lo);
  }
  return out;
}

absl::StatusOr<std::string> store_rendezvous(Store& store, const ProcessInfo& info, const std::string& payload,
                                             double timeout_s) {
  const int W = info.world_size;
  const std::string nonce = make_nonce();
  const std::string my_join = absl::StrFormat("%d %d %s %d %s", W, info.local_rank, info.hostname, int(getpid()), nonce);
  const std::string join_key = "rdzv/join/" + std::to_string(info.rank);
  DRWKV_RETURN_IF_ERROR(store.set(join_key, my_join));
  const double start = now_s(), deadline = start + timeout_s;
  double sleep_s = 0.001;

  if (info.rank == 0) {
    std::vector<Join> joins(static_cast<size_t>(W));
    std::vector<bool> seen(size_t(W), false);
    int missing = W;
    while (missing > 0) {
      for (int r = 0; r < W; ++r) {
        if (seen[size_t(r)]) continue;
        DRWKV_ASSIGN_OR_RETURN(std::optional<std::string> v, store.get("rdzv/join/" + std::to_string(r)));
        if (!v) continue;
        Join& j = joins[size_t(r)];
        if (!parse_join(*v, &j)) return absl::DataLossError(absl::StrFormat("%s: malformed join record of rank %d: '%s'", store.address(), r, *v));
        if (j.world != W) {
          std::string why = absl::StrFormat(
              "world size disagreement: rank %d (host %s) was started with a world size of %d, rank 0 with %d "
              "(%s): every process must be started by the same launcher with the same task count",
              r, j.host, j.world, W, info.world_variable);
          std::string seen_nonces;
          for (int q = 0; q < W; ++q) {
            if (seen[size_t(q)] || q == r) seen_nonces += joins[size_t(q)].nonce + " ";
          }
          (void)store.set("rdzv/abort", seen_nonces + "\n" + why);
          return absl::FailedPreconditionError(why);
        }
        seen[size_t(r)] = true;
        --missing;
      }
      if (missing == 0) break;
      if (now_s() > deadline) {
        std::string who;
        for (int r = 0; r < W; ++r) {
          if (!seen[size_t(r)]) who += (who.empty() ? "" : ", ") + std::to_string(r);
        }
        return absl::DeadlineExceededError(absl::StrFormat(
            "rendezvous %s: only %d of %d ranks joined within %.0f s (missing ranks: %s); check that every process "
            "was started with the same DRWKV_RENDEZVOUS and, for file:, that the directory is on a file system "
            "shared by all nodes",
            store.address(), W - missing, W, timeout_s, who));
      }
      pause(&sleep_s);
    }
    std::string blob;
    for (const Join& j : joins) blob += j.nonce + " ";
    blob += "\n" + hex_encode(payload);
    DRWKV_RETURN_IF_ERROR(store.set("rdzv/blob", blob));
    return payload;
  }

  double last_join = start;
  while (true) {
    DRWKV_ASSIGN_OR_RETURN(std::optional<std::string> blob, store.get("rdzv/blob"));
    if (blob && nonce_listed(*blob, nonce)) {
      size_t nl = blob->find('\n');
      if (nl == std::string::npos) return absl::DataLossError(store.address() + ": malformed rdzv/blob");
      return hex_decode(blob->substr(nl + 1));
    }
    // else: no blob yet, or one left by an earlier run in the same directory (rank 0 overwrites it)
    DRWKV_ASSIGN_OR_RETURN(std::optional<std::string> abort, store.get("rdzv/abort"));
    if (abort && nonce_listed(*abort, nonce)) {
      return absl::FailedPreconditionError(abort->substr(abort->find('\n') + 1));
    }
    if (now_s() > deadline) {
      // Hints only: in a reused directory these keys may be an earlier run's.
      std::string hint;
      DRWKV_ASSIGN_OR_RETURN(std::optional<std::string> j0, store.get("rdzv/join/0"));
      Join rank0;
      if (j0 && parse_join(*j0, &rank0) && rank0.world != W) {
        hint = absl::StrFormat("; rank 0 (host %s) registered a world size of %d, this rank has %s=%d", rank0.host,
                               rank0.world, info.world_variable, W);
      }
      if (abort) hint += "; rank 0 aborted the rendezvous: " + abort->substr(abort->find('\n') + 1);
      return absl::DeadlineExceededError(absl::StrFormat(
          "rendezvous %s: rank 0 did not answer within %.0f s (it answers once all %d ranks have joined); check "
          "that rank 0 is running with the same DRWKV_RENDEZVOUS and, for tcp://, that HOST is rank 0's node%s",
          store.address(), timeout_s, W, hint));
    }
    if (now_s() - last_join > 1.0) {  // rank 0 may have cleared a reused directory after our first join
      DRWKV_RETURN_IF_ERROR(store.set(join_key, my_join));
      last_join = now_s();
    }
    pause(&sleep_s);
  }
}

}  // namespace drwkv::dist
