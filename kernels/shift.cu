// CUDA q-shift mix (kernels/shift.h).
//
// Layout (kernels/row_tiles.cuh): a block owns kQShiftRowsPerBlock consecutive tokens of the flattened
// batch; thread x owns a chunk of VW channels that lies inside one channel quarter, so one neighbour token
// serves the whole chunk; μ stays in registers. VW is 16 bytes of T in the forward and 4 channels in the
// backward (8 bytes of bf16), whose per-thread μ and dμ sums would otherwise hold occupancy to 15 warps
// per SM (121 registers at M = 3, bf16). In the backward a token's sample, grid row and column come from
// 32-bit divisions, once per token (the launcher checks that the flattened batch has fewer than 2^31
// rows); the forward keeps 64-bit arithmetic (the 32-bit form took it from 64 to 96 registers and ran
// 5% slower on the H100).
// Bytes (N = B·T·C elements of T, S = sizeof(T)):
//   forward  reads x once from DRAM (the neighbour reads hit L1/L2: neighbours are ±1 and ±grid_w tokens
//            away, inside the same or an adjacent block), writes M outputs: (1 + M)·N·S.
//   backward reads x and the M output gradients (again with cached neighbour reads), writes dx (and reads
//            it when accumulating): (M + 2)·N·S, plus row_blocks·M·C·4 of dμ partials written and read.
#include <type_traits>

#include "kernels/row_tiles.cuh"
#include "kernels/shift.h"

namespace drwkv::kernels {
namespace {
using namespace cuda;

// The VW channels at c0 of the neighbour token `src` of the same image (row b), or zeros where the
// shift falls off the grid (src < 0).
template <typename T, int VW>
__device__ __forceinline__ void load_neighbour(const T* __restrict__ x, int64_t b, int64_t tokens, int64_t src,
                                               int64_t C, int64_t c0, float (&v)[VW]) {
  if (src >= 0) {
    load_vec<VW>(x + (b * tokens + src) * C + c0, v);
  } else {
#pragma unroll
    for (int j = 0; j < VW; ++j) v[j] = 0.f;
  }
}

// Row r of the flattened batch: its sample b, its token t within the sample, and t's grid row y and
// column x.
struct RowPos {
  unsigned b, t, y, x;
};
__device__ __forceinline__ RowPos row_pos(unsigned r, unsigned tokens, unsigned grid_w) {
  RowPos p;
  p.b = r / tokens;
  p.t = r - p.b * tokens;
  p.y = p.t / grid_w;
  p.x = p.t - p.y * grid_w;
  return p;
}

template <typename T, int VW, int M>
__global__ void qshift_forward_kernel(MixPtrs<T*> outs, const T* __restrict__ x, MixPtrs<const float*> mus,
                                      int64_t rows, int grid_h, int grid_w, int64_t C) {
  using A = float;
  const int64_t tokens = int64_t(grid_h) * grid_w;
  const int64_t r0 = int64_t(blockIdx.x) * kQShiftRowsPerBlock;
  const int64_t r1 = r0 + kQShiftRowsPerBlock < rows ? r0 + kQShiftRowsPerBlock : rows;
  for (int64_t c0 = int64_t(threadIdx.x) * VW; c0 < C; c0 += int64_t(blockDim.x) * VW) {
    const int q = qshift_quarter(c0, C);
    A mu[M][VW];
#pragma unroll
    for (int m = 0; m < M; ++m) load_vec<VW>(mus.p[m] + c0, mu[m]);
    for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
      const int64_t b = r / tokens, t = r - b * tokens;
      const int64_t src = qshift_source(q, t, grid_h, grid_w);
      A xv[VW], qv[VW];
      load_vec<VW>(x + r * C + c0, xv);
      load_neighbour<T, VW>(x, b, tokens, src, C, c0, qv);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        A o[VW];
#pragma unroll
        for (int j = 0; j < VW; ++j) o[j] = xv[j] * mu[m][j] + qv[j] * (A(1) - mu[m][j]);
        store_vec<VW>(outs.p[m] + r * C + c0, o);
      }
    }
  }
}

