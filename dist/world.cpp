// Bootstrap and clean shutdown of a distributed run (dist/world.h).
#include "dist/world.h"

#include <chrono>
#include <optional>
#include <cstdlib>
#include <random>
#include <thread>

#include "core/build_config.h"
#include "core/check.h"
#include "core/log.h"
#include "core/stream.h"
#include "dist/mpi_runtime.h"
#include "dist/rendezvous.h"

namespace drwkv::dist {
namespace {

std::string random_token() {
  std::random_device rd;
  std::string s(16, '\0');
  for (char& c : s) c = char(rd() & 0xff);
  return s;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

absl::StatusOr<int> pick_gpu(const ProcessInfo& info) {
  int n = cuda_device_count();
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (n == 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "DRWKV_BACKEND=nccl but no CUDA device is visible (CUDA_VISIBLE_DEVICES='%s')", visible ? visible : ""));
  }
  if (info.local_world_size <= n) return info.local_rank;
  if (n == 1) return 0;  // the launcher gave each task its own GPU
  return absl::FailedPreconditionError(absl::StrFormat(
      "%d processes on host %s but %d visible GPUs (CUDA_VISIBLE_DEVICES='%s'): start at most one process per GPU",
      info.local_world_size, info.hostname, n, visible ? visible : ""));
}

}  // namespace

absl::StatusOr<std::unique_ptr<World>> World::init(const DistOptions& options, const EnvLookup& env) {
  std::unique_ptr<World> w(new World());
  DRWKV_ASSIGN_OR_RETURN(w->info_, detect_process_info(env));
  DRWKV_RETURN_IF_ERROR(w->start(options));
  return w;
}

