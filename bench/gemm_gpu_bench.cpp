// bf16 GEMM throughput of kernels::gemm_cuda (cuBLASLt) at the shapes of DRWKV's linear layers over a
// training batch (M = 65536 tokens = 256 images × 256 tokens) and at 8192³, the ceiling of ANCHORS.md.
// For each layer shape it times the three GEMMs of a training step:
//   fwd: Y[M, N] = X[M, K] · Wᵀ   (W [N, K])                    bf16 output
//   dX:  dX[M, K] = dY[M, N] · W                                  bf16 output
//   dW:  dW[N, K] += dYᵀ · X       into an f32 gradient buffer    f32 output, beta = 1
// Inputs are random normal (never zero). Prints a markdown table and one machine-readable line per
// row ("RESULT <label> <median ms> <TFLOP/s>") that bench/run_gemm_compare.sh joins with
// bench/gemm_torch.py's output for the same labels.
//
// Usage: gemm_gpu_bench [iterations] [--m M] [--shapes K:N[,K:N...]] [--batch N] [--group]
//   iterations: default 50, after 10 warm-up calls; M: tokens (default 65536); shapes: the layers'
//   (in, out) features (default 384:1536,1536:384,768:3072,1536:6144; DRWKV-H/2 at batch 64 is
//   --m 16384 --shapes 1024:1024,1024:4096,4096:1024); batch: N products of each shape in one strided
//   launch (as one launch for a block's three D × D projections K, V, R would be); TFLOP/s count all N.
//   --group: the N products as one kernels::gemm_group_cuda launch (a pointer-array batch, operands where
//   the strided layout put them) instead: what autograd::linear_group issues.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/gemm.h"

namespace drwkv::bench {
namespace {

struct Row {
  std::string label;
  int64_t m, n, k, batch;
  bool trans_a, trans_b;
  DType out;
  float beta;
  bool group = false;  // the batch as one gemm_group launch
};

Tensor random_bf16(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = Tensor::empty(Shape{rows, cols}, DType::BF16, Device::cuda(0));
  rng_normal_(t, seed, 0x6e33);
  return t;
}

// Times one row: operands stored as the row's transposes say (row-major, dense).
std::vector<std::string> run(const Row& r, int iterations) {
  int64_t ar = r.trans_a ? r.k : r.m, ac = r.trans_a ? r.m : r.k;
  int64_t br = r.trans_b ? r.n : r.k, bc = r.trans_b ? r.k : r.n;
  Tensor a = random_bf16(r.batch * ar, ac, 1), b = random_bf16(r.batch * br, bc, 2);
  Tensor d = Tensor::empty(Shape{r.batch * r.m, r.n}, r.out, Device::cuda(0));
  d.fill_(0.5);  // beta = 1 rows accumulate into it
  kernels::GemmArgs g;
  g.m = r.m;
  g.n = r.n;
  g.k = r.k;
  g.batch = r.batch;
  g.stride_a = ar * ac;
  g.stride_b = br * bc;
  g.stride_d = r.m * r.n;
  g.a = a.data();
  g.a_dtype = DType::BF16;
  g.lda = ac;
  g.trans_a = r.trans_a;
  g.b = b.data();
  g.b_dtype = DType::BF16;
  g.ldb = bc;
  g.trans_b = r.trans_b;
  g.d = d.data();
  g.d_dtype = r.out;
  g.ldd = r.n;
  g.beta = r.beta;
  StreamHandle s = current_stream(0).handle();
  kernels::GemmGroup group;
  if (r.group) {
    DRWKV_ASSERT(r.batch <= kernels::kMaxGemmGroup, "--group: at most %d products", kernels::kMaxGemmGroup);
    group.count = int(r.batch);
    const size_t ea = 2, ed = r.out == DType::F32 ? 4 : 2;
    for (int64_t i = 0; i < r.batch; ++i) {
      group.a[i] = static_cast<const char*>(a.data()) + i * g.stride_a * int64_t(ea);
      group.b[i] = static_cast<const char*>(b.data()) + i * g.stride_b * int64_t(ea);
      group.d[i] = static_cast<char*>(d.data()) + i * g.stride_d * int64_t(ed);
    }
    g.batch = 1;
    g.stride_a = g.stride_b = g.stride_d = 0;
  }
  Timing t = time_gpu(0, [&] {
    if (r.group)
      kernels::gemm_group_cuda(g, group, s);
    else
      kernels::gemm_cuda(g, s);
  }, 10, iterations);
  double tflops = 2.0 * double(r.batch) * double(r.m) * double(r.n) * double(r.k) / (t.median_ms * 1e-3) / 1e12;
  std::printf("RESULT %s %.4f %.1f\n", r.label.c_str(), t.median_ms, tflops);
  std::string op = std::string(r.trans_a ? "Aᵀ" : "A") + "·" + (r.trans_b ? "Bᵀ" : "B");
  return {r.label, std::to_string(r.batch) + (r.group ? " (group)" : ""), std::to_string(r.m), std::to_string(r.n), std::to_string(r.k), op,
          std::string(dtype_name(r.out)) + (r.beta != 0 ? " +=" : ""), fmt(t.median_ms, 4), fmt(tflops, 1)};
}

}  // namespace
}  // namespace drwkv::bench

