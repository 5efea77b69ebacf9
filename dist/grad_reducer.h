// Data-parallel gradient reduction over one flat gradient buffer, overlapped with backward.
//
// The parameter table (per parameter: offset and numel in the flat buffer, in registration order, at
// increasing offsets) is cut into buckets, last registered parameter first (backward produces the
// gradients of the last layers first): consecutive parameters join a bucket while it stays within
// bucket_bytes; a parameter larger than that is a bucket of its own. A bucket is one contiguous range
// of the buffer (gaps between its parameters included, so alignment padding travels too; it is zero).
//
// Per step (when reducing):
//   mark_ready(i)  - the trainer calls it from parameter i's grad-ready hook (its gradient is final).
//                    When all parameters of a bucket are ready the bucket is launched: an all-reduce
//                    on the communication stream, ordered after the compute stream's work so far
//                    (NCCL), or queued on the communication thread (MPI); the rest of backward
//                    continues meanwhile. Buckets are launched strictly in bucket order, on every rank
//                    the same, whatever order the hooks fire in: a ready bucket waits for its
//                    predecessors (collectives must be issued in the same order everywhere).
//   finish()       - launches the buckets not launched yet (parameters that received no gradient this
//                    step: their slots hold the zeros of the zeroed buffer, and every rank still takes
//                    part), then makes the current (compute) stream wait for all of them (MPI: waits).
//                    After finish() the buffer holds the average (or sum) over ranks.
// Gradient accumulation: set_reduce(false) for the micro-batches before the last one (mark_ready and
// finish do nothing; gradients keep accumulating locally), set_reduce(true) for the last one.
// Not thread-safe: mark_ready and finish are called from the thread running backward.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "dist/communicator.h"

namespace drwkv::dist {

struct ParamSlot {
  int64_t offset = 0;  // elements from the start of the flat buffer
  int64_t numel = 0;
};

struct Bucket {
  int64_t begin = 0, end = 0;  // element range of the flat buffer
  int first_param = 0;         // registration indices [first_param, last_param]
  int last_param = 0;
};

// Buckets in launch order (the last registered parameters first). Pure; checks the table.
std::vector<Bucket> plan_buckets(std::span<const ParamSlot> params, int64_t element_size, int64_t bucket_bytes);

struct GradReducerOptions {
  int64_t bucket_bytes = int64_t(25) << 20;
  ReduceOp op = ReduceOp::Avg;
  // The dtype on the wire; BF16 halves the bytes of f32 gradients, rounding the reduced values to bf16.
  DType wire_dtype = DType::F32;
};

class GradReducer {
 public:
  // `flat_grads`: the contiguous 1-D gradient buffer (on comm.device()); kept by reference.
  GradReducer(Communicator& comm, Tensor flat_grads, std::vector<ParamSlot> params,
              GradReducerOptions options = {});

  void set_reduce(bool reduce) { reduce_ = reduce; }
  bool reduce_enabled() const { return reduce_; }

  void mark_ready(int param_index);
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  struct StepStats {
    int launched_during_backward = 0;  // buckets launched by mark_ready
    int launched_in_finish = 0;
    int params_without_grad = 0;       // parameters never marked ready
  };
  const StepStats& last_step() const { return last_; }

 private:
  void launch_ready_prefix();

  Communicator& comm_;
  Tensor grads_;
  std::vector<ParamSlot> params_;
  GradReducerOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<int> bucket_of_param_;
  std::vector<int> pending_;       // per bucket: parameters not ready yet this step
  std::vector<bool> ready_;        // per parameter, this step
  int next_launch_ = 0;            // buckets [0, next_launch_) are launched this step
  std::vector<WorkPtr> work_;
  bool reduce_ = true;
  StepStats current_, last_;
};

// Copies rank `root`'s flat parameter buffer to every rank (start of training), in chunks of
// chunk_bytes so the MPI backend's int counts and NCCL's memory stay bounded.
void broadcast_parameters(Communicator& comm, const Tensor& flat_params, int root = 0,
                          int64_t chunk_bytes = int64_t(256) << 20);

}  // namespace drwkv::dist
