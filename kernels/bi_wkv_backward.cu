// Exact Bi-WKV backward on CUDA (kernels/bi_wkv.h); the kernel is bi_wkv_tile.cuh (kBackward), plus
// the deterministic reduction of the per-tile parameter gradients.
//
// Cost per (b, t, c) element: reads k, v, dy once, writes dk, dv once (f32: 20 B, bf16: 10 B); nothing
// saved by the forward is read (the forward sums are recomputed, which is cheaper than storing ~3
// floats per element). Plus 2 KB of tile summary and carry traffic per tile of 64 tokens × 32 channels
// and [B·tiles][2][C] floats of per-tile parameter gradients. Exponentials: stage 1 as the forward (~8,
// with the ∂/∂w sums carried along), stage 2 summaries 2, in-tile scans and carries ~1, backward
// rescans 2 + 3: ~16, plus one reciprocal and ~160 other float instructions. Registers 62–64 (no
// spills), 20 KB shared memory per block of 512 threads: two blocks per SM.
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
void bi_wkv_backward_cuda_path(BiWkvPath path, E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy,
                               const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                               int64_t T, int64_t C, void* workspace, StreamHandle stream) {
  if (B * T * C == 0) return;
  DRWKV_ASSERT(workspace, "bi_wkv_backward_cuda: workspace of bi_wkv_workspace_bytes() bytes required");
  const Layout l = layout(B, T, C);
  const TileArgs<E> a = tile_args<E>(l, workspace, k, v, dy, nullptr, dk, dv, decay, first, B, T, C);
  const cudaStream_t s = to_cuda(stream);
  const unsigned blocks = tile_blocks(l), threads = unsigned(l.warps * 32);
  if (l.tiles == 1) {
    tile_kernel<E, true, Mode::Final><<<blocks, threads, 0, s>>>(a);
    CUDA_CHECK_LAUNCH();
  } else if (use_chained(path, l, reinterpret_cast<const void*>(&tile_kernel<E, true, Mode::Chained>))) {
    clear_sync(l, workspace, s);
    tile_kernel<E, true, Mode::Chained><<<blocks, threads, 0, s>>>(a);
    CUDA_CHECK_LAUNCH();
  } else {
    tile_kernel<E, true, Mode::Publish1><<<blocks, threads, 0, s>>>(a);
    CUDA_CHECK_LAUNCH();
    launch_carries<true>(l, a.agg, a.car1, decay, T, C, s);
    tile_kernel<E, true, Mode::Publish2><<<blocks, threads, 0, s>>>(a);
    CUDA_CHECK_LAUNCH();
    launch_carries<true>(l, a.agg, a.car2, decay, T, C, s);
    tile_kernel<E, true, Mode::Final><<<blocks, threads, 0, s>>>(a);
    CUDA_CHECK_LAUNCH();
  }
  launch_param_grads(ddecay, dfirst, a.part, B * l.tiles, C, T, s);
}

template <typename E>
void bi_wkv_backward_cuda(E* dk, E* dv, acc_t<E>* ddecay, acc_t<E>* dfirst, const E* dy, const E* k, const E* v,
                          const acc_t<E>* decay, const acc_t<E>* first, int64_t B, int64_t T, int64_t C,
                          void* workspace, StreamHandle s) {
  bi_wkv_backward_cuda_path<E>(BiWkvPath::Auto, dk, dv, ddecay, dfirst, dy, k, v, decay, first, B, T, C, workspace,
                               s);
}

#define INSTANTIATE(E)                                                                                            \
  template void bi_wkv_backward_cuda_path<E>(BiWkvPath, E*, E*, acc_t<E>*, acc_t<E>*, const E*, const E*, const E*, \
                                             const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, int64_t, void*,  \
                                             StreamHandle);                                                       \
  template void bi_wkv_backward_cuda<E>(E*, E*, acc_t<E>*, acc_t<E>*, const E*, const E*, const E*,               \
                                        const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, int64_t, void*,       \
                                        StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
