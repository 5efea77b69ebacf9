// The training loop (apps/trainer.h). Reads top to bottom as the algorithm: set up the world, the model
// (and resume), the data; then steps with their cadence blocks.
#include "apps/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_format.h"
#include "apps/checkpoint.h"
#include "apps/model_setup.h"
#include "apps/perf.h"
#include "apps/png_grid.h"
#include "apps/weights.h"
#include "autograd/elementwise_ops.h"
#include "autograd/optim.h"
#include "core/allocator.h"
#include "core/check.h"
#include "core/log.h"
#include "core/stream.h"
#include "data/dataset.h"
#include "data/json.h"
#include "data/xxhash64.h"
#include "data/loader.h"
#include "dist/agree.h"
#include "dist/grad_reducer.h"
#include "dist/world.h"
#include "dist/zero.h"
#include "models/optimizer_step.h"

namespace drwkv::apps {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Everything one run holds.
struct Run {
  Recipe recipe;
  std::unique_ptr<dist::World> world;
  int rank = 0, world_size = 1, accum = 1;
  Device device;
  ModelBundle model;
  // flat f32: ema in the store's layout; the AdamW moments too, or with ZeRO-1 only this rank's shard
  Tensor adam_m, adam_v, ema;
  std::optional<dist::ShardLayout> zero;  // ZeRO-1 (dist.zero1 with more than one rank)
  std::unique_ptr<data::Dataset> dataset;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<dist::GradReducer> reducer;
  int64_t step = 0, streak = 0, skipped = 0;
  std::string run_dir, ckpt_dir, last_checkpoint;
  std::ofstream metrics;
  double gemm_tflops = 0, flops_per_image = 0;
  Clock::time_point started;
};

// Sums of one logging interval (all ranks agree on them).
struct Interval {
  double loss = 0, mse = 0, vb = 0, samples = 0, grad_norm = 0, steps = 0, skipped = 0;
  double data_wait_s = 0;  // time the training thread was blocked waiting for the loader
  Clock::time_point begin = Clock::now();
};

struct StepResult {
  bool skipped = false;
  double grad_norm = 0;
  double data_wait_s = 0;
  std::vector<double> sums;  // [Σ loss, Σ mse, Σ vb, samples, stop]
};

// ---- set-up ---------------------------------------------------------------------------------------

absl::Status start_world(Run& r) {
  dist::DistOptions opt;
  const DistSection& d = r.recipe.dist;
  if (d.backend == "nccl") opt.backend = dist::Backend::Nccl;
  if (d.backend == "mpi") opt.backend = dist::Backend::Mpi;
  std::string rv = d.rendezvous == "file" ? "file:" + d.rendezvous_path
                   : d.rendezvous == "tcp" ? "tcp://" + d.rendezvous_address
                                           : d.rendezvous;
  absl::StatusOr<dist::Rendezvous> parsed = dist::parse_rendezvous(rv, r.recipe.source + " dist.rendezvous");
  if (!parsed.ok()) return parsed.status();
  opt.rendezvous = *parsed;
  opt.collective_timeout_s = d.timeout_s;
  absl::StatusOr<dist::DistOptions> env_opt = dist::dist_options_from_env(dist::system_env, opt);  // env overrides
  if (!env_opt.ok()) return env_opt.status();
  absl::StatusOr<std::unique_ptr<dist::World>> world = dist::World::init(*env_opt);
  if (!world.ok()) return world.status();
  r.world = std::move(*world);
  r.rank = r.world->rank();
  r.world_size = r.world->world_size();
  set_log_rank(r.rank, r.world_size);
  return absl::OkStatus();
}

absl::Status build_model_and_state(Run& r) {
  absl::StatusOr<Device> dev = r.world->world_size() > 1 ? absl::StatusOr<Device>(r.world->device())
                                                           : choose_device(r.recipe, r.world->info().local_rank);
  if (!dev.ok()) return dev.status();
  r.device = *dev;
  absl::StatusOr<DType> dt = choose_compute_dtype(r.recipe, r.device);
  if (!dt.ok()) return dt.status();
  const bool zero1 = r.recipe.dist.zero1 && r.world_size > 1;
  if (r.recipe.dist.zero1 && !zero1) log_info0("dist.zero1: one rank, nothing to shard; the optimizer state stays whole");
  // ZeRO-1 cuts the flat buffers into equal shards: their length must be a multiple of the granularity.
  // Gradients live in segments that exist only from backward to the optimizer step; data parallel makes
  // them the reducer's buckets.
  const int64_t segment_bytes = r.world_size > 1 ? int64_t(r.recipe.dist.bucket_mb * 1024 * 1024)
                                                 : models::ParameterStore::kDefaultSegmentBytes;
  absl::StatusOr<ModelBundle> b = build_model(
      r.recipe, r.device, *dt, zero1 ? dist::ShardLayout::granularity(r.world_size) : models::ParameterStore::kAlign,
      segment_bytes);
  if (!b.ok()) return b.status();
  r.model = std::move(*b);
  models::ParameterStore& s = *r.model.store;
  int64_t state_numel = s.padded_numel();
  if (zero1) {
    r.zero = dist::ShardLayout::make(s.padded_numel(), r.world_size);
    DRWKV_ASSERT(r.zero->padded_numel == s.padded_numel(), "ZeRO-1 layout %lld vs store %lld",
                 (long long)r.zero->padded_numel, (long long)s.padded_numel());
    state_numel = r.zero->shard_numel;
    const double mib = 1024.0 * 1024.0;
    log_info0("ZeRO-1 over %d ranks: AdamW moments %.1f MiB per rank instead of %.1f MiB (%.1f MiB saved per %s)",
              r.world_size, 8.0 * double(state_numel) / mib, 8.0 * double(s.padded_numel()) / mib,
              double(dist::zero1_bytes_saved_per_rank(*r.zero, 8)) / mib, r.device.is_cuda() ? "GPU" : "process");
  }
  log_info0("gradients: %.1f MiB in %zu segment%s of <= %.0f MiB, allocated as backward reaches them and freed "
            "after the optimizer step", 4.0 * double(s.padded_numel()) / (1024.0 * 1024.0), s.grad_segments().size(),
            s.grad_segments().size() == 1 ? "" : "s", double(segment_bytes) / (1024.0 * 1024.0));
  r.adam_m = Tensor::zeros(Shape{state_numel}, DType::F32, r.device);
  r.adam_v = Tensor::zeros(Shape{state_numel}, DType::F32, r.device);
  r.ema = s.flat_params().clone();  // EMA starts as an exact copy (MODEL.md §5.6)
  r.flops_per_image = training_flops_per_image(r.model.config);
  r.gemm_tflops = measure_gemm_ceiling_tflops(r.device);
  log_info0("model %s: %lld parameters (closed form agrees), %s, compute %s, %.2f GFLOP per training image",
            r.model.config.name.c_str(), (long long)s.parameter_count(), r.device.str().c_str(),
            std::string(dtype_name(*dt)).c_str(), r.flops_per_image / 1e9);
  if (r.gemm_tflops > 0) log_info0("measured bf16 GEMM ceiling: %.0f TFLOP/s (MFU is reported against it)", r.gemm_tflops);
  return absl::OkStatus();
}

// Restores weights, EMA, optimizer moments and counters; returns the data position to continue from.
absl::StatusOr<std::string> resume(Run& r) {
  const std::string& how = r.recipe.checkpoint.resume;
  if (how == "none") return std::string();
  std::string path = how;
  if (how == "auto") {
    std::vector<std::string> skipped;
    absl::StatusOr<std::string> found = find_resume_checkpoint(r.ckpt_dir, &skipped);
    for (const std::string& why : skipped) log_warn("resume: skipping %s", why.c_str());
    if (!found.ok()) {
      log_info0("resume auto: no checkpoint in %s, starting fresh", r.ckpt_dir.c_str());
      return std::string();
    }
    path = *found;
  }
  absl::StatusOr<Checkpoint> c = read_checkpoint(path, /*verify=*/true);
  if (!c.ok()) return c.status();
  models::ParameterStore& s = *r.model.store;
  for (auto [group, flat] : {std::pair<const char*, Tensor*>{"params", &s.flat_params()}, {"ema", &r.ema}}) {
    absl::Status st = flat_from_group(c->groups[group], s, *flat, path + " " + group);
    if (!st.ok()) return st;
  }
  for (auto [group, state] : {std::pair<const char*, Tensor*>{"optimizer/m", &r.adam_m}, {"optimizer/v", &r.adam_v}}) {
    // a checkpoint holds the whole state whatever the number of ranks; ZeRO-1 keeps this rank's shard
    Tensor whole = r.zero ? Tensor::zeros(s.flat_params().shape(), DType::F32, r.device) : *state;
    absl::Status st = flat_from_group(c->groups[group], s, whole, path + " " + group);
    if (!st.ok()) return st;
    if (r.zero) state->copy_(whole.narrow(0, r.zero->begin(r.rank), r.zero->shard_numel));
  }
  s.refresh_compute_copy();
  r.step = c->meta.step;
  r.streak = c->meta.nonfinite_streak;
  if (c->meta.recipe_yaml != to_yaml(r.recipe))
    log_info0("resume: the recipe differs from the checkpoint's (see drwkv_ckpt inspect %s)", path.c_str());
  log_info0("resumed from %s at step %lld (written by %s, %lld ranks)", path.c_str(), (long long)r.step,
            c->meta.code_version.c_str(), (long long)c->meta.world_size);
  return c->meta.resume_state;
}

absl::Status open_data(Run& r, const std::string& resume_json) {
  absl::StatusOr<data::Dataset> ds = data::Dataset::open(r.recipe.data.path);
  if (!ds.ok()) return ds.status();
  r.dataset = std::make_unique<data::Dataset>(std::move(*ds));
  const data::DatasetInfo& info = r.dataset->info();
  const models::DrwkvConfig& c = r.model.config;
  if (info.channels != c.in_channels || info.height != c.image_size || info.width != c.image_size)
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: dataset %s holds [%d, %d, %d] samples, the model expects [%d, %d, %d] (model.in_channels, model.image_size)",
        r.recipe.source, r.recipe.data.path, info.channels, info.height, info.width, c.in_channels, c.image_size, c.image_size));
  if (c.num_classes > 0 && info.num_classes > c.num_classes)
    return absl::InvalidArgumentError(absl::StrFormat("%s: dataset has %d classes, model.num_classes is %d",
                                                      r.recipe.source, info.num_classes, c.num_classes));
  const int64_t gb = r.recipe.train.global_batch, b = r.recipe.train.micro_batch;
  if (gb % (b * r.world_size) != 0)
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: train.global_batch %d is not a multiple of train.micro_batch %d × %d ranks", r.recipe.source, gb, b, r.world_size));
  r.accum = int(gb / (b * r.world_size));
  data::LoaderConfig lc;
  lc.global_batch = gb;
  lc.micro_batch = b;
  lc.rank = r.rank;
  lc.world_size = r.world_size;
  lc.accum = r.accum;
  lc.seed = uint64_t(r.recipe.run.seed);
  lc.threads = int(r.recipe.data.threads);
  lc.depth = int(r.recipe.data.prefetch);
  lc.device = r.device;
  lc.flip = r.recipe.data.flip;
  lc.load_text = false;
  data::ResumeState start = data::initial_resume_state(r.dataset->fingerprint(), lc.seed, gb);
  if (!resume_json.empty()) {
    absl::StatusOr<data::ResumeState> st = data::ResumeState::from_json(resume_json, "checkpoint resume_state");
    if (!st.ok()) return st.status();
    start = *st;
  }
  absl::StatusOr<std::unique_ptr<data::Loader>> loader = data::Loader::create(*r.dataset, lc, start);
  if (!loader.ok()) return loader.status();
  r.loader = std::move(*loader);
  log_info0("data %s: %lld samples (%s), fingerprint %s; global batch %lld = %d ranks × %lld × %d micro-batches",
            r.recipe.data.path.c_str(), (long long)r.dataset->size(), data::sample_kind_name(info.kind),
            r.dataset->fingerprint().c_str(), (long long)gb, r.world_size, (long long)b, r.accum);
  return absl::OkStatus();
}

