// DRWKV configurations and closed-form counts (models/drwkv_config.h).
#include "models/drwkv_config.h"

#include <map>

#include "absl/strings/str_format.h"

namespace drwkv::models {

absl::StatusOr<DrwkvConfig> drwkv_named_config(const std::string& name, const DrwkvConfig& base) {
  static const std::map<std::string, std::pair<int, int>> sizes = {
      {"S", {13, 384}}, {"B", {25, 384}}, {"M", {25, 512}}, {"L", {37, 768}}, {"H", {37, 1024}}};
  auto slash = name.find('/');
  if (slash == std::string::npos)
    return absl::InvalidArgumentError(absl::StrFormat("model name '%s': expected SIZE/PATCH such as S/2 or H/4", name));
  auto it = sizes.find(name.substr(0, slash));
  std::string patch = name.substr(slash + 1);
  if (it == sizes.end() || (patch != "2" && patch != "4"))
    return absl::InvalidArgumentError(
        absl::StrFormat("model name '%s': size must be one of S, B, M, L, H and patch 2 or 4", name));
  DrwkvConfig c = base;
  c.name = "DRWKV-" + name;
  c.depth = it->second.first;
  c.width = it->second.second;
  c.patch = patch == "2" ? 2 : 4;
  absl::Status st = validate(c);
  if (!st.ok()) return st;
  return c;
}

absl::Status validate(const DrwkvConfig& c) {
  auto bad = [](const char* field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrFormat("model.%s: %s", field, why));
  };
  if (c.depth < 1) return bad("depth", absl::StrFormat("must be >= 1, got %d", c.depth));
  if (c.width < 4 || c.width % 4 != 0) return bad("width", absl::StrFormat("must be a positive multiple of 4 (q-shift quarters, 2-D sin-cos embedding), got %d", c.width));
  if (c.patch < 1) return bad("patch", absl::StrFormat("must be >= 1, got %d", c.patch));
  if (c.in_channels < 1) return bad("in_channels", absl::StrFormat("must be >= 1, got %d", c.in_channels));
  if (c.image_size < c.patch || c.image_size % c.patch != 0)
    return bad("image_size", absl::StrFormat("%d is not a multiple of the patch size %d", c.image_size, c.patch));
  if (c.num_classes < 0) return bad("num_classes", "must be >= 0 (0 = unconditional)");
  if (c.hidden_rate < 1) return bad("hidden_rate", "must be >= 1");
  if (c.drop_path < 0 || c.drop_path >= 1) return bad("drop_path", "must be in [0, 1)");
  if (c.class_dropout < 0 || c.class_dropout >= 1) return bad("class_dropout", "must be in [0, 1)");
  return absl::OkStatus();
}

int64_t drwkv_parameter_count(const DrwkvConfig& c) {
  int64_t D = c.width, Lh = c.half_depth(), nb = c.num_blocks(), J = c.tokens(), p = c.patch;
  int64_t K = int64_t(c.hidden_rate) * D;
  // per block: spatial 4D² + 5D, channel (2·K·D + D²) + 2D, adaLN 6D² + 6D, LN1 + LN2 4D
  int64_t block = (4 * D * D + 5 * D) + (2 * K * D + D * D + 2 * D) + (6 * D * D + 6 * D) + 4 * D;
  if (c.key_norm) block += 2 * D + 2 * K;
  int64_t n = nb * block + Lh * (2 * D * D + D) + 2 * D + (D * D + 258 * D);
  if (c.has_label_table()) n += int64_t(c.label_rows()) * D;
  n += J * D + (int64_t(c.in_channels) * p * p + 1) * D + 2 * D + (2 * D * D + 2 * D);
  n += p * p * c.out_channels() * (D + 1);
  return n;
}

int64_t drwkv_token_path_weights(const DrwkvConfig& c) {
  int64_t D = c.width, Lh = c.half_depth(), nb = c.num_blocks(), p = c.patch;
  int64_t K = int64_t(c.hidden_rate) * D;
  int64_t per_block = 4 * D * D + (2 * K * D + D * D);  // K, V, R, O + W1, W2, W_R
  return nb * per_block + Lh * 2 * D * D + int64_t(c.in_channels) * p * p * D + p * p * c.out_channels() * D;
}

int64_t drwkv_macs(const DrwkvConfig& c) {
  int64_t D = c.width, nb = c.num_blocks();
  // token path once per token, adaLN (6D² per block), final adaLN (2D²) and the timestep MLP once per sample
  return drwkv_token_path_weights(c) * c.tokens() + nb * 6 * D * D + 2 * D * D + (256 * D + D * D);
}

}  // namespace drwkv::models
