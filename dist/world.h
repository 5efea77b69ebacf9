// The distributed run as the trainer sees it: one World per process, created first in main.
//
// World::init(options):
//   1. reads who this process is (dist/env.h) and checks the world size against the options;
//   2. picks the backend (auto: NCCL with a visible GPU, else MPI; Self for a single process) and the
//      rendezvous (auto: mpi under an MPI launcher; srun without PMI needs file: or tcp://);
//   3. starts MPI only when the backend or the rendezvous is MPI (GPU runs with file/tcp need none);
//   4. selects the GPU of this local rank (NCCL; one visible GPU per task also works);
//   5. opens the rendezvous store (file: DIR/RUN_ID, tcp: rank 0 serves HOST:PORT; with mpi, rank 0
//      serves an ephemeral port whose address MPI broadcasts; it is the watchdog's side channel) and
//      exchanges rank 0's payload, the NCCL unique id for NCCL;
//   6. creates the communicator, the watchdog (heartbeats, timeouts) and installs the fatal hook:
//      a fatal error on one rank publishes "rank R failed" and aborts the communicator, so every rank
//      stops (dist/watchdog.h).
// User errors (bad variables, wrong world size, an unreachable rendezvous) come back as absl::Status.
//
// ~World() is the clean shutdown: watchdog stopped, a barrier over the store (so rank 0's store
// outlives every user), communicator destroyed, MPI finalized. After a failed init() nothing waits
// for the other ranks.
#pragma once

#include <memory>
#include <string>

#include "core/device.h"
#include "core/status.h"
#include "dist/communicator.h"
#include "dist/env.h"
#include "dist/store.h"
#include "dist/watchdog.h"

namespace drwkv::dist {

class World {
 public:
  static absl::StatusOr<std::unique_ptr<World>> init(const DistOptions& options, const EnvLookup& env = system_env);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const ProcessInfo& info() const { return info_; }
  int rank() const { return info_.rank; }
  int world_size() const { return info_.world_size; }
  Backend backend() const { return backend_; }
  const Rendezvous& rendezvous() const { return rendezvous_; }
  Device device() const { return device_; }  // where the communicator's buffers live

  bool has_comm() const { return comm_ != nullptr; }
  Communicator& comm();                       // fails for Backend::None
  Store* store() const { return store_.get(); }         // null for a single process
  Watchdog* watchdog() const { return watchdog_.get(); }  // null when disabled
  // For the training loop: records the step in the heartbeats and watches it until the returned scope
  // ends (timeout_s <= 0: DRWKV_DIST_TIMEOUT). A no-op without a watchdog.
  //   auto guard = world.watch_step(step, 3600);
  Watchdog::Scope watch_step(int64_t step, double timeout_s = 0);
  // The bytes rank 0 published at the rendezvous (the NCCL id, or a random run token).
  const std::string& rendezvous_payload() const { return payload_; }
  // Prefix of this run's keys in the store (the watchdog's "hb/R" is at run_prefix() + "hb/R").
  const std::string& run_prefix() const { return run_prefix_; }

 private:
  World() = default;
  absl::Status start(const DistOptions& options);
  absl::Status open_store(const DistOptions& options);
  void shutdown();

  ProcessInfo info_;
  DistOptions options_;
  Backend backend_ = Backend::Self;
  Rendezvous rendezvous_;
  Device device_ = Device::cpu();
  bool we_started_mpi_ = false;
  bool started_ = false;  // init completed: shutdown may synchronise with the other ranks
  std::unique_ptr<TcpStoreServer> server_;
  std::unique_ptr<Store> store_;
  FileStore* file_store_ = nullptr;  // store_ when it is a FileStore
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<Watchdog> watchdog_;
  std::string payload_;
  std::string run_prefix_;  // "run-<hash of the payload>/": this run's keys in the store
};

}  // namespace drwkv::dist