// Data-parallel gradient reduction: buckets (the store's gradient segments) start reducing from the
// grad-ready hooks: all-reduced, or with ZeRO-1 reduced piece by piece to the ranks that own them.
void attach_reducer(Run& r) {
  if (r.world_size <= 1) return;
  models::ParameterStore& s = *r.model.store;
  dist::broadcast_parameters(r.world->comm(), s.flat_params());
  s.refresh_compute_copy();
  r.ema.copy_(s.flat_params());
  dist::GradReducerOptions opt;
  opt.bucket_bytes = int64_t(r.recipe.dist.bucket_mb * 1024 * 1024);
  opt.wire_dtype = r.recipe.dist.reduce_dtype == "bf16" ? DType::BF16 : DType::F32;
  opt.owners = r.zero;
  // the buckets are the store's gradient segments (planned with the same byte limit)
  r.reducer = std::make_unique<dist::GradReducer>(r.world->comm(), s.grad_segments(), s.size(),
                                                  [&s](int k) { return s.segment_grads(k); }, opt);
  for (int i = 0; i < s.size(); ++i) {
    autograd::Variable v = s.var(i);
    dist::GradReducer* red = r.reducer.get();
    v.set_grad_ready_hook([red, i] { red->mark_ready(i); });
  }
  if (r.zero)
    log_info0("data parallel over %d ranks (%s), ZeRO-1: %zu gradient buckets of <= %.0f MB reduced during backward "
              "to the ranks owning them (in f32: dist.reduce_dtype is for all-reduce), updated parameters all-gathered",
              r.world_size, r.world->comm().backend_name(), r.reducer->buckets().size(), r.recipe.dist.bucket_mb);
  else
    log_info0("data parallel over %d ranks (%s), %zu gradient buckets of <= %.0f MB, reduced in %s", r.world_size,
              r.world->comm().backend_name(), r.reducer->buckets().size(), r.recipe.dist.bucket_mb,
              r.recipe.dist.reduce_dtype.c_str());
}

