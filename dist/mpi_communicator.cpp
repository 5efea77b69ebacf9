// The MPI backend (dist/communicator.h): host buffers, collectives in issue order on a communication
// thread, rank-order reductions.
//
// all_reduce of n elements over W ranks: block b = elements [b·n/W, (b+1)·n/W) belongs to rank b.
//   1. MPI_Alltoallv: rank b receives every rank's block b (W × |block b| scratch elements);
//   2. rank b reduces them in rank order (dist/host_reduce.h);
//   3. MPI_Allgatherv: every rank receives every reduced block.
// The bytes moved equal a ring all-reduce (2·(W−1)/W·n per rank); each element is summed exactly once,
// so all ranks hold the same bits, whatever algorithms MPI picks.
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "core/check.h"
#include "dist/communicator.h"
#include "dist/host_reduce.h"
#include "dist/mpi_check.h"
#include "dist/mpi_runtime.h"
#include "dist/watchdog.h"

namespace drwkv::dist {
namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::BF16:
    case DType::F16: return MPI_UINT16_T;  // moved as bits; arithmetic is ours
    case DType::U8: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

int to_int(int64_t n, const char* what) {
  DRWKV_ASSERT(n <= std::numeric_limits<int>::max(), "%s: %lld elements exceed MPI's int counts", what,
               (long long)n);
  return int(n);
}

struct TaskState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

class MpiWork : public Work {
 public:
  explicit MpiWork(std::shared_ptr<TaskState> s) : s_(std::move(s)) {}
  bool done() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->done;
  }
  void wait() override {
    std::unique_lock<std::mutex> lock(s_->mu);
    s_->cv.wait(lock, [this] { return s_->done; });
  }
  void join_current_stream() override { wait(); }

