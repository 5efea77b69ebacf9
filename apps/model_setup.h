// Building the model a recipe describes: the DRWKV configuration, the device and precision, the
// parameter store and the network; shared by drwkv_train, drwkv_sample and drwkv_ckpt.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "apps/recipe.h"
#include "models/diffusion.h"
#include "models/drwkv.h"
#include "models/parameter_store.h"

namespace drwkv::apps {

// The DRWKV configuration of a recipe's model section (named configs take depth/width/patch from
// MODEL.md §1.13; everything else from the recipe).
absl::StatusOr<models::DrwkvConfig> model_config(const Recipe& r);

// "auto" picks CUDA device `local_rank` when a GPU is present, else the CPU; "cuda" without a GPU is an
// error naming run.device.
absl::StatusOr<Device> choose_device(const Recipe& r, int local_rank);
// bf16 branches on the GPU, f32 on the CPU (train.precision may force either).
absl::StatusOr<DType> choose_compute_dtype(const Recipe& r, Device device);

struct ModelBundle {
  models::DrwkvConfig config;
  std::unique_ptr<models::ParameterStore> store;
  std::unique_ptr<models::DrwkvModel> model;
  std::unique_ptr<models::GaussianDiffusion> diffusion;
};

// Registers, initialises (seed = run.seed) and places the model; the flat buffers' length is a multiple
// of `total_multiple` (ParameterStore::finalize). Gradients: in segments of at most grad_segment_bytes,
// allocated only when a backward reaches them, or one flat buffer when it is 0
// (ParameterStore::set_grad_segments).
absl::StatusOr<ModelBundle> build_model(const Recipe& r, Device device, DType compute_dtype,
                                        int64_t total_multiple = models::ParameterStore::kAlign,
                                        int64_t grad_segment_bytes = models::ParameterStore::kDefaultSegmentBytes);

}  // namespace drwkv::apps