// ---- one optimizer step -----------------------------------------------------------------------------

double learning_rate(const OptimizerSection& o, int64_t step, int64_t max_steps) {
  double lr = o.lr;
  if (o.warmup_steps > 0 && step < o.warmup_steps) return lr * double(step + 1) / double(o.warmup_steps);
  if (o.schedule == "cosine") {
    double t = double(step - o.warmup_steps) / double(std::max<int64_t>(1, max_steps - o.warmup_steps));
    lr = o.min_lr + 0.5 * (lr - o.min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, t)));
  }
  return lr;
}

double ema_decay(const EmaSection& e, int64_t step) {
  if (e.warmup_steps <= 0) return e.decay;
  return std::min(e.decay, (1.0 + double(step)) / (10.0 + double(step)));
}

// Data in the model's range: pixels (x/127.5 − 1) or latents as stored, in the residual dtype.
Tensor model_input(const data::Batch& b) {
  Tensor x = b.x.to(DType::F32);
  if (b.x.dtype() != DType::U8) return x;
  autograd::NoGradGuard ng;
  return autograd::scale_shift(autograd::Variable(x), 1.0 / 127.5, -1.0).value();
}

models::TrainBatch train_batch(const Run& r, const data::Batch& b) {
  models::TrainBatch tb;
  tb.x0 = model_input(b);
  tb.seed = uint64_t(r.recipe.run.seed);
  std::vector<int32_t> labels = b.labels.to_vector<int32_t>();
  if (r.model.config.has_label_table())
    for (int32_t& y : labels)
      if (y < 0) y = r.model.config.num_classes;  // unlabelled samples train the null class
  tb.labels = r.model.config.has_label_table() ? labels : std::vector<int32_t>();
  for (size_t i = 0; i < b.sample_ids.size(); ++i) {
    uint64_t e = uint64_t(b.epochs[i]), g = uint64_t(b.sample_ids[i]);
    tb.timestep_keys.push_back(data::sample_key(tb.seed, e, g, data::KeyPurpose::Timestep));
    tb.noise_keys.push_back(data::sample_key(tb.seed, e, g, data::KeyPurpose::Noise));
    tb.label_drop_keys.push_back(data::sample_key(tb.seed, e, g, data::KeyPurpose::LabelDrop));
    tb.drop_path_keys.push_back(data::sample_key(tb.seed, e, g, data::KeyPurpose::DropPath));
  }
  return tb;
}

