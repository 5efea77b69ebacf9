// Per-op GPU time breakdown (autograd/profiler.h).
#include "autograd/profiler.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "core/stream.h"

namespace drwkv::autograd {
namespace {
using Clock = std::chrono::steady_clock;
struct Record {
  const char* name;
  Device device;
  std::unique_ptr<Event> start, stop;
  Clock::time_point host_start, host_stop;
};
std::mutex g_mu;
bool g_on = false;
std::vector<Record> g_records;
}  // namespace

void profiler_enable(bool on) { g_on = on; }
bool profiler_enabled() { return g_on; }
void profiler_reset() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_records.clear();
}

ProfileRange::ProfileRange(const char* name, Device device) {
  if (!g_on || !device.is_cuda()) return;
  std::lock_guard<std::mutex> lock(g_mu);
  Record r{name, device, std::make_unique<Event>(true), std::make_unique<Event>(true), Clock::now(), {}};
  r.start->record(current_stream(device));
  g_records.push_back(std::move(r));
  slot_ = int(g_records.size()) - 1;
}

ProfileRange::~ProfileRange() {
  if (slot_ < 0) return;
  std::lock_guard<std::mutex> lock(g_mu);
  Record& r = g_records[size_t(slot_)];
  r.stop->record(current_stream(r.device));
  r.host_stop = Clock::now();
}

std::vector<ProfileEntry> profiler_report() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::map<std::string, ProfileEntry> by_name;
  std::map<int, const Record*> previous;  // by device index: ranges are recorded in stream order
  for (Record& r : g_records) {
    r.stop->synchronize();
    ProfileEntry& e = by_name[r.name];
    e.name = r.name;
    e.calls += 1;
    e.total_ms += r.start->elapsed_ms(*r.stop);
    const Record*& prev = previous[r.device.index];
    if (prev) {
      e.idle_before_ms += std::max(0.0, double(prev->stop->elapsed_ms(*r.start)));
      e.host_before_ms += std::chrono::duration<double, std::milli>(r.host_start - prev->host_stop).count();
    }
    prev = &r;
  }
  std::vector<ProfileEntry> out;
  for (auto& [n, e] : by_name) out.push_back(e);
  std::sort(out.begin(), out.end(), [](const ProfileEntry& a, const ProfileEntry& b) { return a.total_ms > b.total_ms; });
  return out;
}

}  // namespace drwkv::autograd
