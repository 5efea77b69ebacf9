// The TCP rendezvous store: a single-threaded poll() server on rank 0 and one blocking client
// connection per process (dist/store.h).
//
// Frames (integers little-endian as on every platform we run on):
//   request:  u32 length of the rest | u8 op | u32 key length | key | value
//   response: u32 length of the rest | u8 status (0 ok, 1 not found) | value
// ops: HELLO (key = the client's rank), SET, GET, BYE (a clean goodbye).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/check.h"
#include "core/log.h"
#include "dist/store.h"

namespace drwkv::dist {
namespace {

enum Op : uint8_t { kHello = 1, kSet = 2, kGet = 3, kBye = 4 };
enum Reply : uint8_t { kOk = 0, kNotFound = 1 };
constexpr uint32_t kMaxFrame = 64u << 20;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
uint32_t get_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

std::string frame_request(uint8_t op, const std::string& key, const std::string& value) {
  std::string f;
  put_u32(f, uint32_t(1 + 4 + key.size() + value.size()));
  f.push_back(char(op));
  put_u32(f, uint32_t(key.size()));
  f += key;
  f += value;
  return f;
}

std::string frame_reply(uint8_t status, const std::string& value) {
  std::string f;
  put_u32(f, uint32_t(1 + value.size()));
  f.push_back(char(status));
  f += value;
  return f;
}

}  // namespace

// ---- server ------------------------------------------------------------------------------------------

struct TcpStoreServer::State {
  int listen_fd = -1;
  int wake[2] = {-1, -1};  // a byte written to wake[1] stops the server
  std::thread thread;
  struct Client {
    int fd;
    int rank = -1;
    bool bye = false;
    std::string in, out;
  };
  std::map<int, Client> clients;  // by fd
  std::map<std::string, std::string> kv;
};

absl::StatusOr<std::unique_ptr<TcpStoreServer>> TcpStoreServer::start(int port) {
  std::unique_ptr<TcpStoreServer> s(new TcpStoreServer());
  s->state_ = std::make_unique<State>();
  State& st = *s->state_;
  st.listen_fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool v6 = st.listen_fd >= 0;
  if (!v6) st.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (st.listen_fd < 0) return absl::UnavailableError(absl::StrFormat("socket(): %s", std::strerror(errno)));
  int one = 1, zero = 0;
  setsockopt(st.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    setsockopt(st.listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 clients too
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(uint16_t(port));
    rc = ::bind(st.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(uint16_t(port));
    rc = ::bind(st.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(st.listen_fd, 1024) != 0) {
    std::string err = std::strerror(errno);
    ::close(st.listen_fd);
    return absl::UnavailableError(absl::StrFormat(
        "rendezvous server: cannot listen on TCP port %d: %s (is another run using this port? choose another PORT)",
        port, err));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(st.listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  s->port_ = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (::pipe2(st.wake, O_CLOEXEC) != 0) return absl::UnavailableError("pipe2() failed");
  st.thread = std::thread([srv = s.get()] { srv->serve(); });
  return s;
}

TcpStoreServer::~TcpStoreServer() {
  if (!state_) return;
  char b = 1;
  (void)!::write(state_->wake[1], &b, 1);
  if (state_->thread.joinable()) state_->thread.join();
  for (auto& [fd, c] : state_->clients) ::close(fd);
  ::close(state_->listen_fd);
  ::close(state_->wake[0]);
  ::close(state_->wake[1]);
}

void TcpStoreServer::serve() {
  State& st = *state_;
  auto drop = [&st](int fd) {
    State::Client& c = st.clients[fd];
    if (c.rank >= 0 && !c.bye) {
      // the process went away without saying goodbye: it died (or exited without a clean shutdown)
      std::string& dead = st.kv["__dead"];
      if (!dead.empty()) dead.push_back(',');
      dead += std::to_string(c.rank);
    }
    ::close(fd);
    st.clients.erase(fd);
  };
  auto handle = [&st](State::Client& c, uint8_t op, const std::string& key, std::string value) {
    switch (op) {
      case kHello:
        c.rank = std::atoi(key.c_str());
        c.out += frame_reply(kOk, "");
        break;
      case kSet:
        st.kv[key] = std::move(value);
        c.out += frame_reply(kOk, "");
        break;
      case kGet: {
        auto it = st.kv.find(key);
        c.out += it == st.kv.end() ? frame_reply(kNotFound, "") : frame_reply(kOk, it->second);
        break;
      }
      case kBye:
        c.bye = true;
        c.out += frame_reply(kOk, "");
        break;
      default:
        return false;
    }
    return true;
  };
  while (true) {
    std::vector<pollfd> fds;
    fds.push_back({st.wake[0], POLLIN, 0});
    fds.push_back({st.listen_fd, POLLIN, 0});
    for (auto& [fd, c] : st.clients) fds.push_back({fd, short(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      log_error("rendezvous server: poll(): %s", std::strerror(errno));
      return;
    }
    if (fds[0].revents) return;
    if (fds[1].revents & POLLIN) {
      int fd = ::accept4(st.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        State::Client c;
        c.fd = fd;
        st.clients[fd] = std::move(c);
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      int fd = fds[i].fd;
      auto it = st.clients.find(fd);
      if (it == st.clients.end()) continue;
      State::Client& c = it->second;
      bool broken = false;
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[65536];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
          c.in.append(buf, size_t(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          broken = true;
        }
        // every complete frame in the buffer
        while (!broken && c.in.size() >= 4) {
          uint32_t len = get_u32(c.in.data());
          if (len < 5 || len > kMaxFrame) {
            broken = true;
            break;
          }
          if (c.in.size() < 4 + size_t(len)) break;
          uint8_t op = uint8_t(c.in[4]);
          uint32_t klen = get_u32(c.in.data() + 5);
          if (klen > len - 5) {
            broken = true;
            break;
          }
          std::string key = c.in.substr(9, klen);
          std::string value = c.in.substr(9 + klen, len - 5 - klen);
          c.in.erase(0, 4 + size_t(len));
          if (!handle(c, op, key, std::move(value))) broken = true;
        }
      }
      while (!broken && !c.out.empty()) {
        ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
          c.out.erase(0, size_t(n));
        } else {
          if (n < 0 && errno != EAGAIN && errno != EINTR) broken = true;
          break;
        }
      }
      if (broken) drop(fd);
    }
  }
}

// ---- client ------------------------------------------------------------------------------------------

struct TcpStore::Conn {
  int fd = -1;
  std::string host;
  int port = 0;
  bool broken = false;
  bool said_bye = false;
  std::mutex mu;

  std::string where() const { return absl::StrFormat("tcp://%s:%d", host, port); }

  absl::Status io_error(const char* what) {
    broken = true;
    return absl::UnavailableError(absl::StrFormat("rendezvous store %s: %s: %s (is rank 0 still running?)", where(),
                                                  what, errno ? std::strerror(errno) : "connection closed"));
  }

  // One request and its reply. Caller holds mu.
  absl::StatusOr<std::pair<uint8_t, std::string>> request(uint8_t op, const std::string& key,
                                                          const std::string& value) {
    if (broken) return absl::UnavailableError("rendezvous store " + where() + ": connection lost earlier");
    std::string f = frame_request(op, key, value);
    size_t done = 0;
    while (done < f.size()) {
      errno = 0;
      ssize_t n = ::send(fd, f.data() + done, f.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return io_error("send");
      done += size_t(n);
    }
    auto read_exact = [this](char* p, size_t n) -> absl::Status {
      size_t got = 0;
      while (got < n) {
        errno = 0;
        ssize_t r = ::recv(fd, p + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return io_error(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "no reply (timed out)" : "recv");
        got += size_t(r);
      }
      return absl::OkStatus();
    };
    char hdr[5];
    DRWKV_RETURN_IF_ERROR(read_exact(hdr, 5));
    uint32_t len = get_u32(hdr);
    if (len < 1 || len > kMaxFrame) return io_error("malformed reply");
    std::string v(len - 1, '\0');
    if (len > 1) DRWKV_RETURN_IF_ERROR(read_exact(v.data(), v.size()));
    return std::make_pair(uint8_t(hdr[4]), std::move(v));
  }
};

namespace {
// One connection attempt to any address of host:port, bounded by `timeout_s`.
int try_connect(const std::string& host, int port, double timeout_s, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) {
    *error = absl::StrFormat("cannot resolve host '%s': %s", host, gai_strerror(gai));
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, int(timeout_s * 1000)) == 1 ? 0 : -1;
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
        errno = err;
        rc = -1;
      } else if (rc != 0) {
        errno = ETIMEDOUT;
      }
    }
    if (rc != 0) {
      *error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd >= 0) {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  return fd;
}
}  // namespace

absl::StatusOr<std::unique_ptr<TcpStore>> TcpStore::connect(const std::string& host, int port, int rank,
                                                            double timeout_s, double io_timeout_s) {
  std::unique_ptr<TcpStore> s(new TcpStore());
  s->conn_ = std::make_unique<Conn>();
  Conn& c = *s->conn_;
  c.host = host;
  c.port = port;
  double deadline = now_s() + timeout_s;
  std::string error;
  while (true) {
    c.fd = try_connect(host, port, std::min(5.0, std::max(0.1, deadline - now_s())), &error);
    if (c.fd >= 0) break;
    if (now_s() > deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "cannot reach the rendezvous server %s within %.0f s: %s (is rank 0 running, and is '%s' the address "
          "of its node?)",
          c.where(), timeout_s, error, host));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{};
  tv.tv_sec = long(io_timeout_s);
  tv.tv_usec = long((io_timeout_s - double(tv.tv_sec)) * 1e6);
  setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::lock_guard<std::mutex> lock(c.mu);
  DRWKV_ASSIGN_OR_RETURN(auto reply, c.request(kHello, std::to_string(rank), ""));
  (void)reply;
  return s;
}

TcpStore::~TcpStore() {
  if (conn_ && conn_->fd >= 0) ::close(conn_->fd);
}

absl::Status TcpStore::set(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(conn_->mu);
  DRWKV_ASSIGN_OR_RETURN(auto reply, conn_->request(kSet, key, value));
  (void)reply;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> TcpStore::get(const std::string& key) {
  std::lock_guard<std::mutex> lock(conn_->mu);
  DRWKV_ASSIGN_OR_RETURN(auto reply, conn_->request(kGet, key, ""));
  if (reply.first == kNotFound) return std::optional<std::string>();
  return std::optional<std::string>(std::move(reply.second));
}

void TcpStore::goodbye() {
  std::lock_guard<std::mutex> lock(conn_->mu);
  if (conn_->said_bye || conn_->broken) return;
  conn_->said_bye = conn_->request(kBye, "", "").ok();
}

std::string TcpStore::address() const { return conn_->where(); }

}  // namespace drwkv::dist