// dx for the block's rows, and the block's partial Σ g_m (x − Q) per channel into
// partial[blockIdx.x][m][c] (when partial is not null).
// 80 registers: three blocks per SM (49% instead of 38% of copy at M = 3 on the H100).
template <typename T, int VW, int M>
__global__ void __launch_bounds__(256, 3)
    qshift_backward_kernel(T* __restrict__ dx, MixPtrs<const T*> douts, const T* __restrict__ x,
                           MixPtrs<const float*> mus, float* __restrict__ partial, int64_t rows, int grid_h,
                           int grid_w, int64_t C, bool accumulate) {
  using A = float;
  extern __shared__ float scratch[];  // blockDim.x · blockDim.y · M · VW
  const int64_t tokens = int64_t(grid_h) * grid_w;
  const int64_t r0 = int64_t(blockIdx.x) * kQShiftRowsPerBlock;
  const int64_t r1 = r0 + kQShiftRowsPerBlock < rows ? r0 + kQShiftRowsPerBlock : rows;
  // the chunk loop runs the same number of times in every thread: the reduction below synchronises
  for (int64_t base = 0; base < C; base += int64_t(blockDim.x) * VW) {
    const int64_t c0 = base + int64_t(threadIdx.x) * VW;
    const bool active = c0 < C;
    A dmu[M * VW];
#pragma unroll
    for (int k = 0; k < M * VW; ++k) dmu[k] = A(0);
    if (active) {
      const int q = qshift_quarter(c0, C);
      A mu[M][VW];
#pragma unroll
      for (int m = 0; m < M; ++m) load_vec<VW>(mus.p[m] + c0, mu[m]);
      for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
        const RowPos at = row_pos(unsigned(r), unsigned(tokens), unsigned(grid_w));
        const int64_t src = qshift_source_at(q, at.t, at.y, at.x, grid_h, grid_w);
        const int64_t rd = qshift_reader_at(q, at.t, at.y, at.x, grid_h, grid_w);
        // Every load of the row is issued before any value is used: one memory round trip per row instead
        // of one per tensor (the kernel is latency-bound otherwise). An off-grid neighbour reads the row
        // itself and is replaced by zeros afterwards.
        const int64_t row = r * C + c0, sample = int64_t(at.b) * tokens;
        const int64_t src_at = (src >= 0 ? sample + src : r) * C + c0, rd_at = (rd >= 0 ? sample + rd : r) * C + c0;
        A xv[VW], qv[VW], acc[VW], g[M][VW], gr[M][VW];
        if (partial) {
          load_vec<VW>(x + row, xv);
          load_vec<VW>(x + src_at, qv);
        }
#pragma unroll
        for (int m = 0; m < M; ++m) {
          load_vec<VW>(douts.p[m] + row, g[m]);
          if (dx) load_vec<VW>(douts.p[m] + rd_at, gr[m]);
        }
        if (dx && accumulate) {
          load_vec<VW>(dx + row, acc);
        } else {
#pragma unroll
          for (int j = 0; j < VW; ++j) acc[j] = A(0);
        }
        if (partial) {
#pragma unroll
          for (int j = 0; j < VW; ++j) xv[j] -= src >= 0 ? qv[j] : A(0);  // x − Q
#pragma unroll
          for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < VW; ++j) dmu[m * VW + j] += g[m][j] * xv[j];
        }
        if (dx) {
#pragma unroll
          for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < VW; ++j)
              acc[j] += g[m][j] * mu[m][j] + (rd >= 0 ? gr[m][j] : A(0)) * (A(1) - mu[m][j]);
          store_vec<VW>(dx + row, acc);
        }
      }
    }
    if (partial == nullptr) continue;  // uniform: no thread reaches the reduction
    column_sum_over_y<M * VW>(dmu, scratch);
    if (threadIdx.y == 0 && active) {
#pragma unroll
      for (int m = 0; m < M; ++m)
#pragma unroll
        for (int j = 0; j < VW; ++j) partial[(int64_t(blockIdx.x) * M + m) * C + c0 + j] = dmu[m * VW + j];
    }
  }
}

struct AddToMixGradients {
  MixPtrs<float*> dmus;
  int64_t C;
  __device__ void operator()(int64_t col, float s) const {
    const int64_t m = col / C, c = col - m * C;
    // selects instead of a dynamic index into the by-value array (which would live in local memory)
    float* d = m == 0 ? dmus.p[0] : m == 1 ? dmus.p[1] : m == 2 ? dmus.p[2] : dmus.p[3];
    if (d) d[c] += s;
  }
};

// Channels per thread on the vector path: 16 bytes of T forward, 4 channels backward (file comment).
template <typename T> inline constexpr int kForwardVW = kPack<T>;
inline constexpr int kBackwardVW = 4;

// The vector path needs every chunk of VW channels inside one quarter (C a multiple of 4·VW) and 16-byte
// aligned pointers.
template <int VW, typename T, typename PX, typename PM>
bool use_vector_path(int64_t C, const T* x, const PX& outs, const PM& mus, int mixes) {
  if (C % (4 * VW) != 0 || !aligned16(x)) return false;
  for (int m = 0; m < mixes; ++m)
    if (!aligned16(outs.p[m]) || !aligned16(mus.p[m])) return false;
  return true;
}