absl::StatusOr<StepResult> train_step(Run& r, bool want_stop) {
  models::ParameterStore& s = *r.model.store;
  s.zero_grads();
  // per-sample weight so that the reduced gradient is the mean over the global batch
  const double weight = 1.0 / double(r.recipe.train.micro_batch * r.accum);
  std::vector<Tensor> terms;
  double data_wait = 0;
  for (int m = 0; m < r.accum; ++m) {
    if (r.reducer) r.reducer->set_reduce(m == r.accum - 1);
    Clock::time_point wait_from = Clock::now();
    absl::StatusOr<data::Batch> batch = r.loader->next();
    data_wait += std::chrono::duration<double>(Clock::now() - wait_from).count();
    if (!batch.ok()) return batch.status();
    models::TrainLoss tl = r.model.diffusion->training_loss(*r.model.model, train_batch(r, *batch), weight, true);
    tl.loss.backward();
    terms.push_back(tl.terms);
  }
  // buckets no backward reached are reduced now; segment_grads (the reducer's bucket function) zeroes
  // the gradients nothing wrote before they travel
  if (r.reducer) r.reducer->finish();
  // local statistics, then one agreement over ranks
  dist::LocalStepStats local;
  local.grad_sq_sum = r.zero ? models::grad_sum_squares(s, r.zero->begin(r.rank), r.zero->end(r.rank))
                             : models::grad_sum_squares(s);
  local.grad_is_sharded = r.zero.has_value();
  double loss = 0, mse = 0, vb = 0, n = 0;
  for (const Tensor& t : terms) {
    std::vector<double> v = t.to_vector<double>();
    for (size_t i = 0; i + 1 < v.size(); i += 2) {
      mse += v[i];
      vb += v[i + 1];
      n += 1;
    }
  }
  loss = mse + vb;
  local.nonfinite = !std::isfinite(loss);
  local.sums = {loss, mse, vb, n, want_stop ? 1.0 : 0.0};
  StepResult out;
  out.data_wait_s = data_wait;
  if (r.world_size > 1) {
    dist::AgreedStep a = dist::agree_step(r.world->comm(), local);
    out.grad_norm = a.grad_norm;
    out.skipped = a.skip;
    out.sums = a.sums;
  } else {
    out.grad_norm = std::sqrt(local.grad_sq_sum);
    out.skipped = local.nonfinite || !std::isfinite(out.grad_norm);
    out.sums = local.sums;
  }
  if (out.skipped) {  // every rank skips this step (the gradients are discarded)
    s.zero_grads();
    return out;
  }
  // clip, AdamW (refreshing the bf16 compute copy), EMA
  autograd::AdamWConfig cfg;
  const OptimizerSection& o = r.recipe.optimizer;
  cfg.lr = learning_rate(o, r.step, r.recipe.run.max_steps);
  cfg.beta1 = o.beta1;
  cfg.beta2 = o.beta2;
  cfg.eps = o.eps;
  cfg.weight_decay = o.weight_decay;
  double clip = dist::clip_coefficient(out.grad_norm, o.grad_clip);
  Tensor scale = Tensor::full(Shape{1}, clip, DType::F32);
  if (r.zero) {
    // this rank updates its shard; then every rank gathers every shard (and rounds its bf16 copy)
    models::adamw_step(s, r.adam_m, r.adam_v, cfg, r.step + 1, scale, Tensor(), 0.0, r.zero->begin(r.rank));
    dist::zero1_all_gather(r.world->comm(), s.flat_params(), *r.zero);
    s.refresh_compute_copy();
    autograd::ema_update(r.ema, s.flat_params(), ema_decay(r.recipe.ema, r.step));
  } else {  // the EMA in the optimizer's pass
    models::adamw_step(s, r.adam_m, r.adam_v, cfg, r.step + 1, scale, r.ema, ema_decay(r.recipe.ema, r.step));
  }
  s.zero_grads();  // gradient segments go back to the allocator now, before any evaluation or sampling
  return out;
}

