// DRWKV configurations (MODEL.md §1.13): the repository configs S, B, M, L, H with patch 2 or 4, tiny
// configs for tests, and the closed-form parameter and MAC counts that tests check the built model
// against.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "autograd/bi_wkv_ops.h"

namespace drwkv::models {

struct DrwkvConfig {
  std::string name = "custom";
  int depth = 13;          // L (2·floor(L/2) + 1 blocks are built; all official configs are odd)
  int width = 384;         // D (divisible by 4)
  int patch = 2;           // P
  int in_channels = 4;     // C: 3 pixels, 4 latents, 1 for Fashion-MNIST
  int image_size = 32;     // H = W of the network input (latent or pixel grid)
  int num_classes = 1000;  // 0 = unconditional (no label table)
  bool learn_sigma = true; // output 2C channels (ε and the variance interpolation v)
  int hidden_rate = 4;     // channel-mix hidden width K = hidden_rate · D
  double drop_path = 0.1;  // stochastic depth: p_l = drop_path · l / L
  double class_dropout = 0.1;  // label drop probability (table gets a null row when > 0)
  bool key_norm = false;   // LayerNorm on the WKV output / channel-mix key (off in the official runs)
  bool trainable_pos_embed = true;  // MODEL.md §1.3: trainable in DRWKV (DiT freezes it)
  autograd::BiWkvVariant bi_wkv = autograd::BiWkvVariant::Exact;

  int grid() const { return image_size / patch; }
  int tokens() const { return grid() * grid(); }
  int half_depth() const { return depth / 2; }
  int num_blocks() const { return 2 * half_depth() + 1; }
  int out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  bool has_label_table() const { return num_classes > 0; }
  int label_rows() const { return num_classes + (class_dropout > 0 ? 1 : 0); }
};

// "S/2", "B/4", "H/2", ... (MODEL.md §1.13 repository configs) for a given input: the model is
// otherwise as configured in `base` (channels, image size, classes, learn_sigma, ...).
absl::StatusOr<DrwkvConfig> drwkv_named_config(const std::string& name, const DrwkvConfig& base);
// Checks a configuration for consistency; the message names the offending field.
absl::Status validate(const DrwkvConfig& c);

// MODEL.md §1.13 parameter count formula.
int64_t drwkv_parameter_count(const DrwkvConfig& c);
// Multiply-accumulates of all Linear/Conv layers per sample (MODEL.md §1.13 "Compute").
int64_t drwkv_macs(const DrwkvConfig& c);
// Weights on the token path (applied once per token): used for model FLOPs = 6 · weights · tokens per
// training sample (the count ANCHORS.md uses for MFU).
int64_t drwkv_token_path_weights(const DrwkvConfig& c);

}  // namespace drwkv::models
