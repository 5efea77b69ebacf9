// Bi-WKV (exact, kernels/bi_wkv.h) on the GPU: forward and forward+backward at the shapes of the
// reference measurements (ANCHORS.md), f32 and bf16, with tokens per µs (linearity in T). Bandwidth
// counts the bytes the op must move: forward reads k, v and writes y (3 tensors), backward reads k, v, dy
// and writes dk, dv (5 tensors); workspace traffic (block totals, partial gradients, and for T > 8192
// chunk carries) and re-reads of chunks that are not staged in shared memory are not counted. The copy
// bandwidth is measured in the same run. A second table times decompositions (BiWkvPlan), f32 and bf16:
// the automatic one and variants around it, with shared memory and clusters resident per device.
//
// Usage: bi_wkv_gpu_bench [iterations] [--shape B,T,C] [--plan cluster,warps,chunks,staged,blocks_per_sm ...]
// (--shape: that shape only, e.g. for a profiler; --plan, repeatable: the decompositions to time after the
// automatic one, in place of the built-in list; 0 and −1 mean automatic as in BiWkvPlan)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/bi_wkv.h"

namespace drwkv {
namespace {
using bench::fmt;
using kernels::BiWkvPlan;

struct Config {
  int64_t B, T, C;
  double ref_fwd_ms, ref_fwdbwd_ms;  // reference (ANCHORS.md, H100, f32); 0 when not measured
};

// ANCHORS.md "Bi-WKV kernel (reference, f32), forward + backward" and the B256 T256 C384 split.
const Config kConfigs[] = {
    {32, 256, 384, 0, 0.386},    {32, 1024, 384, 0, 1.161},    {32, 4096, 384, 0, 4.248},
    {32, 256, 1536, 0, 1.482},   {32, 1024, 1536, 0, 4.324},   {32, 4096, 1536, 0, 16.68},
    {256, 256, 384, 0.662, 0.662 + 2.247},
    {8, 16384, 384, 0, 0},  // 1024² images in latent space: beyond what the reference kernel can run
};

// Decompositions given with --plan (empty: the built-in list).
std::vector<BiWkvPlan>& requested_plans() {
  static std::vector<BiWkvPlan> plans;
  return plans;
}

// The decompositions timed in the second table (the first is the automatic one).
std::vector<BiWkvPlan> plans_for(const Config& c, DType dt) {
  std::vector<BiWkvPlan> plans{BiWkvPlan{}};
  if (!requested_plans().empty()) {
    plans.insert(plans.end(), requested_plans().begin(), requested_plans().end());
    return plans;
  }
  plans.push_back({0, 8, 2, -1, 0});   // twice the blocks, half the work per thread
  plans.push_back({0, 8, 8, -1, 0});   // longer segments, fewer blocks (partly re-read)
  if (c.T >= 2048) plans.push_back({0, 16, 2, -1, 0});
  if (c.T >= 2048) plans.push_back({0, 16, 4, -1, 0});  // 16-warp blocks (the automatic plan before 2026-11-22 14:00)
  const int auto_warps = dt == DType::F32 ? kernels::bi_wkv_launch_info<float>({}, c.T, true).warps
                                           : kernels::bi_wkv_launch_info<bf16>({}, c.T, true).warps;
  if (auto_warps <= 8) {  // 16-warp blocks already run one per SM, and three would exceed the registers
    plans.push_back({0, 0, 0, -1, 1});  // one block per SM worth of shared memory
    plans.push_back({0, 0, 0, -1, 3});  // three blocks per SM, both directions at 80 registers
  }
  plans.push_back({0, 0, 0, 0, 0});    // nothing staged: passes 2, 3 re-read global memory (L2)
  for (BiWkvPlan& p : plans)
    if (p.warps > 0 && p.cluster == 0) {  // clusters as needed, at most 8
      const int64_t chunks = (c.T + 7) / 8, per_block = int64_t(p.warps) * p.chunks_per_warp;
      p.cluster = int(std::min<int64_t>(8, (chunks + per_block - 1) / per_block));
      p.chunks_per_warp = int((chunks + int64_t(p.cluster) * p.warps - 1) / (int64_t(p.cluster) * p.warps));
    }
  return plans;
}

struct Buffers {
  Tensor k, v, dy, y, dk, dv, decay, first, ddecay, dfirst, ws;
};

Buffers make_buffers(const Config& c, DType dt) {
  const Device g = Device::cuda(0);
  Shape x{c.B, c.T, c.C};
  Buffers b;
  b.k = Tensor::empty(x, dt, g);
  b.v = Tensor::empty(x, dt, g);
  b.dy = Tensor::empty(x, dt, g);
  rng_normal_(b.k, 1, 1);
  rng_normal_(b.v, 1, 2);
  rng_normal_(b.dy, 1, 3);
  b.y = Tensor::empty(x, dt, g);
  b.dk = Tensor::empty(x, dt, g);
  b.dv = Tensor::empty(x, dt, g);
  b.decay = Tensor::empty(Shape{c.C}, DType::F32, g);
  b.first = Tensor::empty(Shape{c.C}, DType::F32, g);
  rng_normal_(b.decay, 1, 4, 0, 0.0, 3.0);  // w = decay/T, DRWKV-sized
  rng_normal_(b.first, 1, 5, 0, 0.0, 3.0);
  b.ddecay = Tensor::zeros(Shape{c.C}, DType::F32, g);
  b.dfirst = Tensor::zeros(Shape{c.C}, DType::F32, g);
  size_t ws = 0;  // the largest of the plans timed
  for (const BiWkvPlan& p : plans_for(c, dt)) ws = std::max(ws, kernels::bi_wkv_workspace_bytes(p, c.B, c.T, c.C));
  b.ws = Tensor::empty(Shape{int64_t(ws)}, DType::U8, g);
  return b;
}

template <typename E> void forward(const Buffers& b, const Config& c, const BiWkvPlan& plan) {
  kernels::bi_wkv_forward_cuda_plan<E>(plan, b.y.data_ptr<E>(), b.k.data_ptr<E>(), b.v.data_ptr<E>(),
                                       b.decay.data_ptr<float>(), b.first.data_ptr<float>(), c.B, c.T, c.C, b.ws.data(),
                                       current_stream(0).handle());
}
template <typename E> void backward(const Buffers& b, const Config& c, const BiWkvPlan& plan) {
  kernels::bi_wkv_backward_cuda_plan<E>(plan, b.dk.data_ptr<E>(), b.dv.data_ptr<E>(), b.ddecay.data_ptr<float>(),
                                        b.dfirst.data_ptr<float>(), b.dy.data_ptr<E>(), b.k.data_ptr<E>(),
                                        b.v.data_ptr<E>(), b.decay.data_ptr<float>(), b.first.data_ptr<float>(), c.B,
                                        c.T, c.C, b.ws.data(), current_stream(0).handle());
}

std::string shape_name(const Config& c) {
  return absl::StrFormat("B%d T%d C%d", c.B, c.T, c.C);
}
// "cluster×warps×chunks, staged s, KB of shared memory, blocks per SM planned, clusters resident at once"
template <typename E> std::string plan_name(const BiWkvPlan& p, int64_t T, bool backward) {
  const kernels::BiWkvLaunchInfo i = kernels::bi_wkv_launch_info<E>(p, T, backward);
  return absl::StrFormat("%dx%dx%d s%d %dKB %d/SM %dcl%s", i.cluster, i.warps, i.chunks_per_warp, i.staged_chunks,
                         int(i.smem_bytes / 1024), i.blocks_per_sm, i.active_clusters,
                         i.carries_in_smem ? "" : " rc:ws");
}

template <typename E>
void measure(const Config& c, int iters, double copy_gbs, std::vector<std::vector<std::string>>& rows) {
  const DType dt = dtype_v<E>;
  Buffers b = make_buffers(c, dt);
  const double elems = double(c.B * c.T * c.C), es = double(dtype_size(dt));
  bench::Timing f = bench::time_gpu(0, [&] { forward<E>(b, c, BiWkvPlan{}); }, 3, iters);
  bench::Timing fb = bench::time_gpu(0, [&] {
    forward<E>(b, c, BiWkvPlan{});
    backward<E>(b, c, BiWkvPlan{});
  }, 3, iters);
  const double f_gbs = 3 * elems * es / (f.median_ms * 1e-3) / 1e9, fb_gbs = 8 * elems * es / (fb.median_ms * 1e-3) / 1e9;
  const double tokens = double(c.B * c.T);
  auto speedup = [](double ref, double ms) { return ref > 0 ? fmt(ref / ms, 1) + "x" : std::string("-"); };
  rows.push_back({shape_name(c), std::string(dtype_name(dt)), plan_name<E>(BiWkvPlan{}, c.T, true),
                  fmt(f.median_ms, 3), fmt(f_gbs, 0), fmt(100 * f_gbs / copy_gbs, 0) + "%", fmt(fb.median_ms, 3),
                  fmt(fb_gbs, 0), fmt(100 * fb_gbs / copy_gbs, 0) + "%", fmt(tokens / (fb.median_ms * 1e3), 0),
                  c.ref_fwd_ms > 0 ? fmt(c.ref_fwd_ms, 3) : "-", c.ref_fwdbwd_ms > 0 ? fmt(c.ref_fwdbwd_ms, 3) : "-",
                  speedup(c.ref_fwd_ms, f.median_ms), speedup(c.ref_fwdbwd_ms, fb.median_ms)});
}

template <typename E>
void compare_plans(const Config& c, int iters, double copy_gbs, std::vector<std::vector<std::string>>& rows) {
  const DType dt = dtype_v<E>;
  Buffers b = make_buffers(c, dt);
  const double elems = double(c.B * c.T * c.C), es = double(dtype_size(dt));
  for (const BiWkvPlan& p : plans_for(c, dt)) {
    bench::Timing f = bench::time_gpu(0, [&] { forward<E>(b, c, p); }, 3, iters);
    bench::Timing bw = bench::time_gpu(0, [&] { backward<E>(b, c, p); }, 3, iters);
    const double f_gbs = 3 * elems * es / (f.median_ms * 1e-3) / 1e9;
    const double b_gbs = 5 * elems * es / (bw.median_ms * 1e-3) / 1e9;
    rows.push_back({shape_name(c), std::string(dtype_name(dt)), plan_name<E>(p, c.T, false), fmt(f.median_ms, 3),
                    fmt(100 * f_gbs / copy_gbs, 0) + "%", plan_name<E>(p, c.T, true), fmt(bw.median_ms, 3),
                    fmt(100 * b_gbs / copy_gbs, 0) + "%", fmt(f.median_ms + bw.median_ms, 3)});
  }
}

}  // namespace
}  // namespace drwkv