// ---- cadence blocks -----------------------------------------------------------------------------------

void log_progress(Run& r, Interval& iv, double lr) {
  double secs = std::chrono::duration<double>(Clock::now() - iv.begin).count();
  double ips = iv.samples / std::max(secs, 1e-9);
  double run_secs = std::chrono::duration<double>(Clock::now() - r.started).count();
  double eta = iv.steps > 0 ? double(r.recipe.run.max_steps - r.step) * secs / iv.steps : 0;
  if (r.recipe.run.max_minutes > 0) eta = std::min(eta, r.recipe.run.max_minutes * 60 - run_secs);
  eta = std::max(eta, 0.0);
  // per GPU: images/s is the global rate, the ceiling one GPU's
  double mfu = r.gemm_tflops > 0 ? ips * r.flops_per_image / (r.gemm_tflops * 1e12 * r.world_size) : 0;
  double n = std::max(iv.samples, 1.0);
  std::string mfu_s = r.gemm_tflops > 0 ? absl::StrFormat(" | MFU %.1f%%", 100 * mfu) : "";
  double wait_ms = 1e3 * iv.data_wait_s / std::max(iv.steps + iv.skipped, 1.0);
  log_info0("step %lld | loss %.4f (mse %.4f, vb %.4f) | grad norm %.3f | lr %.2e | %.1f img/s%s | data wait %.2f ms/step | ETA %s%s",
            (long long)r.step, iv.loss / n, iv.mse / n, iv.vb / n, iv.grad_norm / std::max(iv.steps, 1.0), lr, ips,
            mfu_s.c_str(), wait_ms, absl::StrFormat("%dm%02ds", int64_t(eta) / 60, int64_t(eta) % 60).c_str(),
            iv.skipped > 0 ? absl::StrFormat(" | skipped %d", int64_t(iv.skipped)).c_str() : "");
  if (r.rank == 0 && r.metrics.is_open()) {
    data::Json j = data::Json::object();
    j.set("step", data::Json::integer(r.step)).set("loss", data::Json::number(iv.loss / n));
    j.set("mse", data::Json::number(iv.mse / n)).set("vb", data::Json::number(iv.vb / n));
    j.set("grad_norm", data::Json::number(iv.grad_norm / std::max(iv.steps, 1.0))).set("lr", data::Json::number(lr));
    j.set("images_per_s", data::Json::number(ips)).set("mfu", data::Json::number(mfu));
    j.set("skipped", data::Json::integer(int64_t(iv.skipped))).set("elapsed_s", data::Json::number(run_secs));
    j.set("data_wait_ms", data::Json::number(wait_ms));
    r.metrics << j.dump(0) << "\n";
    r.metrics.flush();
  }
  iv = Interval{};
}

