// Gaussian diffusion (models/diffusion.h; MODEL.md §5).
#include "models/diffusion.h"

#include <cfenv>
#include <cmath>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "autograd/elementwise_ops.h"
#include "core/philox.h"
#include "core/rng.h"

namespace drwkv::models {
using autograd::Variable;

namespace {
Schedule from_betas(std::vector<double> betas, std::vector<int> map) {
  Schedule s;
  s.timestep_map = std::move(map);
  s.betas = std::move(betas);
  size_t n = s.betas.size();
  s.alphas_cumprod.resize(n);
  double prod = 1.0;
  for (size_t i = 0; i < n; ++i) {
    prod *= 1.0 - s.betas[i];
    s.alphas_cumprod[i] = prod;
  }
  s.alphas_cumprod_prev.resize(n);
  s.posterior_variance.resize(n);
  s.posterior_mean_coef1.resize(n);
  s.posterior_mean_coef2.resize(n);
  s.posterior_log_variance_clipped.resize(n);
  for (size_t i = 0; i < n; ++i) {
    double ac = s.alphas_cumprod[i], prev = i == 0 ? 1.0 : s.alphas_cumprod[i - 1];
    s.alphas_cumprod_prev[i] = prev;
    s.posterior_variance[i] = s.betas[i] * (1.0 - prev) / (1.0 - ac);
    s.posterior_mean_coef1[i] = s.betas[i] * std::sqrt(prev) / (1.0 - ac);
    s.posterior_mean_coef2[i] = (1.0 - prev) * std::sqrt(1.0 - s.betas[i]) / (1.0 - ac);
  }
  for (size_t i = 0; i < n; ++i)  // log of the variance with step 0 replaced by step 1
    s.posterior_log_variance_clipped[i] = std::log(n > 1 && i == 0 ? s.posterior_variance[1] : s.posterior_variance[i]);
  return s;
}

double round_half_even(double x) {
  int mode = std::fegetround();
  std::fesetround(FE_TONEAREST);
  double r = std::nearbyint(x);
  std::fesetround(mode);
  return r;
}
}  // namespace

Schedule Schedule::linear(int T) {
  double scale = 1000.0 / double(T), start = scale * 1e-4, end = scale * 0.02;
  std::vector<double> betas(static_cast<size_t>(T));
  double step = T > 1 ? (end - start) / double(T - 1) : 0.0;
  for (int i = 0; i < T; ++i) betas[size_t(i)] = start + double(i) * step;
  if (T > 1) betas[size_t(T - 1)] = end;  // as numpy's linspace
  std::vector<int> map(static_cast<size_t>(T));
  for (int i = 0; i < T; ++i) map[size_t(i)] = i;
  return from_betas(std::move(betas), std::move(map));
}

Schedule Schedule::respace(const std::vector<int>& keep) const {
  std::set<int> kept(keep.begin(), keep.end());
  std::vector<double> betas;
  std::vector<int> map;
  double last = 1.0;
  for (int i = 0; i < size(); ++i) {
    if (!kept.count(i)) continue;
    betas.push_back(1.0 - alphas_cumprod[size_t(i)] / last);
    last = alphas_cumprod[size_t(i)];
    map.push_back(timestep_map[size_t(i)]);
  }
  return from_betas(std::move(betas), std::move(map));
}

void Schedule::coefficients(int i, double eta, double* c) const {
  size_t k = size_t(i);
  double ac = alphas_cumprod[k], prev = alphas_cumprod_prev[k];
  c[0] = std::sqrt(ac);
  c[1] = std::sqrt(1.0 - ac);
  c[2] = std::sqrt(1.0 / ac);
  c[3] = std::sqrt(1.0 / ac - 1.0);
  c[4] = posterior_mean_coef1[k];
  c[5] = posterior_mean_coef2[k];
  c[6] = std::log(betas[k]);
  c[7] = posterior_log_variance_clipped[k];
  c[8] = i == 0 ? 1.0 : 0.0;
  c[9] = prev;
  c[10] = eta * std::sqrt((1.0 - prev) / (1.0 - ac)) * std::sqrt(1.0 - ac / prev);
  c[11] = i > 0 ? 1.0 : 0.0;
}

absl::StatusOr<std::vector<int>> space_timesteps(int T, const std::string& spec) {
  std::set<int> steps;
  if (spec.rfind("ddim", 0) == 0) {
    int want = 0;
    if (!absl::SimpleAtoi(spec.substr(4), &want) || want < 1)
      return absl::InvalidArgumentError(absl::StrFormat("timestep spacing '%s': expected ddim<count>", spec));
    for (int stride = 1; stride < T; ++stride) {
      if ((T + stride - 1) / stride == want) {
        std::vector<int> out;
        for (int t = 0; t < T; t += stride) out.push_back(t);
        return out;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("timestep spacing '%s': no integer stride gives exactly %d of %d steps", spec, want, T));
  }
  std::vector<int> counts;
  for (absl::string_view part : absl::StrSplit(spec, ',')) {
    int k = 0;
    if (!absl::SimpleAtoi(part, &k) || k < 1)
      return absl::InvalidArgumentError(absl::StrFormat("timestep spacing '%s': '%s' is not a positive count", spec,
                                                        std::string(part)));
    counts.push_back(k);
  }
  int sections = int(counts.size()), size_per = T / sections, extra = T % sections, start = 0;
  for (int s = 0; s < sections; ++s) {
    int size = size_per + (s < extra ? 1 : 0);
    if (size < counts[size_t(s)])
      return absl::InvalidArgumentError(
          absl::StrFormat("timestep spacing '%s': cannot take %d steps from a section of %d", spec, counts[size_t(s)], size));
    double stride = counts[size_t(s)] <= 1 ? 1.0 : double(size - 1) / double(counts[size_t(s)] - 1);
    double cur = 0.0;  // accumulated by repeated addition, as the reference does
    for (int k = 0; k < counts[size_t(s)]; ++k) {
      steps.insert(start + int(round_half_even(cur)));
      cur += stride;
    }
    start += size;
  }
  return std::vector<int>(steps.begin(), steps.end());
}

GaussianDiffusion::GaussianDiffusion(bool learned, int T) : base_(Schedule::linear(T)), learned_(learned) {}

Tensor GaussianDiffusion::coefficient_tensor(const Schedule& s, const std::vector<int>& index, double eta, Device device,
                                             DType dtype) {
  std::vector<double> rows(index.size() * autograd::kDiffusionCoefs);
  for (size_t b = 0; b < index.size(); ++b) s.coefficients(index[b], eta, rows.data() + b * autograd::kDiffusionCoefs);
  return Tensor::from_vector(rows, Shape{int64_t(index.size()), autograd::kDiffusionCoefs}, device, dtype);
}

TrainLoss GaussianDiffusion::training_loss(const DrwkvModel& model, const TrainBatch& batch, double weight,
                                           bool train_mode) const {
  const DrwkvConfig& cfg = model.config();
  const int64_t b = batch.x0.size(0);
  for (const auto* keys : {&batch.timestep_keys, &batch.noise_keys, &batch.label_drop_keys, &batch.drop_path_keys})
    DRWKV_ASSERT(int64_t(keys->size()) == b, "%zu per-sample keys for a batch of %lld", keys->size(), (long long)b);
  const Device dev = batch.x0.device();
  const DType dt = batch.x0.dtype(), acc = dt == DType::F64 ? DType::F64 : DType::F32;
  TrainLoss out;
  std::vector<int32_t> labels = batch.labels;
  for (int64_t i = 0; i < b; ++i) {
    // uniform integer step in [0, T): 24-bit uniform scaled, one draw per sample
    float u = philox::uniform_at(batch.seed, batch.timestep_keys[size_t(i)], 0, 0);
    out.timesteps.push_back(std::min(int32_t(u * float(base_.size())), int32_t(base_.size() - 1)));
    if (train_mode && cfg.has_label_table() && cfg.class_dropout > 0) {
      float ud = philox::uniform_at(batch.seed, batch.label_drop_keys[size_t(i)], 0, 0);
      if (ud < cfg.class_dropout) labels[size_t(i)] = cfg.num_classes;  // the null class
    }
  }
  Tensor eps = Tensor::empty(batch.x0.shape(), dt, dev);
  rng_normal_rows_(eps, batch.seed, batch.noise_keys);
  std::vector<int> idx(out.timesteps.begin(), out.timesteps.end());
  Tensor coef = coefficient_tensor(base_, idx, 0.0, dev, acc);
  Tensor xt = autograd::q_sample(batch.x0, eps, coef);
  DrwkvInputs in;
  in.x = xt;
  in.t = out.timesteps;
  in.y = labels;
  in.seed = batch.seed;
  if (train_mode) in.drop_path_keys = batch.drop_path_keys;
  Variable pred = model.forward(in);
  autograd::HybridLoss hl = autograd::hybrid_loss(pred, batch.x0, xt, eps, coef, learned_);
  out.terms = hl.terms;
  out.loss = autograd::scale_shift(autograd::sum_all(hl.loss), weight);
  return out;
}

absl::StatusOr<Tensor> sample_images(const DrwkvModel& model, const GaussianDiffusion& diffusion,
                                     const std::vector<int32_t>& labels_in, int count, const SampleOptions& opt) {
  const DrwkvConfig& cfg = model.config();
  if (opt.sampler != "ddpm" && opt.sampler != "ddim")
    return absl::InvalidArgumentError(absl::StrFormat("sampler '%s': expected ddpm or ddim", opt.sampler));
  std::string spacing = opt.sampler == "ddim" ? absl::StrFormat("ddim%d", opt.steps) : absl::StrFormat("%d", opt.steps);
  absl::StatusOr<std::vector<int>> keep = space_timesteps(diffusion.schedule().size(), spacing);
  if (!keep.ok()) return keep.status();
  Schedule s = diffusion.schedule().respace(*keep);
  const bool conditional = cfg.has_label_table();
  std::vector<int32_t> labels = labels_in;
  const int n = conditional ? int(labels.size()) : count;
  if (n <= 0) return absl::InvalidArgumentError("sample_images: nothing to sample (no labels / count 0)");
  for (int32_t y : labels)
    if (y < 0 || y >= cfg.num_classes)
      return absl::InvalidArgumentError(absl::StrFormat("label %d outside [0, %d)", y, cfg.num_classes));
  const bool guided = conditional && opt.cfg_scale != 1.0;
  if (guided && cfg.class_dropout <= 0)
    return absl::InvalidArgumentError("classifier-free guidance needs a model trained with class_dropout > 0");
  const int64_t C = cfg.in_channels, H = cfg.image_size;
  const int guided_ch = opt.guided_channels < 0 ? int(C) : std::min<int>(opt.guided_channels, int(C));
  const Device dev = model.device();
  const DType dt = DType::F32;
  autograd::NoGradGuard no_grad;
  std::vector<uint64_t> init_streams(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) init_streams[size_t(i)] = rng_mix({opt.seed, uint64_t(i), 0x1417ull});
  Tensor x = Tensor::empty(Shape{n, C, H, H}, dt, dev);
  rng_normal_rows_(x, opt.seed, init_streams);
  std::vector<int32_t> call_labels = labels;
  if (guided)
    for (int i = 0; i < n; ++i) call_labels.push_back(cfg.num_classes);
  for (int i = s.size() - 1; i >= 0; --i) {
    DrwkvInputs in;
    in.x = guided ? Tensor::empty(Shape{2 * n, C, H, H}, dt, dev) : x;
    if (guided) {
      in.x.narrow(0, 0, n).copy_(x);
      in.x.narrow(0, n, n).copy_(x);
    }
    in.t.assign(size_t(in.x.size(0)), s.timestep_map[size_t(i)]);
    if (conditional) in.y = call_labels;
    Tensor out = model.forward(in).value().contiguous();
    if (guided) {
      autograd::cfg_combine_(out, guided_ch, opt.cfg_scale);
      out = out.narrow(0, 0, n).contiguous();
    }
    std::vector<uint64_t> step_streams(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) step_streams[size_t(j)] = rng_mix({opt.seed, uint64_t(j), uint64_t(i), 0x57e9ull});
    Tensor z = Tensor::empty(x.shape(), dt, dev);
    rng_normal_rows_(z, opt.seed, step_streams);
    Tensor coef = GaussianDiffusion::coefficient_tensor(s, std::vector<int>(size_t(n), i), opt.ddim_eta, dev, DType::F32);
    if (opt.sampler == "ddpm") {
      autograd::ddpm_step_(x, out, z, coef, diffusion.learned_variance());
    } else {
      autograd::ddim_step_(x, out, z, coef);
    }
  }
  return x;
}

}  // namespace drwkv::models
