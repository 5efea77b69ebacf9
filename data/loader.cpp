// Prefetching loader (data/loader.h).
#include "data/loader.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/build_config.h"
#include "core/copy.h"
#include "core/status.h"
#include "core/stream.h"

namespace drwkv::data {

struct Loader::Slot {
  enum class State { Free, Filling, Ready };
  State state = State::Free;
  int64_t seq = -1;
  absl::Status error;
  // host staging tensors (undefined entries for absent columns)
  Tensor x, labels, text_emb, text_len, text_tokens, text_pooled;
  std::vector<int64_t> sample_ids, epochs;
  std::vector<uint64_t> source_ids;
  std::vector<uint8_t> flipped;
  int64_t step = 0, first_slot = 0;
  int micro_step = 0;
  std::unique_ptr<Event> copy_done;  // CUDA: recorded after the slot's host-to-device copies
  bool copy_pending = false;
};

namespace {
// Mirrors `rows` rows of `row_len` elements of `elem_bytes` bytes each, in place.
void mirror_rows(unsigned char* p, int64_t rows, int64_t row_len, int elem_bytes) {
  for (int64_t r = 0; r < rows; ++r) {
    unsigned char* row = p + r * row_len * elem_bytes;
    if (elem_bytes == 1) {
      std::reverse(row, row + row_len);
    } else {
      for (int64_t a = 0, b = row_len - 1; a < b; ++a, --b)
        std::swap_ranges(row + a * elem_bytes, row + (a + 1) * elem_bytes, row + b * elem_bytes);
    }
  }
}
}  // namespace

Loader::Loader(const Dataset& dataset, const LoaderConfig& config, const ResumeState& start)
    : ds_(dataset), cfg_(config), start_(start) {
  geo_ = BatchGeometry{config.global_batch, config.micro_batch, config.rank, config.world_size, config.accum};
  start_micro_ = start.step * config.accum + start.micro_step;
  text_ = config.load_text && dataset.info().has_text;
}

absl::StatusOr<std::unique_ptr<Loader>> Loader::create(const Dataset& dataset, const LoaderConfig& config,
                                                       const ResumeState& start) {
  BatchGeometry geo{config.global_batch, config.micro_batch, config.rank, config.world_size, config.accum};
  DRWKV_RETURN_IF_ERROR(check_resume(start, dataset.fingerprint(), dataset.size(), config.seed, geo));
  if (config.threads < 1 || config.depth < 1)
    return absl::InvalidArgumentError(
        absl::StrFormat("loader: threads (%d) and depth (%d) must be at least 1", config.threads, config.depth));
  if (config.device.is_cuda()) {
    if (!kCudaBuilt)
      return absl::FailedPreconditionError("loader: device " + config.device.str() +
                                           " requested, but this build has no CUDA backend");
    if (config.device.index >= cuda_device_count())
      return absl::FailedPreconditionError(absl::StrFormat("loader: device %s requested, but %d CUDA devices are visible",
                                                           config.device.str(), cuda_device_count()));
  }
  std::unique_ptr<Loader> l(new Loader(dataset, config, start));
  for (int i = 0; i < config.depth; ++i) {
    l->slots_.push_back(std::make_unique<Slot>());
    // Page-locked buffers are allocated once, here, on the caller's thread (its current device); host
    // buffers for a CPU target are allocated per micro-batch by the workers and handed over.
    if (config.device.is_cuda()) l->allocate_host(*l->slots_.back());
  }
  for (int i = 0; i < config.threads; ++i) l->workers_.emplace_back([p = l.get()] { p->worker(); });
  return l;
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_free_.notify_all();
  cv_ready_.notify_all();
  for (std::thread& t : workers_) t.join();
  for (auto& s : slots_)
    if (s->copy_pending) s->copy_done->synchronize();  // pinned memory must outlive its in-flight copy
}

void Loader::allocate_host(Slot& s) const {
  const DatasetInfo& i = ds_.info();
  const int64_t b = cfg_.micro_batch;
  const bool pinned = cfg_.device.is_cuda();
  auto make = [&](std::vector<int64_t> row, DType dt) {
    row.insert(row.begin(), b);
    return Tensor::empty(Shape(row), dt, Device::cpu(), pinned);
  };
  s.x = make(i.row_shape(Column::X), elem_dtype(i.x_elem));
  s.labels = make({}, DType::I32);
  if (text_) {
    s.text_emb = make(i.row_shape(Column::TextEmb), elem_dtype(i.text_elem));
    s.text_len = make({}, DType::I32);
    if (i.has_tokens) s.text_tokens = make(i.row_shape(Column::TextTokens), DType::I32);
    if (i.pooled_dim > 0) s.text_pooled = make(i.row_shape(Column::TextPooled), elem_dtype(i.text_elem));
  }
}

void Loader::worker() {
  while (true) {
    Slot* slot;
    int64_t seq;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_free_.wait(lock, [&] { return stop_ || slots_[size_t(next_fill_ % cfg_.depth)]->state == Slot::State::Free; });
      if (stop_) return;
      seq = next_fill_++;
      slot = slots_[size_t(seq % cfg_.depth)].get();
      slot->state = Slot::State::Filling;
      slot->seq = seq;
    }
    // The slot belongs to this worker until it is marked Ready.
    if (slot->copy_pending) {
      slot->copy_done->synchronize();
      slot->copy_pending = false;
    }
    slot->error = fill(*slot, seq);
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot->state = Slot::State::Ready;
    }
    cv_ready_.notify_all();
  }
}

