// ZeRO-1 building blocks: each rank keeps the optimizer state of only its shard of the flat buffers.
//
// Layout: a flat buffer of `numel` elements is padded to padded_numel, a multiple of world × align
// (align: 128 elements by default, so every shard starts 512-byte aligned for f32 and NCCL moves whole
// cache lines); rank r owns elements [r·shard_numel, (r+1)·shard_numel) of the padded buffer. The
// padding (padded_numel − numel elements, < world × align) sits at the end of the last shards: the
// trainer allocates the flat parameter and gradient buffers with padded_numel elements and keeps the
// padding zero (its gradients are zero, so it stays zero under any optimizer without weight decay
// tricks; AdamW's decay of a zero is zero).
//
// Step with ZeRO-1 (the trainer): the gradient reducer with GradReducerOptions::owners = the layout
// reduces each bucket's pieces to their owners during backward (segmented gradients, no flat buffer);
// or, for one flat gradient buffer after backward:
//   zero1_reduce_scatter(comm, grads, grad_shard, layout)  // grad_shard = mean over ranks, own shard
//                                                          // (may be grads' own slice: in place)
// then
//   optimizer on (params[shard], the shard's gradients, state of shard_numel elements)
//   zero1_all_gather(comm, params, layout)                 // every rank gets every updated shard
// The agreed gradient norm then comes from the shards (LocalStepStats::grad_is_sharded = true).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "dist/communicator.h"

namespace drwkv::dist {

struct ShardLayout {
  int64_t numel = 0;         // elements that matter
  int64_t padded_numel = 0;  // allocated elements: world × shard_numel
  int64_t shard_numel = 0;
  int world = 1;

  static constexpr int64_t kAlign = 128;  // elements: f32 shards start 512-byte aligned
  // The multiple of which padded_numel is: a buffer of such a length is cut without further padding.
  static int64_t granularity(int world, int64_t align = kAlign) { return int64_t(world) * align; }
  static ShardLayout make(int64_t numel, int world, int64_t align = kAlign);
  int64_t begin(int rank) const { return int64_t(rank) * shard_numel; }
  int64_t end(int rank) const { return begin(rank) + shard_numel; }
  // Elements of rank's shard that are real (not padding).
  int64_t valid(int rank) const;
  int64_t padding() const { return padded_numel - numel; }
};

// Optimizer-state bytes one rank does not hold compared with an unsharded run:
// (numel − shard_numel) × state_bytes_per_element (8 for AdamW's two f32 moments). Can be negative for
// tiny buffers, where padding outweighs the saving.
int64_t zero1_bytes_saved_per_rank(const ShardLayout& layout, int64_t state_bytes_per_element);

// grad_shard[shard_numel] = this rank's shard of the reduction over ranks of grads[padded_numel].
void zero1_reduce_scatter(Communicator& comm, const Tensor& grads, const Tensor& grad_shard, const ShardLayout& layout,
                          ReduceOp op = ReduceOp::Avg);
// Every rank's shard of params[padded_numel] to every rank (in place).
void zero1_all_gather(Communicator& comm, const Tensor& params, const ShardLayout& layout);

}  // namespace drwkv::dist