absl::Status World::start(const DistOptions& options) {
  options_ = options;
  if (options_.run_id.empty()) options_.run_id = info_.run_id;
  const int W = info_.world_size;
  if (options.expected_world_size > 0 && options.expected_world_size != W) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "expected world size %d (DRWKV_WORLD_SIZE_EXPECTED or the recipe), but the launcher started %d processes "
        "(%s=%d)",
        options.expected_world_size, W, info_.world_variable.empty() ? "no launcher" : info_.world_variable, W));
  }
  set_log_rank(info_.rank, W);

  // ---- backend and rendezvous
  backend_ = options.backend;
  bool gpu = kCudaBuilt && cuda_device_count() > 0;
  if (backend_ == Backend::Auto) backend_ = W == 1 ? Backend::Self : (gpu ? Backend::Nccl : Backend::Mpi);
  if ((backend_ == Backend::Self) && W != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("DRWKV_BACKEND=self needs a single process, the launcher "
                                                      "started %d",
                                                      W));
  }
  rendezvous_ = options.rendezvous;
  if (rendezvous_.kind == RendezvousKind::Auto) {
    if (W == 1) {
      rendezvous_.kind = RendezvousKind::None;
    } else if (info_.launcher == "openmpi" || info_.launcher == "pmi" || backend_ == Backend::Mpi) {
      rendezvous_.kind = RendezvousKind::Mpi;
    } else {
      return absl::InvalidArgumentError(absl::StrFormat(
          "DRWKV_RENDEZVOUS is not set and %d processes were started by %s without MPI: set "
          "DRWKV_RENDEZVOUS=file:DIR (DIR shared by all nodes) or tcp://HOST:PORT (HOST: rank 0's node)",
          W, info_.launcher));
    }
  }
  if (rendezvous_.kind == RendezvousKind::None && W > 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("DRWKV_RENDEZVOUS=none but the launcher started %d processes", W));
  }

  // ---- MPI, when needed
  if (backend_ == Backend::Mpi || rendezvous_.kind == RendezvousKind::Mpi) {
    DRWKV_RETURN_IF_ERROR(mpi_init());
    we_started_mpi_ = true;
    if (mpi_world_size() != W || mpi_world_rank() != info_.rank) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "MPI sees rank %d of %d but %s/%s say %d of %d: the launcher did not connect the processes through MPI "
          "(under srun use --mpi=pmix, or DRWKV_RENDEZVOUS=file:DIR / tcp://HOST:PORT with the NCCL backend)",
          mpi_world_rank(), mpi_world_size(), info_.rank_variable, info_.world_variable, info_.rank, W));
    }
  }

  // ---- device
  if (backend_ == Backend::Nccl) {
    DRWKV_ASSIGN_OR_RETURN(int dev, pick_gpu(info_));
    device_ = Device::cuda(dev);
    cuda_set_device(dev);
    const char* nvls = std::getenv("NCCL_NVLS_ENABLE");
    if (!nvls) {
      setenv("NCCL_NVLS_ENABLE", "0", 1);  // NVLink SHARP multicast stays off (docs/LAUNCH.md)
    } else if (std::string(nvls) != "0") {
      log_warn("NCCL_NVLS_ENABLE=%s: the launch scripts set 0 (NVLink multicast is not to be used on our machines)",
               nvls);
    }
  } else if (backend_ == Backend::Self && gpu) {
    device_ = Device::cuda(0);
  }

  // ---- store and rendezvous payload
  if (W > 1) DRWKV_RETURN_IF_ERROR(open_store(options));
  std::string mine = info_.rank == 0 ? (backend_ == Backend::Nccl ? nccl_unique_id() : random_token()) : "";
  if (rendezvous_.kind == RendezvousKind::Mpi) {
    payload_ = mpi_broadcast_bytes(mine, 0);
  } else if (rendezvous_.kind == RendezvousKind::None) {
    payload_ = mine;
  } else {
    DRWKV_ASSIGN_OR_RETURN(payload_, store_rendezvous(*store_, info_, mine, options.rendezvous_timeout_s));
  }

  // keys of this run in the store: a reused directory may hold an earlier run's
  run_prefix_ = absl::StrFormat("run-%016x/", fnv1a(payload_));

  // ---- watchdog and fatal hook, then the communicator under the watchdog's eye
  if (options.watchdog) {
    WatchdogOptions wo;
    wo.timeout_s = options.collective_timeout_s;
    wo.heartbeat_s = options.heartbeat_s;
    wo.key_prefix = run_prefix_;
    if (backend_ == Backend::Nccl) wo.thread_init = [dev = device_.index] { cuda_set_device(dev); };
    watchdog_ = std::make_unique<Watchdog>(info_.rank, W, store_.get(), wo, [this] {
      if (comm_) comm_->abort();
    });
  }
  set_fatal_hook([this] {
    if (watchdog_) watchdog_->publish_failure(strprintf("fatal error (see the log of rank %d)", info_.rank));
    if (comm_) comm_->abort();
  });
  {
    std::optional<Watchdog::Scope> guard;
    if (watchdog_) guard.emplace(watchdog_->scope("communicator start-up", options.rendezvous_timeout_s));
    switch (backend_) {
      case Backend::Nccl: comm_ = make_nccl_communicator(payload_, info_.rank, W, device_.index); break;
      case Backend::Mpi: comm_ = make_mpi_communicator(); break;
      case Backend::Self: comm_ = make_self_communicator(device_); break;
      default: break;
    }
  }
  if (comm_ && watchdog_) comm_->set_watchdog(watchdog_.get());
  started_ = true;
  log_info0("dist: %d process(es), backend %s, rendezvous %s%s", W, backend_name(backend_), rendezvous_.str().c_str(),
            store_ ? (", store " + store_->address()).c_str() : "");
  return absl::OkStatus();
}

