// CUDA GEMM through cuBLASLt and the bias-gradient column sums (kernels/gemm.h).
//
// Row-major ↔ column-major: a row-major r × c matrix with leading dim ld is the column-major c × r
// matrix with the same ld. So the row-major D = op(A) op(B) (m × n) is computed as the column-major
// Dᵀ = op(B)ᵀ op(A)ᵀ (n × m): cuBLASLt's first operand is our B, its second our A, its m is our n, and
// each transpose flag carries over unchanged (a stored operand that is not transposed here is, read
// column-major, already the transpose cuBLASLt needs). The bias indexes our columns, i.e. the rows of
// Dᵀ, which is what the cuBLASLt bias epilogue broadcasts.
//
// Plans (descriptors, layouts, algorithm, whether the bias epilogue is usable) are created on the
// first call of a shape key and kept for the life of the process, like the per-device Context; a
// mutex guards the cache and the per-call bias pointer of a plan's descriptor.
#include <cublasLt.h>

#include <array>
#include <map>
#include <mutex>

#include "core/stream.h"
#include "kernels/cuda_utils.cuh"
#include "kernels/gemm.h"

namespace drwkv::kernels {
namespace {
using cuda::grid_size;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    default: DRWKV_FAIL("gemm_cuda: no cuBLASLt type for %s", dtype_name(t).data());
  }
}

// Largest power of two up to 256 dividing the address (cuBLASLt's alignment preferences are in bytes,
// 256 meaning "as aligned as any kernel wants").
uint32_t alignment(const void* p) {
  uintptr_t u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (u % a) != 0) a >>= 1;
  return a;
}

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t lt_a = nullptr;  // our B
  cublasLtMatrixLayout_t lt_b = nullptr;  // our A
  cublasLtMatrixLayout_t lt_d = nullptr;  // our D (also C)
  cublasLtMatmulAlgo_t algo{};
  bool bias_epilogue = false;  // false with a bias: bias_add_kernel runs after the product
};

using Key = std::array<int64_t, 24>;

Key make_key(const GemmArgs& g, int device) {
  return Key{device,
             g.m,
             g.n,
             g.k,
             g.batch,
             g.lda,
             g.ldb,
             g.ldd,
             g.stride_a,
             g.stride_b,
             g.stride_d,
             int64_t(g.a_dtype),
             int64_t(g.d_dtype),
             g.bias ? int64_t(g.bias_dtype) + 1 : 0,
             g.trans_a,
             g.trans_b,
             g.allow_tf32 && g.a_dtype == DType::F32,
             alignment(g.a),
             alignment(g.b),
             alignment(g.d),
             g.bias ? alignment(g.bias) : 0,
             0,
             0,
             0};
}

// `group` > 0: a pointer-array batch of that many matrices (gemm_group), else strided batches.
cublasLtMatrixLayout_t make_layout(DType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride,
                                   int group) {
  cublasLtMatrixLayout_t l;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, cuda_type(t), uint64_t(rows), uint64_t(cols), ld));
  if (group > 0) {
    int32_t count = group;
    uint32_t mode = CUBLASLT_BATCH_MODE_POINTER_ARRAY;
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_MODE, &mode, sizeof mode));
  } else if (batch > 1) {
    int32_t count = int32_t(batch);
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  }
  return l;
}

// Asks the heuristic for the best algorithm under the current epilogue; false when there is none.
bool find_algo(cublasLtHandle_t h, Plan& p, const GemmArgs& g, size_t workspace_bytes) {
  cublasLtMatmulPreference_t pref;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = workspace_bytes;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  uint32_t al_a = alignment(g.b), al_b = alignment(g.a), al_d = alignment(g.d);  // cuBLASLt's A is our B
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
  if (g.d_dtype == DType::BF16) {
    // split-K partial sums in the output type would be bf16 sums: allow only f32 (compute-type) schemes
    uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask, sizeof mask));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h, p.op, p.lt_a, p.lt_b, p.lt_d, p.lt_d, pref, 1, &result, &count);
  CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  // NOT_SUPPORTED / INVALID_VALUE here mean "no algorithm for this configuration", not a programming error
  if (st != CUBLAS_STATUS_SUCCESS || count == 0 || result.state != CUBLAS_STATUS_SUCCESS) return false;
  if (result.workspaceSize > workspace_bytes) return false;
  p.algo = result.algo;
  return true;
}

