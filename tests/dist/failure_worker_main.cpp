// A small training-like loop for tests/dist/rank_failure_test.cpp: every step all-reduces a buffer;
// at step 3 the victim rank kills itself (kill), stalls while staying alive (hang) or hits a fatal
// error (fatal). Each rank writes its stderr to LOG_DIR/rank<R>.log, so the driver can read what the
// surviving ranks printed even when mpirun tears the job down.
//
// usage: dist_failure_worker kill|hang|fatal VICTIM LOG_DIR
// configuration from the environment (dist/env.h): DRWKV_BACKEND, DRWKV_RENDEZVOUS, DRWKV_DIST_TIMEOUT...
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/check.h"
#include "core/log.h"
#include "core/status.h"
#include "dist/world.h"

using namespace drwkv;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s kill|hang|fatal VICTIM LOG_DIR\n", argv[0]);
    return 2;
  }
  const std::string scenario = argv[1];
  const int victim = std::atoi(argv[2]);
  const char* rank_env = std::getenv("OMPI_COMM_WORLD_RANK");
  std::string log = std::string(argv[3]) + "/rank" + (rank_env ? rank_env : "0") + ".log";
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (fd < 0 || ::dup2(fd, 2) < 0) return 2;

  auto options = value_or_die(dist::dist_options_from_env(), "options");
  auto world = value_or_die(dist::World::init(options), "World::init");
  dist::Communicator& comm = world->comm();
  for (int step = 0; step < 8; ++step) {
    auto guard = world->watch_step(step);
    if (step == 3 && comm.rank() == victim) {
      log_info("step 3: rank %d %s", victim,
               scenario == "kill" ? "kills itself" : scenario == "hang" ? "stalls" : "hits a fatal error");
      if (scenario == "kill") std::raise(SIGKILL);
      if (scenario == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
      DRWKV_ASSERT(scenario != "fatal", "injected fatal error at step %d", step);
    }
    Tensor t = Tensor::full(Shape{4096}, double(comm.rank() + step), DType::F32);
    comm.all_reduce(t, dist::ReduceOp::Sum);
    log_info("step %d done", step);
  }
  log_info("finished");
  return 0;
}