template <typename T, int VW, int M>
void forward_launch(const MixPtrs<T*>& outs, const T* x, const MixPtrs<const float*>& mus, int64_t rows, int gh, int gw,
                    int64_t C, cudaStream_t st) {
  RowBlock rb = row_block(C, VW, 256, false, int(kQShiftRowsPerBlock));
  unsigned blocks = unsigned((rows + kQShiftRowsPerBlock - 1) / kQShiftRowsPerBlock);
  qshift_forward_kernel<T, VW, M><<<blocks, dim3(rb.x, rb.y), 0, st>>>(outs, x, mus, rows, gh, gw, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T, int VW, int M>
void backward_launch(T* dx, const MixPtrs<float*>& dmus, const MixPtrs<const T*>& douts, const T* x,
                     const MixPtrs<const float*>& mus, int64_t rows, int gh, int gw, int64_t C, bool accumulate,
                     float* workspace, cudaStream_t st) {
  RowBlock rb = row_block(C, VW, 256, false, int(kQShiftRowsPerBlock));
  const int64_t blocks = (rows + kQShiftRowsPerBlock - 1) / kQShiftRowsPerBlock;
  bool any = false;
  for (int m = 0; m < M; ++m) any = any || dmus.p[m] != nullptr;
  float* partial = any ? workspace : nullptr;
  DRWKV_ASSERT(!any || workspace != nullptr, "qshift_mix_backward_cuda: μ gradients need the workspace");
  size_t smem = size_t(rb.x) * rb.y * M * VW * sizeof(float);
  qshift_backward_kernel<T, VW, M><<<unsigned(blocks), dim3(rb.x, rb.y), smem, st>>>(dx, douts, x, mus, partial, rows, gh,
                                                                                      gw, C, accumulate);
  CUDA_CHECK_LAUNCH();
  if (any) launch_column_sum(partial, blocks, int64_t(M) * C, AddToMixGradients{dmus, C}, st);
}

// Calls f(std::integral_constant<int, M>) for the runtime mix count.
template <typename F>
void dispatch_mixes(int mixes, F&& f) {
  switch (mixes) {
    case 1: f(std::integral_constant<int, 1>{}); return;
    case 2: f(std::integral_constant<int, 2>{}); return;
    case 3: f(std::integral_constant<int, 3>{}); return;
    case 4: f(std::integral_constant<int, 4>{}); return;
    default: DRWKV_FAIL("q-shift mix: %d mixes (1..%d)", mixes, kQShiftMaxMix);
  }
}
}  // namespace

template <typename T>
void qshift_mix_forward_cuda(const MixPtrs<T*>& outs, const T* x, const MixPtrs<const acc_t<T>*>& mus, int mixes,
                             int64_t batch, int grid_h, int grid_w, int64_t C, StreamHandle s) {
  DRWKV_ASSERT(batch >= 0 && grid_h > 0 && grid_w > 0 && C > 0, "q-shift mix: B %lld, grid %dx%d, C %lld",
               (long long)batch, grid_h, grid_w, (long long)C);
  const int64_t rows = batch * grid_h * grid_w;
  if (rows == 0) return;
  const bool vec = use_vector_path<kForwardVW<T>>(C, x, outs, mus, mixes);
  dispatch_mixes(mixes, [&](auto mc) {
    constexpr int M = decltype(mc)::value;
    if (vec)
      forward_launch<T, kForwardVW<T>, M>(outs, x, mus, rows, grid_h, grid_w, C, to_cuda(s));
    else
      forward_launch<T, 1, M>(outs, x, mus, rows, grid_h, grid_w, C, to_cuda(s));
  });
}

template <typename T>
void qshift_mix_backward_cuda(T* dx, const MixPtrs<acc_t<T>*>& dmus, const MixPtrs<const T*>& douts, const T* x,
                              const MixPtrs<const acc_t<T>*>& mus, int mixes, int64_t batch, int grid_h, int grid_w,
                              int64_t C, bool accumulate, acc_t<T>* workspace, StreamHandle s) {
  DRWKV_ASSERT(batch >= 0 && grid_h > 0 && grid_w > 0 && C > 0, "q-shift mix: B %lld, grid %dx%d, C %lld",
               (long long)batch, grid_h, grid_w, (long long)C);
  const int64_t rows = batch * grid_h * grid_w;
  if (rows == 0) return;
  DRWKV_ASSERT(rows < (int64_t(1) << 31),
               "q-shift mix: %lld tokens in the batch (the kernel indexes rows with 32 bits)", (long long)rows);
  bool vec = use_vector_path<kBackwardVW>(C, x, douts, mus, mixes) && (dx == nullptr || aligned16(dx));
  dispatch_mixes(mixes, [&](auto mc) {
    constexpr int M = decltype(mc)::value;
    if (vec)
      backward_launch<T, kBackwardVW, M>(dx, dmus, douts, x, mus, rows, grid_h, grid_w, C, accumulate, workspace,
                                         to_cuda(s));
    else
      backward_launch<T, 1, M>(dx, dmus, douts, x, mus, rows, grid_h, grid_w, C, accumulate, workspace, to_cuda(s));
  });
}

#define INSTANTIATE(T)                                                                                             \
  template void qshift_mix_forward_cuda<T>(const MixPtrs<T*>&, const T*, const MixPtrs<const acc_t<T>*>&, int,     \
                                           int64_t, int, int, int64_t, StreamHandle);                              \
  template void qshift_mix_backward_cuda<T>(T*, const MixPtrs<acc_t<T>*>&, const MixPtrs<const T*>&, const T*,     \
                                            const MixPtrs<const acc_t<T>*>&, int, int64_t, int, int, int64_t, bool, \
                                            acc_t<T>*, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
