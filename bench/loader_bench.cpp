// Packed-shard read throughput through the prefetching loader (data/loader.h): examples/s and MB/s for
// 1, 2 and 4 worker threads, on a synthetic latent dataset (4×32×32 f16, 50k samples by default, written
// to a temporary directory) and on Fashion-MNIST (test split packed on the fly) when it is installed.
// The bar: the H100 training step of DRWKV-S/2 at 256 tokens (~900 images/s for the reference PyTorch
// code, ANCHORS.md; we aim at several thousand) must never wait on data.
//
//   loader_bench [--samples N] [--batch B] [--batches K] [--device cpu|cuda] [--keep DIR]
// With --device cuda the batches are also copied to GPU 0 (pinned staging, async copies, synchronised
// per batch so the copy time is included).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/stream.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/writer.h"

using namespace drwkv;
using namespace drwkv::data;

namespace {
std::string make_synthetic(const std::string& dir, int64_t n) {
  DatasetInfo info;
  info.kind = SampleKind::Latent;
  info.x_elem = Elem::F16;
  info.channels = 4, info.height = 32, info.width = 32;
  info.num_samples = n;
  info.shard_size = default_shard_size(info.row_bytes(Column::X));
  info.num_classes = 1000;
  info.image_encoder = "synthetic";
  info.source = "loader_bench";
  auto w = value_or_die(DatasetWriter::create(dir, info), "create");
  std::vector<uint16_t> x(4 * 32 * 32);
  for (int64_t g = 0; g < n; ++g) {
    for (size_t k = 0; k < x.size(); ++k) x[k] = f16::from_float(float(int(rng_mix({uint64_t(g), k}) % 2001) - 1000) / 400.f);
    SampleInput s;
    s.x = x.data();
    s.label = int32_t(g % 1000);
    s.sample_id = uint64_t(g);
    ok_or_die(w->add(s), "add");
  }
  return value_or_die(w->finish(), "finish");
}

struct Result {
  double examples_per_s, mb_per_s;
};

Result measure(const Dataset& ds, int threads, int64_t batch, int batches, Device device) {
  LoaderConfig c;
  c.global_batch = c.micro_batch = batch;
  c.seed = 1;
  c.threads = threads;
  c.depth = 2 * threads + 2;
  c.flip = true;
  c.device = device;
  auto l = value_or_die(Loader::create(ds, c, initial_resume_state(ds.fingerprint(), 1, batch)), "loader");
  ok_or_die(l->next().status());  // warm-up: first batch (threads starting, page cache)
  auto t0 = std::chrono::steady_clock::now();
  int64_t bytes = 0;
  for (int k = 0; k < batches; ++k) {
    Batch b = value_or_die(l->next(), "next");
    bytes += int64_t(b.x.nbytes() + b.labels.nbytes());
    if (device.is_cuda()) current_stream(device).synchronize();
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {double(batch) * batches / s, double(bytes) / s / 1e6};
}
}  // namespace

int main(int argc, char** argv) {
  int64_t samples = 50000, batch = 256;
  int batches = 200;
  std::string keep, dev = "cpu";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--samples") samples = std::atoll(argv[i + 1]);
    else if (a == "--batch") batch = std::atoll(argv[i + 1]);
    else if (a == "--batches") batches = std::atoi(argv[i + 1]);
    else if (a == "--keep") keep = argv[i + 1];
    else if (a == "--device") dev = argv[i + 1];
  }
  Device device = dev == "cuda" ? Device::cuda(0) : Device::cpu();
  std::string tmp = keep;
  if (tmp.empty()) {
    std::string t = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : std::string("/tmp")) + "/loader_bench_XXXXXX";
    tmp = ::mkdtemp(t.data());
  }
  std::vector<std::vector<std::string>> rows{{"dataset", "sample", "batch", "threads", "examples/s", "MB/s"}};
  auto t0 = std::chrono::steady_clock::now();
  if (!std::filesystem::exists(tmp + "/latents/index.json")) make_synthetic(tmp + "/latents", samples);
  std::printf("synthetic dataset: %lld samples written in %.1f s\n", (long long)samples,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  Dataset lat = value_or_die(Dataset::open(tmp + "/latents"), "open");
  for (int threads : {1, 2, 4}) {
    Result r = measure(lat, threads, batch, batches, device);
    rows.push_back({"synthetic latents", "f16 4x32x32", std::to_string(batch), std::to_string(threads),
                    bench::fmt(r.examples_per_s, 0), bench::fmt(r.mb_per_s, 1)});
  }
  const std::string fm = "/usr/share/datasets/fashion-mnist";
  if (std::filesystem::exists(fm + "/t10k-images-idx3-ubyte.gz")) {
    FmnistOptions o;
    o.input = fm;
    o.split = "test";
    o.out = tmp + "/fmnist";
    if (!std::filesystem::exists(o.out + "/index.json")) ok_or_die(pack_fmnist(o).status(), "pack fmnist");
    Dataset f = value_or_die(Dataset::open(o.out), "open fmnist");
    for (int threads : {1, 2, 4}) {
      Result r = measure(f, threads, batch, batches, device);
      rows.push_back({"fashion-mnist test", "u8 1x32x32", std::to_string(batch), std::to_string(threads),
                      bench::fmt(r.examples_per_s, 0), bench::fmt(r.mb_per_s, 1)});
    }
  }
  std::printf("loader throughput on %s (%s, %ld cores), device %s; %d batches after one warm-up batch, flip on\n",
              bench::now_string().c_str(), "page cache warm", sysconf(_SC_NPROCESSORS_ONLN), device.str().c_str(), batches);
  bench::print_table(rows);
  if (keep.empty()) std::filesystem::remove_all(tmp);
  return 0;
}
