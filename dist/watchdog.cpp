// The watchdog thread, heartbeats and the diagnosis of a hung run (dist/watchdog.h).
#include "dist/watchdog.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "core/log.h"

namespace drwkv::dist {
namespace {

using Clock = std::chrono::steady_clock;
double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

std::vector<int> parse_ranks(const std::string& csv) {
  std::vector<int> out;
  std::istringstream in(csv);
  for (std::string tok; std::getline(in, tok, ',');) {
    if (!tok.empty()) out.push_back(std::atoi(tok.c_str()));
  }
  return out;
}

std::string where_text(const Heartbeat& h) {
  return strprintf("its last heartbeat: step %lld, %llu collectives issued, in: %s", (long long)h.step,
                   (unsigned long long)h.started, h.current.c_str());
}

}  // namespace

std::string Heartbeat::encode() const {
  return strprintf("%llu %lld %llu %llu|%s", (unsigned long long)beat, (long long)step, (unsigned long long)started,
                   (unsigned long long)completed, current.c_str());
}

std::optional<Heartbeat> Heartbeat::decode(const std::string& s) {
  Heartbeat h;
  size_t bar = s.find('|');
  if (bar == std::string::npos) return std::nullopt;
  unsigned long long beat, started, completed;
  long long step;
  if (std::sscanf(s.substr(0, bar).c_str(), "%llu %lld %llu %llu", &beat, &step, &started, &completed) != 4) {
    return std::nullopt;
  }
  h.beat = beat;
  h.step = step;
  h.started = started;
  h.completed = completed;
  h.current = s.substr(bar + 1);
  return h;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

Diagnosis diagnose(int me, const Heartbeat& mine, const std::vector<std::optional<Heartbeat>>& first,
                   const std::vector<std::optional<Heartbeat>>& second, const std::vector<int>& dead,
                   double interval_s) {
  Diagnosis d;
  std::vector<int> stopped, behind, ahead;
  std::string why;
  auto add = [&why](const std::string& s) { why += (why.empty() ? "" : "; ") + s; };
  for (int r = 0; r < int(second.size()); ++r) {
    if (r == me) continue;
    const auto& a = first[size_t(r)];
    const auto& b = second[size_t(r)];
    bool is_dead = std::find(dead.begin(), dead.end(), r) != dead.end();
    if (is_dead) {
      stopped.push_back(r);
      add(strprintf("rank %d died: its connection to the rendezvous store closed without a clean shutdown%s", r,
                    b ? (" (" + where_text(*b) + ")").c_str() : ""));
    } else if (!b) {
      stopped.push_back(r);
      add(strprintf("rank %d never sent a heartbeat", r));
    } else if (a && a->beat == b->beat) {
      stopped.push_back(r);
      add(strprintf("rank %d stopped: no heartbeat for %.1f s (%s)", r, interval_s, where_text(*b).c_str()));
    } else if (b->started < mine.started) {
      behind.push_back(r);
    } else if (b->started > mine.started) {
      ahead.push_back(r);
    }
  }
  if (!stopped.empty()) {
    d.failed = stopped;
  } else if (!behind.empty()) {
    d.failed = behind;
    for (int r : behind) {
      add(strprintf("rank %d is alive but behind: it has issued %llu collectives, this rank %llu (%s)", r,
                    (unsigned long long)second[size_t(r)]->started, (unsigned long long)mine.started,
                    where_text(*second[size_t(r)]).c_str()));
    }
  } else if (!ahead.empty()) {
    d.failed = {me};
    add(strprintf("this rank (%d) is behind: %s issued more collectives than its %llu", me,
                  rank_list(ahead).c_str(), (unsigned long long)mine.started));
  } else {
    add("every rank is alive and has issued the same collectives: the collective itself hangs (network, NCCL "
        "or a device problem)");
  }
  d.text = why;
  return d;
}

// ---- the watchdog ------------------------------------------------------------------------------------

struct Watchdog::State {
  struct Op {
    std::string what;
    double deadline;
    double timeout;
    bool collective;
    std::function<bool()> done;  // watch(): polled
  };
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::map<uint64_t, Op> ops;
  uint64_t next_id = 1;
  Heartbeat hb;
  std::thread thread;            // deadlines and device-work probes
  std::thread heartbeat_thread;  // heartbeats and peer checks
  std::atomic<bool> firing{false};
  int store_failures = 0;  // consecutive
  std::string first_store_error;
};

Watchdog::Watchdog(int rank, int world_size, Store* store, WatchdogOptions options, std::function<void()> abort_comm)
    : rank_(rank), world_(world_size), store_(store), options_(std::move(options)), abort_comm_(std::move(abort_comm)),
      state_(std::make_unique<State>()) {
  state_->hb.current = "idle";
  if (store_) beat();  // a first heartbeat before the first collective: "never sent one" means never started
  state_->thread = std::thread([this] { run(); });
  if (store_) state_->heartbeat_thread = std::thread([this] { run_heartbeat(); });
}

Watchdog::~Watchdog() { stop(); }

void Watchdog::stop() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
  }
  state_->cv.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
  if (state_->heartbeat_thread.joinable()) state_->heartbeat_thread.join();
}

