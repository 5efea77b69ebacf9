// Process identity and run configuration from the environment (dist/env.h).
#include "dist/env.h"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <vector>

namespace drwkv::dist {
namespace {

std::string get(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  return v ? std::string(v) : std::string();
}
bool has(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  return v && *v;
}

// A non-negative integer from variable `name`, in [lo, hi] (hi < 0: unbounded).
absl::StatusOr<int> parse_int(const EnvLookup& env, const char* name, int lo, int hi = -1) {
  std::string s = get(env, name);
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || (hi >= 0 && v > hi)) {
    std::string range = hi >= 0 ? absl::StrFormat("[%d, %d]", lo, hi) : absl::StrFormat(">= %d", lo);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s='%s': expected an integer %s", name, s, range));
  }
  return v;
}

absl::StatusOr<double> parse_seconds(const EnvLookup& env, const char* name, double fallback) {
  if (!has(env, name)) return fallback;
  std::string s = get(env, name);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !(v > 0) || v > 1e7) {
    return absl::InvalidArgumentError(absl::StrFormat("%s='%s': expected a number of seconds > 0", name, s));
  }
  return v;
}

// Slurm's compressed per-node task counts: "2(x3),1" = 2,2,2,1.
absl::StatusOr<std::vector<int>> parse_tasks_per_node(const std::string& s, const char* name) {
  std::vector<int> out;
  size_t i = 0;
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrFormat("%s='%s': expected Slurm's form like '2(x3),1'", name, s));
  };
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i) return bad();
    int count = std::atoi(s.substr(i, j - i).c_str());
    int repeat = 1;
    if (j < s.size() && s[j] == '(') {
      if (s.compare(j, 2, "(x") != 0) return bad();
      size_t k = j + 2, e = s.find(')', k);
      if (e == std::string::npos || e == k) return bad();
      repeat = std::atoi(s.substr(k, e - k).c_str());
      if (repeat <= 0) return bad();
      j = e + 1;
    }
    for (int r = 0; r < repeat; ++r) out.push_back(count);
    if (j < s.size() && s[j] != ',') return bad();
    i = j + 1;
  }
  if (out.empty()) return bad();
  return out;
}

std::string local_hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

absl::Status check_ranges(const ProcessInfo& p) {
  if (p.rank >= p.world_size) {
    return absl::InvalidArgumentError(absl::StrFormat("%s=%d is not below the world size %s=%d", p.rank_variable,
                                                      p.rank, p.world_variable, p.world_size));
  }
  if (p.local_rank >= p.local_world_size || p.local_world_size > p.world_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "local rank %d / local world size %d (from %s) inconsistent with world size %d", p.local_rank,
        p.local_world_size, p.launcher, p.world_size));
  }
  return absl::OkStatus();
}

}  // namespace

const char* system_env(const char* name) { return std::getenv(name); }

std::string ProcessInfo::describe() const {
  return absl::StrFormat("rank %d of %d (local %d of %d, node %d of %d) on host %s via %s", rank, world_size,
                         local_rank, local_world_size, node_rank, num_nodes, hostname, launcher);
}

