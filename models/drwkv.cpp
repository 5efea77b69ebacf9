// The Diffusion-RWKV denoiser (models/drwkv.h; MODEL.md §1).
#include "models/drwkv.h"

#include <cmath>
#include <functional>
#include <memory>
#include <tuple>

#include "absl/strings/str_format.h"
#include "autograd/bi_wkv_ops.h"
#include "autograd/drwkv_ops.h"
#include "autograd/elementwise_ops.h"
#include "autograd/linear_ops.h"
#include "autograd/norm_ops.h"
#include "autograd/recompute.h"
#include "autograd/shape_ops.h"
#include "core/philox.h"

namespace drwkv::models {
using autograd::Variable;

namespace {
std::string bname(int l, const char* what) { return absl::StrFormat("blocks.%d.%s", l, what); }

// The token-shift mixes of x (held, or recomputed through x_again), recomputed once for the several GEMMs
// whose weight gradients need them instead of being stored from forward to backward.
autograd::RecomputedPtr recompute_mixes(const Variable& x, std::vector<Variable> mus, int grid, int consumers,
                                        autograd::RecomputedPtr x_again) {
  return std::make_shared<autograd::Recomputed>(
      [xs = autograd::SavedInput(x.value(), std::move(x_again)), mus, grid] {
        std::vector<Variable> m;
        for (const Variable& mu : mus) m.push_back(mu.detach());
        std::vector<Tensor> out;
        for (const Variable& v : autograd::qshift_mix(Variable(xs.get()), m, grid, grid)) out.push_back(v.value());
        return out;
      },
      consumers);
}

// MODEL.md §1.12 per-layer ratios; a single-block model uses r0 = 0.
double ratio0(int l, int depth) { return depth > 1 ? double(l) / double(depth - 1) : 0.0; }
double ratio1(int l, int depth) { return 1.0 - double(l) / double(depth); }
}  // namespace

std::vector<float> timestep_frequencies(const std::vector<int32_t>& t, int dim, double max_period) {
  int half = dim / 2;
  std::vector<float> out(t.size() * size_t(dim), 0.0f);
  for (size_t b = 0; b < t.size(); ++b) {
    for (int m = 0; m < half; ++m) {
      // float32 frequencies and products, as the reference computes them
      float freq = std::exp(-std::log(float(max_period)) * float(m) / float(half));
      float a = float(t[b]) * freq;
      out[b * size_t(dim) + size_t(m)] = std::cos(a);
      out[b * size_t(dim) + size_t(half + m)] = std::sin(a);
    }
  }
  return out;
}

std::vector<float> sincos_pos_embed(int width, int grid) {
  int d4 = width / 4;
  std::vector<float> pe(static_cast<size_t>(grid) * size_t(grid) * size_t(width));
  for (int y = 0; y < grid; ++y)
    for (int x = 0; x < grid; ++x) {
      float* row = pe.data() + (size_t(y) * size_t(grid) + size_t(x)) * size_t(width);
      for (int m = 0; m < d4; ++m) {
        double omega = std::pow(10000.0, -double(m) / double(d4));  // float64, stored as float32
        row[m] = float(std::sin(x * omega));
        row[d4 + m] = float(std::cos(x * omega));
        row[2 * d4 + m] = float(std::sin(y * omega));
        row[3 * d4 + m] = float(std::cos(y * omega));
      }
    }
  return pe;
}

DrwkvModel::DrwkvModel(const DrwkvConfig& config, ParameterStore& store) : config_(config), store_(store) {
  const int64_t D = config.width, P = config.patch, C = config.in_channels, nb = config.num_blocks();
  const int64_t K = int64_t(config.hidden_rate) * D;
  (void)K;
  ParameterStore& s = store_;
  pe_w_ = s.add("x_embedder.proj.weight", Shape{D, C * P * P}, Precision::Master, init_xavier_uniform(C * P * P, D));
  pe_b_ = s.add("x_embedder.proj.bias", Shape{D}, Precision::Master, init_zeros());
  std::vector<float> table = sincos_pos_embed(int(D), config.grid());
  pos_ = s.add("pos_embed", Shape{int64_t(config.tokens()), D}, Precision::Master,
               init_formula([table](int64_t i) { return table[size_t(i)]; }));
  t_w1_ = s.add("t_embedder.mlp.0.weight", Shape{D, 256}, Precision::Master, init_normal(0.02));
  t_b1_ = s.add("t_embedder.mlp.0.bias", Shape{D}, Precision::Master, init_zeros());
  t_w2_ = s.add("t_embedder.mlp.2.weight", Shape{D, D}, Precision::Master, init_normal(0.02));
  t_b2_ = s.add("t_embedder.mlp.2.bias", Shape{D}, Precision::Master, init_zeros());
  if (config.has_label_table())
    label_ = s.add("y_embedder.embedding_table.weight", Shape{int64_t(config.label_rows()), D}, Precision::Master,
                   init_normal(0.02));
  // rows l·6D .. (l+1)·6D − 1 belong to block l; 2-D so the GEMM uses the leaf itself (a view of a bf16
  // leaf would make its gradient bf16)
  ada_w_ = s.add("blocks.adaLN_modulation.weight", Shape{nb * 6 * D, D}, Precision::Compute, init_zeros());
  ada_b_ = s.add("blocks.adaLN_modulation.bias", Shape{nb * 6 * D}, Precision::Master, init_zeros());
  for (int l = 0; l < nb; ++l) register_block(l, l > config.half_depth());
  lnf_w_ = s.add("norm_f.weight", Shape{D}, Precision::Master, init_constant(1.0f));
  lnf_b_ = s.add("norm_f.bias", Shape{D}, Precision::Master, init_zeros());
  final_ada_w_ = s.add("final_layer.adaLN_modulation.weight", Shape{2 * D, D}, Precision::Master, init_zeros());
  final_ada_b_ = s.add("final_layer.adaLN_modulation.bias", Shape{2 * D}, Precision::Master, init_zeros());
  out_w_ = s.add("final_layer.linear.weight", Shape{P * P * config.out_channels(), D}, Precision::Master, init_zeros());
  out_b_ = s.add("final_layer.linear.bias", Shape{P * P * config.out_channels()}, Precision::Master, init_zeros());
}

void DrwkvModel::register_block(int l, bool out_block) {
  ParameterStore& s = store_;
  const int64_t D = config_.width, K = int64_t(config_.hidden_rate) * D;
  const int L = config_.depth;
  const double r0 = ratio0(l, L), r1 = ratio1(l, L);
  BlockParams b;
  auto vec = [&](const char* what, Initializer init) { return s.add(bname(l, what), Shape{D}, Precision::Master, std::move(init)); };
  auto mat = [&](const char* what, int64_t out, int64_t in) {
    return s.add(bname(l, what), Shape{out, in}, Precision::Compute, init_xavier_uniform(in, out));
  };
  auto e = [D](int64_t i) { return double(i) / double(D); };
  if (l == 0) {
    b.ln0_w = vec("ln0.weight", init_constant(1.0f));
    b.ln0_b = vec("ln0.bias", init_zeros());
  }
  b.ln1_w = vec("ln1.weight", init_constant(1.0f));
  b.ln1_b = vec("ln1.bias", init_zeros());
  b.ln2_w = vec("ln2.weight", init_constant(1.0f));
  b.ln2_b = vec("ln2.bias", init_zeros());
  b.decay = vec("att.spatial_decay", init_formula([=](int64_t i) {
    double f = D > 1 ? double(i) / double(D - 1) : 0.0;
    return float(-5.0 + 8.0 * std::pow(f, 0.7 + 1.3 * r0));
  }));
  b.first = vec("att.spatial_first", init_formula([](int64_t i) {
    return float(std::log(0.3) + 0.5 * (double((i + 1) % 3) - 1.0));
  }));
  b.mu_k = vec("att.spatial_mix_k", init_formula([=](int64_t i) { return float(std::pow(e(i), r1)); }));
  b.mu_v = vec("att.spatial_mix_v", init_formula([=](int64_t i) { return float(std::pow(e(i), r1) + 0.3 * r0); }));
  b.mu_r = vec("att.spatial_mix_r", init_formula([=](int64_t i) { return float(std::pow(e(i), 0.5 * r1)); }));
  b.w_k = mat("att.key.weight", D, D);
  b.w_v = mat("att.value.weight", D, D);
  b.w_r = mat("att.receptance.weight", D, D);
  b.w_o = mat("att.output.weight", D, D);
  if (config_.key_norm) {
    b.att_ln_w = vec("att.key_norm.weight", init_constant(1.0f));
    b.att_ln_b = vec("att.key_norm.bias", init_zeros());
  }
  b.cmu_k = vec("ffn.spatial_mix_k", init_formula([=](int64_t i) { return float(std::pow(e(i), r1)); }));
  b.cmu_r = vec("ffn.spatial_mix_r", init_formula([=](int64_t i) { return float(std::pow(e(i), r1)); }));
  b.w_1 = mat("ffn.key.weight", K, D);
  b.w_2 = mat("ffn.value.weight", D, K);
  b.w_rr = mat("ffn.receptance.weight", D, D);
  if (config_.key_norm) {
    b.ffn_ln_w = s.add(bname(l, "ffn.key_norm.weight"), Shape{K}, Precision::Master, init_constant(1.0f));
    b.ffn_ln_b = s.add(bname(l, "ffn.key_norm.bias"), Shape{K}, Precision::Master, init_zeros());
  }
  if (out_block) {
    // W_skip [D, 2D] acts on concat(h, skip); kept as its two [D, D] halves, initialised with the fans of
    // the whole matrix (Xavier with fan_in 2D, fan_out D)
    b.skip_h = s.add(bname(l, "skip_linear.weight_h"), Shape{D, D}, Precision::Compute, init_xavier_uniform(2 * D, D));
    b.skip_s = s.add(bname(l, "skip_linear.weight_skip"), Shape{D, D}, Precision::Compute, init_xavier_uniform(2 * D, D));
    b.skip_b = s.add(bname(l, "skip_linear.bias"), Shape{D}, Precision::Master, init_zeros());
  }
  blocks_.push_back(b);
}

bool DrwkvModel::checkpointed(int l) const {
  const int nb = config_.num_blocks(), n = checkpoint_blocks_ < 0 || checkpoint_blocks_ > nb ? nb : checkpoint_blocks_;
  // block l is the one at which ⌊(l + 1)·n / nb⌋ steps up: n blocks, evenly spaced, the last one included
  return (int64_t(l) + 1) * n / nb > int64_t(l) * n / nb;
}

DType DrwkvModel::branch_dtype() const { return store_.compute_dtype(); }
DType DrwkvModel::residual_dtype() const { return store_.compute_dtype() == DType::F64 ? DType::F64 : DType::F32; }

DrwkvModel::BlockOutput DrwkvModel::block(int l, const Variable& h_in, const Variable& mod, const Variable& skip,
                                          const Tensor& drop_scale, bool recompute, const BlockInput& in,
                                          const Variable& next_mod, bool round_output) const {
  using namespace autograd;
  const BlockParams& b = blocks_[size_t(l)];
  const DType branch = branch_dtype();
  const int G = config_.grid();
  Tensor drop1 = drop_scale.defined() ? drop_scale.select(0, 0) : Tensor();
  Tensor drop2 = drop_scale.defined() ? drop_scale.select(0, 1) : Tensor();
  Variable h = h_in;
  DRWKV_ASSERT(!in.x1.defined() || (b.skip_h < 0 && b.ln0_w < 0),
               "block %d: a given x1 for a block that transforms its input", l);
  if (b.skip_h >= 0) {
    // f32 h and skip into the bf16 halves of W_skip, f32 output and bias (linear2 rounds its inputs once,
    // or takes the roundings the blocks that formed them wrote)
    h = linear2(h, p(b.skip_h), skip, p(b.skip_s), p(b.skip_b), in.h_rounded, in.skip_rounded);
  }
  if (b.ln0_w >= 0) h = layer_norm(h, p(b.ln0_w), p(b.ln0_b), 1e-5);
  // Memory: the GEMM inputs that are cheap functions of tensors kept anyway (token-shift mixes of the
  // LN output) are recomputed for the weight gradients instead of being stored (linear_recompute). The
  // spatial gate σ(r)·z is kept for W_o instead of z, whose only other reader was the gate's own
  // backward (which needs r and σ(r)·z only, kernels/gate.h). The channel mix's gate σ(r')·(W_2 k)
  // exists only inside its gated residual (receptance_gated_residual): never stored, never recomputed.
  // The squared-ReLU activation is kept instead of its pre-activation: its derivative 2·√y needs only
  // the activation, which the next GEMM keeps for its weight gradient.
  // The spatial residual h1 (f32) is not kept: the backward of the op that forms it with the channel
  // norm forms it again from the block input and the W_o output, which it reads anyway.
  // With `recompute` (set_recompute_elementwise) the elementwise results that backward needs are not
  // kept either but recomputed from the block input and the GEMM outputs (autograd/recompute.h): the
  // LayerNorm-modulate outputs x1, x2. σ(r)·z is kept: recomputing it needs a Bi-WKV forward, which
  // costs about what checkpointing whole blocks does per byte saved (H/2: 2.9 ms for 1.2 GiB), so
  // model.checkpoint_blocks is the knob beyond this one.
  // Numbers: the consumers of each recomputed value (its backward closures and other recomputations).
  const Tensor modv = mod.value();
  // spatial mix (MODEL.md §1.8)
  Variable x1 = in.x1.defined() ? in.x1 : layernorm_modulate(h, p(b.ln1_w), p(b.ln1_b), 1e-5, mod, 0, 1, branch);
  RecomputedPtr x1_again;
  if (recompute)
    x1_again = recomputed(
        [hv = h.value(), wv = p(b.ln1_w).value(), bv = p(b.ln1_b).value(), branch, modv] {
          return layernorm_modulate(Variable(hv), Variable(wv), Variable(bv), 1e-5, Variable(modv), 0, 1, branch)
              .value();
        },
        2);  // the q-shift's backward and the mixes
  std::vector<Variable> att_mus = {p(b.mu_k), p(b.mu_v), p(b.mu_r)};
  std::vector<Variable> kvr = qshift_mix(x1, att_mus, G, G, x1_again);
  auto mixes = recompute_mixes(x1, att_mus, G, 3, x1_again);
  x1 = Variable();
  // the three projections as one grouped GEMM per pass
  std::vector<Variable> kvr_out =
      linear_group(kvr, {p(b.w_k), p(b.w_v), p(b.w_r)}, [mixes](int i) { return mixes->get(i); });
  kvr.clear();
  Variable k = kvr_out[0], v = kvr_out[1], r = kvr_out[2];
  kvr_out.clear();
  Variable z = bi_wkv(p(b.decay), p(b.first), k, v, config_.bi_wkv);
  if (b.att_ln_w >= 0) z = layer_norm(z, p(b.att_ln_w), p(b.att_ln_b), 1e-5);
  // σ(r) ⊙ z is kept (W_o's weight gradient and the gate's backward both read it); z is not
  Variable att = linear(sigmoid_mul(r, z), p(b.w_o));
  // the spatial residual and the channel mix's norm (MODEL.md §1.9) from one kernel, in the forward and
  // in the recomputation of x2; h1 is never kept (their backward forms it again from h and att)
  RecomputedPtr x2_again;
  if (recompute)
    x2_again = recomputed(
        [hv = h.value(), av = att.value(), modv, drop1, wv = p(b.ln2_w).value(), bv = p(b.ln2_b).value(), branch] {
          return gated_layernorm_modulate_value(hv, av, modv, 2, drop1, wv, bv, 1e-5, 3, 4, branch);
        },
        2);  // the q-shift's backward and the mixes
  auto [h1, x2] = gated_residual_layernorm_modulate(h, att, mod, 2, drop1, p(b.ln2_w), p(b.ln2_b), 1e-5, 3, 4, branch);
  std::vector<Variable> ffn_mus = {p(b.cmu_k), p(b.cmu_r)};
  std::vector<Variable> kr = qshift_mix(x2, ffn_mus, G, G, x2_again);
  auto fmixes = recompute_mixes(x2, ffn_mus, G, 2, x2_again);
  x2 = Variable();
  Variable pre = linear_recompute(kr[0], p(b.w_1), [fmixes] { return fmixes->get(0); });
  Variable kk = relu_squared(pre);
  Variable kv;
  if (b.ffn_ln_w >= 0) {
    kv = linear(layer_norm(kk, p(b.ffn_ln_w), p(b.ffn_ln_b), 1e-5), p(b.w_2));
  } else {
    kv = linear(kk, p(b.w_2));
  }
  Variable rr = linear_recompute(kr[1], p(b.w_rr), [fmixes] { return fmixes->get(1); });
  kr.clear();
  // σ(rr) ⊙ kv inside the gated residual: the gated product is never formed, kept or recomputed; the
  // same kernel normalises the output for the next block when asked (forward and backward)
  BlockOutput o;
  Tensor* rounded = round_output ? &o.h_rounded : nullptr;
  if (next_mod.defined()) {
    const BlockParams& nb = blocks_[size_t(l) + 1];
    std::tie(o.h, o.next_x1) = receptance_gated_residual_layernorm_modulate(
        h1, rr, kv, mod, 5, drop2, p(nb.ln1_w), p(nb.ln1_b), 1e-5, next_mod, 0, 1, branch, rounded);
  } else {
    o.h = receptance_gated_residual(h1, rr, kv, mod, 5, drop2, rounded);
  }
  return o;
}

Variable DrwkvModel::forward(const DrwkvInputs& in) const {
  using namespace autograd;
  const DrwkvConfig& c = config_;
  const int64_t B = in.x.size(0), D = c.width, nb = c.num_blocks();
  const Device dev = store_.device();
  const DType branch = branch_dtype(), residual = residual_dtype();
  DRWKV_ASSERT(in.x.dim() == 4 && in.x.size(1) == c.in_channels && in.x.size(2) == c.image_size &&
                   in.x.size(3) == c.image_size,
               "DRWKV input %s, expected [B, %d, %d, %d]", describe(in.x).c_str(), c.in_channels, c.image_size,
               c.image_size);
  DRWKV_ASSERT(int64_t(in.t.size()) == B, "%zu timesteps for a batch of %lld", in.t.size(), (long long)B);
  // patch embedding + positional embedding (residual precision)
  Variable x(in.x.to(dev, residual));
  Variable h = linear(patchify(x, c.patch), cast(p(pe_w_), residual), cast(p(pe_b_), residual));
  h = add(h, cast(p(pos_), residual));
  // conditioning c = TimestepEmbed(t) + LabelEmbed(y)   [B, D]
  Variable temb(Tensor::from_vector(timestep_frequencies(in.t), Shape{B, 256}, dev, residual));
  Variable cond = linear(silu(linear(temb, cast(p(t_w1_), residual), cast(p(t_b1_), residual))),
                         cast(p(t_w2_), residual), cast(p(t_b2_), residual));
  if (c.has_label_table()) {
    DRWKV_ASSERT(int64_t(in.y.size()) == B, "%zu labels for a batch of %lld", in.y.size(), (long long)B);
    for (int32_t y : in.y)
      DRWKV_ASSERT(y >= 0 && y < c.label_rows(), "label %d outside [0, %d)", y, c.label_rows());
    Tensor ids = Tensor::from_vector(in.y, Shape{B}, dev);
    cond = add(cond, cast(embedding(p(label_), ids), residual));
  }
  Variable sc = silu(cond);
  // every block's adaLN in one GEMM: [B, nb·6D], then one [B, 6D] piece per block
  Variable mod_all = add(cast(linear(cast(sc, branch), p(ada_w_)), residual), cast(p(ada_b_), residual));
  std::vector<Variable> mods = split(mod_all, std::vector<int64_t>(size_t(nb), 6 * D), 1);
  // stochastic depth: per sample, per block, per branch (two independent draws, as the reference); all
  // blocks' scales in one upload (a copy from pageable host memory may wait for the stream)
  std::vector<Tensor> drop(static_cast<size_t>(nb));
  if (c.drop_path > 0 && !in.drop_path_keys.empty() && nb > 1) {
    DRWKV_ASSERT(int64_t(in.drop_path_keys.size()) == B, "drop-path keys for %zu samples, batch %lld",
                 in.drop_path_keys.size(), (long long)B);
    std::vector<float> scale(static_cast<size_t>((nb - 1) * 2 * B));
    for (int l = 1; l < nb; ++l) {
      double pl = c.drop_path * double(l) / double(c.depth);
      for (int br = 0; br < 2; ++br)
        for (int64_t i = 0; i < B; ++i) {
          float u = philox::uniform_at(in.seed, in.drop_path_keys[size_t(i)], 0, uint64_t(2 * l + br));
          scale[size_t(((l - 1) * 2 + br) * B + i)] = u < 1.0 - pl ? float(1.0 / (1.0 - pl)) : 0.0f;
        }
    }
    Tensor all = Tensor::from_vector(scale, Shape{nb - 1, 2, B}, dev, DType::F32);
    for (int l = 1; l < nb; ++l) drop[size_t(l)] = all.select(0, l - 1);
  }
  std::vector<Variable> skips, block_mods;
  std::vector<Tensor> skips_rounded;
  for (int l = 0; l < nb; ++l) block_mods.push_back(contiguous(mods[size_t(l)]));
  BlockInput next;  // what block l − 1 formed for block l
  for (int l = 0; l < nb; ++l) {
    bool in_block = l < c.half_depth(), out_block = l > c.half_depth();
    Variable skip;
    BlockInput given = next;
    next = BlockInput();
    if (out_block) {
      skip = skips.back();
      skips.pop_back();
      given.skip_rounded = skips_rounded.back();
      skips_rounded.pop_back();
    }
    const Variable& mod = block_mods[size_t(l)];
    if (checkpointed(l)) {
      Tensor ds = drop[size_t(l)];
      std::vector<Variable> ins = {h, mod};
      if (out_block) ins.push_back(skip);
      h = checkpoint([this, l, ds, out_block](const std::vector<Variable>& v) {
        return block(l, v[0], v[1], out_block ? v[2] : Variable(), ds, false).h;
      }, ins);
    } else {
      // the next block's first norm in this block's last kernel, unless it takes a long skip first or is
      // recomputed as a whole; and the bf16 copy of the output wherever a long-skip projection takes it
      // (a skip, or the input of the next block when that is an out-block)
      const bool fuse_next = l + 1 < nb && l + 1 <= c.half_depth() && !checkpointed(l + 1);
      const bool round = branch == DType::BF16 && (in_block || (l + 1 < nb && l + 1 > c.half_depth()));
      BlockOutput o = block(l, h, mod, skip, drop[size_t(l)], recompute_elementwise_, given,
                            fuse_next ? block_mods[size_t(l) + 1] : Variable(), round);
      h = o.h;
      next.x1 = o.next_x1;
      if (!in_block) next.h_rounded = o.h_rounded;
      if (in_block) skips_rounded.push_back(o.h_rounded);
    }
    if (in_block) {
      skips.push_back(h);
      if (checkpointed(l)) skips_rounded.push_back(Tensor());
    }
  }
  // output head (MODEL.md §1.11)
  h = layer_norm(h, p(lnf_w_), p(lnf_b_), 1e-5);
  Variable fmod = linear(sc, cast(p(final_ada_w_), residual), cast(p(final_ada_b_), residual));
  return linear_decoder(h, fmod, p(out_w_), p(out_b_), c.patch, c.grid(), c.grid(), c.out_channels(), 1e-6);
}

}  // namespace drwkv::models
