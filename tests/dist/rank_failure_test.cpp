// A rank that dies or stalls must not leave the others hanging: this driver starts mpirun with
// dist_failure_worker (tests/dist/failure_worker_main.cpp), one rank of which is killed by SIGKILL,
// stalls, or hits a fatal error at step 3, and checks what the other ranks wrote to their own log
// files and how long the whole run took.
//
// mpirun normally kills the whole job as soon as one process dies, before our watchdog gets to act;
// the kill and hang cases therefore run with --enable-recovery, which leaves the survivors running, as
// srun without --kill-on-bad-exit or a rank that stalls without dying would. Assertions are on the
// survivors' logs ("watchdog: rank R failed: ..." and the exit line), never on mpirun's own output.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace drwkv::dist {
namespace {

struct Outcome {
  int status = -1;  // mpirun's wait status
  double seconds = 0;
  bool hung = false;
  std::vector<std::string> logs;  // per rank
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Outcome run_job(const std::string& scenario, int np, int victim, const std::string& rendezvous, bool recovery,
                double limit_s = 60) {
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("drwkv_failure_" + scenario + "_" + std::to_string(getpid()) + "_" + std::to_string(victim)))
                        .string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<std::string> args = {DRWKV_MPIEXEC, "-np", std::to_string(np), "--oversubscribe", "--bind-to", "none"};
  if (recovery) args.push_back("--enable-recovery");
  for (const char* a : {DRWKV_FAILURE_WORKER}) args.push_back(a);
  args.push_back(scenario);
  args.push_back(std::to_string(victim));
  args.push_back(dir);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    setenv("DRWKV_BACKEND", "mpi", 1);
    setenv("DRWKV_RENDEZVOUS", rendezvous.c_str(), 1);
    setenv("DRWKV_DIST_TIMEOUT", "4", 1);
    setenv("DRWKV_HEARTBEAT", "0.2", 1);
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    std::string out = dir + "/mpirun.log";
    if (freopen(out.c_str(), "w", stdout) == nullptr) _exit(126);
    dup2(fileno(stdout), 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  Outcome o;
  while (true) {
    pid_t r = waitpid(pid, &o.status, WNOHANG);
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r == pid) break;
    if (o.seconds > limit_s) {
      o.hung = true;
      kill(-pid, SIGKILL);
      waitpid(pid, &o.status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // the ranks' own processes may outlive mpirun by a moment when it tears the job down
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (int r = 0; r < np; ++r) o.logs.push_back(read_file(dir + "/rank" + std::to_string(r) + ".log"));
  std::printf("--- %s of rank %d (%s): %.1f s, mpirun status %d\n", scenario.c_str(), victim, rendezvous.c_str(),
              o.seconds, o.status);
  for (int r = 0; r < np; ++r) std::printf("[rank %d log]\n%s", r, o.logs[size_t(r)].c_str());
  std::printf("[mpirun]\n%s", read_file(dir + "/mpirun.log").c_str());
  std::filesystem::remove_all(dir);
  return o;
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

void expect_survivors_name(const Outcome& o, int victim, const std::string& reason) {
  EXPECT_FALSE(o.hung) << "the job did not end within its limit";
  for (int r = 0; r < int(o.logs.size()); ++r) {
    if (r == victim) continue;
    const std::string& log = o.logs[size_t(r)];
    EXPECT_TRUE(contains(log, "watchdog: rank " + std::to_string(victim) + " failed: " + reason))
        << "rank " << r << " log:\n" << log;
    // the survivor stops itself, unless another rank's abort (status 3, the watchdog's) ended the job
    // between this rank's failure line and its exit line
    const bool job_aborted_by_watchdog = WIFEXITED(o.status) && WEXITSTATUS(o.status) == 3;
    EXPECT_TRUE(contains(log, "exiting with status 3") || job_aborted_by_watchdog)
        << "rank " << r << ", mpirun status " << o.status;
    EXPECT_FALSE(contains(log, "finished")) << "rank " << r;
  }
}

TEST(RankFailure, KilledRankIsNamedWithinAHeartbeatThroughTheTcpSideChannel) {
  Outcome o = run_job("kill", 3, 1, "mpi", /*recovery=*/true);
  EXPECT_TRUE(contains(o.logs[1], "step 3: rank 1 kills itself"));
  expect_survivors_name(o, 1, "rank 1 died: its connection to the rendezvous store closed");
  EXPECT_LT(o.seconds, 15) << "the death is seen by the store server at once, no timeout needed";
}

TEST(RankFailure, KilledRankIsNamedAfterTheTimeoutFromStaleHeartbeatsInAFileStore) {
  std::string dir = (std::filesystem::temp_directory_path() / ("drwkv_failure_rdzv_" + std::to_string(getpid()))).string();
  Outcome o = run_job("kill", 3, 2, "file:" + dir, /*recovery=*/true);
  expect_survivors_name(o, 2, "rank 2 stopped: no heartbeat for");
  EXPECT_GE(o.seconds, 4) << "a file store cannot see a death: the 4 s collective timeout finds it";
  EXPECT_LT(o.seconds, 25);
  std::filesystem::remove_all(dir);
}

TEST(RankFailure, StalledRankIsNamedAsBehindAndStopsToo) {
  Outcome o = run_job("hang", 2, 1, "tcp://127.0.0.1:29690", /*recovery=*/false);
  expect_survivors_name(o, 1, "rank 1 is alive but behind");
  EXPECT_TRUE(contains(o.logs[1], "step 3: rank 1 stalls"));
  EXPECT_TRUE(contains(o.logs[1], "rank 1 failed")) << "the stalled rank learns it too:\n" << o.logs[1];
  EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) != 0) << "mpirun status " << o.status;
  EXPECT_LT(o.seconds, 25);
}

TEST(RankFailure, DeathOfRankZeroAndItsStoreIsNamed) {
  Outcome o = run_job("kill", 3, 0, "mpi", /*recovery=*/true);
  expect_survivors_name(o, 0, "the rendezvous store");
  EXPECT_LT(o.seconds, 15);
}

TEST(RankFailure, FatalErrorOnOneRankAbortsEveryRank) {
  Outcome o = run_job("fatal", 3, 1, "mpi", /*recovery=*/false);
  EXPECT_FALSE(o.hung);
  EXPECT_TRUE(contains(o.logs[1], "FATAL")) << o.logs[1];
  EXPECT_TRUE(contains(o.logs[1], "injected fatal error at step 3")) << o.logs[1];
  EXPECT_TRUE(contains(o.logs[1], "r1/3")) << "the fatal message names the rank";
  EXPECT_FALSE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << "mpirun status " << o.status;
  for (int r : {0, 2}) EXPECT_FALSE(contains(o.logs[size_t(r)], "finished")) << "rank " << r;
  EXPECT_LT(o.seconds, 15) << "MPI_Abort from the fatal hook ends the job at once";
}

}  // namespace
}  // namespace drwkv::dist