absl::StatusOr<ProcessInfo> detect_process_info(const EnvLookup& env) {
  ProcessInfo p;
  p.hostname = local_hostname();
  auto set_uniform_nodes = [&p] {
    // Launchers that give no node index: assume processes are placed node by node (mpirun's default
    // --map-by slot), which is how the node index is only used: for logs.
    p.num_nodes = (p.world_size + p.local_world_size - 1) / p.local_world_size;
    p.node_rank = p.rank / p.local_world_size;
  };
  if (has(env, "DRWKV_RANK") || has(env, "DRWKV_WORLD_SIZE")) {
    p.launcher = "drwkv";
    p.rank_variable = "DRWKV_RANK";
    p.world_variable = "DRWKV_WORLD_SIZE";
    DRWKV_ASSIGN_OR_RETURN(p.world_size, parse_int(env, "DRWKV_WORLD_SIZE", 1));
    DRWKV_ASSIGN_OR_RETURN(p.rank, parse_int(env, "DRWKV_RANK", 0));
    p.local_rank = p.rank;
    p.local_world_size = p.world_size;
    if (has(env, "DRWKV_LOCAL_WORLD_SIZE")) {
      DRWKV_ASSIGN_OR_RETURN(p.local_world_size, parse_int(env, "DRWKV_LOCAL_WORLD_SIZE", 1));
      DRWKV_ASSIGN_OR_RETURN(p.local_rank, parse_int(env, "DRWKV_LOCAL_RANK", 0));
    }
    set_uniform_nodes();
  } else if (has(env, "OMPI_COMM_WORLD_SIZE")) {
    p.launcher = "openmpi";
    p.rank_variable = "OMPI_COMM_WORLD_RANK";
    p.world_variable = "OMPI_COMM_WORLD_SIZE";
    DRWKV_ASSIGN_OR_RETURN(p.world_size, parse_int(env, "OMPI_COMM_WORLD_SIZE", 1));
    DRWKV_ASSIGN_OR_RETURN(p.rank, parse_int(env, "OMPI_COMM_WORLD_RANK", 0));
    DRWKV_ASSIGN_OR_RETURN(p.local_world_size, parse_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1));
    DRWKV_ASSIGN_OR_RETURN(p.local_rank, parse_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0));
    set_uniform_nodes();
    if (has(env, "OMPI_MCA_ess_base_jobid")) p.run_id = "ompi-" + get(env, "OMPI_MCA_ess_base_jobid");
  } else if (has(env, "PMI_SIZE")) {
    p.launcher = "pmi";
    p.rank_variable = "PMI_RANK";
    p.world_variable = "PMI_SIZE";
    DRWKV_ASSIGN_OR_RETURN(p.world_size, parse_int(env, "PMI_SIZE", 1));
    DRWKV_ASSIGN_OR_RETURN(p.rank, parse_int(env, "PMI_RANK", 0));
    p.local_rank = 0;
    p.local_world_size = 1;
    if (has(env, "MPI_LOCALNRANKS")) {
      DRWKV_ASSIGN_OR_RETURN(p.local_world_size, parse_int(env, "MPI_LOCALNRANKS", 1));
      DRWKV_ASSIGN_OR_RETURN(p.local_rank, parse_int(env, "MPI_LOCALRANKID", 0));
    }
    set_uniform_nodes();
  } else if (has(env, "SLURM_PROCID") && has(env, "SLURM_STEP_NUM_TASKS")) {
    p.launcher = "slurm";
    p.rank_variable = "SLURM_PROCID";
    p.world_variable = "SLURM_STEP_NUM_TASKS";
    DRWKV_ASSIGN_OR_RETURN(p.world_size, parse_int(env, "SLURM_STEP_NUM_TASKS", 1));
    DRWKV_ASSIGN_OR_RETURN(p.rank, parse_int(env, "SLURM_PROCID", 0));
    DRWKV_ASSIGN_OR_RETURN(p.local_rank, parse_int(env, "SLURM_LOCALID", 0));
    DRWKV_ASSIGN_OR_RETURN(p.node_rank, parse_int(env, "SLURM_NODEID", 0));
    p.num_nodes = 1;
    if (has(env, "SLURM_STEP_NUM_NODES")) {
      DRWKV_ASSIGN_OR_RETURN(p.num_nodes, parse_int(env, "SLURM_STEP_NUM_NODES", 1));
    }
    if (p.node_rank >= p.num_nodes) {
      return absl::InvalidArgumentError(absl::StrFormat("SLURM_NODEID=%d is not below SLURM_STEP_NUM_NODES=%d",
                                                        p.node_rank, p.num_nodes));
    }
    p.local_world_size = p.world_size;
    if (has(env, "SLURM_STEP_TASKS_PER_NODE")) {
      DRWKV_ASSIGN_OR_RETURN(std::vector<int> per_node,
                             parse_tasks_per_node(get(env, "SLURM_STEP_TASKS_PER_NODE"), "SLURM_STEP_TASKS_PER_NODE"));
      if (int(per_node.size()) != p.num_nodes) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "SLURM_STEP_TASKS_PER_NODE='%s' lists %d nodes, SLURM_STEP_NUM_NODES=%d",
            get(env, "SLURM_STEP_TASKS_PER_NODE"), int(per_node.size()), p.num_nodes));
      }
      p.local_world_size = per_node[size_t(p.node_rank)];
    }
    if (has(env, "SLURM_JOB_ID")) p.run_id = "slurm-" + get(env, "SLURM_JOB_ID") + "." + get(env, "SLURM_STEP_ID");
  }
  DRWKV_RETURN_IF_ERROR(check_ranges(p));
  return p;
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Auto: return "auto";
    case Backend::Nccl: return "nccl";
    case Backend::Mpi: return "mpi";
    case Backend::Self: return "self";
    case Backend::None: return "none";
  }
  return "?";
}

