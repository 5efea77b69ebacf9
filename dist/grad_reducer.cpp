// Bucketed, overlapped gradient all-reduce (dist/grad_reducer.h).
#include "dist/grad_reducer.h"

#include "core/check.h"

namespace drwkv::dist {

std::vector<Bucket> plan_buckets(std::span<const ParamSlot> params, int64_t element_size, int64_t bucket_bytes) {
  DRWKV_ASSERT(bucket_bytes > 0 && element_size > 0, "bucket of %lld bytes, elements of %lld bytes",
               (long long)bucket_bytes, (long long)element_size);
  for (size_t i = 0; i < params.size(); ++i) {
    DRWKV_ASSERT(params[i].numel > 0 && params[i].offset >= 0, "parameter %zu: offset %lld, numel %lld", i,
                 (long long)params[i].offset, (long long)params[i].numel);
    DRWKV_ASSERT(i == 0 || params[i].offset >= params[i - 1].offset + params[i - 1].numel,
                 "parameter %zu starts at %lld, inside parameter %zu [%lld, %lld): the table must be in "
                 "registration order at increasing offsets",
                 i, (long long)params[i].offset, i - 1, (long long)params[i - 1].offset,
                 (long long)(params[i - 1].offset + params[i - 1].numel));
  }
  std::vector<Bucket> out;
  for (int i = int(params.size()) - 1; i >= 0; --i) {
    const ParamSlot& p = params[size_t(i)];
    int64_t end = p.offset + p.numel;
    if (!out.empty()) {
      Bucket& b = out.back();
      // the bucket grows downwards: [p.offset, b.end)
      if ((b.end - p.offset) * element_size <= bucket_bytes) {
        b.begin = p.offset;
        b.first_param = i;
        continue;
      }
    }
    out.push_back(Bucket{p.offset, end, i, i});
  }
  return out;
}

GradReducer::GradReducer(Communicator& comm, Tensor flat_grads, std::vector<ParamSlot> params,
                         GradReducerOptions options)
    : comm_(comm), grads_(std::move(flat_grads)), params_(std::move(params)), options_(options) {
  DRWKV_ASSERT(grads_.dim() == 1 && grads_.is_contiguous() && dtype_is_float(grads_.dtype()),
               "GradReducer needs a contiguous 1-D floating-point buffer, got %s", describe(grads_).c_str());
  DRWKV_ASSERT(grads_.device() == comm_.device(), "gradients on %s, communicator (%s) on %s",
               grads_.device().str().c_str(), comm_.backend_name(), comm_.device().str().c_str());
  buckets_ = plan_buckets(params_, int64_t(grads_.element_size()), options_.bucket_bytes);
  if (!params_.empty()) {
    const ParamSlot& last = params_.back();
    DRWKV_ASSERT(last.offset + last.numel <= grads_.numel(), "parameter table ends at %lld, buffer has %lld",
                 (long long)(last.offset + last.numel), (long long)grads_.numel());
  }
  bucket_of_param_.assign(params_.size(), -1);
  for (int b = 0; b < int(buckets_.size()); ++b) {
    for (int i = buckets_[size_t(b)].first_param; i <= buckets_[size_t(b)].last_param; ++i) {
      bucket_of_param_[size_t(i)] = b;
    }
  }
  pending_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
  ready_.assign(params_.size(), false);
}

void GradReducer::mark_ready(int param_index) {
  if (!reduce_) return;
  DRWKV_ASSERT(param_index >= 0 && param_index < int(params_.size()), "mark_ready(%d) with %zu parameters",
               param_index, params_.size());
  DRWKV_ASSERT(!ready_[size_t(param_index)], "parameter %d marked ready twice in one step", param_index);
  ready_[size_t(param_index)] = true;
  int b = bucket_of_param_[size_t(param_index)];
  if (--pending_[size_t(b)] == 0 && b == next_launch_) launch_ready_prefix();
}

void GradReducer::launch_ready_prefix() {
  while (next_launch_ < int(buckets_.size()) && pending_[size_t(next_launch_)] == 0) {
    const Bucket& b = buckets_[size_t(next_launch_)];
    Tensor range = grads_.narrow(0, b.begin, b.end - b.begin);
    work_.push_back(comm_.all_reduce_async(range, options_.op, options_.wire_dtype));
    ++current_.launched_during_backward;
    ++next_launch_;
  }
}

void GradReducer::finish() {
  if (!reduce_) return;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!ready_[i]) ++current_.params_without_grad;
  }
  while (next_launch_ < int(buckets_.size())) {
    const Bucket& b = buckets_[size_t(next_launch_)];
    Tensor range = grads_.narrow(0, b.begin, b.end - b.begin);
    work_.push_back(comm_.all_reduce_async(range, options_.op, options_.wire_dtype));
    ++current_.launched_in_finish;
    ++next_launch_;
  }
  for (WorkPtr& w : work_) w->join_current_stream();
  work_.clear();
  // ready for the next step
  next_launch_ = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].last_param - buckets_[b].first_param + 1;
  ready_.assign(params_.size(), false);
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
