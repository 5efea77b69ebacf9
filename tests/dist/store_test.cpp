// The rendezvous stores with real files and real sockets, and the start-up handshake between "ranks"
// running as threads of one process (dist/store.h, dist/rendezvous.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "dist/rendezvous.h"
#include "dist/store.h"

namespace drwkv::dist {
namespace {

std::string temp_dir(const std::string& name) {
  std::string d = (std::filesystem::temp_directory_path() / ("drwkv_store_test_" + std::to_string(getpid()) + "_" + name)).string();
  std::filesystem::remove_all(d);
  return d;
}

ProcessInfo rank_info(int rank, int world) {
  ProcessInfo p;
  p.rank = rank;
  p.world_size = world;
  p.local_world_size = world;
  p.local_rank = rank;
  p.hostname = "testhost";
  p.world_variable = "DRWKV_WORLD_SIZE";
  return p;
}

TEST(FileStore, SetGetOverwriteClear) {
  std::string dir = temp_dir("basic");
  auto s = FileStore::open(dir + "/nested/run");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE((*s)->get("a/b").value().has_value());
  ASSERT_TRUE((*s)->set("a/b", std::string("x\0y", 3)).ok());
  EXPECT_EQ((*s)->get("a/b").value().value(), std::string("x\0y", 3));
  ASSERT_TRUE((*s)->set("a/b", "second").ok());
  EXPECT_EQ((*s)->get("a/b").value().value(), "second");
  auto w = (*s)->wait("missing", 0.05);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("key 'missing' did not appear"), std::string::npos) << w.status();
  ASSERT_TRUE((*s)->clear().ok());
  EXPECT_FALSE((*s)->get("a/b").value().has_value());
  (*s)->remove_all();
  EXPECT_FALSE(std::filesystem::exists(dir + "/nested/run"));
  EXPECT_FALSE(FileStore::open("relative/dir").ok());
  std::filesystem::remove_all(dir);
}

TEST(TcpStore, ClientsShareOneTableAndDeadRanksAreReported) {
  auto server = TcpStoreServer::start(0);
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  auto a = TcpStore::connect("127.0.0.1", port, 0, 5);
  auto b = TcpStore::connect("localhost", port, 1, 5);
  auto c = TcpStore::connect("127.0.0.1", port, 2, 5);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE((*a)->set("k", std::string(100000, 'v')).ok());
  EXPECT_EQ((*b)->get("k").value().value().size(), 100000u);
  EXPECT_FALSE((*b)->get("nothing").value().has_value());
  // rank 1 leaves cleanly, rank 2 vanishes (its socket closes as when a process is killed)
  (*b)->goodbye();
  b->reset();
  c->reset();
  auto dead = (*a)->wait("__dead", 5);
  ASSERT_TRUE(dead.ok()) << dead.status();
  EXPECT_EQ(*dead, "2");
  // the server going away is an error for its clients, never a hang
  server->reset();
  auto after = (*a)->get("k");
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.status().message().find("is rank 0 still running?"), std::string::npos) << after.status();
}

TEST(TcpStore, ConnectRetriesUntilTheServerStartsAndTimesOutWithAHint) {
  // find a free port, then start the server only after the client began retrying
  int port;
  {
    auto probe = TcpStoreServer::start(0);
    ASSERT_TRUE(probe.ok());
    port = (*probe)->port();
  }
  std::unique_ptr<TcpStoreServer> late;
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    late = std::move(TcpStoreServer::start(port).value());
  });
  auto c = TcpStore::connect("127.0.0.1", port, 1, 10);
  starter.join();
  ASSERT_TRUE(c.ok()) << c.status();
  c->reset();
  late.reset();
  auto none = TcpStore::connect("127.0.0.1", port, 1, 0.3);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("cannot reach the rendezvous server tcp://127.0.0.1:"), std::string::npos)
      << none.status();
  auto busy = TcpStoreServer::start(port);
  ASSERT_TRUE(busy.ok());
  auto clash = TcpStoreServer::start(port);  // SO_REUSEADDR does not allow two listeners
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.status().message().find("cannot listen on TCP port"), std::string::npos) << clash.status();
}

// Runs store_rendezvous on `world` threads, each with its own store from make_store(rank).
template <typename MakeStore>
std::vector<absl::StatusOr<std::string>> run_ranks(int world, MakeStore make_store, std::vector<int> worlds = {}) {
  std::vector<absl::StatusOr<std::string>> out(static_cast<size_t>(world), absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      std::unique_ptr<Store> s = make_store(r);
      int w = worlds.empty() ? world : worlds[size_t(r)];
      out[size_t(r)] = store_rendezvous(*s, rank_info(r, w), r == 0 ? std::string("nccl-id\x01\x02", 9) : "", 3);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

TEST(Rendezvous, FileAndTcpHandTheIdToEveryRank) {
  std::string dir = temp_dir("rdzv");
  auto file_results = run_ranks(4, [&](int) { return std::unique_ptr<Store>(FileStore::open(dir).value()); });
  for (auto& r : file_results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, std::string("nccl-id\x01\x02", 9));
  }
  auto server = TcpStoreServer::start(0).value();
  auto tcp_results = run_ranks(3, [&](int r) {
    return std::unique_ptr<Store>(TcpStore::connect("127.0.0.1", server->port(), r, 5).value());
  });
  for (auto& r : tcp_results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, std::string("nccl-id\x01\x02", 9));
  }
  std::filesystem::remove_all(dir);
}

TEST(Rendezvous, ALeftoverBlobInAReusedDirectoryIsIgnored) {
  std::string dir = temp_dir("stale");
  {
    auto s = FileStore::open(dir).value();
    ASSERT_TRUE(s->set("rdzv/blob", "0123456789abcdef 0123456789abcdef \n" + hex_encode("old-id")).ok());
  }
  auto results = run_ranks(2, [&](int r) {
    auto s = FileStore::open(dir).value();
    if (r == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // rank 1 sees the old blob first
      EXPECT_TRUE(s->clear().ok());
    }
    return std::unique_ptr<Store>(std::move(s));
  });
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, std::string("nccl-id\x01\x02", 9));
  }
  std::filesystem::remove_all(dir);
}

TEST(Rendezvous, WorldSizeDisagreementAndMissingRanksAreNamed) {
  auto server = TcpStoreServer::start(0).value();
  auto results = run_ranks(
      3, [&](int r) { return std::unique_ptr<Store>(TcpStore::connect("127.0.0.1", server->port(), r, 5).value()); },
      {3, 4, 3});
  ASSERT_FALSE(results[0].ok());
  EXPECT_NE(results[0].status().message().find("rank 1 (host testhost) was started with a world size of 4, rank 0 "
                                               "with 3"),
            std::string::npos)
      << results[0].status();
  ASSERT_FALSE(results[1].ok());
  EXPECT_NE(results[1].status().message().find("world size disagreement"), std::string::npos) << results[1].status();

  std::string dir = temp_dir("missing");
  auto s = FileStore::open(dir).value();
  auto alone = store_rendezvous(*s, rank_info(0, 3), "id", 0.3);
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.status().message().find("only 1 of 3 ranks joined within 0 s (missing ranks: 1, 2)"),
            std::string::npos)
      << alone.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace drwkv::dist