// Operation descriptor: compute type and transposes.
cublasLtMatmulDesc_t make_desc(const GemmArgs& g) {
  cublasLtMatmulDesc_t op;
  bool tf32 = g.allow_tf32 && g.a_dtype == DType::F32;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
  cublasOperation_t op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  return op;
}

// Adds the bias epilogue to `op`; false when this cuBLASLt rejects the bias type outright.
bool set_bias_epilogue(cublasLtMatmulDesc_t op, const GemmArgs& g) {
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
  int32_t bias_type = cuda_type(g.bias_dtype);
  // the heuristic infers the bias alignment from the pointer (part of the key)
  return cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type) ==
             CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias) ==
             CUBLAS_STATUS_SUCCESS;
}

Plan make_plan(cublasLtHandle_t h, const GemmArgs& g, size_t workspace_bytes, int group = 0) {
  Plan p;
  // stored row-major r × c = column-major c × r
  int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  p.lt_a = make_layout(g.b_dtype, b_cols, b_rows, g.ldb, g.batch, g.stride_b, group);
  p.lt_b = make_layout(g.a_dtype, a_cols, a_rows, g.lda, g.batch, g.stride_a, group);
  p.lt_d = make_layout(g.d_dtype, g.n, g.m, g.ldd, g.batch, g.stride_d, group);
  if (g.bias) {
    p.op = make_desc(g);
    p.bias_epilogue = set_bias_epilogue(p.op, g) && find_algo(h, p, g, workspace_bytes);
    if (p.bias_epilogue) return p;
    // e.g. an f32 bias with a bf16 output: the product alone, then bias_add_kernel
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(p.op));
  }
  p.op = make_desc(g);
  DRWKV_ASSERT(find_algo(h, p, g, workspace_bytes),
               "gemm_cuda: cuBLASLt has no algorithm for m %lld n %lld k %lld batch %lld, %s → %s, trans %d%d, "
               "ld %lld/%lld/%lld",
               (long long)g.m, (long long)g.n, (long long)g.k, (long long)g.batch, dtype_name(g.a_dtype).data(),
               dtype_name(g.d_dtype).data(), int(g.trans_a), int(g.trans_b), (long long)g.lda, (long long)g.ldb,
               (long long)g.ldd);
  return p;
}

// D[b, i, j] += bias[j] (fallback when the bias epilogue is unavailable).
template <typename D, typename B>
__global__ void bias_add_kernel(D* d, const B* bias, int64_t m, int64_t n, int64_t ldd, int64_t stride_d,
                                int64_t total) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    int64_t j = t % n, row = t / n;  // row over batch × m
    int64_t b = row / m, i = row % m;
    D* q = d + b * stride_d + i * ldd + j;
    *q = store_as<D>(load_as<float>(*q) + load_as<float>(bias[j]));
  }
}

template <typename D, typename B>
void launch_bias_add(const GemmArgs& g, cudaStream_t s) {
  int64_t total = g.batch * g.m * g.n;
  bias_add_kernel<D, B><<<grid_size(total, 256), 256, 0, s>>>(static_cast<D*>(g.d), static_cast<const B*>(g.bias),
                                                              g.m, g.n, g.ldd, g.stride_d, total);
  CUDA_CHECK_LAUNCH();
}

std::mutex g_mutex;
std::map<Key, Plan>& plans() {
  static auto* m = new std::map<Key, Plan>();  // never destroyed, like Context
  return *m;
}

// The device the stream belongs to, which must be the current one.
int stream_device(cudaStream_t s) {
  int device = 0;
  CUDA_CHECK(cudaStreamGetDevice(s, &device));
  int current = 0;
  CUDA_CHECK(cudaGetDevice(&current));
  DRWKV_ASSERT(current == device, "gemm_cuda: stream of device %d while device %d is current", device, current);
  return device;
}

// gemm_group's pointer table [our B..., our A..., D...] (cuBLASLt's A is our B), written into the head
// of the workspace by the stream, so that it is in place when the product runs and stays until the
// next GEMM of the stream.
struct PointerTable {
  const void* p[3 * kMaxGemmGroup];
};
constexpr size_t kPointerTableBytes = 256;
static_assert(sizeof(PointerTable) <= kPointerTableBytes, "the table fits its workspace slot");
__global__ void write_pointer_table_kernel(PointerTable t, int n, const void** out) {
  if (int(threadIdx.x) < n) out[threadIdx.x] = t.p[threadIdx.x];
}

