// Training recipes: YAML files (recipes/*.yaml) parsed into typed, validated structs.
//
// Every key is declared once (recipe.cpp: name, type, default, valid range or choices, help). Unknown
// keys, wrong types and out-of-range values are errors that name the file, the line and the key and
// say what would be valid. `--set key=value` overrides any key after the file is read (same checks).
// The resolved recipe (every key, defaults included) is printed at start and stored in checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace drwkv::apps {

struct RunSection {
  std::string name = "run";
  std::string out_dir = "runs/run";
  int64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda
  int64_t max_steps = 1000;
  double max_minutes = 0;       // wall-clock bound (0 = none): stops cleanly with a checkpoint
};

struct ModelSection {
  std::string config = "custom";  // custom | S/2 | S/4 | B/2 | ... | H/4 (MODEL.md §1.13)
  int64_t depth = 5;
  int64_t width = 128;
  int64_t patch = 2;
  int64_t in_channels = 4;
  int64_t image_size = 32;
  int64_t num_classes = 1000;
  bool learn_sigma = true;
  int64_t hidden_rate = 4;
  double drop_path = 0.1;
  double class_dropout = 0.1;
  bool key_norm = false;
  std::string bi_wkv = "exact";  // exact | official_compat
  bool activation_checkpointing = false;  // every block (checkpoint_blocks: some of them)
  int64_t checkpoint_blocks = 0;          // blocks recomputed in backward, spread over the depth
  bool recompute_elementwise = false;     // the other blocks recompute their elementwise activations
};

struct DataSection {
  std::string path;           // dataset directory (index.json)
  bool flip = true;
  int64_t threads = 2;
  int64_t prefetch = 4;
};

struct TrainSection {
  int64_t global_batch = 64;  // samples per optimizer step, over all ranks and micro-batches
  int64_t micro_batch = 64;   // samples per rank per forward/backward
  std::string precision = "auto";  // auto (bf16 on GPU, f32 on CPU) | f32 | bf16
};

struct OptimizerSection {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  std::string schedule = "constant";  // constant | cosine
  int64_t warmup_steps = 0;
  double min_lr = 1e-6;               // cosine floor
  double grad_clip = 1.0;             // global L2 norm; 0 = off
  int64_t max_nonfinite_steps = 10;   // consecutive skipped steps before the run stops
};

struct EmaSection {
  double decay = 0.9999;
  int64_t warmup_steps = 0;  // decay ramps as min(decay, (1 + s) / (10 + s)) over these steps
};

struct CheckpointSection {
  int64_t every_steps = 500;
  int64_t keep_last = 3;
  std::string resume = "none";  // none | auto | PATH
};

struct LogSection {
  int64_t every_steps = 10;
  std::string metrics_file = "metrics.jsonl";
};

struct SampleSection {
  int64_t every_steps = 500;       // 0 = never
  std::vector<int64_t> labels;     // one row per label in the grid (empty: first min(num_classes, 10))
  int64_t per_label = 8;           // columns
  int64_t steps = 50;
  std::string sampler = "ddim";    // ddpm | ddim
  double cfg_scale = 4.0;
  int64_t seed = 1234;
};

struct DistSection {
  std::string backend = "auto";      // auto (NCCL on GPU, MPI on CPU) | nccl | mpi
  std::string rendezvous = "auto";   // auto | mpi | file | tcp
  std::string rendezvous_path;       // file route: shared directory
  std::string rendezvous_address;    // tcp route: host:port of rank 0
  double bucket_mb = 25;
  std::string reduce_dtype = "f32";  // gradient all-reduce on the wire: f32 | bf16 (half the bytes)
  double timeout_s = 600;
  // ZeRO-1: each rank keeps the AdamW moments of 1/W of the parameters (gradients reduce-scattered,
  // updated parameters all-gathered); checkpoints still hold the whole state
  bool zero1 = false;
};

struct Recipe {
  std::string source;  // file the recipe came from
  RunSection run;
  ModelSection model;
  DataSection data;
  TrainSection train;
  OptimizerSection optimizer;
  EmaSection ema;
  CheckpointSection checkpoint;
  LogSection log;
  SampleSection sample;
  DistSection dist;
};

// Reads and validates a recipe file, then applies `overrides` ("key=value", YAML value syntax).
absl::StatusOr<Recipe> load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text (tests; `source` names it in messages).
absl::StatusOr<Recipe> parse_recipe(const std::string& yaml_text, const std::string& source,
                                    const std::vector<std::string>& overrides = {});
// Every key with its resolved value, as YAML (printed at start, stored in checkpoints).
std::string to_yaml(const Recipe& r);
// The declared keys ("section.key"), for help texts.
std::vector<std::string> recipe_keys();

}  // namespace drwkv::apps