uint64_t Watchdog::begin(std::string what, bool collective, double timeout_s) {
  double t = timeout_s > 0 ? timeout_s : options_.timeout_s;
  std::lock_guard<std::mutex> lock(state_->mu);
  uint64_t id = state_->next_id++;
  if (collective) {
    ++state_->hb.started;
    what += strprintf(" (collective #%llu)", (unsigned long long)state_->hb.started);
  }
  state_->ops[id] = State::Op{std::move(what), now_s() + t, t, collective, nullptr};
  return id;
}

void Watchdog::end(uint64_t id) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->ops.find(id);
  if (it == state_->ops.end()) return;
  if (it->second.collective) ++state_->hb.completed;
  state_->ops.erase(it);
}

void Watchdog::watch(std::string what, bool collective, std::function<bool()> done, double timeout_s) {
  uint64_t id = begin(std::move(what), collective, timeout_s);
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->ops[id].done = std::move(done);
}

void Watchdog::set_step(int64_t step) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->hb.step = step;
}

Heartbeat Watchdog::heartbeat() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  Heartbeat h = state_->hb;
  h.current = state_->ops.empty() ? "idle" : state_->ops.begin()->second.what;
  return h;
}

void Watchdog::run() {
  if (options_.thread_init) options_.thread_init();
  const double tick = std::min(0.05, options_.heartbeat_s / 4);
  std::unique_lock<std::mutex> lock(state_->mu);
  while (!state_->stopping) {
    state_->cv.wait_for(lock, std::chrono::duration<double>(tick));
    if (state_->stopping) break;
    // device work: poll its completion (quick CUDA event queries)
    for (auto it = state_->ops.begin(); it != state_->ops.end();) {
      if (it->second.done && it->second.done()) {
        if (it->second.collective) ++state_->hb.completed;
        it = state_->ops.erase(it);
      } else {
        ++it;
      }
    }
    double now = now_s();
    for (auto& [id, op] : state_->ops) {
      if (now > op.deadline) {
        std::string what = op.what;
        double timeout = op.timeout;
        lock.unlock();
        on_timeout(what, timeout);  // does not return
      }
    }
  }
}

// Heartbeats and peer checks run on their own thread, so that a rank busy diagnosing a timeout still
// looks alive to the others (they may be diagnosing at the same moment).
void Watchdog::run_heartbeat() {
  std::unique_lock<std::mutex> lock(state_->mu);
  while (!state_->stopping) {
    state_->cv.wait_for(lock, std::chrono::duration<double>(options_.heartbeat_s));
    if (state_->stopping) break;
    lock.unlock();
    beat();
    if (world_ > 1) check_peers();
    lock.lock();
  }
}

void Watchdog::beat() {
  Heartbeat h;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    ++state_->hb.beat;
  }
  h = heartbeat();
  absl::Status s = store_->set(key("hb/" + std::to_string(rank_)), h.encode());
  if (s.ok()) {
    state_->store_failures = 0;
    return;
  }
  if (++state_->store_failures == 1) {
    state_->first_store_error = std::string(s.message());
    log_warn("watchdog: heartbeat failed: %s", state_->first_store_error.c_str());
  }
  if (state_->store_failures >= 3 && rank_ != 0) {
    abort_run({0}, strprintf("watchdog: rank 0 failed: the rendezvous store %s it serves has been unreachable for "
                             "3 heartbeats (%s); on this rank: %s",
                             store_->address().c_str(), state_->first_store_error.c_str(), h.current.c_str()),
              false);
  }
}

void Watchdog::check_peers() {
  auto abort = store_->get(key("abort"));
  if (abort.ok() && abort->has_value()) {
    const std::string& v = **abort;
    size_t nl = v.find('\n');
    std::vector<int> failed = parse_ranks(v.substr(0, nl));
    std::string msg = nl == std::string::npos ? v : v.substr(nl + 1);
    abort_run(failed, strprintf("%s; on this rank: %s", msg.c_str(), heartbeat().current.c_str()), false);
  }
  std::vector<int> dead = read_dead();
  if (!dead.empty()) {
    std::string why;
    for (int r : dead) {
      auto hb = store_->get(key("hb/" + std::to_string(r)));
      std::optional<Heartbeat> h = hb.ok() && hb->has_value() ? Heartbeat::decode(**hb) : std::nullopt;
      why += strprintf("%srank %d died: its connection to the rendezvous store closed without a clean shutdown%s",
                       why.empty() ? "" : "; ", r, h ? (" (" + where_text(*h) + ")").c_str() : "");
    }
    abort_run(dead, strprintf("watchdog: %s failed: %s; on this rank: %s", rank_list(dead).c_str(), why.c_str(),
                              heartbeat().current.c_str()));
  }
}

