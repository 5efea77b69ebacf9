// The backward engine (autograd/variable.h): topological order, reverse execution, accumulation,
// grad-ready hooks, release of saved tensors, and activation checkpointing.
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "autograd/profiler.h"
#include "autograd/tensor_math.h"
#include "autograd/variable.h"

namespace drwkv::autograd {
namespace {

thread_local bool t_grad_enabled = true;

// While a checkpointed segment runs its no-grad forward, counts the uses of leaves requiring a gradient.
thread_local std::unordered_map<VariableImpl*, std::pair<std::shared_ptr<VariableImpl>, int>>* t_leaf_uses = nullptr;

// State of the backward pass in progress on this thread (nested backward of checkpoints shares it).
struct PassState {
  std::unordered_map<VariableImpl*, int> pending;  // leaf -> recorded uses not yet processed
};
thread_local PassState* t_pass = nullptr;

// Adds g to a gradient slot. The first contribution is kept as is (no copy), so a slot may share
// storage with another slot (an op passing its output gradient through to two inputs); such a slot is
// never modified in place: it is replaced by the sum (copy-on-write). Bound leaf gradients (views of a
// flat buffer) are always written in place: overwritten while `*stale` (reset_grad), else added to.
void accumulate_into(Tensor& slot, const Shape& shape, Tensor g, bool bound, bool* stale = nullptr) {
  DRWKV_ASSERT(g.shape() == shape, "gradient of shape %s for a value of shape %s", g.shape().str().c_str(),
               shape.str().c_str());
  if (!slot.defined()) {
    slot = std::move(g);
    return;
  }
  if (bound && stale && *stale) {
    slot.copy_(g);
    *stale = false;
    return;
  }
  if (!bound && slot.storage().use_count() > 1) {
    ProfileRange range("grad_clone", slot.device());
    slot = slot.clone();
  }
  add_(slot, g);
}

// Makes a slot safe to modify in place (see accumulate_into).
void make_exclusive(Tensor& slot, bool bound) {
  if (!bound && slot.storage().use_count() > 1) {
    ProfileRange range("grad_clone", slot.device());
    slot = slot.clone();
  }
}

// A bound leaf whose buffer was released gets one from its binder before anything touches the slot.
void ensure_grad_buffer(VariableImpl& leaf) {
  if (leaf.grad_bound && !leaf.grad.defined()) {
    DRWKV_ASSERT(leaf.grad_binder, "leaf %s: gradient buffer released and no binder to get it back",
                 leaf.name.c_str());
    leaf.grad_binder();
    DRWKV_ASSERT(leaf.grad.defined(), "leaf %s: the grad binder bound no buffer", leaf.name.c_str());
  }
}

void leaf_used(PassState& pass, VariableImpl* leaf) {
  auto it = pass.pending.find(leaf);
  if (it == pass.pending.end()) return;
  if (--it->second == 0) {
    pass.pending.erase(it);
    if (leaf->on_grad_ready) leaf->on_grad_ready();
  }
}

}  // namespace

class Engine {
 public:
  // Runs backward from `root` whose output gradient is `seed`. `count_leaves`: register leaf uses in the
  // pass (false for the nested pass of a checkpoint, whose uses the outer pass already counted).
  static void run(const std::shared_ptr<Node>& root, int root_output, Tensor seed, bool count_leaves) {
    std::vector<Node*> order = topological_order(root.get());
    PassState own;
    PassState* pass = t_pass ? t_pass : &own;
    PassState* saved = t_pass;
    t_pass = pass;
    if (count_leaves) {
      for (Node* n : order) {
        for (const Edge& e : n->inputs)
          if (e.leaf) ++pass->pending[e.leaf.get()];
        for (auto& [leaf, uses] : n->virtual_leaf_uses) pass->pending[leaf.get()] += uses;
      }
    }
    OutputSlot& root_slot = root->outputs[size_t(root_output)];
    accumulate_into(root_slot.grad, root_slot.shape, std::move(seed), false);
    // `order` lists producers after consumers (reverse post-order from the root)
    for (Node* n : order) {
      bool any = false;
      for (const OutputSlot& o : n->outputs) any = any || o.grad.defined();
      if (any && n->backward) {
        BackwardContext ctx(n);
        n->backward(ctx);
      }
      n->backward = nullptr;  // frees saved tensors
      for (OutputSlot& o : n->outputs) o.grad = Tensor();
      for (const Edge& e : n->inputs)
        if (e.leaf) leaf_used(*pass, e.leaf.get());
    }
    t_pass = saved;
  }

 private:
  static std::vector<Node*> topological_order(Node* root) {
    // iterative DFS post-order, then reversed: every node comes before the producers of its inputs
    std::vector<Node*> post;
    std::unordered_set<Node*> visited;
    std::vector<std::pair<Node*, size_t>> stack;
    stack.emplace_back(root, 0);
    visited.insert(root);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < node->inputs.size()) {
        Node* child = node->inputs[next++].producer.get();
        if (child && visited.insert(child).second) stack.emplace_back(child, 0);
      } else {
        post.push_back(node);
        stack.pop_back();
      }
    }
    std::reverse(post.begin(), post.end());
    return post;
  }
};