// ---- bias gradient ----------------------------------------------------------------------------------
constexpr int kRowsPerBlock = 8;  // blockDim.y: threads summing interleaved rows of one chunk

// Partial sums over chunk blockIdx.x of the rows, for 32·P columns: lane x owns the P columns from
// (blockIdx.y·32 + x)·P; row group y sums rows y, y + 8, ... of the chunk, and the 8 groups are
// combined in order through shared memory. P > 1 reads the P columns as one 16-byte pack (needs
// n % P == 0 and a 16-byte aligned dy).
template <typename T, int P>
__global__ void bias_grad_partial_kernel(acc_t<T>* partial, const T* dy, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  __shared__ A sh[kRowsPerBlock][32 * P];
  const int64_t c0 = (blockIdx.y * int64_t(32) + threadIdx.x) * P;
  const int64_t r0 = blockIdx.x * kBiasGradChunkRows;
  const int64_t r1 = r0 + kBiasGradChunkRows < rows ? r0 + kBiasGradChunkRows : rows;
  A acc[P];
#pragma unroll
  for (int p = 0; p < P; ++p) acc[p] = A(0);
  if (c0 < n) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowsPerBlock) {
      if constexpr (P > 1) {
        cuda::Pack<T, P> v = cuda::load_pack<T, P>(dy + r * n + c0);
#pragma unroll
        for (int p = 0; p < P; ++p) acc[p] += load_as<A>(v.v[p]);
      } else {
        acc[0] += load_as<A>(dy[r * n + c0]);
      }
    }
  }
#pragma unroll
  for (int p = 0; p < P; ++p) sh[threadIdx.y][threadIdx.x * P + p] = acc[p];
  __syncthreads();
  if (threadIdx.y == 0 && c0 < n) {
#pragma unroll
    for (int p = 0; p < P; ++p) {
      A s = sh[0][threadIdx.x * P + p];
      for (int y = 1; y < kRowsPerBlock; ++y) s += sh[y][threadIdx.x * P + p];
      partial[blockIdx.x * n + c0 + p] = s;
    }
  }
}

// db[j] (+)= Σ_c partial[c, j]: row group y sums chunks y, y + 8, ...; the groups are combined in order.
template <typename A>
__global__ void bias_grad_final_kernel(A* db, const A* partial, int64_t chunks, int64_t n, bool accumulate) {
  __shared__ A sh[kRowsPerBlock][32];
  const int64_t j = blockIdx.x * int64_t(32) + threadIdx.x;
  A s = A(0);
  if (j < n)
    for (int64_t c = threadIdx.y; c < chunks; c += kRowsPerBlock) s += partial[c * n + j];
  sh[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < n) {
    A t = sh[0][threadIdx.x];
    for (int y = 1; y < kRowsPerBlock; ++y) t += sh[y][threadIdx.x];
    db[j] = accumulate ? db[j] + t : t;
  }
}
}  // namespace

void gemm_cuda(const GemmArgs& g, StreamHandle stream) {
  gemm_check_args(g, true);
  if (g.m == 0 || g.n == 0) return;
  cudaStream_t s = to_cuda(stream);
  const int device = stream_device(s);
  Context& ctx = Context::get(device);
  auto handle = static_cast<cublasLtHandle_t>(ctx.cublaslt_handle());
  Key key = make_key(g, device);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = plans().find(key);
  if (it == plans().end()) it = plans().emplace(key, make_plan(handle, g, ctx.workspace_bytes())).first;
  Plan& p = it->second;
  if (p.bias_epilogue)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
  float alpha = g.alpha, beta = g.beta;
  CUBLAS_CHECK(cublasLtMatmul(handle, p.op, &alpha, g.b, p.lt_a, g.a, p.lt_b, &beta, g.d, p.lt_d, g.d, p.lt_d, &p.algo,
                              ctx.workspace(), ctx.workspace_bytes(), s));
  if (g.bias && !p.bias_epilogue) {
    if (g.d_dtype == DType::F32) {
      launch_bias_add<float, float>(g, s);
    } else if (g.bias_dtype == DType::F32) {
      launch_bias_add<bf16, float>(g, s);
    } else {
      launch_bias_add<bf16, bf16>(g, s);
    }
  }
}

