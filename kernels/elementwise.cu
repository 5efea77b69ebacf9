// CUDA implementation of kernels/elementwise.h. Dense operands take a 16-byte vector path (one pack per
// thread per iteration, grid-stride). Broadcasts where every operand repeats with a period over the
// output (dense, or a contiguous trailing block such as a [C] weight over [rows, C], broadcast over the
// leading dims) take the same vector path with a per-operand offset that advances without division;
// other broadcasts take a generic path that decodes the output index.
#include "kernels/cuda_utils.cuh"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace drwkv::kernels {
namespace {
using cuda::grid_size;
using cuda::kPack;
using cuda::Pack;

template <typename T, int N>
struct Ptrs {
  const T* v[N];
};

// Applies f(out_pack_index) over n elements: f(i) for scalar tails, fv(i) for packs of kPack<T>.
// `f(i)` computes element i; it is called for every element, vectorised through packs by the caller.
template <typename T, int NIN, typename F>
__global__ void dense_kernel(T* out, Ptrs<T, NIN> in, int64_t n, F f) {
  constexpr int P = kPack<T>;
  using A = acc_t<T>;
  int64_t npacks = n / P;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < npacks; p += stride) {
    Pack<T, P> src[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) src[k] = cuda::load_pack<T, P>(in.v[k] + p * P);
    Pack<T, P> dst;
#pragma unroll
    for (int j = 0; j < P; ++j) {
      A args[NIN];
#pragma unroll
      for (int k = 0; k < NIN; ++k) args[k] = load_as<A>(src[k].v[j]);
      dst.v[j] = store_as<T>(f(args));
    }
    cuda::store_pack<T, P>(out + p * P, dst);
  }
  for (int64_t i = npacks * P + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
    A args[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) args[k] = load_as<A>(in.v[k][i]);
    out[i] = store_as<T>(f(args));
  }
}

template <typename T, int NIN, typename F>
__global__ void scalar_kernel(T* out, Ptrs<T, NIN> in, int64_t n, F f) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    A args[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) args[k] = load_as<A>(in.v[k][i]);
    out[i] = store_as<T>(f(args));
  }
}

template <int N>
struct Periods {
  int64_t v[N];
};

// Operand k of output element i is element i % period[k] (every period a multiple of the pack size, so
// a pack never straddles a period). Each thread keeps its operand offsets and advances them by its
// grid stride modulo the period with one conditional subtraction.
template <typename T, int NIN, typename F>
__global__ void periodic_kernel(T* out, Ptrs<T, NIN> in, Periods<NIN> period, int64_t n, F f) {
  constexpr int P = kPack<T>;
  using A = acc_t<T>;
  const int64_t npacks = n / P, stride = int64_t(gridDim.x) * blockDim.x;
  int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (p >= npacks) return;
  int64_t off[NIN], step[NIN];
#pragma unroll
  for (int k = 0; k < NIN; ++k) {
    off[k] = (p * P) % period.v[k];
    step[k] = (stride * P) % period.v[k];
  }
  for (; p < npacks; p += stride) {
    Pack<T, P> src[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) src[k] = cuda::load_pack<T, P>(in.v[k] + off[k]);
    Pack<T, P> dst;
#pragma unroll
    for (int j = 0; j < P; ++j) {
      A args[NIN];
#pragma unroll
      for (int k = 0; k < NIN; ++k) args[k] = load_as<A>(src[k].v[j]);
      dst.v[j] = store_as<T>(f(args));
    }
    cuda::store_pack<T, P>(out + p * P, dst);
#pragma unroll
    for (int k = 0; k < NIN; ++k) {
      off[k] += step[k];
      if (off[k] >= period.v[k]) off[k] -= period.v[k];
    }
  }
}

// The period of each operand when it varies only over a run of trailing output dims, laid out there
// contiguously, and is broadcast (stride 0) over every dim before that run; false otherwise.
bool periods_of(const Broadcast& bc, int operands, int64_t* period) {
  for (int k = 0; k < operands; ++k) {
    int64_t expected = 1;
    int d = bc.ndim - 1;
    for (; d >= 0; --d) {
      if (bc.shape[d] == 1) continue;
      if (bc.stride[k][d] != expected) break;
      expected *= bc.shape[d];
    }
    for (; d >= 0; --d)
      if (bc.shape[d] != 1 && bc.stride[k][d] != 0) return false;
    period[k] = expected;
  }
  return true;
}

template <typename T, int NIN, typename F>
__global__ void broadcast_kernel(T* out, Ptrs<T, NIN> in, Broadcast bc, int64_t n, F f) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i;
    int64_t off[NIN] = {};
    for (int d = bc.ndim - 1; d >= 0; --d) {
      int64_t idx = rem % bc.shape[d];
      rem /= bc.shape[d];
#pragma unroll
      for (int k = 0; k < NIN; ++k) off[k] += idx * bc.stride[k][d];
    }
    A args[NIN];
#pragma unroll
    for (int k = 0; k < NIN; ++k) args[k] = load_as<A>(in.v[k][off[k]]);
    out[i] = store_as<T>(f(args));
  }
}