// ---- Variable ------------------------------------------------------------------------------------
Variable::Variable(Tensor value, bool requires_grad, std::string name) : impl_(std::make_shared<VariableImpl>()) {
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
  impl_->name = std::move(name);
}

void Variable::bind_grad(Tensor g) {
  DRWKV_ASSERT(is_leaf(), "bind_grad on a non-leaf variable");
  DRWKV_ASSERT(g.shape() == shape(), "bind_grad: gradient %s for value %s", describe(g).c_str(),
               describe(value()).c_str());
  impl_->grad = std::move(g);
  impl_->grad_bound = true;
}

const Tensor& Variable::grad() const {
  ensure_grad_buffer(*impl_);
  if (impl_->grad_stale) {
    impl_->grad.zero_();
    impl_->grad_stale = false;
  }
  return impl_->grad;
}

void Variable::zero_grad() {
  if (grad_released()) return;  // no buffer: counts as zero until the binder binds one
  if (impl_->grad.defined()) impl_->grad.zero_();
  impl_->grad_stale = false;
}

void Variable::bind_grad_on_demand(GradBinder binder) {
  DRWKV_ASSERT(is_leaf() && binder, "bind_grad_on_demand needs a leaf and a binder");
  impl_->grad = Tensor();
  impl_->grad_binder = std::move(binder);
  impl_->grad_bound = true;
  impl_->grad_stale = true;
}

void Variable::release_grad() {
  DRWKV_ASSERT(impl_->grad_bound && impl_->grad_binder, "release_grad on %s, whose gradient is not bound on demand",
               impl_->name.c_str());
  impl_->grad = Tensor();
  impl_->grad_stale = true;
}

void Variable::reset_grad() {
  if (impl_->grad_bound)
    impl_->grad_stale = true;
  else
    zero_grad();
}

void Variable::set_grad_ready_hook(GradReadyHook hook) {
  DRWKV_ASSERT(is_leaf(), "grad-ready hooks are for leaves");
  impl_->on_grad_ready = std::move(hook);
}

void Variable::backward(Tensor seed) const {
  DRWKV_ASSERT(requires_grad(), "backward() of a variable that does not require a gradient");
  if (!seed.defined()) {
    DRWKV_ASSERT(value().numel() == 1, "backward() without a seed needs a scalar, got %s", describe(value()).c_str());
    seed = Tensor::full(value().shape(), 1.0, value().dtype(), value().device());
  }
  if (is_leaf()) {
    ensure_grad_buffer(*impl_);
    accumulate_into(impl_->grad, shape(), seed, impl_->grad_bound, &impl_->grad_stale);
    return;
  }
  Engine::run(impl_->grad_fn, impl_->output_nr, std::move(seed), /*count_leaves=*/t_pass == nullptr);
}

Variable Variable::detach() const { return Variable(value(), false, impl_->name); }

// ---- BackwardContext -------------------------------------------------------------------------------
void BackwardContext::add(int i, Tensor g) {
  const Edge& e = node_->inputs[size_t(i)];
  if (e.leaf) {
    VariableImpl& leaf = *e.leaf;
    ensure_grad_buffer(leaf);
    if (leaf.grad.defined()) g = converted(g, leaf.grad.dtype());
    accumulate_into(leaf.grad, leaf.value.shape(), std::move(g), leaf.grad_bound, &leaf.grad_stale);
  } else if (e.producer) {
    OutputSlot& o = e.producer->outputs[size_t(e.output_nr)];
    g = converted(g, o.dtype);
    accumulate_into(o.grad, o.shape, std::move(g), false);
  }
}

Tensor BackwardContext::grad_output_or_zeros(int i) const {
  const OutputSlot& o = node_->outputs[size_t(i)];
  return o.grad.defined() ? o.grad : Tensor::zeros(o.shape, o.dtype, o.device);
}

Tensor BackwardContext::grad_output_to_modify(int i) {
  Tensor& g = node_->outputs[size_t(i)].grad;
  if (g.defined() && (!g.is_contiguous() || g.storage().use_count() > 1)) {
    ProfileRange range("grad_clone", g.device());
    g = g.clone();
  }
  return g;
}

Tensor BackwardContext::partial_sum(int i) {
  const Edge& e = node_->inputs[size_t(i)];
  if (!e.producer) return Tensor();
  Tensor& slot = e.producer->outputs[size_t(e.output_nr)].grad;
  if (!slot.defined()) return Tensor();
  make_exclusive(slot, false);
  return slot;
}