int main(int argc, char** argv) {
  using namespace drwkv;
  int iters = 20;
  std::vector<Config> configs(std::begin(kConfigs), std::end(kConfigs));
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    long long B = 0, T = 0, C = 0;
    BiWkvPlan p;
    if (arg == "--shape" && i + 1 < argc && std::sscanf(argv[i + 1], "%lld,%lld,%lld", &B, &T, &C) == 3 && B > 0 &&
        T > 0 && C > 0) {
      Config only{B, T, C, 0, 0};
      for (const Config& c : kConfigs)
        if (c.B == B && c.T == T && c.C == C) only = c;
      configs = {only};
      ++i;
    } else if (arg == "--plan" && i + 1 < argc &&
               std::sscanf(argv[i + 1], "%d,%d,%d,%d,%d", &p.cluster, &p.warps, &p.chunks_per_warp, &p.staged_chunks,
                           &p.blocks_per_sm) == 5) {
      requested_plans().push_back(p);
      ++i;
    } else if (std::atoi(argv[i]) > 0) {
      iters = std::atoi(argv[i]);
    } else {
      std::fprintf(stderr,
                   "bi_wkv_gpu_bench: unknown argument '%s' (usage: [iterations] [--shape B,T,C] "
                   "[--plan c,w,s,staged,bps ...])\n",
                   argv[i]);
      return 2;
    }
  }
  const double copy_gbs = bench::copy_bandwidth_gbs(0);
  std::printf("Bi-WKV (exact) on %s, %s; device-to-device copy %.0f GB/s (read + write); median of %d\n\n",
              bench::device_name(0).c_str(), bench::now_string().c_str(), copy_gbs, iters);
  std::vector<std::vector<std::string>> rows{{"shape", "dtype", "plan (backward)", "fwd ms", "fwd GB/s", "fwd % copy",
                                              "fwd+bwd ms", "fwd+bwd GB/s", "fwd+bwd % copy", "fwd+bwd tokens/µs",
                                              "reference (ANCHORS.md, H100) fwd ms", "reference fwd+bwd ms",
                                              "fwd speed-up", "fwd+bwd speed-up"}};
  for (const auto& c : configs) {
    measure<float>(c, iters, copy_gbs, rows);
    measure<bf16>(c, iters, copy_gbs, rows);
  }
  bench::print_table(rows);
  std::printf("\nDecompositions (cluster×warps×chunks per warp, staged chunks, shared memory per block, "
              "blocks per SM, clusters resident; first row of each shape and dtype = automatic):\n\n");
  std::vector<std::vector<std::string>> plans{{"shape", "dtype", "forward plan", "fwd ms", "fwd % copy",
                                               "backward plan", "bwd ms", "bwd % copy", "fwd+bwd ms"}};
  for (const auto& c : configs) {
    compare_plans<float>(c, iters, copy_gbs, plans);
    compare_plans<bf16>(c, iters, copy_gbs, plans);
  }
  bench::print_table(plans);
  return 0;
}