std::vector<std::optional<Heartbeat>> Watchdog::read_heartbeats(std::string* error) {
  std::vector<std::optional<Heartbeat>> out(static_cast<size_t>(world_));
  for (int r = 0; r < world_; ++r) {
    auto v = store_->get(key("hb/" + std::to_string(r)));
    if (v.ok() && v->has_value()) out[size_t(r)] = Heartbeat::decode(**v);
    if (!v.ok() && error && error->empty()) *error = std::string(v.status().message());
  }
  return out;
}

std::vector<int> Watchdog::read_dead() {
  auto dead = store_->get("__dead");
  if (!dead.ok() || !dead->has_value()) return {};
  return parse_ranks(**dead);
}

void Watchdog::on_timeout(const std::string& what, double timeout_s) {
  std::string here = strprintf("on rank %d, %s did not complete within %.1f s", rank_, what.c_str(), timeout_s);
  if (!store_ || world_ == 1) abort_run({}, "watchdog: " + here);
  // Peers that publish no new heartbeat over the window have stopped. The window lasts at least 2.5
  // heartbeats and until this rank's own heartbeat thread has published two more: on a machine too
  // busy to schedule heartbeat threads, nobody beats, and nobody is to blame (at most 10 windows).
  const double min_window = std::max(0.5, 2.5 * options_.heartbeat_s);
  Heartbeat mine = heartbeat();
  std::string error;
  auto first = read_heartbeats(&error);
  const double start = now_s();
  while (now_s() - start < min_window ||
         (heartbeat().beat < mine.beat + 2 && now_s() - start < 10 * min_window)) {
    std::this_thread::sleep_for(std::chrono::duration<double>(min_window / 10));
  }
  const double interval = now_s() - start;
  auto second = read_heartbeats(&error);
  if (!error.empty()) {
    if (rank_ != 0) {
      abort_run({0}, strprintf("watchdog: rank 0 failed: the rendezvous store %s it serves is unreachable (%s); %s",
                               store_->address().c_str(), error.c_str(), here.c_str()));
    }
    abort_run({}, strprintf("watchdog: no rank identified as failed: the heartbeats are unreadable (%s); %s",
                            error.c_str(), here.c_str()));
  }
  Diagnosis d = diagnose(rank_, mine, first, second, read_dead(), interval);
  if (d.failed.empty()) abort_run({}, "watchdog: no rank identified as failed: " + d.text + "; " + here);
  abort_run(d.failed, strprintf("watchdog: %s failed: %s; %s", rank_list(d.failed).c_str(), d.text.c_str(),
                                here.c_str()));
}

void Watchdog::publish_failure(const std::string& reason) {
  if (!store_ || world_ == 1) return;
  auto existing = store_->get(key("abort"));
  if (existing.ok() && !existing->has_value()) {
    (void)store_->set(key("abort"), strprintf("%d\nwatchdog: rank %d failed: %s", rank_, rank_, reason.c_str()));
  }
}

void Watchdog::abort_run(const std::vector<int>& failed, const std::string& message, bool publish) {
  if (state_->firing.exchange(true)) {
    // another thread is already on this path; it will exit the process
    while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  log_error("%s", message.c_str());
  if (store_ && world_ > 1) {
    if (publish) {
      auto existing = store_->get(key("abort"));
      if (existing.ok() && !existing->has_value()) {
        std::string csv;
        for (int r : failed) csv += std::to_string(r) + ",";
        (void)store_->set(key("abort"), csv + "\n" + strprintf("%s (reported by rank %d)", message.c_str(), rank_));
      }
    }
    (void)store_->set(key("aborted/" + std::to_string(rank_)), "1");
    // let the other ranks print their own message before the communicator abort ends the job: all
    // but the dead (a rank that is alive but behind is named as failed, and is told too); bounded
    std::vector<int> dead = read_dead();
    double deadline = now_s() + 2 * options_.heartbeat_s + 1.0;
    for (int r = 0; r < world_ && now_s() < deadline;) {
      bool skip = r == rank_ || std::find(dead.begin(), dead.end(), r) != dead.end();
      auto v = skip ? absl::StatusOr<std::optional<std::string>>(std::optional<std::string>("1"))
                    : store_->get(key("aborted/" + std::to_string(r)));
      if (!v.ok() || v->has_value()) {
        ++r;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  const int code = options_.exit_code;
  log_error("watchdog: aborting the communicator; exiting with status %d", code);
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::_Exit(code);
  }).detach();
  if (abort_comm_) abort_comm_();
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace drwkv::dist
