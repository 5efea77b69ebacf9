// Bucketed, overlapped gradient all-reduce (dist/grad_reducer.h).
#include "dist/grad_reducer.h"

#include <algorithm>

#include "core/check.h"

namespace drwkv::dist {

GradReducer::GradReducer(Communicator& comm, Tensor flat_grads, std::vector<FlatSlot> params,
                         GradReducerOptions options)
    : comm_(comm), num_params_(int(params.size())), options_(options) {
  DRWKV_ASSERT(flat_grads.dim() == 1 && flat_grads.is_contiguous() && dtype_is_float(flat_grads.dtype()),
               "GradReducer needs a contiguous 1-D floating-point buffer, got %s", describe(flat_grads).c_str());
  DRWKV_ASSERT(flat_grads.device() == comm_.device(), "gradients on %s, communicator (%s) on %s",
               flat_grads.device().str().c_str(), comm_.backend_name(), comm_.device().str().c_str());
  buckets_ = plan_flat_ranges(params, int64_t(flat_grads.element_size()), options_.bucket_bytes);
  if (!params.empty()) {
    const FlatSlot& last = params.back();
    DRWKV_ASSERT(last.offset + last.numel <= flat_grads.numel(), "parameter table ends at %lld, buffer has %lld",
                 (long long)(last.offset + last.numel), (long long)flat_grads.numel());
  }
  grads_of_ = [flat = std::move(flat_grads), ranges = buckets_](int b) {
    const FlatRange& r = ranges[size_t(b)];
    return flat.narrow(0, r.begin, r.end - r.begin);
  };
  init_bookkeeping();
}

GradReducer::GradReducer(Communicator& comm, std::vector<FlatRange> buckets, int num_params, BucketGrads grads_of,
                         GradReducerOptions options)
    : comm_(comm), grads_of_(std::move(grads_of)), num_params_(num_params), options_(options),
      buckets_(std::move(buckets)) {
  DRWKV_ASSERT(grads_of_, "GradReducer: no function giving the buckets' gradients");
  std::vector<int> covered(size_t(num_params_), 0);
  for (const FlatRange& b : buckets_) {
    DRWKV_ASSERT(b.first_param >= 0 && b.first_param <= b.last_param && b.last_param < num_params_,
                 "bucket of parameters [%d, %d] in a table of %d", b.first_param, b.last_param, num_params_);
    for (int i = b.first_param; i <= b.last_param; ++i) ++covered[size_t(i)];
  }
  for (int i = 0; i < num_params_; ++i)
    DRWKV_ASSERT(covered[size_t(i)] == 1, "parameter %d is in %d buckets; each must be in exactly one", i,
                 covered[size_t(i)]);
  init_bookkeeping();
}

void GradReducer::init_bookkeeping() {
  if (options_.owners) {
    int64_t end = 0;
    for (const FlatRange& b : buckets_) end = std::max(end, b.end);
    DRWKV_ASSERT(options_.owners->world == comm_.world_size() && end <= options_.owners->padded_numel,
                 "GradReducer: owners' layout for %d ranks over %lld elements, communicator of %d, buckets up to %lld",
                 options_.owners->world, (long long)options_.owners->padded_numel, comm_.world_size(), (long long)end);
  }
  bucket_of_param_.assign(size_t(num_params_), -1);
  for (int b = 0; b < int(buckets_.size()); ++b) {
    for (int i = buckets_[size_t(b)].first_param; i <= buckets_[size_t(b)].last_param; ++i) {
      bucket_of_param_[size_t(i)] = b;
    }
  }
  pending_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
  ready_.assign(size_t(num_params_), false);
}

void GradReducer::mark_ready(int param_index) {
  if (!reduce_) return;
  DRWKV_ASSERT(param_index >= 0 && param_index < num_params_, "mark_ready(%d) with %d parameters", param_index,
               num_params_);
  DRWKV_ASSERT(!ready_[size_t(param_index)], "parameter %d marked ready twice in one step", param_index);
  ready_[size_t(param_index)] = true;
  int b = bucket_of_param_[size_t(param_index)];
  if (--pending_[size_t(b)] == 0 && b == next_launch_) launch_ready_prefix();
}

void GradReducer::launch_ready_prefix() {
  while (next_launch_ < int(buckets_.size()) && pending_[size_t(next_launch_)] == 0) {
    launch_next();
    ++current_.launched_during_backward;
  }
}

void GradReducer::launch_next() {
  Tensor g = grads_of_(next_launch_);
  const FlatRange& b = buckets_[size_t(next_launch_)];
  DRWKV_ASSERT(g.dim() == 1 && g.is_contiguous() && g.numel() == b.end - b.begin && g.device() == comm_.device(),
               "bucket %d: gradients %s, expected a contiguous buffer of %lld elements on %s", next_launch_,
               describe(g).c_str(), (long long)(b.end - b.begin), comm_.device().str().c_str());
  if (!options_.owners) {
    work_.push_back(comm_.all_reduce_async(g, options_.op, options_.wire_dtype));
  } else {
    const ShardLayout& l = *options_.owners;
    for (int r = 0; r < l.world; ++r) {
      const int64_t lo = std::max(b.begin, l.begin(r)), hi = std::min(b.end, l.end(r));
      if (lo < hi) work_.push_back(comm_.reduce_async(g.narrow(0, lo - b.begin, hi - lo), options_.op, r));
    }
  }
  ++next_launch_;
}

void GradReducer::finish() {
  if (!reduce_) return;
  for (int i = 0; i < num_params_; ++i) {
    if (!ready_[size_t(i)]) ++current_.params_without_grad;
  }
  while (next_launch_ < int(buckets_.size())) {
    launch_next();
    ++current_.launched_in_finish;
  }
  for (WorkPtr& w : work_) w->join_current_stream();
  work_.clear();
  // ready for the next step
  next_launch_ = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
  ready_.assign(size_t(num_params_), false);
  last_ = current_;
  current_ = StepStats{};
}

void broadcast_parameters(Communicator& comm, const Tensor& flat_params, int root, int64_t chunk_bytes) {
  DRWKV_ASSERT(flat_params.dim() == 1 && flat_params.is_contiguous(), "broadcast_parameters of %s",
               describe(flat_params).c_str());
  const int64_t chunk = std::max<int64_t>(1, chunk_bytes / int64_t(flat_params.element_size()));
  std::vector<WorkPtr> work;
  for (int64_t off = 0; off < flat_params.numel(); off += chunk) {
    int64_t n = std::min(chunk, flat_params.numel() - off);
    work.push_back(comm.broadcast_async(flat_params.narrow(0, off, n), root));
  }
  for (WorkPtr& w : work) w->join_current_stream();
}

}  // namespace drwkv::dist
