// Sample order, rank slicing, resume state and per-sample random keys: stateless given the step, and
// independent of the world size (DATA.md "Order, sharding, resume"; docs/DATA.md "Order and resume").
//
// 1. Epoch e visits [0, N) in the order perm_e, a keyed bijection: a balanced Feistel network on
//    2h bits (the smallest 2^(2h) >= N, h >= 1), 8 rounds with round keys derived from
//    rng_mix(seed, e), restricted to [0, N) by cycle-walking (re-apply until the value is < N; the
//    domain is < 4N so the expected number of walks is < 4). Nothing to store.
// 2. Slots: the run reads an endless sequence of slots; slot t is sample perm_{t / N}(t % N) of epoch
//    t / N. Global step s, micro-step m (of `accum`), rank r of W with micro-batch b reads slots
//    s·GB + m·(W·b) + r·b + i, i in [0, b), with GB = W·b·accum. Every step consumes exactly the slots
//    [s·GB, (s+1)·GB), whatever W, b and accum are: changing W at fixed GB keeps the sample order.
// 3. Resume: {fingerprint, seed, global_batch, step, micro_step, micro_slots, epoch} is everything the
//    loader needs to continue with the exact next example (epoch is derived and only cross-checked).
// 4. Per-sample randomness: sample_key(seed, epoch, g, purpose) is a 64-bit key; the trainer uses it as
//    the Philox stream of its draws (core/rng.h, core/philox.h), so a sample gets the same timestep,
//    noise, label drop and flip whichever rank reads it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace drwkv::data {

class Permutation {
 public:
  static constexpr int kRounds = 8;
  // A bijection over [0, n), n >= 1, keyed by `key`.
  Permutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t position) const;  // position < n
  uint64_t size() const { return n_; }

 private:
  uint64_t feistel(uint64_t x) const;
  uint64_t n_;
  int half_bits_;
  uint64_t half_mask_;
  uint64_t round_keys_[kRounds];
};

// The permutation of epoch `epoch` for a run seeded `seed` over n samples.
Permutation epoch_permutation(uint64_t n, uint64_t seed, uint64_t epoch);

// Batch geometry of one rank. GB = world_size · micro_batch · accum.
struct BatchGeometry {
  int64_t global_batch = 0;
  int64_t micro_batch = 0;
  int rank = 0;
  int world_size = 1;
  int accum = 1;
  absl::Status validate() const;
  int64_t micro_slots() const { return int64_t(world_size) * micro_batch; }  // slots per micro-step, all ranks
  // First slot read by this rank at (step, micro_step); it reads micro_batch consecutive slots.
  int64_t first_slot(int64_t step, int micro_step) const {
    return step * global_batch + int64_t(micro_step) * micro_slots() + int64_t(rank) * micro_batch;
  }
};

struct ResumeState {
  std::string fingerprint;  // dataset fingerprint (xxh64 of index.json)
  uint64_t seed = 0;
  int64_t global_batch = 0;
  int64_t step = 0;         // step of the next micro-batch to read
  int64_t micro_step = 0;   // its micro-step (0 at a step boundary)
  int64_t micro_slots = 0;  // W·b of the run that saved a mid-step state (0 when micro_step = 0)
  int64_t epoch = 0;        // epoch of the next slot (derived: next_slot / N); checked on resume

  int64_t next_slot() const { return step * global_batch + micro_step * micro_slots; }
  std::string to_json() const;  // one-line JSON, for checkpoints and logs
  static absl::StatusOr<ResumeState> from_json(std::string_view text, const std::string& where);
  bool operator==(const ResumeState&) const = default;
};

// The state at step 0 of a fresh run.
ResumeState initial_resume_state(const std::string& fingerprint, uint64_t seed, int64_t global_batch);
// Checks that `state` can continue with this dataset (fingerprint, N) and run (seed, geometry).
absl::Status check_resume(const ResumeState& state, const std::string& fingerprint, int64_t num_samples,
                          uint64_t seed, const BatchGeometry& geometry);

// Purposes of per-sample random draws; each gets an independent key.
enum class KeyPurpose : uint64_t {
  Timestep = 1,
  Noise = 2,
  LabelDrop = 3,
  Flip = 4,
  LatentPosterior = 5,
  TextDrop = 6,
  DropPath = 7,  // the model's stochastic depth (models/drwkv.h)
};
// 64-bit key of (seed, epoch, global sample g, purpose). Use it as the Philox stream with the run seed
// as Philox key, e.g. rng_normal_rows_(noise, seed, {sample_key(seed, e_i, g_i, KeyPurpose::Noise)...}).
uint64_t sample_key(uint64_t seed, uint64_t epoch, uint64_t g, KeyPurpose purpose);
// Whether the loader flips sample g in epoch e: Philox uniform (seed, flip key, offset 0, element 0) < 0.5.
bool sample_flip(uint64_t seed, uint64_t epoch, uint64_t g);

}  // namespace drwkv::data
