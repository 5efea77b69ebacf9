// Exact Bi-WKV forward on CUDA (kernels/bi_wkv.h); the kernel is bi_wkv_kernel.cuh.
//
// Cost per (b, t, c) element, fast path, full staged chunks, counted in the SASS of the chunk loops
// (sm_90, CUDA 13; instructions issued, MUFU = ex2/rcp):
//   pass 1  load k, v, stage them, x = 2^{k−P}, left and right chunk summaries     223 / 8 = 28, 1.1 MUFU
//   pass 2  shared loads, x, right and left sweeps, outputs, rcp, store y           238 / 8 = 30, 2.8 MUFU
//   per segment (exchange, summary folds, carry sweep), spread over its 32 tokens      ≈ 6
//   total ≈ 64 instructions and 3.9 MUFU per element; bytes: k, v read once, y written once (f32: 12 B,
//   bf16: 6 B) plus block totals (< 1%).
// H100 (132 SMs × 128 lanes × 1.755 GHz ≈ 29.6 T inst/s, 3.7 T MUFU/s, 3.0 TB/s copy), B32 T1024 C384
// (12.6 M elements): instructions 27 µs, MUFU 13 µs, bytes (f32) 50 µs: memory bound, expected ≈ 0.06 ms.
// Registers: 89–100 (no spills); with 8-warp blocks two blocks (16 warps) per SM.
#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_launch.cuh"

namespace drwkv::kernels {
using namespace bi_wkv_detail;

template <typename E>
void bi_wkv_forward_cuda_plan(const BiWkvPlan& plan, E* y, const E* k, const E* v, const acc_t<E>* decay,
                              const acc_t<E>* first, int64_t B, int64_t T, int64_t C, void* workspace,
                              StreamHandle stream) {
  if (B * T * C == 0) return;
  DRWKV_ASSERT(workspace, "bi_wkv_forward_cuda: workspace of bi_wkv_workspace_bytes() bytes required");
  const Resolved r = resolve(plan, B, T, C, sizeof(E), false);
  const KernelArgs<E> a = kernel_args<E>(r, workspace, k, v, nullptr, y, nullptr, nullptr, decay, first, T, C);
  launch_kernel<E, false>(r, a, B, C, to_cuda(stream));
}

template <typename E>
void bi_wkv_forward_cuda(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                         int64_t T, int64_t C, void* workspace, StreamHandle s) {
  bi_wkv_forward_cuda_plan<E>(BiWkvPlan{}, y, k, v, decay, first, B, T, C, workspace, s);
}

template <typename E> BiWkvLaunchInfo bi_wkv_launch_info(const BiWkvPlan& plan, int64_t T, bool backward) {
  return launch_info<E>(plan, T, backward);
}

#define INSTANTIATE(E)                                                                                          \
  template BiWkvLaunchInfo bi_wkv_launch_info<E>(const BiWkvPlan&, int64_t, bool);                              \
  template void bi_wkv_forward_cuda_plan<E>(const BiWkvPlan&, E*, const E*, const E*, const acc_t<E>*,          \
                                            const acc_t<E>*, int64_t, int64_t, int64_t, void*, StreamHandle);   \
  template void bi_wkv_forward_cuda<E>(E*, const E*, const E*, const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, \
                                       int64_t, void*, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
