// Matrix products (row-major), and the column sums that are a linear layer's bias gradient.
//
// gemm: for each batch b < batch,
//   D[b] (m × n) = alpha · op(A[b]) · op(B[b]) + beta · D[b] (+ bias[n] broadcast over the m rows)
// op(A) is m × k and op(B) is k × n. Every matrix is row-major with a leading dimension (elements
// between consecutive rows of the *stored* matrix): A is stored m × k (lda ≥ k), or k × m (lda ≥ m)
// when trans_a; B is stored k × n (ldb ≥ n), or n × k (ldb ≥ k) when trans_b; D is m × n (ldd ≥ n).
// Batches are strided (stride_* in elements; 0 repeats one matrix); one bias serves every batch.
// Accumulation is in f32 (f64 for the f64 CPU oracle) whatever the storage types, and D is rounded
// once. beta = 0 overwrites D without reading it (D may hold NaN); beta = 1 is how weight gradients
// accumulate into f32 master-gradient buffers. D must not overlap A, B or bias.
//
// Types (a_dtype == b_dtype; the same rules on both backends, checked by gemm_check_args):
//   A, B bf16 → D bf16 or f32;  A, B f32 → D f32;  A, B f64 → D f64 (CPU only).
//   bias: the D dtype, or f32 when D is bf16 (f32 master biases are read directly).
// f32 × f32 is exact f32 arithmetic unless allow_tf32 (GPU only: inputs rounded to TF32, ~1e-3
// relative error; the CPU ignores the flag).
//
// gemm_cpu goes through BLAS (sgemm/dgemm; bf16 operands are widened to f32 scratch first).
// gemm_cuda goes through cuBLASLt with the handle and workspace of Context::get(device of the stream):
// the row-major product is issued as the column-major product Dᵀ = op(B)ᵀ op(A)ᵀ; descriptors, layouts
// and the heuristic's algorithm are cached per shape key (sizes, leading dims, strides, types, flags,
// pointer alignments), so the steady state performs no heuristic query. The bias goes through the
// cuBLASLt bias epilogue when the library accepts the combination, else through a broadcast-add kernel
// after the product (then a bf16 D is rounded twice: before and after the bias). Split-K partial sums are never kept in bf16 (only f32 reduction schemes are
// allowed). The device's workspace is shared: GEMMs of one device must be ordered on one stream at a
// time (the compute stream). Results are deterministic for a given shape and device.
//
// gemm_group: up to kMaxGemmGroup products of one shape whose operands lie anywhere: D_i = alpha · op(A_i) ·
// op(B_i) + beta · D_i for i < count, the pointers in a GemmGroup; `args` gives what they share (sizes,
// leading dims, types, transposes, alpha, beta; its a, b, d, batch, strides and bias are not used: batch 1,
// no bias). On the GPU one cuBLASLt launch (a pointer-array batch; the pointer table goes to the head of
// the workspace through a one-thread-per-pointer kernel): a DRWKV block's K, V, R projections at D = 1024,
// 16384 tokens take 0.437 ms (forward, dX, dW) instead of 0.470 as three GEMMs (H100, gemm_gpu_bench
// --group); small products over long reductions (a 384 × 384 weight gradient over 65536 rows) can be slower
// grouped.
//
// bias_grad: db[j] (+)= Σ_{i < rows} dy[i, j] over a contiguous dy [rows, n], in acc_t<T> (the f32
// master-gradient type), in a fixed order (no atomics): rows are cut into chunks of
// kBiasGradChunkRows whose partial sums go to `scratch` (bias_grad_scratch_size(rows, n) elements of
// acc_t<T>, device memory for _cuda; the CPU ignores it and accepts nullptr), then summed per column
// in chunk order. accumulate = true adds to db, false overwrites it.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace drwkv::kernels {

struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  int64_t batch = 1;

  const void* a = nullptr;
  DType a_dtype = DType::F32;
  int64_t lda = 0;
  bool trans_a = false;
  int64_t stride_a = 0;

  const void* b = nullptr;
  DType b_dtype = DType::F32;
  int64_t ldb = 0;
  bool trans_b = false;
  int64_t stride_b = 0;

  void* d = nullptr;
  DType d_dtype = DType::F32;
  int64_t ldd = 0;
  int64_t stride_d = 0;

  const void* bias = nullptr;  // [n] or nullptr
  DType bias_dtype = DType::F32;

  float alpha = 1.0f;
  float beta = 0.0f;
  bool allow_tf32 = false;
};

// Fails (DRWKV_ASSERT) with a message naming the offending field when `args` breaks the contract
// above; `cuda` adds the GPU-only restrictions (no f64, sizes within int32).
void gemm_check_args(const GemmArgs& args, bool cuda);

void gemm_cpu(const GemmArgs& args);
void gemm_cuda(const GemmArgs& args, StreamHandle s);

inline constexpr int kMaxGemmGroup = 8;
struct GemmGroup {
  int count = 0;
  const void* a[kMaxGemmGroup] = {};
  const void* b[kMaxGemmGroup] = {};
  void* d[kMaxGemmGroup] = {};
};
void gemm_group_cpu(const GemmArgs& args, const GemmGroup& group);
void gemm_group_cuda(const GemmArgs& args, const GemmGroup& group, StreamHandle s);

// Rows summed by one partial of bias_grad.
inline constexpr int64_t kBiasGradChunkRows = 256;
inline int64_t bias_grad_scratch_size(int64_t rows, int64_t n) {
  return ((rows + kBiasGradChunkRows - 1) / kBiasGradChunkRows) * n;
}

template <typename T>
void bias_grad_cpu(acc_t<T>* db, const T* dy, int64_t rows, int64_t n, bool accumulate, acc_t<T>* scratch);
template <typename T>
void bias_grad_cuda(acc_t<T>* db, const T* dy, int64_t rows, int64_t n, bool accumulate, acc_t<T>* scratch,
                    StreamHandle s);

}  // namespace drwkv::kernels
