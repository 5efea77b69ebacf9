// Reverse-mode automatic differentiation over a dynamically recorded graph.
//
// A Variable holds a value Tensor and, when it requires a gradient, either its producer Node (results of
// differentiable ops) or nothing (leaves: parameters and inputs). Each op records one Node with the
// closure that computes its inputs' gradients from its output's gradient, capturing only what that
// needs. backward() sorts the graph topologically and runs the closures in reverse, accumulating:
// leaves into Variable::grad (which may be a view of a flat gradient buffer; contributions are added),
// intermediates into a slot of their producer node that is freed once consumed. A node's closure
// (and with it every saved tensor) is destroyed as soon as it has run.
//
// Leaves may carry a grad-ready hook, called during backward as soon as no recorded node can still add
// to that leaf's gradient; data-parallel training starts all-reduces from it.
//
// A bound leaf's buffer may also come on demand: a grad binder, called the first time anything needs
// the buffer (a contribution, grad()), binds it; release_grad() gives it back until the next time. The
// parameter store allocates its gradient segments this way only when backward reaches them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace drwkv::autograd {

struct Node;
struct VariableImpl;
class BackwardContext;

using BackwardFn = std::function<void(BackwardContext&)>;
using GradReadyHook = std::function<void()>;
using GradBinder = std::function<void()>;  // must bind_grad() the leaf (and may bind others)

struct VariableImpl {
  Tensor value;
  int output_nr = 0;  // which output of grad_fn this is
  Tensor grad;  // leaves: accumulated gradient (bound to a flat buffer or allocated on first use)
  bool grad_bound = false;  // grad is a caller-owned buffer (accumulated in place, never replaced)
  bool grad_stale = false;  // bound grad whose contents count as zero: the next contribution overwrites it
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // producer of a non-leaf
  std::string name;
  GradReadyHook on_grad_ready;    // leaves only
  GradBinder grad_binder;         // bound leaves whose buffer was released
};

class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor value, bool requires_grad = false, std::string name = "");

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const { return impl_->value; }
  const Shape& shape() const { return impl_->value.shape(); }
  DType dtype() const { return impl_->value.dtype(); }
  Device device() const { return impl_->value.device(); }
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  bool is_leaf() const { return impl_ && impl_->grad_fn == nullptr; }
  const std::string& name() const { return impl_->name; }

  // Leaves: the accumulated gradient (undefined until a backward has reached the leaf, unless bound).
  // A bound gradient reset by reset_grad() that no backward has reached since is zeroed here first.
  const Tensor& grad() const;
  // Binds the leaf's gradient to `g` (e.g. a view of a flat buffer); contributions are added to it.
  void bind_grad(Tensor g);
  void zero_grad();
  // Bound leaves: the gradient counts as zero from now on without a pass over its buffer. The next
  // contribution overwrites it instead of adding (a GEMM writes it with beta = 0, a kernel with its
  // accumulate flag off); grad() zeroes it if no contribution came. Unbound leaves: zero_grad().
  void reset_grad();
  bool grad_pending_reset() const { return impl_->grad_stale; }
  void set_grad_ready_hook(GradReadyHook hook);
  // The gradient is a caller-owned buffer that `binder` binds (bind_grad) when something first needs
  // it; until then it counts as zero, like a reset gradient.
  void bind_grad_on_demand(GradBinder binder);
  // Leaves bound on demand: drops the buffer (the gradient counts as zero again); the binder binds a
  // new one when something needs it. grad_released(): bound, no buffer now.
  void release_grad();
  bool grad_released() const { return impl_->grad_bound && !impl_->grad.defined(); }

  // Reverse pass from this variable; `seed` defaults to ones (scalars) and must match the shape.
  void backward(Tensor seed = Tensor()) const;

  // The same value without history.
  Variable detach() const;

  const std::shared_ptr<VariableImpl>& impl() const { return impl_; }  // for the engine
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }

 private:
  std::shared_ptr<VariableImpl> impl_;
};

// An edge from a node to one of its inputs: output `output_nr` of the input's producer node, or the
// input leaf.
struct Edge {
  std::shared_ptr<Node> producer;       // non-leaf input
  int output_nr = 0;
  std::shared_ptr<VariableImpl> leaf;   // leaf input requiring a gradient
  bool requires_grad() const { return producer || leaf; }
};

struct OutputSlot {
  Shape shape;  // of the output value, for allocating and checking its gradient
  DType dtype = DType::F32;
  Device device;
  Tensor grad;  // accumulated during backward, freed after the node has run
};

struct Node {
  const char* name = "";
  std::vector<Edge> inputs;
  BackwardFn backward;
  std::vector<OutputSlot> outputs;
  // Leaves used inside a checkpointed segment, counted as extra uses of this node (core of
  // activation checkpointing: the recomputed graph adds to them during this node's backward).
  std::vector<std::pair<std::shared_ptr<VariableImpl>, int>> virtual_leaf_uses;
};

// What a backward closure sees: the outputs' gradients, and a way to hand over each input's gradient.
// A node runs when at least one of its outputs received a gradient; the others are undefined tensors
// (grad_output_or_zeros materialises them).
class BackwardContext {
 public:
  const Tensor& grad_output(int i = 0) const { return node_->outputs[size_t(i)].grad; }
  Tensor grad_output_or_zeros(int i) const;
  // Output i's gradient as a contiguous tensor this closure may modify in place (the slot is freed after
  // the node has run): the slot's own tensor when nothing else shares its storage, else a copy.
  // Undefined when the output received no gradient.
  Tensor grad_output_to_modify(int i);
  int num_inputs() const { return int(node_->inputs.size()); }
  // Input i's gradient so far when it already holds a partial sum (a non-leaf whose other consumers have
  // contributed), made safe to modify in place: a closure may add its contribution into it directly
  // instead of calling add(i, ·). Undefined when nothing has contributed yet, and for leaves.
  Tensor partial_sum(int i);
  bool needs(int i) const { return node_->inputs[size_t(i)].requires_grad(); }

  // Adds `g` to input i's gradient (takes ownership when it is the first contribution).
  void add(int i, Tensor g);
  // A tensor into which input i's gradient can be accumulated in place: `*accumulate` says whether it
  // already holds a partial sum (then add to it) or is fresh memory (then overwrite it). Leaves return
  // their bound gradient (dtype may differ from the value, e.g. f32 master gradients of bf16 weights).
  Tensor target(int i, bool* accumulate);

 private:
  friend class Engine;
  explicit BackwardContext(Node* n) : node_(n) {}
  Node* node_;
};

// Records a node for `value` computed from `inputs` when gradient mode is on and an input requires a
// gradient; otherwise returns a plain variable and drops the closure.
Variable make_result(Tensor value, const char* name, const std::vector<Variable>& inputs, BackwardFn backward);
// The same for an op with several outputs (one node, one gradient slot per output).
std::vector<Variable> make_results(std::vector<Tensor> values, const char* name, const std::vector<Variable>& inputs,
                                   BackwardFn backward);

// Gradient mode (thread-local): off inside a NoGradGuard.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Activation checkpointing: runs `fn` without recording its graph or keeping its activations, and
// recomputes it (with the graph) during backward. `fn` must be deterministic given its inputs (draw
// randomness from counter-based keys, never from a stateful generator).
using SegmentFn = std::function<Variable(const std::vector<Variable>&)>;
Variable checkpoint(const SegmentFn& fn, const std::vector<Variable>& inputs);

}  // namespace drwkv::autograd