// A grid from the EMA weights with fixed seeds and labels (rank 0; the weights are restored after).
void write_samples(Run& r) {
  if (r.rank != 0) return;
  const SampleSection& sc = r.recipe.sample;
  const models::DrwkvConfig& c = r.model.config;
  std::vector<int32_t> labels;
  std::vector<int64_t> rows = sc.labels;
  if (rows.empty())
    for (int64_t y = 0; y < std::min<int64_t>(c.num_classes, 10); ++y) rows.push_back(y);
  for (int64_t y : rows)
    for (int64_t k = 0; k < sc.per_label; ++k) labels.push_back(int32_t(y));
  models::ParameterStore& s = *r.model.store;
  Tensor backup = s.flat_params().clone();
  s.flat_params().copy_(r.ema);
  s.refresh_compute_copy();
  models::SampleOptions opt;
  opt.sampler = sc.sampler;
  opt.steps = int(sc.steps);
  opt.cfg_scale = c.has_label_table() ? sc.cfg_scale : 1.0;
  opt.seed = uint64_t(sc.seed);
  absl::StatusOr<Tensor> img = models::sample_images(*r.model.model, *r.model.diffusion, labels,
                                                     int(rows.size() * size_t(sc.per_label)), opt);
  s.flat_params().copy_(backup);
  s.refresh_compute_copy();
  if (!img.ok()) {
    log_warn("sample grid failed: %s", std::string(img.status().message()).c_str());
    return;
  }
  std::string path = (fs::path(r.run_dir) / "samples" / absl::StrFormat("step-%08d.png", r.step)).string();
  fs::create_directories(fs::path(path).parent_path());
  absl::Status st = write_png_grid(path, *img, int(sc.per_label));
  if (st.ok()) log_info0("wrote %s", path.c_str());
  else log_warn("%s", std::string(st.message()).c_str());
}