absl::Status Loader::fill(Slot& s, int64_t seq) {
  const DatasetInfo& info = ds_.info();
  const int64_t b = cfg_.micro_batch, n = ds_.size();
  const int64_t absolute = start_micro_ + seq;
  s.step = absolute / cfg_.accum;
  s.micro_step = int(absolute % cfg_.accum);
  s.first_slot = geo_.first_slot(s.step, s.micro_step);
  if (!s.x.defined()) allocate_host(s);
  s.sample_ids.resize(size_t(b));
  s.epochs.resize(size_t(b));
  s.source_ids.resize(size_t(b));
  s.flipped.resize(size_t(b));

  const bool use_flip_rows = info.has_latent_flip;
  const int64_t x_bytes = info.row_bytes(Column::X);
  const int xe = elem_size(info.x_elem);
  auto* x = static_cast<unsigned char*>(s.x.data());
  auto* labels = s.labels.data_ptr<int32_t>();
  int64_t perm_epoch = -1;
  std::unique_ptr<Permutation> perm;
  for (int64_t i = 0; i < b; ++i) {
    const int64_t slot = s.first_slot + i;
    const int64_t epoch = slot / n;
    if (epoch != perm_epoch) {
      perm = std::make_unique<Permutation>(epoch_permutation(uint64_t(n), cfg_.seed, uint64_t(epoch)));
      perm_epoch = epoch;
    }
    const int64_t g = int64_t((*perm)(uint64_t(slot % n)));
    const bool flip = cfg_.flip && sample_flip(cfg_.seed, uint64_t(epoch), uint64_t(g));
    s.sample_ids[size_t(i)] = g;
    s.epochs[size_t(i)] = epoch;
    s.flipped[size_t(i)] = flip;
    unsigned char* xrow = x + i * x_bytes;
    DRWKV_RETURN_IF_ERROR(ds_.read(flip && use_flip_rows ? Column::XFlip : Column::X, g, xrow));
    if (flip && !use_flip_rows) mirror_rows(xrow, info.channels * info.height, info.width, xe);
    DRWKV_RETURN_IF_ERROR(ds_.read(Column::Label, g, labels + i));
    DRWKV_RETURN_IF_ERROR(ds_.read(Column::SampleId, g, &s.source_ids[size_t(i)]));
    if (text_) {
      auto* emb = static_cast<unsigned char*>(s.text_emb.data());
      DRWKV_RETURN_IF_ERROR(ds_.read(Column::TextEmb, g, emb + i * info.row_bytes(Column::TextEmb)));
      uint16_t len = 0;
      DRWKV_RETURN_IF_ERROR(ds_.read(Column::TextLen, g, &len));
      s.text_len.data_ptr<int32_t>()[i] = len;
      if (info.has_tokens)
        DRWKV_RETURN_IF_ERROR(ds_.read(Column::TextTokens, g, s.text_tokens.data_ptr<int32_t>() + i * info.text_len));
      if (info.pooled_dim > 0) {
        auto* pooled = static_cast<unsigned char*>(s.text_pooled.data());
        DRWKV_RETURN_IF_ERROR(ds_.read(Column::TextPooled, g, pooled + i * info.row_bytes(Column::TextPooled)));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Batch> Loader::next() {
  Slot* s;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!failed_.ok()) return failed_;
    s = slots_[size_t(next_consume_ % cfg_.depth)].get();
    cv_ready_.wait(lock, [&] { return s->state == Slot::State::Ready && s->seq == next_consume_; });
    if (!s->error.ok()) {
      failed_ = s->error;  // the slot stays Ready: no worker refills it, the loader is finished
      return failed_;
    }
  }
  Batch out;
  out.sample_ids = s->sample_ids;
  out.epochs = s->epochs;
  out.source_ids = s->source_ids;
  out.flipped = s->flipped;
  out.step = s->step;
  out.micro_step = s->micro_step;
  out.first_slot = s->first_slot;
  if (cfg_.device.is_cuda()) {
    Stream stream = current_stream(cfg_.device);
    auto to_device = [&](const Tensor& h) -> Tensor {
      if (!h.defined()) return Tensor();
      Tensor d = Tensor::empty(h.shape(), h.dtype(), cfg_.device);  // allocated on the current stream
      DRWKV_CUDA_ONLY(core_detail::memcpy_cuda(d.data(), h.data(), h.nbytes(), stream.handle(), /*sync=*/false));
      return d;
    };
    out.x = to_device(s->x);
    out.labels = to_device(s->labels);
    out.text_emb = to_device(s->text_emb);
    out.text_len = to_device(s->text_len);
    out.text_tokens = to_device(s->text_tokens);
    out.text_pooled = to_device(s->text_pooled);
    if (!s->copy_done) s->copy_done = std::make_unique<Event>();
    s->copy_done->record(stream);
    s->copy_pending = true;
  } else {
    out.x = std::move(s->x);  // the worker allocates fresh buffers for the slot's next micro-batch
    out.labels = std::move(s->labels);
    out.text_emb = std::move(s->text_emb);
    out.text_len = std::move(s->text_len);
    out.text_tokens = std::move(s->text_tokens);
    out.text_pooled = std::move(s->text_pooled);
    s->x = Tensor();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    s->state = Slot::State::Free;
    ++next_consume_;
  }
  cv_free_.notify_all();
  return out;
}

ResumeState Loader::position() const {
  int64_t consumed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    consumed = next_consume_;
  }
  ResumeState r = start_;
  int64_t absolute = start_micro_ + consumed;
  r.step = absolute / cfg_.accum;
  r.micro_step = absolute % cfg_.accum;
  r.micro_slots = r.micro_step > 0 ? geo_.micro_slots() : 0;
  r.epoch = r.next_slot() / ds_.size();
  return r;
}

bool Loader::host_buffers_pinned() const {
  for (const auto& s : slots_)
    if (!s->x.defined() || !s->x.storage()->pinned()) return false;
  return !slots_.empty();
}

}  // namespace drwkv::data
