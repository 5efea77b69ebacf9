// CUDA q-shift mix (kernels/shift.h).
//
// Forward (kernels/row_tiles.cuh layout): a block owns kQShiftRowsPerBlock consecutive tokens of the
// flattened batch; thread x owns a chunk of VW channels (16 bytes of T) inside one channel quarter, so one
// neighbour token serves the whole chunk, whose read hits L1/L2 (neighbours are ±1 and ±grid_w tokens
// away, inside the same or an adjacent block); μ stays in registers.
// Backward: walks. Every channel quarter reads its neighbour along one direction of the grid (left,
// right, above, below), so a grid row (quarters 0, 1) or column (2, 3) walked in the direction that puts
// each token's source one step behind it needs no neighbour access: the thread keeps the previous step's
// values in registers. Thread (x, y) owns the channel chunk [c0, c0 + 4) and one segment of at most
// kQShiftSegment steps of a line of one sample (blockIdx.x = sample·G + g, G groups of
// kQShiftLinesPerBlock segments per sample), and reads one token before and one after its segment. It
// carries a = Σ_m g_m·μ_m of the previous step: a token's dx is its own a plus Σ_m g_m·(1 − μ_m) of the
// token that reads it, which is the next step. Against the gathering kernel it replaced: 49–53% → 59–75%
// of copy (H100, docs/PERF.md).
// Bytes (N = B·T·C elements of T, S = sizeof(T)):
//   forward  reads x once from DRAM, writes M outputs: (1 + M)·N·S.
//   backward reads x and the M output gradients, writes dx (and reads it when accumulating):
//            (M + 2)·N·S, plus (M + 1) tokens per segment again (L2) and B·G·M·C·4 of dμ partials.
#include <type_traits>

#include "kernels/row_tiles.cuh"
#include "kernels/shift.h"

