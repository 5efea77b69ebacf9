// Sampling from checkpoints (apps/sampling.h).
#include "apps/sampling.h"

#include <hdf5.h>

#include "absl/strings/str_format.h"
#include "apps/checkpoint.h"
#include "apps/model_setup.h"
#include "apps/png_grid.h"
#include "apps/weights.h"
#include "core/log.h"
#include "data/file_util.h"
#include "data/h5.h"

namespace drwkv::apps {
using data::H5Id;

absl::Status write_raw_samples(const std::string& path, const Tensor& images, const std::vector<int32_t>& labels) {
  data::h5_silence();
  Tensor px = to_pixels(images);
  std::string tmp = path + ".tmp";
  {
    H5Id file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!file.valid()) return absl::PermissionDeniedError(absl::StrFormat("samples %s: cannot create", tmp));
    std::vector<hsize_t> dims(px.shape().begin(), px.shape().end());
    H5Id space(H5Screate_simple(4, dims.data(), nullptr));
    H5Id ds(H5Dcreate2(file.get(), "images", H5T_STD_U8LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!ds.valid() || H5Dwrite(ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px.data()) < 0)
      return absl::DataLossError(absl::StrFormat("samples %s: cannot write images", tmp));
    std::vector<int32_t> lab = labels;
    lab.resize(size_t(px.size(0)), -1);
    hsize_t n = hsize_t(lab.size());
    H5Id lspace(H5Screate_simple(1, &n, nullptr));
    H5Id lds(H5Dcreate2(file.get(), "labels", H5T_STD_I32LE, lspace.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!lds.valid() || H5Dwrite(lds.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab.data()) < 0)
      return absl::DataLossError(absl::StrFormat("samples %s: cannot write labels", tmp));
    data::h5_write_attr(file.get(), "layout", std::string("u8 pixels [N, C, H, W] = round((x + 1) * 127.5)"));
  }
  return data::publish_file(tmp, path);
}

absl::StatusOr<Tensor> run_sampling(const SampleRequest& req) {
  absl::StatusOr<Checkpoint> ckpt = read_checkpoint(req.checkpoint, /*verify=*/true);
  if (!ckpt.ok()) return ckpt.status();
  absl::StatusOr<Recipe> recipe = parse_recipe(ckpt->meta.recipe_yaml, req.checkpoint + " (stored recipe)");
  if (!recipe.ok()) return recipe.status();
  recipe->run.device = req.device;
  recipe->model.activation_checkpointing = false;
  recipe->model.recompute_elementwise = false;
  recipe->model.checkpoint_blocks = 0;
  absl::StatusOr<Device> device = choose_device(*recipe, 0);
  if (!device.ok()) return device.status();
  absl::StatusOr<DType> dtype = choose_compute_dtype(*recipe, *device);
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<ModelBundle> bundle = build_model(*recipe, *device, *dtype);
  if (!bundle.ok()) return bundle.status();
  std::string group = req.weights == "ema" ? "ema" : req.weights == "params" ? "params" : "";
  if (group.empty()) return absl::InvalidArgumentError(absl::StrFormat("--weights %s: expected ema or params", req.weights));
  absl::Status st = flat_from_group(ckpt->groups[group], *bundle->store, bundle->store->flat_params(),
                                    req.checkpoint + " " + group);
  if (!st.ok()) return st;
  bundle->store->refresh_compute_copy();
  log_info("sampling %s (%s weights, step %lld) with %s, %d steps, guidance %.2f on %s", bundle->config.name.c_str(),
           group.c_str(), (long long)ckpt->meta.step, req.options.sampler.c_str(), req.options.steps,
           req.options.cfg_scale, device->str().c_str());
  absl::StatusOr<Tensor> images =
      models::sample_images(*bundle->model, *bundle->diffusion, req.labels, req.count, req.options);
  if (!images.ok()) return images.status();
  Tensor host = images->to(Device::cpu());
  if (!req.out_png.empty()) {
    st = write_png_grid(req.out_png, host, req.columns);
    if (!st.ok()) return st;
  }
  if (!req.out_raw.empty()) {
    st = write_raw_samples(req.out_raw, host, req.labels);
    if (!st.ok()) return st;
  }
  return host;
}

}  // namespace drwkv::apps
