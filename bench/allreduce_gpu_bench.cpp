// All-reduce bandwidth between the ranks of an mpirun job, through our NCCL communicator on the
// communication stream (what the gradient reducer uses): f32 and bf16 buffers of 25, 100 and 300 MB,
// median time and bus bandwidth (2·(W−1)/W · bytes / time). Run: mpirun -np 2 allreduce_gpu_bench
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/stream.h"
#include "dist/world.h"

using namespace drwkv;

int main() {
  auto world = value_or_die(dist::World::init(value_or_die(dist::dist_options_from_env(), "dist options")), "dist");
  dist::Communicator& comm = world->comm();
  const int W = world->world_size();
  const Device dev = world->device();
  std::vector<std::vector<std::string>> rows = {{"bytes", "dtype", "median ms", "bus GB/s"}};
  for (int64_t mb : {25, 100, 300}) {
    for (DType dt : {DType::F32, DType::BF16}) {
      int64_t n = mb * 1000 * 1000 / dtype_size(dt);
      Tensor t = Tensor::empty(Shape{n}, dt, dev);
      rng_normal_(t, 1, uint64_t(world->rank()));
      bench::Timing tm = bench::time_gpu(dev.index, [&] { comm.all_reduce(t, dist::ReduceOp::Avg); }, 3, 15);
      double bus = 2.0 * (W - 1) / W * double(mb) * 1e6 / (tm.median_ms * 1e-3) / 1e9;
      rows.push_back({absl::StrFormat("%d MB", mb), std::string(dtype_name(dt)), bench::fmt(tm.median_ms, 3), bench::fmt(bus, 1)});
    }
  }
  if (world->rank() == 0) {
    std::printf("all-reduce over %d ranks (%s), %s\n", W, comm.backend_name(), bench::device_name(dev.index).c_str());
    bench::print_table(rows);
  }
  return 0;
}