namespace drwkv::kernels {
namespace {
using namespace cuda;

// Segment u of a quarter's walks: line u / S (of `length` tokens, S = its segments), steps [i0, i1); step
// i of the line is token start + i·step. exists: u names a segment of this quarter.
struct Walk {
  int length, i0, i1;
  int64_t start, step;
  bool exists;
};
__device__ __forceinline__ Walk walk_of(int quarter, int u, int grid_h, int grid_w) {
  const bool rows = quarter < 2;  // quarters 0, 1 walk grid rows, 2, 3 columns
  const int length = rows ? grid_w : grid_h, lines = rows ? grid_h : grid_w;
  const int segs = (length + kQShiftSegment - 1) / kQShiftSegment;
  const int l = u / segs, seg = u - l * segs;
  Walk w;
  w.length = length;
  w.i0 = seg * kQShiftSegment;
  w.i1 = w.i0 + kQShiftSegment < length ? w.i0 + kQShiftSegment : length;
  w.exists = l < lines;
  switch (quarter) {
    case 0: w.start = int64_t(l) * grid_w, w.step = 1; break;                            // from the left
    case 1: w.start = int64_t(l) * grid_w + grid_w - 1, w.step = -1; break;              // from the right
    case 2: w.start = l, w.step = grid_w; break;                                         // from above
    default: w.start = int64_t(grid_h - 1) * grid_w + l, w.step = -int64_t(grid_w); break;  // from below
  }
  return w;
}

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

// Steps of a walk whose loads are issued together (64 bytes per thread in flight on the vector path).
inline constexpr int kWalkUnroll = 2;

// dx of the thread's segment, and the block's partial Σ g_m·(x − Q) per channel into
// partial[blockIdx.x][m][c] (when partial is not null; every thread then reaches the block reduction).
// Step i of the walk finishes the dx of step i − 1; step i1 (the next segment's first, or past the
// line's end) only finishes the segment's last.
// Up to two mixes in 80 registers, three blocks per SM (82 registers left two: 64% → 54% of copy at
// C = 384, H100); three and four mixes need more and keep two.
template <typename T, int VW, int M>
__global__ void __launch_bounds__(256, M <= 2 ? 3 : 2)
    qshift_backward_kernel(T* __restrict__ dx, MixPtrs<const T*> douts, const T* __restrict__ x,
                           MixPtrs<const float*> mus, float* __restrict__ partial, int groups, int grid_h, int grid_w,
                           int64_t C, bool accumulate) {
  using A = float;
  constexpr int U = kWalkUnroll;
  extern __shared__ float scratch[];  // blockDim.x · blockDim.y · M · VW
  const int64_t c0 = (int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * VW;
  const int64_t b = blockIdx.x / unsigned(groups);
  const int u = int(blockIdx.x % unsigned(groups)) * int(blockDim.y) + int(threadIdx.y);
  A dmu[M * VW];
#pragma unroll
  for (int k = 0; k < M * VW; ++k) dmu[k] = A(0);
  const Walk w = c0 < C ? walk_of(qshift_quarter(c0, C), u, grid_h, grid_w) : Walk{0, 0, 0, 0, 0, false};
  if (w.exists) {
    A mu[M][VW];
#pragma unroll
    for (int m = 0; m < M; ++m) load_vec<VW>(mus.p[m] + c0, mu[m]);
    const int64_t first = (b * grid_h * grid_w + w.start) * C + c0, stride = w.step * C;
    A xprev[VW], aprev[VW];  // x and Σ_m g_m·μ_m of the previous step (x: zero before the line)
#pragma unroll
    for (int j = 0; j < VW; ++j) aprev[j] = A(0);
    if (partial && w.i0 > 0) {
      load_vec<VW>(x + first + (w.i0 - 1) * stride, xprev);
    } else {
#pragma unroll
      for (int j = 0; j < VW; ++j) xprev[j] = A(0);
    }
    for (int i0 = w.i0; i0 <= w.i1; i0 += U) {
      // every load of U steps before any use (one memory round trip per U steps)
      A g[U][M][VW], xv[U][VW], acc[U][VW];
#pragma unroll
      for (int k = 0; k < U; ++k) {
        const int i = i0 + k;
        if (i < w.i1 || (i == w.i1 && i < w.length)) {
#pragma unroll
          for (int m = 0; m < M; ++m) load_vec<VW>(douts.p[m] + first + i * stride, g[k][m]);
          if (partial && i < w.i1) load_vec<VW>(x + first + i * stride, xv[k]);
        }
        if (dx && accumulate && i > w.i0 && i <= w.i1) {
          load_vec<VW>(dx + first + (i - 1) * stride, acc[k]);
        } else {
#pragma unroll
          for (int j = 0; j < VW; ++j) acc[k][j] = A(0);
        }
      }
#pragma unroll
      for (int k = 0; k < U; ++k) {
        const int i = i0 + k;
        if (i > w.i1) break;
        A a[VW], sm[VW];  // Σ_m g_m·μ_m and Σ_m g_m·(1 − μ_m) of step i (zero past the line's end)
#pragma unroll
        for (int j = 0; j < VW; ++j) a[j] = sm[j] = A(0);
        if (i < w.length) {
#pragma unroll
          for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < VW; ++j) {
              a[j] += g[k][m][j] * mu[m][j];
              sm[j] += g[k][m][j] * (A(1) - mu[m][j]);
            }
        }
        if (partial && i < w.i1) {
#pragma unroll
          for (int m = 0; m < M; ++m)
#pragma unroll
            for (int j = 0; j < VW; ++j) dmu[m * VW + j] += g[k][m][j] * (xv[k][j] - xprev[j]);
#pragma unroll
          for (int j = 0; j < VW; ++j) xprev[j] = xv[k][j];
        }
        if (dx && i > w.i0) {
#pragma unroll
          for (int j = 0; j < VW; ++j) acc[k][j] += aprev[j] + sm[j];
          store_vec<VW>(dx + first + (i - 1) * stride, acc[k]);
        }
#pragma unroll
        for (int j = 0; j < VW; ++j) aprev[j] = a[j];
      }
    }
  }
  if (partial == nullptr) return;  // uniform over the grid
  column_sum_over_y<M * VW>(dmu, scratch);
  if (threadIdx.y == 0 && c0 < C) {
#pragma unroll
    for (int m = 0; m < M; ++m)
#pragma unroll
      for (int j = 0; j < VW; ++j) partial[(int64_t(blockIdx.x) * M + m) * C + c0 + j] = dmu[m * VW + j];
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

// Channels per thread on the vector path: 16 bytes of T forward, 4 channels backward (bf16: 8 bytes; 8
// channels took the walk to 137 registers at M = 3, one 256-thread block per SM).
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

// Grid and block of a backward launch: x = samples × segment groups, y = channel groups of at most 32
// chunks, as even as possible (96 chunks: 3 × 32; 48: 2 × 24); block (chunks, kQShiftLinesPerBlock).
struct WalkLaunch {
  dim3 grid, block;
  int groups;
};
WalkLaunch walk_launch(int64_t batch, int grid_h, int grid_w, int64_t C, int vw) {
  const int64_t chunks = (C + vw - 1) / vw;
  const int64_t cgroups = (chunks + 31) / 32;
  const int64_t tx = (chunks + cgroups - 1) / cgroups;
  const int groups = qshift_walk_groups(grid_h, grid_w);
  DRWKV_ASSERT(batch * groups < (int64_t(1) << 31) && cgroups <= 65535,
               "q-shift mix: B %lld with a %dx%d grid and C %lld exceed the launch grid", (long long)batch, grid_h,
               grid_w, (long long)C);
  WalkLaunch L;
  L.grid = dim3(unsigned(batch * groups), unsigned(cgroups));
  L.block = dim3(unsigned(tx), unsigned(kQShiftLinesPerBlock));
  L.groups = groups;
  return L;
}

template <typename T, int VW, int M>
void backward_launch(T* dx, const MixPtrs<float*>& dmus, const MixPtrs<const T*>& douts, const T* x,
                     const MixPtrs<const float*>& mus, int64_t batch, int gh, int gw, int64_t C, bool accumulate,
                     float* workspace, cudaStream_t st) {
  const WalkLaunch L = walk_launch(batch, gh, gw, C, VW);
  bool any = false;
  for (int m = 0; m < M; ++m) any = any || dmus.p[m] != nullptr;
  float* partial = any ? workspace : nullptr;
  DRWKV_ASSERT(!any || workspace != nullptr, "qshift_mix_backward_cuda: μ gradients need the workspace");
  const size_t smem = size_t(L.block.x) * L.block.y * M * VW * sizeof(float);
  qshift_backward_kernel<T, VW, M><<<L.grid, L.block, smem, st>>>(dx, douts, x, mus, partial, L.groups, gh, gw, C,
                                                                  accumulate);
  CUDA_CHECK_LAUNCH();
  if (any) launch_column_sum(partial, int64_t(L.grid.x), int64_t(M) * C, AddToMixGradients{dmus, C}, st);
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
  if (batch == 0) return;
  const bool vec = use_vector_path<kBackwardVW>(C, x, douts, mus, mixes) && (dx == nullptr || aligned16(dx));
  dispatch_mixes(mixes, [&](auto mc) {
    constexpr int M = decltype(mc)::value;
    if (vec)
      backward_launch<T, kBackwardVW, M>(dx, dmus, douts, x, mus, batch, grid_h, grid_w, C, accumulate, workspace,
                                         to_cuda(s));
    else
      backward_launch<T, 1, M>(dx, dmus, douts, x, mus, batch, grid_h, grid_w, C, accumulate, workspace, to_cuda(s));
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
