// Shared test helpers (tests/support/testing.h).
#include "tests/support/testing.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/rng.h"

namespace drwkv::testing {

bool gpu_available() { return cuda_device_count() > 0; }

Tensor random_uniform(const Shape& shape, DType dtype, Device device, uint64_t seed, double lo, double hi) {
  Tensor t = Tensor::empty(shape, DType::F64, Device::cpu());
  rng_uniform_(t, seed, /*stream=*/0xA11CEull);
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = lo + (hi - lo) * p[i];
  return t.to(device, dtype);
}

Tensor random_uniform_via_f32(const Shape& shape, DType dtype, Device device, uint64_t seed, double lo, double hi) {
  return random_uniform(shape, DType::F32, Device::cpu(), seed, lo, hi).to(device, dtype);
}

Tensor to_f64(const Tensor& t) { return t.to(Device::cpu(), DType::F64); }

Tensor random_normal(const Shape& shape, DType dtype, Device device, uint64_t seed, double std_dev) {
  Tensor t = Tensor::empty(shape, dtype, device);
  rng_normal_(t, seed, /*stream=*/0xB0Bull, 0, 0.0, std_dev);
  return t;
}

Tensor poisoned(const Shape& shape, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  t.fill_(dtype_is_float(dtype) ? std::nan("") : 0xA5);
  return t;
}

Tolerance tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::F64: return {1e-10, 1e-12};
    case DType::F32: return {2e-5, 1e-6};
    case DType::BF16: return {2e-2, 2e-2};
    case DType::F16: return {2e-3, 2e-3};
    default: return {0, 0};
  }
}

Tolerance sum_tolerance(int64_t terms) { return {1e-4, 2e-6 * double(std::max<int64_t>(terms, 1))}; }

double relative_error(const Tensor& actual, const Tensor& expected) {
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - e[i]) * (a[i] - e[i]);
    den += e[i] * e[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

::testing::AssertionResult tensors_close(const Tensor& actual, const Tensor& expected, Tolerance tol,
                                         const std::string& what, uint64_t seed) {
  if (!(actual.shape() == expected.shape()))
    return ::testing::AssertionFailure() << what << ": shape " << actual.shape().str() << " vs expected "
                                         << expected.shape().str() << " (seed " << seed << ")";
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  int64_t failures = 0, first = -1;
  double max_err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double err = std::fabs(a[i] - e[i]);
    bool ok = err <= tol.atol + tol.rtol * std::fabs(e[i]);  // false for NaN
    if (!ok) {
      if (first < 0) first = int64_t(i);
      ++failures;
    }
    if (std::isnan(err) || err > max_err) max_err = std::isnan(err) ? INFINITY : err;
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  // decode the flat index into a multi-index
  std::ostringstream idx;
  int64_t rem = first;
  std::vector<int64_t> parts(static_cast<size_t>(actual.dim()));
  for (int d = actual.dim() - 1; d >= 0; --d) {
    parts[size_t(d)] = rem % actual.size(d);
    rem /= actual.size(d);
  }
  idx << "[";
  for (size_t d = 0; d < parts.size(); ++d) idx << (d ? ", " : "") << parts[d];
  idx << "]";
  return ::testing::AssertionFailure()
         << what << ": " << failures << " of " << a.size() << " elements outside atol " << tol.atol << " + rtol "
         << tol.rtol << "; first at " << idx.str() << ": got " << a[size_t(first)] << ", expected "
         << e[size_t(first)] << "; max |error| " << max_err << ", ‖a−e‖/‖e‖ " << relative_error(actual, expected)
         << " (seed " << seed << ")";
}

}  // namespace drwkv::testing
