// Data-parallel gradient reduction over a flat gradient layout, overlapped with backward.
//
// The parameter table (per parameter: offset and numel in the flat layout, in registration order, at
// increasing offsets) is cut into buckets by plan_flat_ranges (core/flat_ranges.h): last registered
// parameter first, within bucket_bytes. A bucket is one contiguous range of the layout (gaps between its
// parameters included, so alignment padding travels too; it is zero). Its gradients are either a range
// of one flat buffer or a buffer of their own (the parameter store's gradient segments, which are
// allocated during backward): the reducer asks a `BucketGrads` function for bucket k's tensor when it
// launches it, so that tensor must hold the bucket's final gradients by then.
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
//                    step: their slots must hold zeros, which the parameter store's segment_grads and
//                    settle_grads see to, and every rank still takes part), then makes the current
//                    (compute) stream wait for all of them (MPI: waits). After finish() the buckets hold
//                    the average (or sum) over ranks (with `owners`: the elements this rank owns).
// Gradient accumulation: set_reduce(false) for the micro-batches before the last one (mark_ready and
// finish do nothing; gradients keep accumulating locally), set_reduce(true) for the last one.
// Not thread-safe: mark_ready and finish are called from the thread running backward.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/flat_ranges.h"
#include "core/tensor.h"
#include "dist/communicator.h"
#include "dist/zero.h"

namespace drwkv::dist {

// The contiguous 1-D gradient tensor of bucket k (buckets in launch order), on the communicator's device.
using BucketGrads = std::function<Tensor(int bucket)>;

struct GradReducerOptions {
  int64_t bucket_bytes = int64_t(25) << 20;
  ReduceOp op = ReduceOp::Avg;
  // The dtype on the wire; BF16 halves the bytes of f32 gradients, rounding the reduced values to bf16.
  DType wire_dtype = DType::F32;
  // ZeRO-1: each element's reduction is needed only by the rank that owns it (the layout's shards, over
  // the same flat layout as the buckets): a bucket is reduced piece by piece to the owners (reduce, not
  // all-reduce: half the bytes), in the gradients' own dtype; elements a rank does not own keep its local
  // values.
  std::optional<ShardLayout> owners = std::nullopt;
};

class GradReducer {
 public:
  // `flat_grads`: the contiguous 1-D gradient buffer (on comm.device()) of the whole table; kept by
  // reference. Buckets: plan_flat_ranges(params, element size, options.bucket_bytes).
  GradReducer(Communicator& comm, Tensor flat_grads, std::vector<FlatSlot> params, GradReducerOptions options = {});
  // Buckets given (plan_flat_ranges of a table of `num_params` parameters, e.g. a parameter store's
  // gradient segments), each bucket's gradients from `grads_of` (options.bucket_bytes is not used).
  GradReducer(Communicator& comm, std::vector<FlatRange> buckets, int num_params, BucketGrads grads_of,
              GradReducerOptions options = {});

  void set_reduce(bool reduce) { reduce_ = reduce; }
  bool reduce_enabled() const { return reduce_; }

  void mark_ready(int param_index);
  void finish();

  const std::vector<FlatRange>& buckets() const { return buckets_; }
  struct StepStats {
    int launched_during_backward = 0;  // buckets launched by mark_ready
    int launched_in_finish = 0;
    int params_without_grad = 0;       // parameters never marked ready
  };
  const StepStats& last_step() const { return last_; }

 private:
  void launch_ready_prefix();
  void launch_next();
  void init_bookkeeping();

  Communicator& comm_;
  BucketGrads grads_of_;
  int num_params_ = 0;
  GradReducerOptions options_;
  std::vector<FlatRange> buckets_;
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