int main(int argc, char** argv) {
  using namespace drwkv;
  using namespace drwkv::bench;
  int iterations = 50;
  int64_t M = 65536, batch = 1;
  bool group = false;
  std::vector<std::pair<int64_t, int64_t>> shapes = {{384, 1536}, {1536, 384}, {768, 3072}, {1536, 6144}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--m" && i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &M) && M > 0) {
      ++i;
    } else if (a == "--batch" && i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &batch) && batch > 0) {
      ++i;
    } else if (a == "--group") {
      group = true;
    } else if (a == "--shapes" && i + 1 < argc) {
      shapes.clear();
      for (absl::string_view kn : absl::StrSplit(argv[++i], ',')) {
        std::vector<std::string> p = absl::StrSplit(kn, ':');
        int64_t k = 0, n = 0;
        if (p.size() != 2 || !absl::SimpleAtoi(p[0], &k) || !absl::SimpleAtoi(p[1], &n) || k <= 0 || n <= 0) {
          std::fprintf(stderr, "--shapes: '%s' is not K:N (positive integers)\n", std::string(kn).c_str());
          return 2;
        }
        shapes.push_back({k, n});
      }
    } else if (!absl::SimpleAtoi(a, &iterations) || iterations <= 0) {
      std::fprintf(stderr, "unknown argument %s (usage in the file comment)\n", a.c_str());
      return 2;
    }
  }
  std::vector<Row> rows;
  for (auto [k, n] : shapes) {
    std::string shape = absl::StrFormat("M%d_K%d_N%d", M, k, n) +
                        (batch > 1 ? absl::StrFormat(group ? "_g%d" : "_x%d", batch) : "");
    rows.push_back({"fwd_" + shape, M, n, k, batch, false, true, DType::BF16, 0.0f, group});   // X · Wᵀ
    rows.push_back({"dX_" + shape, M, k, n, batch, false, false, DType::BF16, 0.0f, group});   // dY · W
    rows.push_back({"dW_" + shape, n, k, M, batch, true, false, DType::F32, 1.0f, group});     // dW += dYᵀ · X
  }
  rows.push_back({"sq_8192", 8192, 8192, 8192, 1, false, false, DType::BF16, 0.0f});
  std::printf("# bf16 GEMM through cuBLASLt (kernels::gemm_cuda), %s, %s, median of %d after warm-up\n",
              device_name(0).c_str(), now_string().c_str(), iterations);
  std::vector<std::vector<std::string>> table = {{"label", "batch", "m", "n", "k", "op", "out", "median ms", "TFLOP/s"}};
  for (const Row& r : rows) table.push_back(run(r, iterations));
  print_table(table);
  return 0;
}
