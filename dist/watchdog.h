// The watchdog: no collective or step may hang forever, and when one does, every live rank exits
// non-zero with a message naming the rank that failed.
//
// Two threads per process:
//   - the heartbeat thread publishes a heartbeat every heartbeat_s at "hb/RANK" in the rendezvous
//     store (a beat counter, the step, how many collectives this rank has issued and completed, what
//     is in flight), and reads the store's "abort" (a peer gave up) and "__dead" (TCP store: ranks whose
//     connection closed without a clean goodbye, i.e. processes that died);
//   - the watch thread checks every operation registered by begin()/watch()/scope() (the communicators
//     register each collective; the trainer wraps each step) against its deadline.
// Separate threads, so a rank busy diagnosing a timeout still looks alive to the others.
// When an operation passes its deadline, the watch thread reads all heartbeats twice, 2.5 heartbeats apart
// (no clocks are compared across nodes) and names the failed ranks: died (connection closed), stopped
// (no new heartbeat), or alive but behind (fewer collectives issued than this rank). It then
//   1. prints  "watchdog: rank R failed: <why>; <what timed out here>"   (R: a list when several),
//   2. publishes the message at "abort", so every other rank prints it and stops within a heartbeat,
//   3. waits up to 2 heartbeats + 1 s for the other live ranks to acknowledge (so they all print),
//   4. aborts the communicator (ncclCommAbort, or MPI_Abort which ends the whole MPI job),
//   5. exits with kWatchdogExitCode (a timer forces the exit should step 4 itself hang).
// Deadlines run from begin()/watch(): for an NCCL collective that is its launch, so its limit also
// covers the compute it is queued behind. The same path runs when a peer's abort or death is seen,
// without a timeout. The rank that hits a fatal error (drwkv::fail) publishes "rank R failed: fatal
// error" from the fatal hook (dist/world.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/store.h"

namespace drwkv::dist {

inline constexpr int kWatchdogExitCode = 3;

struct WatchdogOptions {
  double timeout_s = 600;  // default deadline of an operation
  double heartbeat_s = 1.0;
  int exit_code = kWatchdogExitCode;
  std::function<void()> thread_init;  // run first on the watch thread (e.g. select the CUDA device)
  // Prefix of this run's keys in the store ("hb/R" is stored as PREFIX + "hb/R"), so that keys left by
  // an earlier run in a reused directory are never read as this run's.
  std::string key_prefix;
};

struct Heartbeat {
  uint64_t beat = 0;       // increments at every heartbeat
  int64_t step = -1;       // set_step()
  uint64_t started = 0;    // collectives issued so far (the same numbering on every rank)
  uint64_t completed = 0;  // collectives completed
  std::string current;     // the oldest operation in flight, or "idle"
  std::string encode() const;
  static std::optional<Heartbeat> decode(const std::string& s);
};

struct Diagnosis {
  std::vector<int> failed;  // empty: no rank identified
  std::string text;
};
// Names the failed ranks from two rounds of heartbeats read `interval_s` apart (nullopt: none yet),
// and the ranks the store saw die. Pure; `me` is this rank and `mine` its own state.
Diagnosis diagnose(int me, const Heartbeat& mine, const std::vector<std::optional<Heartbeat>>& first,
                   const std::vector<std::optional<Heartbeat>>& second, const std::vector<int>& dead,
                   double interval_s);
// "rank 1" / "ranks 1, 3"
std::string rank_list(const std::vector<int>& ranks);

class Watchdog {
 public:
  // `store` may be null (single process, or no side channel): then no heartbeats and no names.
  // `abort_comm` aborts the communicator (may not return).
  Watchdog(int rank, int world_size, Store* store, WatchdogOptions options, std::function<void()> abort_comm);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Clean shutdown: stops the thread and the heartbeats. Operations are no longer watched.
  void stop();

  // An operation that must end() within timeout_s (<= 0: the default). Collectives are numbered.
  uint64_t begin(std::string what, bool collective, double timeout_s = 0);
  void end(uint64_t id);
  // An operation that ends when `done` returns true; `done` is polled on the watchdog thread
  // (device work: a CUDA event query).
  void watch(std::string what, bool collective, std::function<bool()> done, double timeout_s = 0);

  class Scope {
   public:
    Scope(Watchdog* w, uint64_t id) : w_(w), id_(id) {}
    Scope(Scope&& o) noexcept : w_(o.w_), id_(o.id_) { o.w_ = nullptr; }
    Scope(const Scope&) = delete;
    ~Scope() {
      if (w_) w_->end(id_);
    }

   private:
    Watchdog* w_;
    uint64_t id_;
  };
  // e.g. auto guard = watchdog.scope("step 12", step_timeout_s);
  Scope scope(std::string what, double timeout_s = 0) { return Scope(this, begin(std::move(what), false, timeout_s)); }

  void set_step(int64_t step);
  Heartbeat heartbeat() const;

  // Tells the other ranks that this rank failed (the fatal hook); returns.
  void publish_failure(const std::string& reason);
  // Prints `message`, tells the other ranks, aborts the communicator and exits (see above).
  [[noreturn]] void abort_run(const std::vector<int>& failed, const std::string& message, bool publish = true);

 private:
  struct State;
  void run();
  void run_heartbeat();
  void beat();
  void check_peers();
  void on_timeout(const std::string& what, double timeout_s);
  std::vector<std::optional<Heartbeat>> read_heartbeats(std::string* error);
  std::vector<int> read_dead();
  std::string key(const std::string& k) const { return options_.key_prefix + k; }

  int rank_, world_;
  Store* store_;
  WatchdogOptions options_;
  std::function<void()> abort_comm_;
  std::unique_ptr<State> state_;
};

}  // namespace drwkv::dist
