// Parameters of a model in flat buffers: f32 master values, f32 gradients and (on the GPU) a bf16
// compute copy, all with one layout described by a name -> (offset, shape) table. The fused optimizer,
// EMA, the gradient reducer's buckets, ZeRO sharding and checkpoints work on flat ranges of these.
//
// Gradients are held one of two ways (set_grad_segments, before finalize):
//  - one flat buffer (the default): allocated and zeroed by finalize and kept; flat_grads() is it.
//  - segments: the layout cut by plan_flat_ranges (core/flat_ranges.h; last parameters first, at most
//    `max_bytes` each, extended over the padding up to the next segment so they tile the layout). A
//    segment's buffer is allocated when backward first reaches one of its parameters and given back to
//    the allocator by zero_grads(). No gradient memory is held during forward, when the activations
//    peak; during backward a segment appears as the activations of the layers before it go away.
//    Alignment gaps inside a segment are zeroed when it is allocated.
// Either way grad_segments()/segment_grads(k) give the gradients range by range (one range for the flat
// buffer), which is how the optimizer step, norms and the data-parallel reducer read them.
//
// Each parameter is registered with a precision: `Compute` parameters (the matrices of the large
// GEMMs) are used through their bf16 compute copy on the GPU; `Master` parameters (vectors, small
// conditioning layers, the decoder) are used through their f32 master value. Either way the leaf
// Variable's gradient is bound to the parameter's slice of the f32 gradient buffer, so backward
// writes there directly (after zero_grads the first contribution overwrites, later ones add: no pass
// over the buffer to clear it). On the CPU the compute dtype is f32 and both kinds use the master value.
//
// Initialisation is deterministic: each parameter draws from the Philox stream keyed by (seed, its
// name), independent of registration order and device.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "core/flat_ranges.h"
#include "core/tensor.h"

namespace drwkv::models {

enum class Precision : uint8_t { Compute, Master };

// Fills `n` host floats of a parameter; `key` is the parameter's Philox stream for random inits.
using Initializer = std::function<void(float* values, int64_t n, uint64_t seed, uint64_t key)>;

struct ParamInfo {
  std::string name;
  Shape shape;
  int64_t offset = 0;  // elements into the flat buffers (aligned to kAlign)
  int64_t numel = 0;
  Precision precision = Precision::Master;
};

class ParameterStore {
 public:
  static constexpr int64_t kAlign = 64;  // elements: every parameter starts 256-byte aligned in f32
  static constexpr int64_t kDefaultSegmentBytes = int64_t(64) << 20;

  ParameterStore() = default;
  // The leaves' gradient binders refer to this object: it stays where it was built.
  ParameterStore(const ParameterStore&) = delete;
  ParameterStore& operator=(const ParameterStore&) = delete;

  // Registers a parameter (before finalize); returns its index.
  int add(const std::string& name, const Shape& shape, Precision precision, Initializer init);

  // Allocates the flat buffers on `device`, runs the initialisers (on the host) and builds the leaves.
  // compute_dtype: bf16 for mixed precision on the GPU, f32 otherwise. `total_multiple`: the buffers'
  // length is rounded up to a multiple of it (ZeRO-1 cuts them into equal, aligned shards); the extra
  // elements are zero, like the alignment gaps between parameters.
  void finalize(Device device, DType compute_dtype, uint64_t seed, int64_t total_multiple = kAlign);
  bool finalized() const { return params_.defined(); }
  // Gradients in segments of at most max_bytes, allocated on demand (see above); before finalize.
  void set_grad_segments(int64_t max_bytes);
  bool grads_segmented() const { return segment_bytes_ > 0; }

  int size() const { return int(info_.size()); }
  const ParamInfo& info(int i) const { return info_[size_t(i)]; }
  const std::vector<ParamInfo>& infos() const { return info_; }
  int find(const std::string& name) const;  // -1 if absent

  // The leaf used in forward (compute copy or master view, by precision).
  const autograd::Variable& var(int i) const { return leaves_[size_t(i)]; }
  Tensor master(int i) const;  // f32 view into the flat parameters
  Tensor grad(int i) const;    // f32 view of its gradient (its segment allocated; settled, like flat_grads())

  Tensor& flat_params() { return params_; }    // f32 [padded total]
  // f32 [padded total], settled first (settle_grads). Only without segments.
  Tensor& flat_grads();
  // The gradient ranges, tiling [0, padded_numel()): one for the flat buffer; segments last parameters
  // first. segment_grads(k): range k's contiguous f32 gradients, allocated if needed and settled.
  const std::vector<FlatRange>& grad_segments() const { return segments_; }
  Tensor segment_grads(int k);
  int64_t allocated_grad_bytes() const;  // gradient memory held now
  Tensor& compute_copy() { return compute_; }  // bf16 [padded total], undefined when compute is f32
  const Tensor& flat_params() const { return params_; }
  int64_t padded_numel() const { return padded_; }
  int64_t parameter_count() const;  // Σ numel (without padding)
  Device device() const { return device_; }
  DType compute_dtype() const { return compute_dtype_; }

  // Every gradient counts as zero from here on, without a pass over the buffer: the next backward
  // overwrites each parameter's slice with its first contribution (autograd Variable::reset_grad).
  // Segments give their buffers back to the allocator.
  void zero_grads();
  // Zeroes the slices of the parameters that no backward has reached since zero_grads (normally none),
  // allocating the segments no backward reached; flat_grads() and segment_grads() do it for what they
  // return.
  void settle_grads();
  // Rewrites the bf16 compute copy from the f32 master values (after loading a checkpoint).
  void refresh_compute_copy();

 private:
  Tensor grad_view(int i) const;  // the slice as it is (its segment must be allocated)
  void plan_segments();
  void allocate_segment(int k);  // binds its parameters' leaves (their gradients count as zero)
  std::vector<ParamInfo> info_;
  std::vector<Initializer> init_;
  std::vector<autograd::Variable> leaves_;
  Tensor params_, compute_;
  int64_t segment_bytes_ = 0;                    // 0: one flat gradient buffer
  std::vector<FlatRange> segments_;
  std::vector<Tensor> segment_buffers_;          // per segment; undefined while released
  std::vector<std::vector<FlatSlot>> segment_gaps_;  // per segment: padding to zero, relative offsets
  std::vector<int> segment_of_;                  // per parameter
  int64_t padded_ = 0;
  Device device_ = Device::cpu();
  DType compute_dtype_ = DType::F32;
};

// ---- initialisers (MODEL.md §1.12) ----------------------------------------------------------------
Initializer init_zeros();
Initializer init_constant(float value);
// U(−s, s), s = sqrt(6 / (fan_in + fan_out)).
Initializer init_xavier_uniform(int64_t fan_in, int64_t fan_out);
Initializer init_normal(double std_dev);
// values[i] = f(i) (per-channel formulas, fixed tables).
Initializer init_formula(std::function<float(int64_t)> f);

}  // namespace drwkv::models
