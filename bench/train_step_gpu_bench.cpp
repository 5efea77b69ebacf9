// Full DRWKV training steps on one GPU: forward + backward of the hybrid diffusion loss, fused AdamW
// (f32 master weights, bf16 compute copy) and EMA, with random latents already on the device (the data
// loader is measured by loader_bench). Prints ms/step, images/s, tokens/s, peak memory and MFU (model
// FLOPs = 6 × token-path weights × tokens per image, over the bf16 GEMM ceiling measured in the same
// run), and optionally a per-kernel breakdown of one step.
//
// usage: train_step_gpu_bench [--configs NAME:BATCH:IMAGE[,…]] [--steps N] [--warmup N] [--profile]
//                             [--checkpoint-blocks [N]] [--recompute-elementwise] [--micro-batches N] [--no-ema]
//                             [--flat-grads]
//   --checkpoint-blocks: every block recomputed in backward, or N of them spread over the depth
//   --recompute-elementwise: the other blocks recompute their elementwise activations in backward
//   --micro-batches N: each step's batch in N forward/backward passes whose gradients add up before the
//     one optimizer step (the trainer's train.micro_batch = batch / N): the same optimisation step, with
//     the activations of 1/N of the batch alive at a time
//   --no-ema: the step without the EMA of the weights (no EMA buffer, AdamW without the EMA update), as
//     the reference's figures in ANCHORS.md are measured; the bars compare the step with EMA
//   --flat-grads: gradients in one persistent flat buffer instead of the trainer's segments, which are
//     allocated only from backward to the optimizer step (ParameterStore::set_grad_segments)
//   default configs: S/2:256:32,B/2:256:32,H/2:64:32,B/2:32:64,B/2:16:128 (image 32/64/128 latents =
//   256/1024/4096 tokens at patch 2)
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "apps/perf.h"
#include "autograd/optim.h"
#include "autograd/profiler.h"
#include "bench/bench_util.h"
#include "core/allocator.h"
#include "core/rng.h"
#include "core/stream.h"
#include "models/diffusion.h"
#include "models/drwkv.h"
#include "models/optimizer_step.h"

using namespace drwkv;

struct Config {
  std::string name;
  int batch = 0, image = 32;
};

