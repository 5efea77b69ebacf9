// drwkv_sample: load a checkpoint's model (EMA weights by default), generate images with DDPM or DDIM
// and classifier-free guidance, write a PNG grid and optionally the raw samples as HDF5 (`images` u8
// [N, C, H, W] in the dataset's pixel layout, `labels` i32 [N]) for any evaluator.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/diffusion.h"

namespace drwkv::apps {

struct SampleRequest {
  std::string checkpoint;
  std::vector<int32_t> labels;  // one image per entry (conditional models)
  int count = 16;               // unconditional models
  models::SampleOptions options;
  std::string weights = "ema";  // ema | params
  std::string device = "auto";  // auto | cpu | cuda
  std::string out_png;          // grid path (optional)
  std::string out_raw;          // HDF5 path (optional)
  int columns = 8;
};

// Runs the request; returns the samples [N, C, H, W] (host, f32, data range).
absl::StatusOr<Tensor> run_sampling(const SampleRequest& req);

// Writes `images` (data range) as u8 pixels plus labels to an HDF5 file, atomically.
absl::Status write_raw_samples(const std::string& path, const Tensor& images, const std::vector<int32_t>& labels);

}  // namespace drwkv::apps
