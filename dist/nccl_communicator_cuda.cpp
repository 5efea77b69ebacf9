// The NCCL backend (dist/communicator.h): CUDA buffers, collectives on the communication stream.
//
// Each call: an event recorded on the caller's current stream is waited on by Context::comm_stream;
// the collective (and, for a different wire dtype, the conversions around it) is enqueued there; a
// completion event is recorded and handed to the watchdog, which polls it. join_current_stream makes
// the caller's stream wait on that event; wait() polls it on the host and checks NCCL's asynchronous
// error state, so a hung or failed NCCL kernel surfaces as an error or a watchdog abort, never a hang.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "core/cuda_check.h"
#include "core/stream.h"
#include "dist/communicator.h"
#include "dist/nccl_check.h"
#include "dist/watchdog.h"

namespace drwkv::dist {
namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::U8: return ncclUint8;
  }
  return ncclUint8;
}

// The communicator handle and whether it was aborted: ncclCommAbort frees the handle, so the host
// waits below never touch it after an abort (the watchdog is then about to exit the process).
struct CommHandle {
  ncclComm_t comm = nullptr;
  std::mutex mu;
  bool aborted = false;
};

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<Event> done, std::shared_ptr<CommHandle> h, int device)
      : done_(std::move(done)), h_(std::move(h)), device_(device) {}
  bool done() override { return done_->query(); }
  void wait() override {
    while (!done_->query()) {
      ncclResult_t rc = ncclSuccess, async = ncclSuccess;
      {
        std::lock_guard<std::mutex> lock(h_->mu);
        if (!h_->aborted) rc = ncclCommGetAsyncError(h_->comm, &async);
      }
      NCCL_CHECK(rc);  // outside the lock: the fatal hook aborts the communicator
      NCCL_CHECK(async);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void join_current_stream() override { done_->wait_on(current_stream(device_)); }

 private:
  std::shared_ptr<Event> done_;
  std::shared_ptr<CommHandle> h_;
  int device_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const std::string& id, int rank, int world, int device)
      : rank_(rank), world_(world), device_(device), stream_(Context::get(device).comm_stream()) {
    DRWKV_ASSERT(id.size() == sizeof(ncclUniqueId), "NCCL unique id of %zu bytes, expected %zu", id.size(),
                 sizeof(ncclUniqueId));
    ncclUniqueId uid;
    std::memcpy(&uid, id.data(), sizeof uid);
    cuda_set_device(device);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 1;
    NCCL_CHECK(ncclCommInitRankConfig(&h_->comm, world, uid, rank, &config));
    comm_ = h_->comm;
  }
  ~NcclCommunicator() override {
    std::lock_guard<std::mutex> lock(h_->mu);
    if (!h_->aborted) {
      // ncclCommDestroy waits for outstanding work; a clean end of the run has none
      ncclCommDestroy(comm_);
      h_->aborted = true;
    }
  }

  using Communicator::all_reduce_async;
  const char* backend_name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  Device device() const override { return Device::cuda(device_); }

  WorkPtr all_reduce_async(const Tensor& t, ReduceOp op, DType wire) override {
    check_buffer(t, "all_reduce");
    DRWKV_ASSERT(op == ReduceOp::Sum || (dtype_is_float(t.dtype()) && dtype_is_float(wire)), "average of %s",
                 describe(t).c_str());
    ncclRedOp_t nop = op == ReduceOp::Avg ? ncclAvg : ncclSum;
    return launch(describe_collective("all_reduce", t, op == ReduceOp::Avg ? "avg" : "sum"), [&] {
      if (wire == t.dtype()) {
        NCCL_CHECK(ncclAllReduce(t.data(), t.data(), size_t(t.numel()), nccl_type(t.dtype()), nop, comm_,
                                 to_cuda(stream_.handle())));
      } else {
        Tensor w = t.to(wire);  // on the comm stream (current under the launch's guard)
        NCCL_CHECK(ncclAllReduce(w.data(), w.data(), size_t(w.numel()), nccl_type(wire), nop, comm_,
                                 to_cuda(stream_.handle())));
        Tensor(t).copy_(w);
      }
    });
  }

  WorkPtr broadcast_async(const Tensor& t, int root) override {
    check_buffer(t, "broadcast");
    return launch(describe_collective("broadcast", t), [&] {
      NCCL_CHECK(ncclBroadcast(t.data(), t.data(), t.nbytes(), ncclUint8, root, comm_, to_cuda(stream_.handle())));
    });
  }

  WorkPtr all_gather_async(const Tensor& shard, const Tensor& out) override {
    check_buffer(shard, "all_gather");
    check_buffer(out, "all_gather");
    DRWKV_ASSERT(out.numel() == shard.numel() * world_ && out.dtype() == shard.dtype(),
                 "all_gather of %s into %s over %d ranks", describe(shard).c_str(), describe(out).c_str(), world_);
    return launch(describe_collective("all_gather", shard), [&] {
      NCCL_CHECK(ncclAllGather(shard.data(), out.data(), size_t(shard.numel()), nccl_type(shard.dtype()), comm_,
                               to_cuda(stream_.handle())));
    });
  }

  WorkPtr reduce_scatter_async(const Tensor& in, const Tensor& shard, ReduceOp op) override {
    check_buffer(in, "reduce_scatter");
    check_buffer(shard, "reduce_scatter");
    DRWKV_ASSERT(in.numel() == shard.numel() * world_ && in.dtype() == shard.dtype(),
                 "reduce_scatter of %s into %s over %d ranks", describe(in).c_str(), describe(shard).c_str(), world_);
    return launch(describe_collective("reduce_scatter", in, op == ReduceOp::Avg ? "avg" : "sum"), [&] {
      NCCL_CHECK(ncclReduceScatter(in.data(), shard.data(), size_t(shard.numel()), nccl_type(in.dtype()),
                                   op == ReduceOp::Avg ? ncclAvg : ncclSum, comm_, to_cuda(stream_.handle())));
    });
  }

  WorkPtr reduce_async(const Tensor& t, ReduceOp op, int root) override {
    check_buffer(t, "reduce");
    DRWKV_ASSERT(dtype_is_float(t.dtype()) && root >= 0 && root < world_, "reduce of %s to rank %d of %d",
                 describe(t).c_str(), root, world_);
    return launch(describe_collective("reduce", t, op == ReduceOp::Avg ? "avg" : "sum"), [&] {
      NCCL_CHECK(ncclReduce(t.data(), t.data(), size_t(t.numel()), nccl_type(t.dtype()),
                            op == ReduceOp::Avg ? ncclAvg : ncclSum, root, comm_, to_cuda(stream_.handle())));
    });
  }

  void barrier() override {
    // a one-element all-reduce, waited for on the host
    Tensor one = Tensor::zeros(Shape{1}, DType::F32, Device::cuda(device_));
    all_reduce_async(one, ReduceOp::Sum)->wait();
  }

  void all_gather_host(std::span<const double> local, std::span<double> out) override {
    DRWKV_ASSERT(out.size() == local.size() * size_t(world_), "all_gather_host: %zu outputs for %zu x %d",
                 out.size(), local.size(), world_);
    std::vector<double> v(local.begin(), local.end());
    Tensor dev = Tensor::from_vector(v, Shape{int64_t(v.size())}, Device::cuda(device_));
    Tensor all = Tensor::empty(Shape{int64_t(out.size())}, DType::F64, Device::cuda(device_));
    all_gather_async(dev, all)->join_current_stream();
    std::vector<double> host = all.to_vector<double>();  // synchronises the current stream
    std::copy(host.begin(), host.end(), out.begin());
  }

  // From the watchdog or the fatal hook. The lock is only held around short calls; should it not come
  // within 2 s, the abort proceeds anyway (the process exits right after).
  void abort() override {
    std::unique_lock<std::mutex> lock(h_->mu, std::defer_lock);
    for (int i = 0; i < 200 && !lock.try_lock(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (h_->aborted) return;
    h_->aborted = true;
    ncclCommAbort(comm_);
  }

 private:
  void check_buffer(const Tensor& t, const char* what) const {
    DRWKV_ASSERT(t.device() == Device::cuda(device_) && t.is_contiguous(),
                 "%s on the NCCL backend needs a contiguous tensor on cuda:%d, got %s", what, device_,
                 describe(t).c_str());
  }

  // Orders `enqueue` after the caller's current stream, runs it on the comm stream, returns its Work.
  template <typename F>
  WorkPtr launch(std::string what, F&& enqueue) {
    Stream caller = current_stream(device_);
    if (!(caller == stream_)) {
      Event ready;
      ready.record(caller);
      ready.wait_on(stream_);
    }
    {
      StreamGuard guard(stream_);
      enqueue();
    }
    auto done = std::make_shared<Event>();
    done->record(stream_);
    if (watchdog_) watchdog_->watch(std::move(what), true, [done] { return done->query(); });
    return std::make_shared<NcclWork>(done, h_, device_);
  }

  int rank_, world_, device_;
  Stream stream_;
  std::shared_ptr<CommHandle> h_ = std::make_shared<CommHandle>();
  ncclComm_t comm_ = nullptr;  // h_->comm
};

}  // namespace

std::string nccl_unique_id() {
  ncclUniqueId id;
  NCCL_CHECK(ncclGetUniqueId(&id));
  return std::string(reinterpret_cast<const char*>(&id), sizeof id);
}

std::unique_ptr<Communicator> make_nccl_communicator(const std::string& unique_id, int rank, int world_size,
                                                     int device) {
  return std::make_unique<NcclCommunicator>(unique_id, rank, world_size, device);
}

}  // namespace drwkv::dist
