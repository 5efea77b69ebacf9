// dist_smoke: the whole distributed start-up and one reduction step, for launch scripts and the Slurm
// test (tools/slurm_test.sh) until drwkv_train takes its place. Configured like the trainer, from the
// environment (dist/env.h): DRWKV_BACKEND, DRWKV_RENDEZVOUS, ...
//
//   1. bootstrap (rank, local rank, world from mpirun/srun), rendezvous, communicator, watchdog;
//   2. with a communicator: parameter broadcast, an all-reduce, a GradReducer step with the hooks in a
//      different order on every rank, the agreed norm; with backend none (file/tcp without MPI): the
//      rendezvous payload and a barrier through the store;
//   3. prints "dist_smoke OK rank R/W checksum C": C depends only on the world size and rank 0's
//      payload, so every rank must print the same C.
// Exit status 0 on success, 1 when a check fails, 2 on a configuration error.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/log.h"
#include "core/status.h"
#include "dist/agree.h"
#include "dist/grad_reducer.h"
#include "dist/rendezvous.h"
#include "dist/world.h"

using namespace drwkv;
using namespace drwkv::dist;

namespace {

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int fail(const char* what) {
  log_error("dist_smoke FAILED: %s", what);
  return 1;
}

// Collectives and one reducer step; returns the checksum of the reduced gradients, or 0 on failure.
uint64_t reduction_step(World& w) {
  Communicator& c = w.comm();
  const int W = c.world_size();
  Device dev = c.device();
  // parameters: rank 0's values everywhere after the broadcast
  Tensor params = Tensor::full(Shape{1000}, double(c.rank() + 1), DType::F32, dev);
  broadcast_parameters(c, params);
  if (params.to_vector<float>()[999] != 1.0f) return 0;
  // a plain all-reduce: sum of ranks
  Tensor t = Tensor::full(Shape{4096}, double(c.rank()), DType::F32, dev);
  c.all_reduce(t, ReduceOp::Sum);
  if (t.to_vector<float>()[4095] != float(W * (W - 1) / 2)) return 0;
  // a reducer step over 40 parameters, hooks in a rank-dependent order
  std::vector<FlatSlot> table;
  int64_t off = 0;
  for (int i = 0; i < 40; ++i) {
    table.push_back({off, 100 + 37 * i});
    off += 100 + 37 * i;
  }
  std::vector<float> g(static_cast<size_t>(off));
  for (int64_t k = 0; k < off; ++k) g[size_t(k)] = float((k * 7 + c.rank() * 3) % 11) - 5.0f;
  Tensor grads = Tensor::from_vector(g, Shape{off}, dev);
  GradReducer red(c, grads, table, {16 * 1024});
  std::vector<int> order(table.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
  std::shuffle(order.begin(), order.end(), std::mt19937(uint32_t(c.rank() + 1)));
  for (int p : order) red.mark_ready(p);
  red.finish();
  std::vector<float> got = grads.to_vector<float>();
  double sq = 0;
  for (float v : got) sq += double(v) * double(v);
  LocalStepStats local;
  local.grad_sq_sum = sq;
  local.sums = {1.0};
  AgreedStep a = agree_step(c, local);
  if (a.skip || a.sums[0] != double(W)) return 0;
  log_info("reducer: %zu buckets, %d launched during backward; agreed gradient norm %.6f",
           red.buckets().size(), red.last_step().launched_during_backward, a.grad_norm);
  return fnv1a(got.data(), got.size() * sizeof(float));
}

}  // namespace

int main() {
  auto options = value_or_die(dist_options_from_env(), "dist_smoke");
  auto world = value_or_die(World::init(options), "dist_smoke");
  World& w = *world;
  const ProcessInfo& p = w.info();
  log_info("dist_smoke: rank %d/%d local %d/%d node %d/%d host %s launcher %s backend %s rendezvous %s", p.rank,
           p.world_size, p.local_rank, p.local_world_size, p.node_rank, p.num_nodes, p.hostname.c_str(),
           p.launcher.c_str(), backend_name(w.backend()), w.rendezvous().str().c_str());
  uint64_t sum = fnv1a(w.rendezvous_payload().data(), w.rendezvous_payload().size());
  sum = fnv1a(&p.world_size, sizeof p.world_size, sum);
  if (w.has_comm()) {
    uint64_t r = reduction_step(w);
    if (r == 0) return fail("collective results differ from the expected values");
    sum = fnv1a(&r, sizeof r, sum);
  } else if (w.store()) {
    Store& s = *w.store();
    if (!s.set("smoke/" + std::to_string(p.rank), hex_encode(w.rendezvous_payload())).ok()) return fail("store set");
    if (!store_barrier(s, "smoke", p.rank, p.world_size, 60).ok()) return fail("store barrier");
    for (int r = 0; r < p.world_size; ++r) {
      auto v = s.get("smoke/" + std::to_string(r));
      if (!v.ok() || !v->has_value() || **v != hex_encode(w.rendezvous_payload())) {
        return fail("a rank received a different rendezvous payload");
      }
    }
  }
  std::printf("dist_smoke OK rank %d/%d checksum %016llx\n", p.rank, p.world_size, (unsigned long long)sum);
  std::fflush(stdout);
  return 0;
}