int main(int argc, char** argv) {
  std::string configs = "S/2:256:32,B/2:256:32,H/2:64:32,B/2:32:64,B/2:16:128";
  int steps = 10, warmup = 3;
  bool profile = false;
  int ckpt_blocks = 0;  // blocks recomputed in backward; −1 = all
  bool recompute = false;
  int micro_batches = 1;
  bool use_ema = true;
  bool flat_grads = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--configs" && i + 1 < argc) configs = argv[++i];
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--warmup" && i + 1 < argc) warmup = std::atoi(argv[++i]);
    else if (a == "--profile") profile = true;
    else if (a == "--recompute-elementwise") recompute = true;
    else if (a == "--no-ema") use_ema = false;
    else if (a == "--flat-grads") flat_grads = true;
    else if (a == "--micro-batches" && i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &micro_batches) &&
             micro_batches > 0) ++i;
    else if (a == "--checkpoint-blocks") {
      int n = 0;
      ckpt_blocks = i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &n) && n >= 0 ? (++i, n) : -1;
    }
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  const Device dev = Device::cuda(0);
  double ceiling = apps::measure_gemm_ceiling_tflops(dev);
  std::printf("%s, %s; bf16 GEMM ceiling %.0f TFLOP/s (8192^3, this run)\n", bench::device_name(0).c_str(),
              bench::now_string().c_str(), ceiling);
  std::vector<std::vector<std::string>> table = {{"model", "tokens", "batch", "params", "ms/step", "images/s",
                                                  "tokens/s", "peak GiB", "model TFLOP/s", "MFU"}};
  std::vector<std::vector<std::string>> breakdown;
  for (absl::string_view spec : absl::StrSplit(configs, ',')) {
    std::vector<std::string> parts = absl::StrSplit(spec, ':');
    Config c;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &c.batch) || !absl::SimpleAtoi(parts[2], &c.image) ||
        c.batch <= 0 || c.image <= 0) {
      std::fprintf(stderr, "--configs: '%s' is not NAME:BATCH:IMAGE (e.g. B/2:256:32)\n", std::string(spec).c_str());
      return 2;
    }
    if (c.batch % micro_batches != 0) {
      std::fprintf(stderr, "--micro-batches %d does not divide the batch %d of '%s'\n", micro_batches, c.batch,
                   std::string(spec).c_str());
      return 2;
    }
    c.name = parts[0];
    models::DrwkvConfig base;
    base.in_channels = 4;
    base.image_size = c.image;
    base.num_classes = 1000;
    absl::StatusOr<models::DrwkvConfig> named = models::drwkv_named_config(c.name, base);
    if (!named.ok()) {
      std::fprintf(stderr, "--configs: %s\n", std::string(named.status().message()).c_str());
      return 2;
    }
    const models::DrwkvConfig& cfg = *named;
    models::ParameterStore store;
    models::DrwkvModel model(cfg, store);
    model.set_checkpoint_blocks(ckpt_blocks);
    model.set_recompute_elementwise(recompute);
    if (!flat_grads) store.set_grad_segments(models::ParameterStore::kDefaultSegmentBytes);
    store.finalize(dev, DType::BF16, 1);
    models::GaussianDiffusion diffusion(true);
    Tensor m = Tensor::zeros(store.flat_params().shape(), DType::F32, dev), v = m.clone();
    Tensor ema = use_ema ? store.flat_params().clone() : Tensor();
    const int mb = c.batch / micro_batches;
    Tensor x0 = Tensor::empty(Shape{c.batch, 4, c.image, c.image}, DType::F32, dev);
    rng_normal_(x0, 7, 1);
    std::vector<models::TrainBatch> micro(static_cast<size_t>(micro_batches));
    for (int j = 0; j < micro_batches; ++j) {
      models::TrainBatch& tb = micro[size_t(j)];
      tb.x0 = x0.narrow(0, int64_t(j) * mb, mb);
      tb.seed = 3;
      for (int i = j * mb; i < (j + 1) * mb; ++i) {
        tb.labels.push_back(i % 1000);
        tb.timestep_keys.push_back(uint64_t(4 * i));
        tb.noise_keys.push_back(uint64_t(4 * i + 1));
        tb.label_drop_keys.push_back(uint64_t(4 * i + 2));
        tb.drop_path_keys.push_back(uint64_t(4 * i + 3));
      }
    }
    autograd::AdamWConfig opt;
    int64_t step = 0;
    auto one_step = [&] {
      store.zero_grads();
      for (const models::TrainBatch& tb : micro) {
        models::TrainLoss tl = diffusion.training_loss(model, tb, 1.0 / c.batch, true);
        tl.loss.backward();
      }
      models::adamw_step(store, m, v, opt, ++step, Tensor(), ema, 0.9999);
    };
    for (int i = 0; i < warmup; ++i) one_step();
    cuda_device_synchronize(0);
    cuda_allocator_reset_peak(0);
    bench::Timing t = bench::time_gpu(0, one_step, 0, steps);
    double peak = double(cuda_allocator_stats(0).peak_bytes) / double(1 << 30);
    double ips = c.batch / (t.median_ms * 1e-3), flops = apps::training_flops_per_image(cfg);
    table.push_back({cfg.name, std::to_string(cfg.tokens()), std::to_string(c.batch),
                     absl::StrFormat("%.1fM", double(store.parameter_count()) / 1e6), bench::fmt(t.median_ms, 1),
                     bench::fmt(ips, 0), absl::StrFormat("%.0fk", ips * cfg.tokens() / 1e3), bench::fmt(peak, 1),
                     bench::fmt(ips * flops / 1e12, 0), absl::StrFormat("%.1f%%", 100 * ips * flops / (ceiling * 1e12))});
    int recomputed = 0;
    for (int l = 0; l < cfg.num_blocks(); ++l) recomputed += model.checkpointed(l) ? 1 : 0;
    std::printf("%s batch %d tokens %d: %.1f ms/step, %.0f images/s, peak %.1f GiB, %d of %d blocks checkpointed%s%s\n",
                cfg.name.c_str(), c.batch, cfg.tokens(), t.median_ms, ips, peak, recomputed, cfg.num_blocks(),
                std::string(recompute ? ", elementwise recomputation" : "")
                    .append(use_ema ? "" : ", no EMA")
                    .append(flat_grads ? ", flat gradient buffer" : "")
                    .c_str(),
                micro_batches > 1 ? absl::StrFormat(", %d micro-batches of %d", micro_batches, mb).c_str() : "");
    std::fflush(stdout);
    if (profile) {
      autograd::profiler_reset();
      autograd::profiler_enable(true);
      one_step();
      autograd::profiler_enable(false);
      std::vector<autograd::ProfileEntry> rep = autograd::profiler_report();
      double total = 0, idle = 0, host = 0;
      for (const auto& e : rep) {
        total += e.total_ms;
        idle += e.idle_before_ms;
        host += e.host_before_ms;
      }
      const std::string run = cfg.name + " b" + std::to_string(c.batch) + " T" + std::to_string(cfg.tokens());
      for (const auto& e : rep)
        breakdown.push_back({run, e.name, std::to_string(e.calls), bench::fmt(e.total_ms, 2),
                             absl::StrFormat("%.1f%%", 100 * e.total_ms / total), bench::fmt(e.idle_before_ms, 2),
                             bench::fmt(e.host_before_ms, 2)});
      breakdown.push_back({run, "(all)", "", bench::fmt(total, 2), "100%", bench::fmt(idle, 2), bench::fmt(host, 2)});
    }
  }
  std::printf("\n");
  bench::print_table(table);
  if (profile) {
    std::printf("\nPer-kernel breakdown of one step (sum of event-bracketed launches; idle before = the stream's "
                "idle time between the previous launch's end and these launches' starts; host before = the host's "
                "time between the previous launch call and these):\n");
    breakdown.insert(breakdown.begin(), {"run", "kernel", "calls", "ms", "share", "idle before ms", "host before ms"});
    bench::print_table(breakdown);
  }
  return 0;
}