absl::Status World::open_store(const DistOptions& options) {
  const double timeout = options.rendezvous_timeout_s;
  auto with_context = [this](const absl::Status& s) {
    return absl::Status(s.code(), "DRWKV_RENDEZVOUS=" + rendezvous_.str() + ": " + std::string(s.message()));
  };
  switch (rendezvous_.kind) {
    case RendezvousKind::File: {
      std::string dir = rendezvous_.path + "/" + (options_.run_id.empty() ? "run" : options_.run_id);
      auto fs = FileStore::open(dir);
      if (!fs.ok()) return with_context(fs.status());
      if (info_.rank == 0) DRWKV_RETURN_IF_ERROR((*fs)->clear());  // leftovers of an earlier run with this id
      file_store_ = fs->get();
      store_ = std::move(*fs);
      return absl::OkStatus();
    }
    case RendezvousKind::Tcp: {
      if (info_.rank == 0) {
        auto srv = TcpStoreServer::start(rendezvous_.port);
        if (!srv.ok()) return with_context(srv.status());
        server_ = std::move(*srv);
      }
      DRWKV_ASSIGN_OR_RETURN(auto s, TcpStore::connect(rendezvous_.host, rendezvous_.port, info_.rank, timeout));
      store_ = std::move(s);
      return absl::OkStatus();
    }
    case RendezvousKind::Mpi: {
      // The watchdog's side channel: rank 0 serves an ephemeral port, MPI tells everybody where.
      std::string addr;
      if (info_.rank == 0) {
        auto srv = TcpStoreServer::start(0);
        if (srv.ok()) {
          server_ = std::move(*srv);
          addr = info_.hostname + ":" + std::to_string(server_->port());
        } else {
          log_warn("no watchdog side channel: %s", std::string(srv.status().message()).c_str());
        }
      }
      addr = mpi_broadcast_bytes(addr, 0);
      std::optional<std::string> failed;
      if (!addr.empty()) {
        size_t colon = addr.rfind(':');
        auto s = TcpStore::connect(addr.substr(0, colon), std::atoi(addr.c_str() + colon + 1), info_.rank, 30);
        if (s.ok()) {
          store_ = std::move(*s);
        } else {
          failed = std::string(s.status().message());
        }
      }
      // all or none: a rank without the store would be reported as dead by the others
      if (mpi_all_min(store_ ? 1 : 0) == 0) {
        if (failed) log_warn("no watchdog side channel: %s", failed->c_str());
        if (store_) store_->goodbye();
        store_.reset();
      }
      return absl::OkStatus();
    }
    default: return absl::OkStatus();
  }
}

Communicator& World::comm() {
  DRWKV_ASSERT(comm_ != nullptr, "World::comm() with backend %s (no communicator)", backend_name(backend_));
  return *comm_;
}

Watchdog::Scope World::watch_step(int64_t step, double timeout_s) {
  if (!watchdog_) return Watchdog::Scope(nullptr, 0);
  watchdog_->set_step(step);
  return watchdog_->scope("step " + std::to_string(step), timeout_s);
}

World::~World() { shutdown(); }

void World::shutdown() {
  if (watchdog_) watchdog_->stop();
  const int W = info_.world_size;
  if (!started_) {
    // init failed: the other ranks may be stuck in start-up; no barrier, no MPI_Finalize (the program
    // exits with the Status, and the launcher ends the job)
    set_fatal_hook(nullptr);
    comm_.reset();
    watchdog_.reset();
    store_.reset();
    server_.reset();
    return;
  }
  if (store_ && W > 1) {
    absl::Status s = store_barrier(*store_, run_prefix_ + "shutdown", info_.rank, W, options_.rendezvous_timeout_s);
    if (!s.ok()) log_warn("clean shutdown: %s", std::string(s.message()).c_str());
    if (info_.rank == 0) {
      // keep the store up until every rank has seen the barrier complete
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (int r = 1; r < W && s.ok();) {
        auto v = store_->get(run_prefix_ + "left/" + std::to_string(r));
        if (!v.ok() || std::chrono::steady_clock::now() > deadline) break;
        if (v->has_value()) {
          ++r;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
    } else {
      (void)store_->set(run_prefix_ + "left/" + std::to_string(info_.rank), "1");
    }
    store_->goodbye();
  }
  set_fatal_hook(nullptr);
  comm_.reset();
  watchdog_.reset();
  if (file_store_ && info_.rank == 0) file_store_->remove_all();
  store_.reset();
  server_.reset();
  if (we_started_mpi_) mpi_finalize();
}

}  // namespace drwkv::dist
