// Gaussian diffusion as DiT and Diffusion-RWKV run it (MODEL.md §5): the linear β schedule in float64,
// timestep respacing ("250", "ddim50"), the hybrid training loss with uniform timesteps, DDPM and DDIM
// sampling, and classifier-free guidance. All per-sample randomness (timestep, noise, label drop, drop
// path, sampling noise) comes from the counter-based generator keyed per sample, so results do not
// depend on batch composition, rank or device.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "autograd/diffusion_ops.h"
#include "models/drwkv.h"

namespace drwkv::models {

// Float64 tables of one (possibly respaced) process (MODEL.md §5.1, §5.4).
struct Schedule {
  std::vector<int> timestep_map;  // process index -> original step (identity for the base process)
  std::vector<double> betas, alphas_cumprod, alphas_cumprod_prev, posterior_variance, posterior_log_variance_clipped,
      posterior_mean_coef1, posterior_mean_coef2;
  int size() const { return int(betas.size()); }

  static Schedule linear(int num_timesteps = 1000);
  // The process restricted to the kept original steps (sorted ascending).
  Schedule respace(const std::vector<int>& keep) const;
  // Row of kernels/diffusion.h coefficients for process index i (DDIM σ from eta).
  void coefficients(int i, double ddim_eta, double* row) const;
};

// DiT's space_timesteps: "K" or "K1,K2,..." (sections, fractional strides accumulated and rounded half
// to even) or "ddimK" (the integer stride s with |range(0, T, s)| = K).
absl::StatusOr<std::vector<int>> space_timesteps(int num_timesteps, const std::string& spec);

// One micro-batch with its per-sample random streams: each key is the Philox stream of one purpose of one
// sample (data/order.h sample_key of (seed, epoch, global index, purpose)), the Philox key is `seed`.
struct TrainBatch {
  Tensor x0;                       // [b, C, H, W] in the model's residual dtype, on the model's device
  std::vector<int32_t> labels;     // [b] (empty for unconditional models)
  std::vector<uint64_t> timestep_keys, noise_keys, label_drop_keys, drop_path_keys;  // [b] each
  uint64_t seed = 0;
};

struct TrainLoss {
  autograd::Variable loss;  // scalar: Σ_b weight · (mse_b + vb_b)
  Tensor terms;             // [b, 2] per-sample (mse, vb)
  std::vector<int32_t> timesteps;
};

class GaussianDiffusion {
 public:
  explicit GaussianDiffusion(bool learned_variance = true, int num_timesteps = 1000);

  const Schedule& schedule() const { return base_; }
  bool learned_variance() const { return learned_; }

  // Draws t, ε and the label drop per sample, noises x0 and returns the hybrid loss of `model`; each
  // sample's loss is multiplied by `weight` (1 / global batch for exact gradient accumulation).
  TrainLoss training_loss(const DrwkvModel& model, const TrainBatch& batch, double weight, bool train_mode) const;

  // Coefficients of kernels/diffusion.h for process indices `index` of `s`, on device in dtype.
  static Tensor coefficient_tensor(const Schedule& s, const std::vector<int>& index, double ddim_eta, Device device,
                                   DType dtype);

 private:
  Schedule base_;
  bool learned_;
};

struct SampleOptions {
  std::string sampler = "ddpm";  // ddpm | ddim
  int steps = 250;               // respaced steps ("250" for DDPM, "ddim<steps>" for DDIM)
  double ddim_eta = 0.0;
  double cfg_scale = 1.5;        // 1 = no guidance
  int guided_channels = -1;      // -1 = all ε channels (MODEL.md §5.5 "all"); 3 reproduces the DiT quirk
  uint64_t seed = 0;
};

// Generates one image per label (or `count` unconditional images), [n, C, H, W] in the data range.
absl::StatusOr<Tensor> sample_images(const DrwkvModel& model, const GaussianDiffusion& diffusion,
                                     const std::vector<int32_t>& labels, int count, const SampleOptions& opt);

}  // namespace drwkv::models
