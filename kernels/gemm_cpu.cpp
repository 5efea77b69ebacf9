// Host GEMM through BLAS and host bias gradient (kernels/gemm.h). The argument checks shared with the
// CUDA backend live here too, so both backends accept exactly the same calls.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "core/check.h"
#include "kernels/gemm.h"

namespace drwkv::kernels {
namespace {
const char* name(DType t) { return dtype_name(t).data(); }  // dtype names are NUL-terminated literals

// Rows and columns of the stored (not transposed) operand.
void stored_shape(int64_t rows_op, int64_t cols_op, bool trans, int64_t* rows, int64_t* cols) {
  *rows = trans ? cols_op : rows_op;
  *cols = trans ? rows_op : cols_op;
}

// Copies a stored rows × cols matrix with leading dim ld into a dense f32 buffer (ld = cols).
template <typename T>
void widen(std::vector<float>& out, const T* p, int64_t rows, int64_t cols, int64_t ld) {
  out.resize(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[size_t(r * cols + c)] = load_as<float>(p[r * ld + c]);
}

template <typename B>
double bias_at(const GemmArgs& g, int64_t j) {
  return g.bias ? load_as<double>(static_cast<const B*>(g.bias)[j]) : 0.0;
}

double bias_value(const GemmArgs& g, int64_t j) {
  switch (g.bias_dtype) {
    case DType::F32: return bias_at<float>(g, j);
    case DType::BF16: return bias_at<bf16>(g, j);
    case DType::F64: return bias_at<double>(g, j);
    default: return 0.0;
  }
}

CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

// f64: dgemm straight into D, then the bias.
void gemm_f64(const GemmArgs& g) {
  for (int64_t b = 0; b < g.batch; ++b) {
    const double* a = static_cast<const double*>(g.a) + b * g.stride_a;
    const double* bm = static_cast<const double*>(g.b) + b * g.stride_b;
    double* d = static_cast<double*>(g.d) + b * g.stride_d;
    cblas_dgemm(CblasRowMajor, tr(g.trans_a), tr(g.trans_b), int(g.m), int(g.n), int(g.k), double(g.alpha), a,
                int(g.lda), bm, int(g.ldb), double(g.beta), d, int(g.ldd));
    if (g.bias)
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j) d[i * g.ldd + j] += bias_value(g, j);
  }
}

// f32 or bf16 operands: sgemm over f32 views of A and B (bf16 widened into scratch), into D when D is
// f32, else into an f32 scratch that is combined with beta·D and the bias and rounded once.
void gemm_f32(const GemmArgs& g) {
  const bool widen_inputs = g.a_dtype == DType::BF16;
  const bool f32_out = g.d_dtype == DType::F32;
  int64_t ar, ac, br, bc;
  stored_shape(g.m, g.k, g.trans_a, &ar, &ac);
  stored_shape(g.k, g.n, g.trans_b, &br, &bc);
  std::vector<float> wa, wb, acc;
  std::vector<float> bias(size_t(g.bias ? g.n : 0));
  for (int64_t j = 0; j < int64_t(bias.size()); ++j) bias[size_t(j)] = float(bias_value(g, j));
  for (int64_t b = 0; b < g.batch; ++b) {
    const float* a;
    const float* bm;
    int64_t lda = g.lda, ldb = g.ldb;
    if (widen_inputs) {
      // a batch stride of 0 repeats one matrix: widen it once
      if (b == 0 || g.stride_a != 0) widen(wa, static_cast<const bf16*>(g.a) + b * g.stride_a, ar, ac, g.lda);
      if (b == 0 || g.stride_b != 0) widen(wb, static_cast<const bf16*>(g.b) + b * g.stride_b, br, bc, g.ldb);
      a = wa.data();
      bm = wb.data();
      lda = ac;
      ldb = bc;
    } else {
      a = static_cast<const float*>(g.a) + b * g.stride_a;
      bm = static_cast<const float*>(g.b) + b * g.stride_b;
    }
    if (f32_out) {
      float* d = static_cast<float*>(g.d) + b * g.stride_d;
      cblas_sgemm(CblasRowMajor, tr(g.trans_a), tr(g.trans_b), int(g.m), int(g.n), int(g.k), g.alpha, a, int(lda),
                  bm, int(ldb), g.beta, d, int(g.ldd));
      if (g.bias)
        for (int64_t i = 0; i < g.m; ++i)
          for (int64_t j = 0; j < g.n; ++j) d[i * g.ldd + j] += bias[size_t(j)];
    } else {
      acc.resize(size_t(g.m * g.n));
      cblas_sgemm(CblasRowMajor, tr(g.trans_a), tr(g.trans_b), int(g.m), int(g.n), int(g.k), g.alpha, a, int(lda),
                  bm, int(ldb), 0.0f, acc.data(), int(g.n));
      bf16* d = static_cast<bf16*>(g.d) + b * g.stride_d;
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j) {
          float v = acc[size_t(i * g.n + j)];
          if (g.beta != 0.0f) v += g.beta * float(d[i * g.ldd + j]);  // beta = 0 never reads D
          if (g.bias) v += bias[size_t(j)];
          d[i * g.ldd + j] = bf16(v);
        }
    }
  }
}
}  // namespace

