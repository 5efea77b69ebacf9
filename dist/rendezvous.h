// Start-up handshake over the rendezvous store: every rank joins, rank 0 checks that all ranks agree
// on the world size, then publishes a payload (the NCCL unique id) that every rank returns.
//
// Protocol (keys under "rdzv/"):
//   rank r:  sets join/r = "WORLD LOCAL_RANK HOST PID NONCE" (again every second until answered, so a
//            join deleted by rank 0's cleanup of a reused directory reappears);
//   rank 0:  waits for join/0..W-1; on a world-size disagreement sets "abort" = the nonces it saw,
//            then the reason (a rank whose nonce is listed fails with that reason);
//            otherwise sets "blob" = the W nonces it saw, then the payload in hex;
//   rank r:  returns the payload once "blob" carries its own nonce. A blob left by an earlier run in
//            the same directory carries other nonces and is ignored.
// Errors (absl::Status) name the store, the missing ranks or the disagreeing variables.
#pragma once

#include <string>

#include "core/status.h"
#include "dist/env.h"
#include "dist/store.h"

namespace drwkv::dist {

// `payload` is used on rank 0 only.
absl::StatusOr<std::string> store_rendezvous(Store& store, const ProcessInfo& info, const std::string& payload,
                                             double timeout_s);

std::string hex_encode(const std::string& bytes);
absl::StatusOr<std::string> hex_decode(const std::string& hex);

}  // namespace drwkv::dist
