// The backend-independent parts of the communicator (dist/communicator.h) and the Self backend.
#include "dist/communicator.h"

#include "core/check.h"
#include "dist/host_reduce.h"

namespace drwkv::dist {

std::string describe_collective(const char* what, const Tensor& t, const char* extra) {
  return strprintf("%s %s[%lld]%s%s", what, std::string(dtype_name(t.dtype())).c_str(), (long long)t.numel(),
                   *extra ? " " : "", extra);
}

std::vector<double> Communicator::all_reduce_host(std::span<const double> local, std::span<const HostOp> ops) {
  std::vector<double> rows(local.size() * size_t(world_size()));
  all_gather_host(local, rows);
  std::vector<double> out(local.size());
  reduce_host_rows(rows, world_size(), ops, out);
  return out;
}

double Communicator::all_reduce_host(double local, HostOp op) {
  return all_reduce_host(std::span<const double>(&local, 1), std::span<const HostOp>(&op, 1))[0];
}

namespace {

class DoneWork : public Work {
 public:
  bool done() override { return true; }
  void wait() override {}
  void join_current_stream() override {}
};

class SelfCommunicator : public Communicator {
 public:
  explicit SelfCommunicator(Device d) : device_(d) {}
  using Communicator::all_reduce_async;
  const char* backend_name() const override { return "self"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  Device device() const override { return device_; }

  WorkPtr all_reduce_async(const Tensor& t, ReduceOp op, DType wire) override {
    DRWKV_ASSERT(t.is_contiguous(), "all_reduce of a non-contiguous tensor %s", describe(t).c_str());
    DRWKV_ASSERT(op == ReduceOp::Sum || dtype_is_float(t.dtype()), "average of %s", describe(t).c_str());
    if (wire != t.dtype()) Tensor(t).copy_(t.to(wire));  // the same rounding as the wire format of real runs
    return std::make_shared<DoneWork>();
  }
  WorkPtr broadcast_async(const Tensor& t, int root) override {
    DRWKV_ASSERT(root == 0, "broadcast from rank %d in a world of 1", root);
    (void)t;
    return std::make_shared<DoneWork>();
  }
  WorkPtr all_gather_async(const Tensor& shard, const Tensor& out) override {
    DRWKV_ASSERT(out.numel() == shard.numel() && out.dtype() == shard.dtype(), "all_gather %s into %s",
                 describe(shard).c_str(), describe(out).c_str());
    if (shard.data() != out.data()) Tensor(out).copy_(shard.view(out.shape()));
    return std::make_shared<DoneWork>();
  }
  WorkPtr reduce_scatter_async(const Tensor& in, const Tensor& shard, ReduceOp op) override {
    DRWKV_ASSERT(in.numel() == shard.numel() && in.dtype() == shard.dtype(), "reduce_scatter %s into %s",
                 describe(in).c_str(), describe(shard).c_str());
    (void)op;
    if (in.data() != shard.data()) Tensor(shard).copy_(in.view(shard.shape()));
    return std::make_shared<DoneWork>();
  }
  WorkPtr reduce_async(const Tensor& t, ReduceOp op, int root) override {
    DRWKV_ASSERT(root == 0 && t.is_contiguous() && dtype_is_float(t.dtype()), "reduce of %s to rank %d in a world of 1",
                 describe(t).c_str(), root);
    (void)op;
    return std::make_shared<DoneWork>();
  }
  void barrier() override {}
  void all_gather_host(std::span<const double> local, std::span<double> out) override {
    std::copy(local.begin(), local.end(), out.begin());
  }
  void abort() override {}

 private:
  Device device_;
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator(Device device) {
  return std::make_unique<SelfCommunicator>(device);
}

}  // namespace drwkv::dist
