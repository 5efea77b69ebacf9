// ZeRO-1 shard layout and collectives (dist/zero.h).
#include "dist/zero.h"

#include <algorithm>

#include "core/check.h"

namespace drwkv::dist {

ShardLayout ShardLayout::make(int64_t numel, int world, int64_t align) {
  DRWKV_ASSERT(numel >= 0 && world >= 1 && align >= 1, "shard layout of %lld elements over %d ranks, align %lld",
               (long long)numel, world, (long long)align);
  ShardLayout l;
  l.numel = numel;
  l.world = world;
  const int64_t unit = granularity(world, align);
  l.padded_numel = std::max<int64_t>(unit, (numel + unit - 1) / unit * unit);
  l.shard_numel = l.padded_numel / world;
  return l;
}

int64_t ShardLayout::valid(int rank) const {
  return std::clamp<int64_t>(numel - begin(rank), 0, shard_numel);
}

int64_t zero1_bytes_saved_per_rank(const ShardLayout& layout, int64_t state_bytes_per_element) {
  return (layout.numel - layout.shard_numel) * state_bytes_per_element;
}

void zero1_reduce_scatter(Communicator& comm, const Tensor& grads, const Tensor& grad_shard, const ShardLayout& layout,
                          ReduceOp op) {
  DRWKV_ASSERT(layout.world == comm.world_size(), "layout for %d ranks, communicator has %d", layout.world,
               comm.world_size());
  DRWKV_ASSERT(grads.numel() == layout.padded_numel && grad_shard.numel() == layout.shard_numel,
               "zero1_reduce_scatter: gradients %s and shard %s, layout wants %lld and %lld", describe(grads).c_str(),
               describe(grad_shard).c_str(), (long long)layout.padded_numel, (long long)layout.shard_numel);
  comm.reduce_scatter(grads, grad_shard, op);
}

void zero1_all_gather(Communicator& comm, const Tensor& params, const ShardLayout& layout) {
  DRWKV_ASSERT(layout.world == comm.world_size(), "layout for %d ranks, communicator has %d", layout.world,
               comm.world_size());
  DRWKV_ASSERT(params.numel() == layout.padded_numel, "zero1_all_gather: parameters %s, layout wants %lld",
               describe(params).c_str(), (long long)layout.padded_numel);
  Tensor mine = params.narrow(0, layout.begin(comm.rank()), layout.shard_numel);
  comm.all_gather(mine, params);
}

}  // namespace drwkv::dist