 private:
  std::shared_ptr<TaskState> s_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &world_));
    thread_ = std::thread([this] { loop(); });
  }
  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    if (mpi_initialized()) MPI_Comm_free(&comm_);
  }

  using Communicator::all_reduce_async;
  const char* backend_name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  Device device() const override { return Device::cpu(); }

  WorkPtr all_reduce_async(const Tensor& t, ReduceOp op, DType wire) override {
    check_buffer(t, "all_reduce");
    DRWKV_ASSERT(op == ReduceOp::Sum || (dtype_is_float(t.dtype()) && dtype_is_float(wire)), "average of %s",
                 describe(t).c_str());
    return enqueue(describe_collective("all_reduce", t, op == ReduceOp::Avg ? "avg" : "sum"), [this, t, op, wire] {
      if (wire == t.dtype()) {
        all_reduce_now(t, op);
      } else {
        Tensor w = t.to(wire);
        all_reduce_now(w, op);
        Tensor(t).copy_(w);
      }
    });
  }

  WorkPtr broadcast_async(const Tensor& t, int root) override {
    check_buffer(t, "broadcast");
    DRWKV_ASSERT(root >= 0 && root < world_, "broadcast from rank %d of %d", root, world_);
    return enqueue(describe_collective("broadcast", t), [this, t, root] {
      constexpr int64_t kChunk = int64_t(1) << 30;
      char* p = static_cast<char*>(t.data());
      for (int64_t off = 0; off < int64_t(t.nbytes()); off += kChunk) {
        int n = int(std::min<int64_t>(kChunk, int64_t(t.nbytes()) - off));
        MPI_CHECK(MPI_Bcast(p + off, n, MPI_BYTE, root, comm_));
      }
    });
  }

  WorkPtr all_gather_async(const Tensor& shard, const Tensor& out) override {
    check_buffer(shard, "all_gather");
    check_buffer(out, "all_gather");
    DRWKV_ASSERT(out.numel() == shard.numel() * world_ && out.dtype() == shard.dtype(),
                 "all_gather of %s into %s over %d ranks", describe(shard).c_str(), describe(out).c_str(), world_);
    return enqueue(describe_collective("all_gather", shard), [this, shard, out] {
      int n = to_int(shard.numel(), "all_gather");
      char* mine = static_cast<char*>(out.data()) + size_t(rank_) * shard.nbytes();
      const void* send = shard.data() == mine ? MPI_IN_PLACE : shard.data();
      MPI_CHECK(MPI_Allgather(send, n, mpi_type(shard.dtype()), out.data(), n, mpi_type(out.dtype()), comm_));
    });
  }

  WorkPtr reduce_scatter_async(const Tensor& in, const Tensor& shard, ReduceOp op) override {
    check_buffer(in, "reduce_scatter");
    check_buffer(shard, "reduce_scatter");
    DRWKV_ASSERT(in.numel() == shard.numel() * world_ && in.dtype() == shard.dtype(),
                 "reduce_scatter of %s into %s over %d ranks", describe(in).c_str(), describe(shard).c_str(), world_);
    return enqueue(describe_collective("reduce_scatter", in, op == ReduceOp::Avg ? "avg" : "sum"),
                   [this, in, shard, op] {
                     int n = to_int(shard.numel(), "reduce_scatter");
                     std::vector<char> scratch(shard.nbytes() * size_t(world_));
                     MPI_Datatype ty = mpi_type(in.dtype());
                     MPI_CHECK(MPI_Alltoall(in.data(), n, ty, scratch.data(), n, ty, comm_));
                     reduce_blocks(scratch.data(), world_, n, in.dtype(), op, shard.data());
                   });
  }

  // Every rank's t gathered at the root, which reduces them in rank order like all_reduce_now's blocks.
  WorkPtr reduce_async(const Tensor& t, ReduceOp op, int root) override {
    check_buffer(t, "reduce");
    DRWKV_ASSERT(dtype_is_float(t.dtype()) && root >= 0 && root < world_, "reduce of %s to rank %d of %d",
                 describe(t).c_str(), root, world_);
    return enqueue(describe_collective("reduce", t, op == ReduceOp::Avg ? "avg" : "sum"), [this, t, op, root] {
      int n = to_int(t.numel(), "reduce");
      std::vector<char> scratch(rank_ == root ? t.nbytes() * size_t(world_) : 0);
      MPI_Datatype ty = mpi_type(t.dtype());
      MPI_CHECK(MPI_Gather(t.data(), n, ty, scratch.data(), n, ty, root, comm_));
      if (rank_ == root) reduce_blocks(scratch.data(), world_, n, t.dtype(), op, t.data());
    });
  }

  void barrier() override {
    enqueue("barrier", [this] { MPI_CHECK(MPI_Barrier(comm_)); })->wait();
  }

  void all_gather_host(std::span<const double> local, std::span<double> out) override {
    DRWKV_ASSERT(out.size() == local.size() * size_t(world_), "all_gather_host: %zu outputs for %zu x %d",
                 out.size(), local.size(), world_);
    enqueue(strprintf("all_gather_host f64[%zu]", local.size()), [this, local, out] {
      MPI_CHECK(MPI_Allgather(local.data(), int(local.size()), MPI_DOUBLE, out.data(), int(local.size()),
                              MPI_DOUBLE, comm_));
    })->wait();
  }

  void abort() override {
    if (mpi_thread_multiple()) mpi_abort(kWatchdogExitCode);
    // without MPI_THREAD_MULTIPLE another thread may not call MPI: the caller exits instead
  }

 private:
  void check_buffer(const Tensor& t, const char* what) const {
    DRWKV_ASSERT(t.is_cpu() && t.is_contiguous(), "%s on the MPI backend needs a contiguous host tensor, got %s",
                 what, describe(t).c_str());
  }

  // In place; called on the communication thread.
  void all_reduce_now(const Tensor& t, ReduceOp op) {
    const int64_t n = t.numel();
    const size_t es = t.element_size();
    const size_t nw = static_cast<size_t>(world_);
    std::vector<int> counts(nw), displs(nw);
    for (int b = 0; b < world_; ++b) {
      int64_t lo = n * b / world_, hi = n * (b + 1) / world_;
      counts[size_t(b)] = to_int(hi - lo, "all_reduce block");
      displs[size_t(b)] = to_int(lo, "all_reduce offset");
    }
    const int mine = counts[size_t(rank_)];
    std::vector<char> scratch(size_t(mine) * es * size_t(world_));
    std::vector<int> rcounts(nw, mine), rdispls(nw);
    for (int r = 0; r < world_; ++r) rdispls[size_t(r)] = r * mine;
    MPI_Datatype ty = mpi_type(t.dtype());
    MPI_CHECK(MPI_Alltoallv(t.data(), counts.data(), displs.data(), ty, scratch.data(), rcounts.data(),
                            rdispls.data(), ty, comm_));
    char* my_block = static_cast<char*>(t.data()) + size_t(displs[size_t(rank_)]) * es;
    reduce_blocks(scratch.data(), world_, mine, t.dtype(), op, my_block);
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, ty, t.data(), counts.data(), displs.data(), ty, comm_));
  }

  WorkPtr enqueue(std::string what, std::function<void()> fn) {
    auto state = std::make_shared<TaskState>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      DRWKV_ASSERT(!stopping_, "collective %s after the communicator was shut down", what.c_str());
      queue_.push_back(Task{std::move(what), std::move(fn), state});
    }
    cv_.notify_all();
    return std::make_shared<MpiWork>(state);
  }

  void loop() {
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and everything issued has run
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      uint64_t id = watchdog_ ? watchdog_->begin(task.what, true) : 0;
      task.fn();
      if (watchdog_) watchdog_->end(id);
      {
        std::lock_guard<std::mutex> lock(task.state->mu);
        task.state->done = true;
      }
      task.state->cv.notify_all();
    }
  }

  struct Task {
    std::string what;
    std::function<void()> fn;
    std::shared_ptr<TaskState> state;
  };
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, world_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  DRWKV_ASSERT(mpi_initialized(), "make_mpi_communicator before mpi_init()");
  return std::make_unique<MpiCommunicator>();
}

}  // namespace drwkv::dist
