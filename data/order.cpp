// Sample order, resume state and per-sample keys (data/order.h).
#include "data/order.h"

#include <cstdlib>

#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/philox.h"
#include "core/rng.h"
#include "core/status.h"
#include "data/json.h"

namespace drwkv::data {

namespace {
constexpr uint64_t kPermTag = 0x5045524D55544531ull;  // "PERMUTE1"
constexpr uint64_t kKeyTag = 0x53414D504C454B31ull;   // "SAMPLEK1"

// SplitMix64 finaliser: the round function's mixer.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

Permutation::Permutation(uint64_t n, uint64_t key) : n_(n) {
  DRWKV_ASSERT(n >= 1 && n < (uint64_t(1) << 62), "permutation over %llu elements", (unsigned long long)n);
  half_bits_ = 1;
  while ((uint64_t(1) << (2 * half_bits_)) < n) ++half_bits_;
  half_mask_ = (uint64_t(1) << half_bits_) - 1;
  for (int r = 0; r < kRounds; ++r) round_keys_[r] = rng_mix({key, uint64_t(r)});
}

uint64_t Permutation::feistel(uint64_t x) const {
  uint64_t left = x >> half_bits_, right = x & half_mask_;
  for (int r = 0; r < kRounds; ++r) {
    uint64_t f = mix64(right ^ round_keys_[r]) & half_mask_;
    uint64_t next = left ^ f;
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

uint64_t Permutation::operator()(uint64_t position) const {
  DRWKV_ASSERT(position < n_, "position %llu outside [0, %llu)", (unsigned long long)position, (unsigned long long)n_);
  // Cycle-walking: feistel is a bijection of [0, 4^h); following the cycle of `position` from inside
  // [0, n) reaches a value in [0, n) again, and the induced map on [0, n) is a bijection.
  uint64_t x = feistel(position);
  while (x >= n_) x = feistel(x);
  return x;
}

Permutation epoch_permutation(uint64_t n, uint64_t seed, uint64_t epoch) {
  return Permutation(n, rng_mix({kPermTag, seed, epoch}));
}

absl::Status BatchGeometry::validate() const {
  if (micro_batch <= 0 || world_size <= 0 || accum <= 0)
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch geometry: micro_batch %d, world_size %d and accum %d must be positive", micro_batch, world_size, accum));
  if (rank < 0 || rank >= world_size)
    return absl::InvalidArgumentError(absl::StrFormat("batch geometry: rank %d outside [0, %d)", rank, world_size));
  if (global_batch != int64_t(world_size) * micro_batch * accum)
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch geometry: global_batch %d != world_size %d x micro_batch %d x accum %d = %d", global_batch, world_size,
        micro_batch, accum, int64_t(world_size) * micro_batch * accum));
  return absl::OkStatus();
}

std::string ResumeState::to_json() const {
  Json j = Json::object();
  j.set("fingerprint", Json::string(fingerprint));
  j.set("seed", Json::string(absl::StrFormat("%d", seed)));  // u64 as a decimal string: JSON numbers are doubles
  j.set("global_batch", Json::integer(global_batch));
  j.set("step", Json::integer(step));
  j.set("micro_step", Json::integer(micro_step));
  j.set("micro_slots", Json::integer(micro_slots));
  j.set("epoch", Json::integer(epoch));
  return j.dump(0);
}

absl::StatusOr<ResumeState> ResumeState::from_json(std::string_view text, const std::string& where) {
  DRWKV_ASSIGN_OR_RETURN(Json j, Json::parse(text, where));
  ResumeState s;
  auto integer = [&](const char* key, int64_t* out) -> absl::Status {
    const Json* v = j.find(key);
    if (!v || !v->is_integer() || v->as_int() < 0)
      return absl::InvalidArgumentError(absl::StrFormat("%s: resume state needs a non-negative integer '%s'", where, key));
    *out = v->as_int();
    return absl::OkStatus();
  };
  const Json* fp = j.is_object() ? j.find("fingerprint") : nullptr;
  const Json* seed = j.is_object() ? j.find("seed") : nullptr;
  if (!fp || !fp->is_string() || !seed || !seed->is_string())
    return absl::InvalidArgumentError(absl::StrFormat("%s: resume state needs strings 'fingerprint' and 'seed'", where));
  s.fingerprint = fp->as_string();
  char* end = nullptr;
  s.seed = std::strtoull(seed->as_string().c_str(), &end, 10);
  if (seed->as_string().empty() || *end != '\0')
    return absl::InvalidArgumentError(absl::StrFormat("%s: 'seed' is not a decimal integer", where));
  DRWKV_RETURN_IF_ERROR(integer("global_batch", &s.global_batch));
  DRWKV_RETURN_IF_ERROR(integer("step", &s.step));
  DRWKV_RETURN_IF_ERROR(integer("micro_step", &s.micro_step));
  DRWKV_RETURN_IF_ERROR(integer("micro_slots", &s.micro_slots));
  DRWKV_RETURN_IF_ERROR(integer("epoch", &s.epoch));
  return s;
}

ResumeState initial_resume_state(const std::string& fingerprint, uint64_t seed, int64_t global_batch) {
  ResumeState s;
  s.fingerprint = fingerprint;
  s.seed = seed;
  s.global_batch = global_batch;
  return s;
}

absl::Status check_resume(const ResumeState& s, const std::string& fingerprint, int64_t num_samples, uint64_t seed,
                          const BatchGeometry& g) {
  DRWKV_RETURN_IF_ERROR(g.validate());
  if (s.fingerprint != fingerprint)
    return absl::FailedPreconditionError(absl::StrFormat(
        "resume state was recorded for dataset fingerprint %s, but the dataset has fingerprint %s (different data "
        "or a re-packed dataset)",
        s.fingerprint, fingerprint));
  if (s.seed != seed)
    return absl::FailedPreconditionError(
        absl::StrFormat("resume state was recorded with seed %d, the run uses seed %d", s.seed, seed));
  if (s.global_batch != g.global_batch)
    return absl::FailedPreconditionError(absl::StrFormat(
        "resume state was recorded with global_batch %d, the run uses %d: the sample order is defined per global "
        "batch, so resume with global_batch = %d",
        s.global_batch, g.global_batch, s.global_batch));
  if (s.micro_step < 0 || s.micro_step >= g.accum)
    return absl::FailedPreconditionError(
        absl::StrFormat("resume state has micro_step %d, outside [0, accum = %d)", s.micro_step, g.accum));
  if (s.micro_step > 0 && s.micro_slots != g.micro_slots())
    return absl::FailedPreconditionError(absl::StrFormat(
        "resume state is in the middle of step %d with %d slots per micro-step, the run has world_size x micro_batch "
        "= %d: resume mid-step only with the same geometry, or from a step boundary",
        s.step, s.micro_slots, g.micro_slots()));
  if (s.step < 0 || s.next_slot() / num_samples != s.epoch)
    return absl::FailedPreconditionError(absl::StrFormat(
        "resume state is inconsistent: step %d, micro_step %d give slot %d, which is in epoch %d, not %d", s.step,
        s.micro_step, s.next_slot(), s.next_slot() / num_samples, s.epoch));
  return absl::OkStatus();
}

uint64_t sample_key(uint64_t seed, uint64_t epoch, uint64_t g, KeyPurpose purpose) {
  return rng_mix({kKeyTag, seed, epoch, g, uint64_t(purpose)});
}

bool sample_flip(uint64_t seed, uint64_t epoch, uint64_t g) {
  return philox::uniform_at(seed, sample_key(seed, epoch, g, KeyPurpose::Flip), 0, 0) < 0.5f;
}

}  // namespace drwkv::data
