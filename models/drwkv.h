// The Diffusion-RWKV denoiser (MODEL.md §1): patch embedding, trainable 2-D sin-cos positional
// embedding, timestep and label embedders, Bi-RWKV blocks with adaLN-Zero, U-shaped long skips, and
// the fused output head; initialised exactly as §1.12 (so the output is zero at initialisation).
//
// Precision (docs/ARCHITECTURE.md): the residual stream is f32 (f64 in a gradient-check model), block
// branches run in the store's compute dtype, the conditioning path and small layers in f32.
#pragma once

#include <vector>

#include "autograd/variable.h"
#include "models/drwkv_config.h"
#include "models/parameter_store.h"

namespace drwkv::models {

struct DrwkvInputs {
  Tensor x;                // [B, C, H, W] noised input (f32, or f64 in a gradient-check model)
  std::vector<int32_t> t;  // [B] diffusion step 0..999 (original index)
  std::vector<int32_t> y;  // [B] class ids, num_classes = the null class; empty for unconditional
  // Stochastic depth: per-sample keys (e.g. data/ per-sample key of purpose "drop_path"); empty or
  // drop_path == 0 disables it (evaluation).
  std::vector<uint64_t> drop_path_keys;
  uint64_t seed = 0;
};

class DrwkvModel {
 public:
  // Registers the parameters in `store` (which the caller then finalises).
  DrwkvModel(const DrwkvConfig& config, ParameterStore& store);

  const DrwkvConfig& config() const { return config_; }
  Device device() const { return store_.device(); }
  // Predicted [B, Cout, H, W] (ε̂ in channels 0..C−1, the variance interpolation v after).
  autograd::Variable forward(const DrwkvInputs& in) const;
  // Activation checkpointing: `blocks` of the model's blocks (all when negative or larger, none when 0),
  // spread evenly over the depth, are recomputed in backward instead of keeping their activations;
  // each saves its block's activations for one more forward of the block.
  void set_checkpoint_blocks(int blocks) { checkpoint_blocks_ = blocks; }
  void set_activation_checkpointing(bool on) { set_checkpoint_blocks(on ? -1 : 0); }
  // Whether block l is recomputed in backward.
  bool checkpointed(int l) const;
  // Elementwise recomputation: the blocks that are not checkpointed recompute the LayerNorm-modulate
  // outputs and the spatial residual in backward from their inputs and GEMM outputs (4 of the 17
  // bf16-sized activations of a block; the gradients are bitwise the same).
  void set_recompute_elementwise(bool on) { recompute_elementwise_ = on; }
  bool recompute_elementwise() const { return recompute_elementwise_; }

 private:
  struct BlockParams {
    int ln0_w = -1, ln0_b = -1;
    int ln1_w, ln1_b, ln2_w, ln2_b;
    int decay, first, mu_k, mu_v, mu_r;
    int w_k, w_v, w_r, w_o;
    int att_ln_w = -1, att_ln_b = -1;  // key_norm only
    int cmu_k, cmu_r, w_1, w_2, w_rr;
    int ffn_ln_w = -1, ffn_ln_b = -1;  // key_norm only
    int skip_h = -1, skip_s = -1, skip_b = -1;  // out blocks
  };

  void register_block(int l, bool out_block);
  // What earlier blocks formed for block l besides its input h: its first LayerNorm-modulate output
  // (then it does not normalise h itself; blocks without a long skip or an input norm), and for a block
  // with a long skip h and the skip rounded to the branch dtype (the projection's operands).
  struct BlockInput {
    autograd::Variable x1;
    Tensor h_rounded, skip_rounded;
  };
  // Block l's output h; with `next_mod` (block l + 1's modulation) also block l + 1's x1, and with
  // `round_output` h in the branch dtype, both formed by the kernel that forms h.
  struct BlockOutput {
    autograd::Variable h, next_x1;
    Tensor h_rounded;
  };
  BlockOutput block(int l, const autograd::Variable& h, const autograd::Variable& mod, const autograd::Variable& skip,
                    const Tensor& drop_scale, bool recompute, const BlockInput& in = {},
                    const autograd::Variable& next_mod = {}, bool round_output = false) const;
  const autograd::Variable& p(int id) const { return store_.var(id); }
  DType branch_dtype() const;
  DType residual_dtype() const;

  DrwkvConfig config_;
  ParameterStore& store_;
  int checkpoint_blocks_ = 0;
  bool recompute_elementwise_ = false;
  int pe_w_, pe_b_, pos_;
  int t_w1_, t_b1_, t_w2_, t_b2_;
  int label_ = -1;
  int ada_w_, ada_b_;  // all blocks' adaLN Linears as one [nb·6D, D] weight: one GEMM per forward
  int lnf_w_, lnf_b_, final_ada_w_, final_ada_b_, out_w_, out_b_;
  std::vector<BlockParams> blocks_;
};

// Host-side tables (MODEL.md §1.3, §1.4).
// Timestep frequency embedding e(t): [B, 256] with cos first, then sin.
std::vector<float> timestep_frequencies(const std::vector<int32_t>& t, int dim = 256, double max_period = 10000.0);
// 2-D sin-cos positional embedding of a grid × grid raster: [grid², D] (sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)).
std::vector<float> sincos_pos_embed(int width, int grid);

}  // namespace drwkv::models