void gemm_check_args(const GemmArgs& g, bool cuda) {
  DRWKV_ASSERT(g.m >= 0 && g.n >= 0 && g.k >= 1 && g.batch >= 1, "gemm: m %lld n %lld k %lld batch %lld",
               (long long)g.m, (long long)g.n, (long long)g.k, (long long)g.batch);
  DRWKV_ASSERT(g.a_dtype == g.b_dtype, "gemm: A is %s but B is %s", name(g.a_dtype), name(g.b_dtype));
  const DType in = g.a_dtype, out = g.d_dtype;
  const bool ok = (in == DType::BF16 && (out == DType::BF16 || out == DType::F32)) ||
                  (in == DType::F32 && out == DType::F32) || (in == DType::F64 && out == DType::F64 && !cuda);
  DRWKV_ASSERT(ok, "gemm: %s × %s → %s is not supported%s", name(in), name(in), name(out),
               cuda ? " on the GPU" : "");
  if (g.bias)
    DRWKV_ASSERT(g.bias_dtype == out || (out == DType::BF16 && g.bias_dtype == DType::F32),
                 "gemm: bias %s with output %s", name(g.bias_dtype), name(out));
  int64_t ar, ac, br, bc;
  stored_shape(g.m, g.k, g.trans_a, &ar, &ac);
  stored_shape(g.k, g.n, g.trans_b, &br, &bc);
  DRWKV_ASSERT(g.lda >= ac && g.lda >= 1, "gemm: lda %lld < %lld columns of A", (long long)g.lda, (long long)ac);
  DRWKV_ASSERT(g.ldb >= bc && g.ldb >= 1, "gemm: ldb %lld < %lld columns of B", (long long)g.ldb, (long long)bc);
  DRWKV_ASSERT(g.ldd >= g.n && g.ldd >= 1, "gemm: ldd %lld < n %lld", (long long)g.ldd, (long long)g.n);
  DRWKV_ASSERT(g.stride_a >= 0 && g.stride_b >= 0 && g.stride_d >= 0, "gemm: negative batch stride");
  DRWKV_ASSERT(g.batch == 1 || g.stride_d >= (g.m - 1) * g.ldd + g.n,
               "gemm: batches of D overlap (stride_d %lld for %lld × %lld, ldd %lld)", (long long)g.stride_d,
               (long long)g.m, (long long)g.n, (long long)g.ldd);
  DRWKV_ASSERT((g.a && g.b && g.d) || g.m * g.n == 0, "gemm: null operand");
  // BLAS and cuBLASLt take int32 sizes and leading dimensions
  for (int64_t v : {g.m, g.n, g.k, g.lda, g.ldb, g.ldd, g.batch})
    DRWKV_ASSERT(v <= INT_MAX, "gemm: size or leading dimension %lld exceeds int32", (long long)v);
}

void gemm_cpu(const GemmArgs& g) {
  gemm_check_args(g, false);
  if (g.m == 0 || g.n == 0) return;
  if (g.a_dtype == DType::F64) {
    gemm_f64(g);
  } else {
    gemm_f32(g);
  }
}

// The products of a group one by one (their arguments checked like gemm's).
void gemm_group_cpu(const GemmArgs& args, const GemmGroup& group) {
  DRWKV_ASSERT(group.count >= 1 && group.count <= kMaxGemmGroup, "gemm_group: %d products (1..%d)", group.count,
               kMaxGemmGroup);
  DRWKV_ASSERT(args.batch == 1 && !args.bias, "gemm_group: batch %lld and a bias are not supported",
               (long long)args.batch);
  for (int i = 0; i < group.count; ++i) {
    GemmArgs g = args;
    g.a = group.a[i];
    g.b = group.b[i];
    g.d = group.d[i];
    gemm_cpu(g);
  }
}

template <typename T>
void bias_grad_cpu(acc_t<T>* db, const T* dy, int64_t rows, int64_t n, bool accumulate, acc_t<T>* /*scratch*/) {
  using A = acc_t<T>;
  // Like the GPU: per-chunk partials, then the chunks in order (the order within a chunk differs).
  std::vector<A> total(static_cast<size_t>(n), A(0));
  std::vector<A> part(static_cast<size_t>(n));
  for (int64_t r0 = 0; r0 < rows; r0 += kBiasGradChunkRows) {
    std::fill(part.begin(), part.end(), A(0));
    int64_t r1 = std::min(rows, r0 + kBiasGradChunkRows);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j = 0; j < n; ++j) part[size_t(j)] += load_as<A>(dy[r * n + j]);
    for (int64_t j = 0; j < n; ++j) total[size_t(j)] += part[size_t(j)];
  }
  for (int64_t j = 0; j < n; ++j) db[j] = accumulate ? db[j] + total[size_t(j)] : total[size_t(j)];
}

#define INSTANTIATE(T) template void bias_grad_cpu<T>(acc_t<T>*, const T*, int64_t, int64_t, bool, acc_t<T>*);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