Tensor BackwardContext::target(int i, bool* accumulate) {
  const Edge& e = node_->inputs[size_t(i)];
  DRWKV_ASSERT(e.requires_grad(), "target() for input %d of %s, which needs no gradient", i, node_->name);
  Tensor* slot;
  const Shape* shape;
  DType dtype;
  Device device;
  bool bound = false;
  if (e.leaf) {
    ensure_grad_buffer(*e.leaf);
    slot = &e.leaf->grad;
    bound = e.leaf->grad_bound;
    if (bound && e.leaf->grad_stale) {  // reset_grad: the caller overwrites the whole slot
      e.leaf->grad_stale = false;
      *accumulate = false;
      return *slot;
    }
    shape = &e.leaf->value.shape();
    dtype = e.leaf->value.dtype();
    device = e.leaf->value.device();
  } else {
    OutputSlot& o = e.producer->outputs[size_t(e.output_nr)];
    slot = &o.grad;
    shape = &o.shape;
    dtype = o.dtype;
    device = o.device;
  }
  if (slot->defined()) {
    make_exclusive(*slot, bound);
    *accumulate = true;
    return *slot;
  }
  *accumulate = false;
  *slot = Tensor::empty(*shape, dtype, device);
  return *slot;
}

// ---- recording -------------------------------------------------------------------------------------
bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

namespace {
std::vector<Variable> record(std::vector<Tensor> values, const char* name, const std::vector<Variable>& inputs,
                             BackwardFn backward, bool force);
}  // namespace

Variable make_result(Tensor value, const char* name, const std::vector<Variable>& inputs, BackwardFn backward) {
  std::vector<Tensor> values;
  values.push_back(std::move(value));
  return record(std::move(values), name, inputs, std::move(backward), false)[0];
}

std::vector<Variable> make_results(std::vector<Tensor> values, const char* name, const std::vector<Variable>& inputs,
                                   BackwardFn backward) {
  return record(std::move(values), name, inputs, std::move(backward), false);
}

namespace {
std::vector<Variable> record(std::vector<Tensor> values, const char* name, const std::vector<Variable>& inputs,
                             BackwardFn backward, bool force) {
  std::vector<Variable> outs;
  for (Tensor& v : values) outs.emplace_back(std::move(v));
  if (t_leaf_uses) {
    for (const Variable& in : inputs)
      if (in.defined() && in.requires_grad() && in.is_leaf()) {
        auto& entry = (*t_leaf_uses)[in.impl().get()];
        entry.first = in.impl();
        ++entry.second;
      }
  }
  bool any = force;
  for (const Variable& in : inputs) any = any || in.requires_grad();
  if (!t_grad_enabled || !any) return outs;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->backward = std::move(backward);
  for (const Variable& o : outs) node->outputs.push_back(OutputSlot{o.value().shape(), o.value().dtype(), o.value().device(), Tensor()});
  node->inputs.reserve(inputs.size());
  for (const Variable& in : inputs) {
    Edge e;
    if (in.requires_grad()) {
      if (in.is_leaf()) {
        e.leaf = in.impl();
      } else {
        e.producer = in.grad_fn();
        e.output_nr = in.impl()->output_nr;
      }
    }
    node->inputs.push_back(std::move(e));
  }
  for (size_t i = 0; i < outs.size(); ++i) {
    VariableImpl& impl = *outs[i].impl();
    impl.requires_grad = true;
    impl.grad_fn = node;
    impl.output_nr = int(i);
  }
  return outs;
}
}  // namespace

// ---- checkpointing ---------------------------------------------------------------------------------
Variable checkpoint(const SegmentFn& fn, const std::vector<Variable>& inputs) {
  std::unordered_map<VariableImpl*, std::pair<std::shared_ptr<VariableImpl>, int>> uses;
  Variable result;
  {
    NoGradGuard no_grad;
    auto* saved = t_leaf_uses;
    t_leaf_uses = &uses;
    std::vector<Variable> detached;
    for (const Variable& in : inputs) detached.push_back(in.detach());
    result = fn(detached);
    t_leaf_uses = saved;
  }
  bool any = !uses.empty();
  for (const Variable& in : inputs) any = any || in.requires_grad();
  if (!grad_enabled() || !any) return result;
  Variable out = record({result.value()}, "checkpoint", inputs, [fn, inputs](BackwardContext& ctx) {
    // recompute the segment with its graph, on fresh leaves standing for the segment's inputs
    std::vector<Variable> fresh;
    for (int i = 0; i < int(inputs.size()); ++i) fresh.push_back(Variable(inputs[size_t(i)].value(), ctx.needs(i)));
    Variable y = fn(fresh);
    if (y.requires_grad()) y.backward(ctx.grad_output());
    for (int i = 0; i < int(inputs.size()); ++i)
      if (ctx.needs(i) && fresh[size_t(i)].grad().defined()) ctx.add(i, fresh[size_t(i)].grad());
  }, /*force=*/true)[0];
  if (out.requires_grad()) {
    for (auto& [ptr, entry] : uses) out.grad_fn()->virtual_leaf_uses.emplace_back(entry.first, entry.second);
  }
  return out;
}

}  // namespace drwkv::autograd
