// Bootstrap and rendezvous by each route with real processes started by mpirun: ctest runs this
// program with DRWKV_RENDEZVOUS=mpi (MPI backend), file:DIR and tcp://127.0.0.1:PORT (backend none:
// no MPI_Init at all, as for GPU runs under a plain srun), and file:DIR with the MPI backend.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "dist/mpi_runtime.h"
#include "dist/rendezvous.h"
#include "dist/watchdog.h"
#include "tests/dist/dist_test_world.h"

namespace drwkv::dist {
namespace {

using testing::test_world;

TEST(Rendezvous, ProcessIdentityMatchesTheLauncher) {
  World& w = test_world();
  EXPECT_EQ(w.info().launcher, "openmpi");
  EXPECT_EQ(w.rank(), std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  EXPECT_EQ(w.world_size(), std::atoi(std::getenv("OMPI_COMM_WORLD_SIZE")));
  EXPECT_GT(w.world_size(), 1);
  bool needs_mpi = w.backend() == Backend::Mpi || w.rendezvous().kind == RendezvousKind::Mpi;
  EXPECT_EQ(mpi_initialized(), needs_mpi) << "MPI is started only when the backend or the rendezvous is MPI";
  ASSERT_NE(w.store(), nullptr) << "every multi-process run has a rendezvous store";
  std::printf("rank %d: route %s, backend %s, store %s, MPI %s\n", w.rank(), w.rendezvous().str().c_str(),
              backend_name(w.backend()), w.store()->address().c_str(), needs_mpi ? "started" : "not started");
}

TEST(Rendezvous, EveryRankReceivedRankZerosPayload) {
  World& w = test_world();
  Store& s = *w.store();
  ASSERT_EQ(w.rendezvous_payload().size(), 16u);
  ASSERT_TRUE(s.set("test/payload/" + std::to_string(w.rank()), hex_encode(w.rendezvous_payload())).ok());
  ASSERT_TRUE(store_barrier(s, "payload", w.rank(), w.world_size(), 30).ok());
  for (int r = 0; r < w.world_size(); ++r) {
    auto v = s.get("test/payload/" + std::to_string(r));
    ASSERT_TRUE(v.ok() && v->has_value()) << "rank " << r;
    EXPECT_EQ(**v, hex_encode(w.rendezvous_payload())) << "payload seen by rank " << r;
  }
  if (w.has_comm()) {
    Tensor mine = Tensor::from_vector(std::vector<uint8_t>(w.rendezvous_payload().begin(), w.rendezvous_payload().end()),
                                      Shape{16});
    Tensor all = Tensor::zeros(Shape{16 * w.world_size()}, DType::U8);
    w.comm().all_gather(mine, all);
    for (int r = 0; r < w.world_size(); ++r) {
      EXPECT_EQ(std::memcmp(static_cast<char*>(all.data()) + 16 * r, mine.data(), 16), 0) << "rank " << r;
    }
  }
}

TEST(Rendezvous, EveryRankPublishesHeartbeats) {
  World& w = test_world();
  ASSERT_NE(w.watchdog(), nullptr);
  w.watchdog()->set_step(42);
  // DRWKV_HEARTBEAT=0.2: within a second every rank has published step 42
  for (int r = 0; r < w.world_size(); ++r) {
    bool seen = false;
    for (int i = 0; i < 100 && !seen; ++i) {
      auto v = w.store()->get(w.run_prefix() + "hb/" + std::to_string(r));
      std::optional<Heartbeat> h = v.ok() && v->has_value() ? Heartbeat::decode(**v) : std::nullopt;
      seen = h && h->step == 42;
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(seen) << "no heartbeat with step 42 from rank " << r;
  }
  ASSERT_TRUE(store_barrier(*w.store(), "heartbeats", w.rank(), w.world_size(), 30).ok());
}

}  // namespace
}  // namespace drwkv::dist