// The whole AdamW moment `state` in the store's layout: itself, or with ZeRO-1 every rank's shard
// gathered (a collective: every rank calls it; the gathered buffer lives only while it is written).
Tensor whole_optimizer_state(Run& r, const Tensor& state) {
  if (!r.zero) return state;
  Tensor whole = Tensor::zeros(r.model.store->flat_params().shape(), DType::F32, r.device);
  whole.narrow(0, r.zero->begin(r.rank), r.zero->shard_numel).copy_(state);
  dist::zero1_all_gather(r.world->comm(), whole, *r.zero);
  return whole;
}

absl::Status write_checkpoint(Run& r) {
  models::ParameterStore& s = *r.model.store;
  TensorGroup moments[2];
  for (int k = 0; k < 2; ++k) {
    Tensor whole = whole_optimizer_state(r, k == 0 ? r.adam_m : r.adam_v);
    if (r.rank == 0) moments[k] = group_from_flat(s, whole);
  }
  if (r.rank == 0) {
    Checkpoint c;
    c.meta.step = r.step;
    c.meta.nonfinite_streak = r.streak;
    c.meta.seed = uint64_t(r.recipe.run.seed);
    c.meta.resume_state = r.loader->position().to_json();
    c.meta.dataset_fingerprint = r.dataset->fingerprint();
    c.meta.recipe_yaml = to_yaml(r.recipe);
    c.meta.model_name = r.model.config.name;
    c.meta.world_size = r.world_size;
    c.meta.parameter_count = s.parameter_count();
    c.groups["params"] = group_from_flat(s, s.flat_params());
    c.groups["ema"] = group_from_flat(s, r.ema);
    c.groups["optimizer/m"] = std::move(moments[0]);
    c.groups["optimizer/v"] = std::move(moments[1]);
    absl::Status st = save_checkpoint(r.ckpt_dir, c, r.recipe.checkpoint.keep_last);
    if (!st.ok()) return st;  // the others stop at the watchdog's deadline with this rank named
    log_info0("checkpoint %s", checkpoint_path(r.ckpt_dir, r.step).c_str());
  }
  // every rank records it: the decisions that follow (a final checkpoint or not) must be the same
  r.last_checkpoint = checkpoint_path(r.ckpt_dir, r.step);
  if (r.world_size > 1) r.world->comm().barrier();  // nobody runs ahead of a checkpoint being written
  return absl::OkStatus();
}

