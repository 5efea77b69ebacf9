// Exact Bi-WKV backward on CUDA (kernels/bi_wkv.h); the kernel is bi_wkv_kernel.cuh (kBackward), plus
// the deterministic reduction of the per-block parameter gradients.
//
// Cost per (b, t, c) element, fast path, full staged chunks, counted in the SASS of the chunk loops
// (sm_90, CUDA 13; instructions issued, MUFU = ex2/rcp):
//   pass 1  load k, v, dy, stage them, chunk summaries with ∂/∂w                    275 / 8 = 34, 1.1 MUFU
//   pass 2  outputs again with ẑ, ∂L/∂u and term A of ∂L/∂w, backward summaries     398 / 8 = 50, 2.9 MUFU
//   pass 3  outputs again, backward sweeps, dk, dv, term B, stores                  497 / 8 = 62, 3.6 MUFU
//   per segment (two exchanges, folds, two carry sweeps), spread over its 32 tokens   ≈ 10
//   total ≈ 156 instructions and 7.6 MUFU per element; bytes: k, v, dy read once, dk, dv written once
//   (f32: 20 B, bf16: 10 B) plus [B·cluster][2][C] partials and block totals (< 1%).
// H100 (≈ 29.6 T inst/s, 3.7 T MUFU/s, 3.0 TB/s copy), B32 T1024 C384: instructions 66 µs, MUFU 26 µs,
// bytes (f32) 84 µs: memory and issue overlap with ~20% slack, expected ≈ 0.10–0.12 ms; forward + backward
// ≈ 0.17 ms against the reference's 1.161 ms. Registers: 128 (no spills in the shared-memory-carries
// variant used up to T = 8192; the workspace-carries variant beyond spills one value), 16 warps per SM.
#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_launch.cuh"

namespace drwkv::kernels {
using namespace bi_wkv_detail;

namespace {

// out[c] += scale · Σ_r part[r][f][c] for f = 0 (ddecay), 1 (dfirst), in a fixed order: warp w sums the
// rows r ≡ w (mod 32) in sequence (double), then warp 0 adds the 32 warp sums in order.
// Grid: one block of 32 × 32 threads per 32 channels.
__global__ void param_grad_kernel(float* ddecay, float* dfirst, const float* part, int64_t rows, int64_t C,
                                  double scale) {
  __shared__ double sums[2][32][32];
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  const int64_t c = int64_t(blockIdx.x) * 32 + lane;
  double sw = 0, su = 0;
  if (c < C)
    for (int64_t r = warp; r < rows; r += 32) {
      sw += double(part[(r * 2 + 0) * C + c]);
      su += double(part[(r * 2 + 1) * C + c]);
    }
  sums[0][warp][lane] = sw;
  sums[1][warp][lane] = su;
  __syncthreads();
  if (warp == 0 && c < C) {
    double tw = 0, tu = 0;
    for (int w = 0; w < 32; ++w) {
      tw += sums[0][w][lane];
      tu += sums[1][w][lane];
    }
    if (ddecay) ddecay[c] += float(tw * scale);
    if (dfirst) dfirst[c] += float(tu * scale);
  }
}

}  // namespace

namespace bi_wkv_detail {
void launch_param_grads(float* ddecay, float* dfirst, const float* part, int64_t rows, int64_t C, int64_t T,
                        cudaStream_t s) {
  if (!ddecay && !dfirst) return;
  param_grad_kernel<<<unsigned((C + 31) / 32), 1024, 0, s>>>(ddecay, dfirst, part, rows, C, 1.0 / double(T));
  CUDA_CHECK_LAUNCH();
}
}  // namespace bi_wkv_detail

template <typename E>
void bi_wkv_backward_cuda_plan(const BiWkvPlan& plan, E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy,
                               const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                               int64_t T, int64_t C, void* workspace, StreamHandle stream) {
  if (B * T * C == 0) return;
  DRWKV_ASSERT(workspace, "bi_wkv_backward_cuda: workspace of bi_wkv_workspace_bytes() bytes required");
  const Resolved r = resolve(plan, B, T, C, sizeof(E), true);
  const KernelArgs<E> a = kernel_args<E>(r, workspace, k, v, dy, nullptr, dk, dv, decay, first, T, C);
  const cudaStream_t s = to_cuda(stream);
  launch_kernel<E, true>(r, a, B, C, s);
  launch_param_grads(ddecay, dfirst, a.part, B * r.plan.cluster, C, T, s);
}

template <typename E>
void bi_wkv_backward_cuda(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k, const E* v,
                          const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T, int64_t C,
                          void* workspace, StreamHandle s) {
  bi_wkv_backward_cuda_plan<E>(BiWkvPlan{}, dk, dv, ddecay, dfirst, dy, k, v, decay, first, B, T, C, workspace, s);
}

#define INSTANTIATE(E)                                                                                            \
  template void bi_wkv_backward_cuda_plan<E>(const BiWkvPlan&, E*, E*, acc_t<E>*, acc_t<E>*, const E*, const E*,  \
                                             const E*, const acc_t<E>*, const acc_t<E>*, int64_t, int64_t,        \
                                             int64_t, void*, StreamHandle);                                       \
  template void bi_wkv_backward_cuda<E>(E*, E*, acc_t<E>*, acc_t<E>*, const E*, const E*, const E*,               \
                                        const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, int64_t, void*,       \
                                        StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
