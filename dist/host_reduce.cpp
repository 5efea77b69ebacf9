// Rank-order host reductions (dist/host_reduce.h).
#include "dist/host_reduce.h"

#include <algorithm>

#include "core/check.h"

namespace drwkv::dist {
namespace {

template <typename T, typename A>
void reduce_typed(const T* blocks, int world, int64_t n, ReduceOp op, T* out) {
  for (int64_t i = 0; i < n; ++i) {
    A acc = load_as<A>(blocks[i]);
    for (int r = 1; r < world; ++r) acc = acc + load_as<A>(blocks[int64_t(r) * n + i]);
    if (op == ReduceOp::Avg) acc = acc / A(world);
    out[i] = store_as<T, A>(acc);
  }
}

}  // namespace

void reduce_blocks(const void* blocks, int world, int64_t n, DType dtype, ReduceOp op, void* out) {
  DRWKV_ASSERT(op == ReduceOp::Sum || dtype_is_float(dtype), "average of a %s buffer",
               std::string(dtype_name(dtype)).c_str());
  switch (dtype) {
    case DType::F32:
      reduce_typed<float, float>(static_cast<const float*>(blocks), world, n, op, static_cast<float*>(out));
      break;
    case DType::BF16:
      reduce_typed<bf16, float>(static_cast<const bf16*>(blocks), world, n, op, static_cast<bf16*>(out));
      break;
    case DType::F64:
      reduce_typed<double, double>(static_cast<const double*>(blocks), world, n, op, static_cast<double*>(out));
      break;
    case DType::I32:
      reduce_typed<int32_t, int64_t>(static_cast<const int32_t*>(blocks), world, n, op, static_cast<int32_t*>(out));
      break;
    case DType::I64:
      reduce_typed<int64_t, int64_t>(static_cast<const int64_t*>(blocks), world, n, op, static_cast<int64_t*>(out));
      break;
    default:
      DRWKV_FAIL("reduction of %s buffers is not supported (f32, bf16, f64, i32, i64)",
                 std::string(dtype_name(dtype)).c_str());
  }
}

void reduce_host_rows(std::span<const double> rows, int world, std::span<const HostOp> ops, std::span<double> out) {
  const size_t n = out.size();
  DRWKV_ASSERT(rows.size() == n * size_t(world), "host reduction: %zu values for %d ranks x %zu", rows.size(), world, n);
  DRWKV_ASSERT(ops.size() == 1 || ops.size() == n, "host reduction: %zu ops for %zu values", ops.size(), n);
  for (size_t i = 0; i < n; ++i) {
    HostOp op = ops[ops.size() == 1 ? 0 : i];
    double acc = rows[i];
    for (int r = 1; r < world; ++r) {
      double x = rows[size_t(r) * n + i];
      switch (op) {
        case HostOp::Sum: acc = acc + x; break;
        // NaN wins in max/min, so a non-finite value on one rank is never lost
        case HostOp::Max: acc = (acc != acc || x != x) ? acc + x : std::max(acc, x); break;
        case HostOp::Min: acc = (acc != acc || x != x) ? acc + x : std::min(acc, x); break;
      }
    }
    out[i] = acc;
  }
}

}  // namespace drwkv::dist
