// Shared test helpers: random inputs (never zeros), poisoned outputs, tensor comparison with a report
// that names the element, both values, the tolerance and the seed, and the GPU skip macro.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace drwkv::testing {

bool gpu_available();

// Uniform in [lo, hi) from the Philox generator keyed by `seed` (same values on every device).
Tensor random_uniform(const Shape& shape, DType dtype, Device device, uint64_t seed, double lo = -1.0, double hi = 1.0);
Tensor random_normal(const Shape& shape, DType dtype, Device device, uint64_t seed, double std_dev = 1.0);
// random_uniform's f32 draws on the CPU, converted to `dtype` on `device`: one set of values (up to
// `dtype`'s rounding) for every dtype, so a bf16 GPU run and its reference see the same input.
Tensor random_uniform_via_f32(const Shape& shape, DType dtype, Device device, uint64_t seed, double lo = -1.0,
                              double hi = 1.0);
// A CPU f64 copy: the precision the references compute in.
Tensor to_f64(const Tensor& t);
// NaN everywhere (for floats) or 0xA5 bytes (integers): elements a kernel fails to write stand out.
Tensor poisoned(const Shape& shape, DType dtype, Device device);

struct Tolerance {
  double rtol;
  double atol;
};
// Typical tolerances for a result computed in `dtype` against an f64/f32 reference.
Tolerance tolerance_for(DType dtype);
// For f32 sums of `terms` products (reductions over rows): the absolute part grows with the term count.
Tolerance sum_tolerance(int64_t terms);

// |actual - expected| <= atol + rtol * |expected| everywhere (NaN never passes); on failure the message
// names the first failing element's index, both values, the tolerance, the number of failures, the max
// error, the normalised error ‖a − e‖ / ‖e‖ and the seed.
::testing::AssertionResult tensors_close(const Tensor& actual, const Tensor& expected, Tolerance tol,
                                         const std::string& what, uint64_t seed);
// ‖a − e‖₂ / ‖e‖₂ over all elements.
double relative_error(const Tensor& actual, const Tensor& expected);

}  // namespace drwkv::testing

#define DRWKV_REQUIRE_GPU()                                                  \
  do {                                                                       \
    if (!::drwkv::testing::gpu_available()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

#define EXPECT_TENSORS_CLOSE(actual, expected, tol, what, seed) \
  EXPECT_TRUE(::drwkv::testing::tensors_close(actual, expected, tol, what, seed))
