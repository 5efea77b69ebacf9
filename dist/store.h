// The rendezvous store: a small key-value table every rank of a run can reach without the collective
// communicator. It carries the NCCL unique id at start-up, the ranks' heartbeats, and the abort notice
// that lets a live rank name the one that failed while the communicator itself is hung.
//
// Two implementations:
//   FileStore - one file per key in a directory on a file system shared by all nodes. set() writes a
//               temporary file and renames it over the key, so readers see either the old or the new
//               value, never a partial one.
//   TcpStore  - a client of a TcpStoreServer (run by rank 0 on a thread). Requests are length-prefixed
//               frames over one TCP connection per process. The server knows which rank each
//               connection belongs to (hello) and, when a connection closes without goodbye(), appends
//               that rank to the key "__dead": a SIGKILLed rank is known to everybody within one
//               heartbeat.
// Keys use [A-Za-z0-9_.-/] only. Calls are thread-safe. Every call returns a Status: a store that
// cannot be reached is an error for the caller to judge, never a hang (TCP calls time out).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/status.h"

namespace drwkv::dist {

class Store {
 public:
  virtual ~Store() = default;
  virtual absl::Status set(const std::string& key, const std::string& value) = 0;
  // The value, or nullopt when the key does not exist (yet).
  virtual absl::StatusOr<std::optional<std::string>> get(const std::string& key) = 0;
  // Leaving on purpose (TCP: the server will not report this rank as dead). Idempotent.
  virtual void goodbye() {}
  virtual std::string address() const = 0;  // "file:/dir" or "tcp://host:port", for messages

  // Polls get() until `key` exists; DeadlineExceeded naming the key and the store after timeout_s.
  absl::StatusOr<std::string> wait(const std::string& key, double timeout_s);
};

class FileStore : public Store {
 public:
  // Creates `dir` (and its parents) when missing.
  static absl::StatusOr<std::unique_ptr<FileStore>> open(const std::string& dir);
  absl::Status set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::optional<std::string>> get(const std::string& key) override;
  std::string address() const override { return "file:" + dir_; }
  // Deletes every key (rank 0 at the start of a run, against leftovers of an earlier run); other
  // ranks' writes in flight survive, and a key removed under a writer's feet is written again.
  absl::Status clear();
  // Removes the directory with its keys (rank 0 at a clean end of the run).
  void remove_all();

 private:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {}
  std::string path(const std::string& key) const;
  absl::Status write_and_rename(const std::string& key, const std::string& value);
  absl::Status remove_files(bool temporaries);
  std::string dir_;
};

// Listens on all interfaces at `port` (0: an ephemeral port) and serves until destroyed.
class TcpStoreServer {
 public:
  static absl::StatusOr<std::unique_ptr<TcpStoreServer>> start(int port);
  ~TcpStoreServer();
  int port() const { return port_; }

 private:
  TcpStoreServer() = default;
  void serve();
  struct State;
  std::unique_ptr<State> state_;
  int port_ = 0;
};

class TcpStore : public Store {
 public:
  // Connects to host:port, retrying until `timeout_s` (rank 0's server may start after us), and
  // introduces itself as `rank`. `io_timeout_s` bounds every later request.
  static absl::StatusOr<std::unique_ptr<TcpStore>> connect(const std::string& host, int port, int rank,
                                                           double timeout_s, double io_timeout_s = 10);
  ~TcpStore() override;
  absl::Status set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::optional<std::string>> get(const std::string& key) override;
  void goodbye() override;
  std::string address() const override;

 private:
  TcpStore() = default;
  struct Conn;
  std::unique_ptr<Conn> conn_;
};

// Waits until every rank of `world_size` has called store_barrier with the same `name` (each sets
// "barrier/NAME/RANK"). Error after timeout_s, naming the ranks that did not arrive.
absl::Status store_barrier(Store& store, const std::string& name, int rank, int world_size, double timeout_s);

}  // namespace drwkv::dist