// Launches the right kernel: vectorised when dense and aligned, generic otherwise.
template <typename T, int NIN, typename F>
void launch(T* out, Ptrs<T, NIN> in, const Broadcast* bc, int64_t n, F f, StreamHandle s) {
  if (n == 0) return;
  constexpr int threads = 256;
  bool dense = bc == nullptr || bc->dense(NIN);
  if (dense) {
    bool aligned = cuda::aligned16(out);
    for (int k = 0; k < NIN; ++k) aligned = aligned && cuda::aligned16(in.v[k]);
    if (aligned) {
      dense_kernel<T, NIN><<<grid_size((n + kPack<T> - 1) / kPack<T>, threads), threads, 0, to_cuda(s)>>>(out, in, n, f);
    } else {
      scalar_kernel<T, NIN><<<grid_size(n, threads), threads, 0, to_cuda(s)>>>(out, in, n, f);
    }
  } else {
    Periods<NIN> period;
    bool periodic = periods_of(*bc, NIN, period.v) && cuda::aligned16(out);
    for (int k = 0; k < NIN; ++k) periodic = periodic && period.v[k] % kPack<T> == 0 && cuda::aligned16(in.v[k]);
    if (periodic) {
      periodic_kernel<T, NIN><<<grid_size(n / kPack<T>, threads), threads, 0, to_cuda(s)>>>(out, in, period, n, f);
    } else {
      broadcast_kernel<T, NIN><<<grid_size(n, threads), threads, 0, to_cuda(s)>>>(out, in, *bc, n, f);
    }
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T, int N>
Ptrs<T, N> ptrs(std::initializer_list<const T*> l) {
  Ptrs<T, N> p{};
  int i = 0;
  for (const T* q : l) p.v[i++] = q;
  return p;
}
}  // namespace

template <typename T>
void unary_forward_cuda(UnaryOp op, T* y, const T* x, int64_t n, StreamHandle s) {
  using A = acc_t<T>;
  launch<T, 1>(y, ptrs<T, 1>({x}), nullptr, n, [op] __device__(const A* a) { return unary_value<A>(op, a[0]); }, s);
}

template <typename T>
void unary_backward_cuda(UnaryOp op, T* dx, const T* dy, const T* x, const T* y, int64_t n, StreamHandle s) {
  using A = acc_t<T>;
  if (unary_derivative_from_output(op) && y) {
    launch<T, 2>(dx, ptrs<T, 2>({dy, y}), nullptr, n,
                 [op] __device__(const A* a) { return a[0] * unary_derivative_at_output<A>(op, a[1]); }, s);
  } else if (y) {
    launch<T, 3>(dx, ptrs<T, 3>({dy, x, y}), nullptr, n,
                 [op] __device__(const A* a) { return a[0] * unary_derivative<A>(op, a[1], a[2]); }, s);
  } else {
    launch<T, 2>(dx, ptrs<T, 2>({dy, x}), nullptr, n,
                 [op] __device__(const A* a) { return a[0] * unary_derivative<A>(op, a[1], unary_value<A>(op, a[1])); }, s);
  }
}

template <typename T>
void binary_cuda(BinaryOp op, T* out, const T* a, const T* b, const Broadcast& bc, StreamHandle s) {
  using A = acc_t<T>;
  launch<T, 2>(out, ptrs<T, 2>({a, b}), &bc, bc.numel(),
               [op] __device__(const A* v) { return binary_value<A>(op, v[0], v[1]); }, s);
}

template <typename T>
void scale_shift_cuda(T* y, const T* x, double alpha, double beta, int64_t n, StreamHandle s) {
  using A = acc_t<T>;
  A al = A(alpha), be = A(beta);
  launch<T, 1>(y, ptrs<T, 1>({x}), nullptr, n, [al, be] __device__(const A* v) { return al * v[0] + be; }, s);
}

template <typename T>
void lerp_cuda(T* out, const T* a, const T* b, const T* w, const Broadcast& bc, StreamHandle s) {
  using A = acc_t<T>;
  launch<T, 3>(out, ptrs<T, 3>({a, b, w}), &bc, bc.numel(),
               [] __device__(const A* v) { return v[0] + (v[1] - v[0]) * v[2]; }, s);
}

template <typename T>
void addcmul_cuda(T* out, const T* a, const T* b, const T* c, double scale, const Broadcast& bc, StreamHandle s) {
  using A = acc_t<T>;
  A sc = A(scale);
  launch<T, 3>(out, ptrs<T, 3>({a, b, c}), &bc, bc.numel(),
               [sc] __device__(const A* v) { return v[0] + sc * v[1] * v[2]; }, s);
}

#define INSTANTIATE(T)                                                                                 \
  template void unary_forward_cuda<T>(UnaryOp, T*, const T*, int64_t, StreamHandle);                   \
  template void unary_backward_cuda<T>(UnaryOp, T*, const T*, const T*, const T*, int64_t, StreamHandle); \
  template void binary_cuda<T>(BinaryOp, T*, const T*, const T*, const Broadcast&, StreamHandle);      \
  template void scale_shift_cuda<T>(T*, const T*, double, double, int64_t, StreamHandle);              \
  template void lerp_cuda<T>(T*, const T*, const T*, const T*, const Broadcast&, StreamHandle);        \
  template void addcmul_cuda<T>(T*, const T*, const T*, const T*, double, const Broadcast&, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
