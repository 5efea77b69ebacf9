// Moving tensors between the flat parameter-layout buffers of a ParameterStore (weights, EMA, optimizer
// moments) and the per-name tensor groups of a checkpoint.
#pragma once

#include "absl/status/status.h"
#include "apps/checkpoint.h"
#include "models/parameter_store.h"

namespace drwkv::apps {

// One host f32 tensor per parameter, read from `flat` (a buffer with the store's layout, any device).
TensorGroup group_from_flat(const models::ParameterStore& store, const Tensor& flat);

// Copies every parameter of `group` into `flat` (the store's layout); a missing, extra or wrongly
// shaped tensor is an error naming it, `what` (e.g. "ckpt-00000500.h5 ema") and the expected shape.
absl::Status flat_from_group(const TensorGroup& group, const models::ParameterStore& store, Tensor& flat,
                             const std::string& what);

}  // namespace drwkv::apps
