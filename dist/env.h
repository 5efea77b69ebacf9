// Who this process is in a distributed run, and how the run is configured, read from the environment.
//
// detect_process_info() reads rank, world size, local rank, local world size and node from the
// launcher's variables. Sources, first match wins:
//   1. DRWKV_RANK, DRWKV_WORLD_SIZE [, DRWKV_LOCAL_RANK, DRWKV_LOCAL_WORLD_SIZE]: explicit override
//      (custom launchers, tests that start processes themselves);
//   2. Open MPI's mpirun: OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE,NODE_RANK};
//   3. PMI launchers (MPICH/Hydra, Intel MPI): PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS;
//   4. a Slurm job step (srun): SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, SLURM_NODEID,
//      SLURM_STEP_NUM_NODES, SLURM_STEP_TASKS_PER_NODE ("2(x3),1": per-node task counts);
//   5. otherwise a single process, rank 0 of 1.
// Open MPI comes before Slurm because mpirun inside an sbatch allocation inherits the batch script's
// SLURM_PROCID=0; Slurm counts only inside a job step (SLURM_STEP_NUM_TASKS is set by srun, not by the
// batch script), so a program started directly by the batch script is a single process, not "rank 0
// of N" waiting forever for N-1 peers.
//
// dist_options_from_env() reads the run's configuration (all optional):
//   DRWKV_BACKEND             auto | nccl | mpi | self | none
//   DRWKV_RENDEZVOUS          auto | mpi | file:DIR | tcp://HOST:PORT | none
//   DRWKV_WORLD_SIZE_EXPECTED the world size the run requires (0 or unset: any)
//   DRWKV_RENDEZVOUS_TIMEOUT  seconds (default 300)
//   DRWKV_DIST_TIMEOUT        seconds a collective may take before the watchdog aborts (default 600)
//   DRWKV_HEARTBEAT           seconds between heartbeats in the rendezvous store (default 1)
//   DRWKV_RUN_ID              names this run's subdirectory in a file rendezvous (default: the Slurm
//                             job/step id or Open MPI's job id)
// Malformed values are user errors: absl::Status naming the variable, its value and what was expected.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace drwkv::dist {

// Looks up an environment variable: nullptr when unset. Tests pass a map; programs use system_env.
using EnvLookup = std::function<const char*(const char*)>;
const char* system_env(const char* name);

struct ProcessInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // rank among the processes of this node
  int local_world_size = 1;  // processes on this node
  int node_rank = 0;
  int num_nodes = 1;
  std::string launcher = "none";  // drwkv | openmpi | pmi | slurm | none: who set the variables
  std::string rank_variable;      // the variables the rank and world size came from, for messages
  std::string world_variable;
  std::string hostname;
  std::string run_id;  // unique per run where the launcher provides one (Slurm job.step, Open MPI job id)

  std::string describe() const;  // "rank 1 of 4 (local 1 of 2, node 0 of 2) on host a via slurm"
};

absl::StatusOr<ProcessInfo> detect_process_info(const EnvLookup& env = system_env);

enum class Backend { Auto, Nccl, Mpi, Self, None };
enum class RendezvousKind { Auto, Mpi, File, Tcp, None };

const char* backend_name(Backend b);

struct Rendezvous {
  RendezvousKind kind = RendezvousKind::Auto;
  std::string path;  // File: the directory (on a file system shared by all nodes)
  std::string host;  // Tcp: where rank 0 listens
  int port = 0;
  std::string str() const;  // the spec it was parsed from, normalised
};

// Parses "auto", "mpi", "none", "file:DIR" or "tcp://HOST:PORT"; `what` names the source in errors
// (a variable or a flag).
absl::StatusOr<Rendezvous> parse_rendezvous(std::string_view spec, std::string_view what = "DRWKV_RENDEZVOUS");
absl::StatusOr<Backend> parse_backend(std::string_view spec, std::string_view what = "DRWKV_BACKEND");

struct DistOptions {
  Backend backend = Backend::Auto;  // Auto: NCCL when built with CUDA and a GPU is visible, else MPI
                                    // (Self for a single process)
  Rendezvous rendezvous;            // Auto: mpi under mpirun, none for a single process
  int expected_world_size = 0;      // 0: whatever the launcher says
  double rendezvous_timeout_s = 300;
  double collective_timeout_s = 600;  // watchdog limit for one collective
  double heartbeat_s = 1.0;
  bool watchdog = true;
  std::string run_id;  // overrides ProcessInfo::run_id for the file rendezvous directory
};

// `defaults` supplies the values of unset variables.
absl::StatusOr<DistOptions> dist_options_from_env(const EnvLookup& env = system_env, DistOptions defaults = {});

}  // namespace drwkv::dist
