// The training data loader: background prefetch threads assemble this rank's micro-batches in the
// order of data/order.h into host buffers, and next() hands them to the trainer on its device
// (docs/DATA.md "Loader"; DATA.md "Order, sharding, resume").
//
// Pipeline: `depth` ring slots, each holding the host tensors of one micro-batch (page-locked when the
// target device is CUDA, so the copy is a true DMA). Workers (`threads`) claim micro-batches in sequence
// and fill them concurrently (pread of each row, flip, u16 -> i32 lengths); next() returns them strictly
// in sequence. The result does not depend on the number of threads.
//
// Device ordering (CUDA): next() runs on the trainer's thread; it allocates the device tensors and
// issues the host-to-device copies on that thread's *current stream* of the target device
// (core/stream.h), then records an event on the same stream. Kernels the trainer queues afterwards on
// that stream are therefore ordered after the copy: no extra synchronisation is needed, and the device
// memory follows the caching allocator's stream rule. The ring slot is refilled only after a worker has
// waited for that event, so a pinned buffer is never overwritten while its copy is in flight. With a CPU
// device, next() hands over the slot's host tensors themselves (no copy).
//
// Flip (config.flip): sample g of epoch e is mirrored along W when sample_flip(seed, e, g). Images are
// flipped exactly; latents use the stored `latent_flip` row (the encoding of the mirrored image) when
// the dataset has one, else the latent array is mirrored along w (an approximation: the VAE's latent of
// a mirrored image is not exactly the mirrored latent).
//
// Shutdown: the destructor stops and joins every worker (a worker finishes at most the micro-batch it
// is filling) and waits for in-flight copies; it never hangs mid-epoch. The Dataset must outlive the
// Loader.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/device.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/order.h"

namespace drwkv::data {

struct LoaderConfig {
  int64_t global_batch = 0;  // GB = world_size · micro_batch · accum
  int64_t micro_batch = 0;   // b: rows per next()
  int rank = 0;
  int world_size = 1;
  int accum = 1;             // micro-steps per optimizer step
  uint64_t seed = 0;         // order and per-sample keys
  int threads = 2;           // prefetch worker threads
  int depth = 4;             // micro-batches prepared ahead (ring slots)
  Device device = Device::cpu();
  bool flip = false;         // random horizontal flip per sample
  bool load_text = true;     // read the text columns when the dataset has them
};

struct Batch {
  Tensor x;            // [b, C, H, W]: u8 pixels (image datasets) or f16/bf16 latents, on config.device
  Tensor labels;       // i32 [b], -1 = none
  Tensor text_emb;     // [b, L, Dq] f16/bf16 (undefined without text)
  Tensor text_len;     // i32 [b]: valid text tokens
  Tensor text_tokens;  // i32 [b, L] (when stored)
  Tensor text_pooled;  // [b, Dp] (when stored)
  // Host metadata, one entry per row.
  std::vector<int64_t> sample_ids;   // global sample index g (the key of every per-sample draw)
  std::vector<int64_t> epochs;       // epoch of the row's slot (a micro-batch may straddle two epochs)
  std::vector<uint64_t> source_ids;  // the `sample_id` column (id in the original source)
  std::vector<uint8_t> flipped;      // 1 where the row was mirrored
  int64_t step = 0;                  // optimizer step this micro-batch belongs to
  int micro_step = 0;                // its micro-step in [0, accum)
  int64_t first_slot = 0;            // slot of row 0
};

class Loader {
 public:
  // Validates the geometry (GB = W·b·accum, rank < W), the device, and `start` against the dataset
  // (check_resume), then starts the workers. Use initial_resume_state(dataset.fingerprint(), seed, GB)
  // for a fresh run.
  static absl::StatusOr<std::unique_ptr<Loader>> create(const Dataset& dataset, const LoaderConfig& config,
                                                        const ResumeState& start);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next micro-batch of this rank (blocks until it is ready). A read error is returned here, and
  // again on every later call.
  absl::StatusOr<Batch> next();
  // The resume state after the last batch next() returned (the start state before the first).
  ResumeState position() const;
  // Whether the host staging buffers are page-locked (CUDA target devices).
  bool host_buffers_pinned() const;

 private:
  struct Slot;
  Loader(const Dataset& dataset, const LoaderConfig& config, const ResumeState& start);
  void worker();
  absl::Status fill(Slot& slot, int64_t seq);
  void allocate_host(Slot& slot) const;

  const Dataset& ds_;
  LoaderConfig cfg_;
  BatchGeometry geo_;
  ResumeState start_;
  int64_t start_micro_ = 0;  // absolute micro-step index of sequence 0: step·accum + micro_step
  bool text_ = false;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::thread> workers_;
  mutable std::mutex mu_;
  std::condition_variable cv_free_, cv_ready_;
  bool stop_ = false;
  int64_t next_fill_ = 0;     // next sequence number a worker claims
  int64_t next_consume_ = 0;  // next sequence number next() returns
  absl::Status failed_;
};

}  // namespace drwkv::data