void gemm_group_cuda(const GemmArgs& args, const GemmGroup& group, StreamHandle stream) {
  const int c = group.count;
  DRWKV_ASSERT(c >= 1 && c <= kMaxGemmGroup, "gemm_group: %d products (1..%d)", c, kMaxGemmGroup);
  DRWKV_ASSERT(args.batch == 1 && !args.bias, "gemm_group: batch %lld and a bias are not supported",
               (long long)args.batch);
  // the plan is made for the least aligned pointer of each operand
  GemmArgs g = args;
  for (int i = 0; i < c; ++i) {
    GemmArgs one = args;
    one.a = group.a[i];
    one.b = group.b[i];
    one.d = group.d[i];
    gemm_check_args(one, true);
    if (i == 0 || alignment(one.a) < alignment(g.a)) g.a = one.a;
    if (i == 0 || alignment(one.b) < alignment(g.b)) g.b = one.b;
    if (i == 0 || alignment(one.d) < alignment(g.d)) g.d = one.d;
  }
  if (g.m == 0 || g.n == 0) return;
  cudaStream_t s = to_cuda(stream);
  const int device = stream_device(s);
  Context& ctx = Context::get(device);
  DRWKV_ASSERT(ctx.workspace_bytes() > kPointerTableBytes, "gemm_group_cuda: no room for the pointer table");
  auto handle = static_cast<cublasLtHandle_t>(ctx.cublaslt_handle());
  char* table = static_cast<char*>(ctx.workspace());
  void* work = table + kPointerTableBytes;
  const size_t work_bytes = ctx.workspace_bytes() - kPointerTableBytes;
  Key key = make_key(g, device);
  key[21] = c;  // a pointer-array batch of c
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = plans().find(key);
  if (it == plans().end()) it = plans().emplace(key, make_plan(handle, g, work_bytes, c)).first;
  Plan& p = it->second;
  PointerTable t;
  for (int i = 0; i < c; ++i) {
    t.p[i] = group.b[i];
    t.p[c + i] = group.a[i];
    t.p[2 * c + i] = group.d[i];
  }
  auto** dev_table = reinterpret_cast<const void**>(table);
  write_pointer_table_kernel<<<1, 32, 0, s>>>(t, 3 * c, dev_table);
  CUDA_CHECK_LAUNCH();
  float alpha = g.alpha, beta = g.beta;
  const void* d_ptrs = dev_table + 2 * c;
  CUBLAS_CHECK(cublasLtMatmul(handle, p.op, &alpha, dev_table, p.lt_a, dev_table + c, p.lt_b, &beta, d_ptrs, p.lt_d,
                              const_cast<void*>(d_ptrs), p.lt_d, &p.algo, work, work_bytes, s));
}

template <typename T>
void bias_grad_cuda(acc_t<T>* db, const T* dy, int64_t rows, int64_t n, bool accumulate, acc_t<T>* scratch,
                    StreamHandle stream) {
  if (n == 0) return;
  cudaStream_t s = to_cuda(stream);
  const int64_t chunks = (rows + kBiasGradChunkRows - 1) / kBiasGradChunkRows;
  dim3 block(32, kRowsPerBlock);
  if (chunks > 0) {
    DRWKV_ASSERT((n + 31) / 32 <= 65535, "bias_grad_cuda: %lld columns exceed the grid", (long long)n);
    constexpr int P = cuda::kPack<T>;
    if (n % P == 0 && cuda::aligned16(dy)) {
      dim3 grid(unsigned(chunks), unsigned((n / P + 31) / 32));
      bias_grad_partial_kernel<T, P><<<grid, block, 0, s>>>(scratch, dy, rows, n);
    } else {
      dim3 grid(unsigned(chunks), unsigned((n + 31) / 32));
      bias_grad_partial_kernel<T, 1><<<grid, block, 0, s>>>(scratch, dy, rows, n);
    }
    CUDA_CHECK_LAUNCH();
  }
  bias_grad_final_kernel<acc_t<T>><<<unsigned((n + 31) / 32), block, 0, s>>>(db, scratch, chunks, n, accumulate);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T) \
  template void bias_grad_cuda<T>(acc_t<T>*, const T*, int64_t, int64_t, bool, acc_t<T>*, StreamHandle);
INSTANTIATE(float)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