std::string Rendezvous::str() const {
  switch (kind) {
    case RendezvousKind::Auto: return "auto";
    case RendezvousKind::Mpi: return "mpi";
    case RendezvousKind::None: return "none";
    case RendezvousKind::File: return "file:" + path;
    case RendezvousKind::Tcp: return absl::StrFormat("tcp://%s:%d", host, port);
  }
  return "?";
}

absl::StatusOr<Rendezvous> parse_rendezvous(std::string_view spec, std::string_view what) {
  Rendezvous r;
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s='%s': %s (expected auto, mpi, none, file:DIR or tcp://HOST:PORT)", what, spec, why));
  };
  if (spec.empty() || spec == "auto") return r;
  if (spec == "mpi") {
    r.kind = RendezvousKind::Mpi;
  } else if (spec == "none") {
    r.kind = RendezvousKind::None;
  } else if (spec.starts_with("file:")) {
    r.kind = RendezvousKind::File;
    r.path = std::string(spec.substr(5));
    if (r.path.empty()) return bad("no directory after file:");
    if (r.path[0] != '/') return bad("the directory must be an absolute path (every node must see the same one)");
  } else if (spec.starts_with("tcp://")) {
    r.kind = RendezvousKind::Tcp;
    std::string_view hp = spec.substr(6);
    size_t colon = hp.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return bad("no HOST:PORT after tcp://");
    r.host = std::string(hp.substr(0, colon));
    std::string_view ps = hp.substr(colon + 1);
    int port = 0;
    auto [end, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ps.empty() || ec != std::errc() || end != ps.data() + ps.size() || port < 1 || port > 65535) {
      return bad("PORT must be an integer in [1, 65535]");
    }
    r.port = port;
  } else {
    return bad("unknown form");
  }
  return r;
}

absl::StatusOr<Backend> parse_backend(std::string_view spec, std::string_view what) {
  if (spec.empty() || spec == "auto") return Backend::Auto;
  if (spec == "nccl") return Backend::Nccl;
  if (spec == "mpi") return Backend::Mpi;
  if (spec == "self") return Backend::Self;
  if (spec == "none") return Backend::None;
  return absl::InvalidArgumentError(
      absl::StrFormat("%s='%s': expected auto, nccl, mpi, self or none", what, spec));
}

absl::StatusOr<DistOptions> dist_options_from_env(const EnvLookup& env, DistOptions o) {
  if (has(env, "DRWKV_BACKEND")) {
    DRWKV_ASSIGN_OR_RETURN(o.backend, parse_backend(get(env, "DRWKV_BACKEND")));
  }
  if (has(env, "DRWKV_RENDEZVOUS")) {
    DRWKV_ASSIGN_OR_RETURN(o.rendezvous, parse_rendezvous(get(env, "DRWKV_RENDEZVOUS")));
  }
  if (has(env, "DRWKV_WORLD_SIZE_EXPECTED")) {
    DRWKV_ASSIGN_OR_RETURN(o.expected_world_size, parse_int(env, "DRWKV_WORLD_SIZE_EXPECTED", 0));
  }
  DRWKV_ASSIGN_OR_RETURN(o.rendezvous_timeout_s, parse_seconds(env, "DRWKV_RENDEZVOUS_TIMEOUT", o.rendezvous_timeout_s));
  DRWKV_ASSIGN_OR_RETURN(o.collective_timeout_s, parse_seconds(env, "DRWKV_DIST_TIMEOUT", o.collective_timeout_s));
  DRWKV_ASSIGN_OR_RETURN(o.heartbeat_s, parse_seconds(env, "DRWKV_HEARTBEAT", o.heartbeat_s));
  if (has(env, "DRWKV_RUN_ID")) o.run_id = get(env, "DRWKV_RUN_ID");
  return o;
}

}  // namespace drwkv::dist
