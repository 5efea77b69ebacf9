// Exact Bi-WKV forward on CUDA (kernels/bi_wkv.h); the kernel is bi_wkv_tile.cuh.
//
// Cost per (b, t, c) element: reads k, v once, writes y once (f32: 12 B, bf16: 6 B), plus 1 KB of
// tile summary and carry traffic per tile of 64 tokens × 32 channels (≈ 2% more, mostly L2).
// Exponentials (ex2.approx, one per running-max step or combine): segment summaries 2, in-tile scans
// and segment carries ~1, right and left rescans 1 + 1, output combine 3: ~8, plus one reciprocal and
// ~70 other float instructions (max/select/FMA). Registers 48–56, 20 KB shared memory per block of
// 512 threads: two blocks per SM.
#include "kernels/bi_wkv.h"
#include "kernels/bi_wkv_launch.cuh"

namespace drwkv::kernels {
using namespace bi_wkv_detail;

template <typename E> BiWkvPath bi_wkv_auto_path(int64_t B, int64_t T, int64_t C, bool backward) {
  Layout l = layout(B, T, C);
  const void* chained = backward ? reinterpret_cast<const void*>(&tile_kernel<E, true, Mode::Chained>)
                                 : reinterpret_cast<const void*>(&tile_kernel<E, false, Mode::Chained>);
  return use_chained(BiWkvPath::Auto, l, chained) ? BiWkvPath::Chained : BiWkvPath::MultiPass;
}

template <typename E>
void bi_wkv_forward_cuda_path(BiWkvPath path, E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first,
                              int64_t B, int64_t T, int64_t C, void* workspace, StreamHandle stream) {
  if (B * T * C == 0) return;
  DRWKV_ASSERT(workspace, "bi_wkv_forward_cuda: workspace of bi_wkv_workspace_bytes() bytes required");
  const Layout l = layout(B, T, C);
  const TileArgs<E> a = tile_args<E>(l, workspace, k, v, nullptr, y, nullptr, nullptr, decay, first, B, T, C);
  const cudaStream_t s = to_cuda(stream);
  const unsigned blocks = tile_blocks(l), threads = unsigned(l.warps * 32);
  if (l.tiles == 1) {  // the whole sequence is one block: no exchange
    tile_kernel<E, false, Mode::Final><<<blocks, threads, 0, s>>>(a);
    CUDA_CHECK_LAUNCH();
    return;
  }
  if (use_chained(path, l, reinterpret_cast<const void*>(&tile_kernel<E, false, Mode::Chained>))) {
    clear_sync(l, workspace, s);
    tile_kernel<E, false, Mode::Chained><<<blocks, threads, 0, s>>>(a);
    CUDA_CHECK_LAUNCH();
    return;
  }
  tile_kernel<E, false, Mode::Publish1><<<blocks, threads, 0, s>>>(a);
  CUDA_CHECK_LAUNCH();
  launch_carries<false>(l, a.agg, a.car1, decay, T, C, s);
  tile_kernel<E, false, Mode::Final><<<blocks, threads, 0, s>>>(a);
  CUDA_CHECK_LAUNCH();
}

template <typename E>
void bi_wkv_forward_cuda(E* y, const E* k, const E* v, const acc_t<E>* decay, const acc_t<E>* first, int64_t B,
                         int64_t T, int64_t C, void* workspace, StreamHandle s) {
  bi_wkv_forward_cuda_path<E>(BiWkvPath::Auto, y, k, v, decay, first, B, T, C, workspace, s);
}

#define INSTANTIATE(E)                                                                                          \
  template BiWkvPath bi_wkv_auto_path<E>(int64_t, int64_t, int64_t, bool);                                      \
  template void bi_wkv_forward_cuda_path<E>(BiWkvPath, E*, const E*, const E*, const acc_t<E>*,                 \
                                            const acc_t<E>*, int64_t, int64_t, int64_t, void*, StreamHandle);   \
  template void bi_wkv_forward_cuda<E>(E*, const E*, const E*, const acc_t<E>*, const acc_t<E>*, int64_t, int64_t, \
                                       int64_t, void*, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
