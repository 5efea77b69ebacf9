// The training loop of drwkv_train: recipe -> distributed world -> model and resume -> data -> steps.
//
// One optimizer step: for each of `accum` micro-batches, draw the per-sample randomness, run forward
// and backward (the last micro-batch's gradient-ready hooks start the bucketed all-reduce while
// backward still runs); finish the reduction; agree over ranks on the gradient norm and on whether any
// loss or gradient was non-finite (then every rank skips the step); clip, take the fused AdamW step
// (which also refreshes the bf16 compute copy), update the EMA. Around it, cadence blocks log, write
// sample grids and checkpoints, and stop at max_steps or the wall-clock bound with a final checkpoint.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "apps/recipe.h"

namespace drwkv::apps {

struct TrainSummary {
  int64_t steps = 0;         // optimizer steps at the end (including resumed ones)
  int64_t skipped = 0;       // steps skipped for non-finite values in this run
  double last_loss = 0;      // mean loss of the last logging interval
  double images_per_s = 0;   // over the run (excluding the first step)
  std::string last_checkpoint;
};

// Trains as the recipe says (`resume`: "none", "auto" or a checkpoint path, overriding the recipe).
absl::StatusOr<TrainSummary> train(const Recipe& recipe);

}  // namespace drwkv::apps