// Data parallelism keeps one replica per rank: after the run every rank must hold the same bits.
absl::Status verify_replicas(Run& r) {
  if (r.world_size <= 1) return absl::OkStatus();
  Tensor host = r.model.store->flat_params().to(Device::cpu());
  uint64_t h = data::xxh64(host.data(), host.nbytes());
  double mine[2] = {double(h >> 32), double(h & 0xffffffffu)};  // exact in doubles
  std::vector<double> all(size_t(2 * r.world_size));
  r.world->comm().all_gather_host(mine, all);
  for (int k = 1; k < r.world_size; ++k)
    if (all[size_t(2 * k)] != all[0] || all[size_t(2 * k + 1)] != all[1])
      return absl::InternalError(absl::StrFormat("weights differ between rank 0 and rank %d after step %d", k, r.step));
  log_info0("weights are bit-identical on all %d ranks (xxh64 %016llx)", r.world_size, (unsigned long long)h);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainSummary> train(const Recipe& recipe) {
  Run r;
  r.recipe = recipe;
  r.started = Clock::now();
  absl::Status st = start_world(r);
  if (!st.ok()) return st;
  r.run_dir = recipe.run.out_dir;
  r.ckpt_dir = (fs::path(r.run_dir) / "checkpoints").string();
  log_info0("drwkv %s, recipe %s; resolved:\n%s", code_version().c_str(), recipe.source.c_str(), to_yaml(recipe).c_str());
  st = build_model_and_state(r);
  if (!st.ok()) return st;
  absl::StatusOr<std::string> position = resume(r);
  if (!position.ok()) return position.status();
  st = open_data(r, *position);
  if (!st.ok()) return st;
  attach_reducer(r);
  if (r.rank == 0) {
    fs::create_directories(r.run_dir);
    r.metrics.open((fs::path(r.run_dir) / recipe.log.metrics_file).string(), std::ios::app);
  }
  TrainSummary summary;
  Interval iv;
  // images/s over the run: from the end of the first step (start-up work: allocations, plans) to the end
  // of the last, periodic checkpoints and grids included, the final checkpoint not
  Clock::time_point measured_from = Clock::now(), measured_to = measured_from;
  int64_t measured_images = 0, first_step = r.step;
  while (r.step < recipe.run.max_steps) {
    bool time_up = recipe.run.max_minutes > 0 &&
                   std::chrono::duration<double>(Clock::now() - r.started).count() > recipe.run.max_minutes * 60;
    std::optional<dist::Watchdog::Scope> watched;  // heartbeat step + deadline (multi-rank runs)
    if (r.world_size > 1) watched.emplace(r.world->watch_step(r.step));
    absl::StatusOr<StepResult> res = train_step(r, time_up);
    watched.reset();
    if (!res.ok()) return res.status();
    iv.loss += res->sums[0];
    iv.mse += res->sums[1];
    iv.vb += res->sums[2];
    iv.samples += res->sums[3];
    iv.data_wait_s += res->data_wait_s;
    if (r.step == first_step) {  // the first step includes start-up work (allocations, plans)
      measured_from = Clock::now();
    } else {
      measured_images += int64_t(res->sums[3]);
      measured_to = Clock::now();
    }
    if (res->skipped) {
      ++r.streak;
      ++r.skipped;
      iv.skipped += 1;
      log_warn("step %lld skipped: non-finite loss or gradient on some rank (grad norm %g); %lld in a row",
               (long long)r.step, res->grad_norm, (long long)r.streak);
      if (r.streak >= recipe.optimizer.max_nonfinite_steps)
        return absl::AbortedError(absl::StrFormat(
            "stopping: %d consecutive steps had non-finite losses or gradients (optimizer.max_nonfinite_steps); the "
            "last good checkpoint is %s", r.streak, r.last_checkpoint.empty() ? "none" : r.last_checkpoint));
      continue;
    }
    r.streak = 0;
    ++r.step;
    iv.steps += 1;
    iv.grad_norm += res->grad_norm;
    bool stop = res->sums[4] > 0;  // rank 0's clock decides for everyone
    if (r.step % recipe.log.every_steps == 0 || stop) log_progress(r, iv, learning_rate(recipe.optimizer, r.step - 1, recipe.run.max_steps));
    if (recipe.sample.every_steps > 0 && r.step % recipe.sample.every_steps == 0) write_samples(r);
    if (recipe.checkpoint.every_steps > 0 && r.step % recipe.checkpoint.every_steps == 0) {
      st = write_checkpoint(r);
      if (!st.ok()) return st;
    }
    if (stop) {
      log_info0("run.max_minutes (%.1f) reached at step %lld", recipe.run.max_minutes, (long long)r.step);
      break;
    }
  }
  if (r.last_checkpoint != checkpoint_path(r.ckpt_dir, r.step)) {
    st = write_checkpoint(r);
    if (!st.ok()) return st;
  }
  if (recipe.sample.every_steps > 0 && r.step % recipe.sample.every_steps != 0) write_samples(r);
  st = verify_replicas(r);
  if (!st.ok()) return st;
  double secs = std::chrono::duration<double>(measured_to - measured_from).count();
  summary.steps = r.step;
  summary.skipped = r.skipped;
  summary.images_per_s = secs > 0 ? double(measured_images) / secs : 0;
  summary.last_loss = iv.samples > 0 ? iv.loss / iv.samples : 0;
  summary.last_checkpoint = r.last_checkpoint;
  std::string peak;
  if (r.device.is_cuda())
    peak = absl::StrFormat(", peak GPU memory %.2f GiB",
                           double(cuda_allocator_stats(r.device.index).peak_bytes) / double(int64_t(1) << 30));
  log_info0("done: %lld steps, %.1f images/s%s, last checkpoint %s", (long long)r.step, summary.images_per_s,
            peak.c_str(), r.last_checkpoint.c_str());
  return summary;
}

}  // namespace drwkv::apps
