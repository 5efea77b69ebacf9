// Model construction from a recipe (apps/model_setup.h).
#include "apps/model_setup.h"

#include "absl/strings/str_format.h"
#include "core/build_config.h"
#include "core/log.h"

namespace drwkv::apps {

absl::StatusOr<models::DrwkvConfig> model_config(const Recipe& r) {
  models::DrwkvConfig c;
  c.depth = int(r.model.depth);
  c.width = int(r.model.width);
  c.patch = int(r.model.patch);
  c.in_channels = int(r.model.in_channels);
  c.image_size = int(r.model.image_size);
  c.num_classes = int(r.model.num_classes);
  c.learn_sigma = r.model.learn_sigma;
  c.hidden_rate = int(r.model.hidden_rate);
  c.drop_path = r.model.drop_path;
  c.class_dropout = r.model.class_dropout;
  c.key_norm = r.model.key_norm;
  c.bi_wkv = r.model.bi_wkv == "official_compat" ? autograd::BiWkvVariant::OfficialCompat : autograd::BiWkvVariant::Exact;
  if (r.model.config != "custom") return models::drwkv_named_config(r.model.config, c);
  c.name = absl::StrFormat("DRWKV-custom(L%d, D%d, P%d)", c.depth, c.width, c.patch);
  absl::Status st = models::validate(c);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrFormat("%s: %s", r.source, st.message()));
  return c;
}

absl::StatusOr<Device> choose_device(const Recipe& r, int local_rank) {
  int gpus = cuda_device_count();
  if (r.run.device == "cpu" || (r.run.device == "auto" && gpus == 0)) return Device::cpu();
  if (gpus == 0)
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: run.device is 'cuda' but no CUDA device is visible (this build %s the CUDA backend)", r.source,
        kCudaBuilt ? "has" : "lacks"));
  return Device::cuda(local_rank % gpus);
}

absl::StatusOr<DType> choose_compute_dtype(const Recipe& r, Device device) {
  if (r.train.precision == "f32") return DType::F32;
  if (r.train.precision == "bf16") {
    if (device.is_cpu())
      return absl::InvalidArgumentError(absl::StrFormat("%s: train.precision bf16 needs a GPU; the CPU backend trains in f32", r.source));
    return DType::BF16;
  }
  return device.is_cuda() ? DType::BF16 : DType::F32;
}

absl::StatusOr<ModelBundle> build_model(const Recipe& r, Device device, DType compute_dtype, int64_t total_multiple,
                                        int64_t grad_segment_bytes) {
  ModelBundle b;
  absl::StatusOr<models::DrwkvConfig> cfg = model_config(r);
  if (!cfg.ok()) return cfg.status();
  b.config = *cfg;
  b.store = std::make_unique<models::ParameterStore>();
  b.model = std::make_unique<models::DrwkvModel>(b.config, *b.store);
  if (r.model.checkpoint_blocks > b.config.num_blocks())
    return absl::InvalidArgumentError(absl::StrFormat("%s: model.checkpoint_blocks = %d, but %s has %d blocks",
                                                      r.source, r.model.checkpoint_blocks, b.config.name,
                                                      b.config.num_blocks()));
  b.model->set_checkpoint_blocks(r.model.activation_checkpointing ? -1 : int(r.model.checkpoint_blocks));
  b.model->set_recompute_elementwise(r.model.recompute_elementwise);
  if (grad_segment_bytes > 0) b.store->set_grad_segments(grad_segment_bytes);
  b.store->finalize(device, compute_dtype, uint64_t(r.run.seed), total_multiple);
  b.diffusion = std::make_unique<models::GaussianDiffusion>(b.config.learn_sigma);
  int64_t expected = models::drwkv_parameter_count(b.config), got = b.store->parameter_count();
  if (expected != got)
    return absl::InternalError(absl::StrFormat("%s has %d parameters, the closed form says %d", b.config.name, got, expected));
  return b;
}

}  // namespace drwkv::apps
