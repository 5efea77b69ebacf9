// Values every rank agrees on: the gradient norm for clipping, the decision to skip a step whose loss
// or gradients are not finite, and the metrics that get logged.
//
// The reference trainer skips a step when its own loss is NaN; the other ranks then wait in the next
// all-reduce forever. Here every rank always takes part in the gradient reduction (a NaN spreads
// through it, which is harmless because the step is then skipped everywhere), and one small host
// all-reduce per step carries [gradient sum of squares, non-finite flag, metric sums]. The values are
// gathered and reduced in rank order on every rank (dist/communicator.h), so every rank computes the
// same bits and takes the same decision.
#pragma once

#include <vector>

#include "dist/communicator.h"

namespace drwkv::dist {

struct LocalStepStats {
  // Sum of squares of this rank's gradient entries: with ZeRO sharding (grad_is_sharded) those of its
  // shard, summed over ranks; otherwise of the whole reduced buffer, identical on every rank, of which
  // rank 0's value is taken.
  double grad_sq_sum = 0;
  bool grad_is_sharded = false;
  bool nonfinite = false;    // this rank's loss (or anything else it checked) is not finite
  std::vector<double> sums;  // metrics summed over ranks: loss sums, sample counts, ...
};

struct AgreedStep {
  double grad_norm = 0;  // sqrt of the agreed sum of squares (NaN/Inf when it is not finite)
  bool skip = false;     // a rank saw a non-finite value or the norm is not finite: all ranks skip
  std::vector<double> sums;
};

// One collective; every rank must call it with the same number of sums.
AgreedStep agree_step(Communicator& comm, const LocalStepStats& local);

// True on every rank when `local` is true on at least one.
bool agree_any(Communicator& comm, bool local);
// The sum over ranks, in rank order.
double agree_sum(Communicator& comm, double local);

// The factor gradients are multiplied by for clipping to max_norm (1 when within, or max_norm <= 0).
double clip_coefficient(double grad_norm, double max_norm);

}  // namespace drwkv::dist
