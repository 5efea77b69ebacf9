// Collective communication between the ranks of a run: the interface, and the three backends.
//
//   NCCL - GPU runs. Buffers are CUDA tensors on the communicator's device. Every collective runs on
//          the communication stream (Context::comm_stream) and is ordered after the work already queued
//          on the caller's current stream (an event recorded there, waited on by the comm stream).
//   MPI  - CPU runs (what CI tests). Buffers are host tensors. Collectives run in issue order on a
//          communication thread, the host counterpart of the comm stream, so they overlap the caller's
//          work. Only that thread calls MPI after start-up.
//   Self - a single process: reductions are the identity, gathers are copies (any device).
//
// Asynchronous calls return a Work; the caller must keep the buffers alive and untouched until it is
// done. The synchronous forms are async + join_current_stream(): ordered with later work on the current
// stream (NCCL), complete on return (MPI, Self).
//
// Reduction order and determinism:
//   MPI: each element is reduced once, by the rank that owns its block, as ((x_0 + x_1) + x_2) + ...
//        in rank order, in acc_t (f32 for bf16 and f32, f64 for f64), with one rounding to the element
//        type at the end, and the result is gathered to all ranks. Hence bitwise identical on every rank
//        and from run to run, independent of MPI's algorithms, and equal to that serial sum. Avg is the
//        sum divided by the world size in acc_t before that rounding.
//   NCCL: every rank receives the same bytes (each element is reduced along one ring or tree, then
//        broadcast), so ranks agree bitwise; the order of the sum depends on NCCL's algorithm and
//        protocol choice (set NCCL_ALGO/NCCL_PROTO to fix it across runs); bf16 sums round at every
//        step. Avg is ncclAvg.
//   Host doubles (all_reduce_host): gathered, then reduced in rank order on every rank by both
//        backends, so agreed values are bitwise identical and reproducible.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace drwkv::dist {

class Watchdog;

enum class ReduceOp { Sum, Avg };
enum class HostOp { Sum, Max, Min };

class Work {
 public:
  virtual ~Work() = default;
  virtual bool done() = 0;  // non-blocking
  // The host blocks until the collective has completed (the watchdog bounds a hung wait).
  virtual void wait() = 0;
  // The caller's current stream waits for the collective without blocking the host (NCCL); MPI: wait().
  virtual void join_current_stream() = 0;
};
using WorkPtr = std::shared_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual const char* backend_name() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual Device device() const = 0;  // where collective buffers live

  // In place on `t` (contiguous; f32, bf16, f64, i32 or i64; Avg only for floating types). `wire`: the
  // dtype that travels (e.g. bf16 for f32 gradients: half the bytes, results rounded to bf16); the
  // two-argument form sends t's own dtype.
  virtual WorkPtr all_reduce_async(const Tensor& t, ReduceOp op, DType wire) = 0;
  WorkPtr all_reduce_async(const Tensor& t, ReduceOp op) { return all_reduce_async(t, op, t.dtype()); }
  // Root's `t` to every rank (any dtype).
  virtual WorkPtr broadcast_async(const Tensor& t, int root) = 0;
  // out (world × shard.numel(), same dtype) = the ranks' shards in rank order. In place allowed:
  // shard may be out's slice [rank·n, (rank+1)·n).
  virtual WorkPtr all_gather_async(const Tensor& shard, const Tensor& out) = 0;
  // shard (in.numel() / world) = this rank's block of the reduction of `in` over ranks. In place allowed:
  // shard may be in's slice [rank·n, (rank+1)·n).
  virtual WorkPtr reduce_scatter_async(const Tensor& in, const Tensor& shard, ReduceOp op) = 0;
  // In place on `t` (contiguous, floating point) at rank `root`: the reduction over ranks (MPI: bitwise
  // all_reduce's, the same rank-order sum); the other ranks' `t` is left as it was.
  virtual WorkPtr reduce_async(const Tensor& t, ReduceOp op, int root) = 0;

  void all_reduce(const Tensor& t, ReduceOp op) { all_reduce_async(t, op)->join_current_stream(); }
  void broadcast(const Tensor& t, int root) { broadcast_async(t, root)->join_current_stream(); }
  void all_gather(const Tensor& shard, const Tensor& out) { all_gather_async(shard, out)->join_current_stream(); }
  void reduce_scatter(const Tensor& in, const Tensor& shard, ReduceOp op) {
    reduce_scatter_async(in, shard, op)->join_current_stream();
  }

  // Host-side: returns once every rank has entered the barrier.
  virtual void barrier() = 0;
  // out[r * n + i] = rank r's local[i] (n = local.size()); blocking.
  virtual void all_gather_host(std::span<const double> local, std::span<double> out) = 0;
  // Element-wise reduction over ranks of a few host doubles, in rank order: identical on every rank.
  // `ops` has one entry per value, or a single entry for all.
  std::vector<double> all_reduce_host(std::span<const double> local, std::span<const HostOp> ops);
  double all_reduce_host(double local, HostOp op);

  // From any thread (the watchdog): makes this process's pending and future collectives fail instead of
  // hanging (NCCL: ncclCommAbort; MPI: MPI_Abort, which ends the whole job). Does not return for MPI.
  virtual void abort() = 0;

  // Each collective registers with the watchdog (if any) while in flight.
  void set_watchdog(Watchdog* w) { watchdog_ = w; }
  Watchdog* watchdog() const { return watchdog_; }

 protected:
  Watchdog* watchdog_ = nullptr;
};

// ---- backends ---------------------------------------------------------------------------------------

// Single process: identity reductions, copies for gathers.
std::unique_ptr<Communicator> make_self_communicator(Device device);

// MPI must be initialised (mpi_init); duplicates MPI_COMM_WORLD.
std::unique_ptr<Communicator> make_mpi_communicator();

// 128 opaque bytes from ncclGetUniqueId (rank 0 creates it; the rendezvous hands it to the others).
std::string nccl_unique_id();
// Collective init of an NCCL communicator on CUDA device `device` (already selected for this thread).
// In a CPU-only build both fail with "built without CUDA".
std::unique_ptr<Communicator> make_nccl_communicator(const std::string& unique_id, int rank, int world_size,
                                                     int device);

// Human-readable description of a collective for logs and the watchdog: "all_reduce f32[1024] avg".
std::string describe_collective(const char* what, const Tensor& t, const char* extra = "");

}  // namespace drwkv::dist
