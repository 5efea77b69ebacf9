// Exact Bi-WKV backward on CUDA (kernels/bi_wkv.h); the kernel is bi_wkv_kernel.cuh (kBackward), plus the
// deterministic reduction of the per-block parameter gradients.
//
// Cost per (b, t, c) element (automatic plan, fast path; FP32 instructions incl. loads/stores, MUFU =
// ex2/rcp):
//   pass 1  load k, v, dy (3) + stage (3), x (1 MUFU), three recurrences (6 + 4 for ∂/∂w), misc (2)
//                                                                                         ≈ 18 + 1 MUFU
//   pass 2  shared loads (3), outputs as in the forward with ẑ and ∂/∂w (≈ 24 + 2 MUFU), terms A and
//           ∂L/∂u (5), backward summaries (≈ 10)                                          ≈ 42 + 2 MUFU
//   pass 3  shared loads (3), outputs again (≈ 18 + 2 MUFU), two backward sweeps (≈ 10 + 4 for ∂/∂w),
//           dk, dv (≈ 9), term B (3), stores (2)                                          ≈ 49 + 2 MUFU
//   per chunk (÷ 8): maxima, scales (≈ 17 ex2), normalisation, two carry sweeps, two exchanges
//                                                                                         ≈ 14 + 2 MUFU
//   total ≈ 125 instructions and 7 MUFU per element; bytes: k, v, dy read once, dk, dv written once
//   (f32: 20 B, bf16: 10 B), plus [B·cluster][2][C] partials and the chunks that are not staged.
// H100 (≈ 29.6 T inst/s, 3.7 T MUFU/s, 3.0 TB/s copy): at B32 T1024 C384 the instructions take 53 µs,
// the MUFU 24 µs, the bytes (f32) 84 µs: memory bound if ≥ 2/3 of the issue slots are used while the
// loads stream; expected ≈ 0.10 ms (f32), forward + backward ≈ 0.16 ms.
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
