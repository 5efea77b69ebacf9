// Test harness shared by gemm_test.cpp (CPU backend) and gemm_gpu_test.cpp (CUDA backend): builds
// padded, batched operands for a GemmCase, the plain triple-loop f64 reference of the contract in
// kernels/gemm.h, and the checks that the matrix part of D is right while everything around it
// (leading-dimension padding, gaps between batches) is left untouched.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm.h"
#include "tests/support/testing.h"

namespace drwkv::kernels::gemm_testing {

struct GemmCase {
  int64_t m, n, k;
  int64_t batch = 1;
  bool trans_a = false, trans_b = false;
  DType in = DType::F32, out = DType::F32;
  bool has_bias = false;
  DType bias = DType::F32;
  float alpha = 1.0f, beta = 0.0f;
  int64_t pad = 0;            // extra elements per row (ld = columns + pad) and between batches
  bool broadcast_b = false;   // stride_b = 0: one B for every batch
  bool tf32 = false;
  int64_t offset = 0;         // operands start this many elements into their buffers (misalignment)

  std::string str() const {
    char buf[256];
    std::snprintf(buf, sizeof buf, "m%lld n%lld k%lld batch%lld t%d%d %s→%s bias %s alpha %g beta %g pad %lld%s",
                  (long long)m, (long long)n, (long long)k, (long long)batch, int(trans_a), int(trans_b),
                  dtype_name(in).data(), dtype_name(out).data(), has_bias ? dtype_name(bias).data() : "-",
                  double(alpha), double(beta), (long long)pad, broadcast_b ? " bcastB" : "");
    if (offset) std::snprintf(buf + std::strlen(buf), sizeof buf - std::strlen(buf), " offset %lld", (long long)offset);
    return buf;
  }
};

// Host operands (flat, padded) and the args pointing at them; to_device() moves everything.
struct GemmBuffers {
  Tensor a, b, d, bias;
  GemmArgs args;

  int64_t offset = 0;

  GemmBuffers to(Device dev) const {
    GemmBuffers r = *this;
    r.a = a.to(dev);
    r.b = b.to(dev);
    r.d = d.to(dev);
    if (bias.defined()) r.bias = bias.to(dev);
    r.point();
    return r;
  }
  // Sets the args' pointers `offset` elements into the buffers.
  void point() {
    auto at = [this](const Tensor& t) { return static_cast<char*>(t.data()) + offset * int64_t(t.element_size()); };
    args.a = at(a);
    args.b = at(b);
    args.d = at(d);
    args.bias = bias.defined() ? static_cast<const void*>(at(bias)) : nullptr;
  }
};

inline GemmBuffers make_buffers(const GemmCase& c, uint64_t seed) {
  GemmBuffers r;
  GemmArgs& g = r.args;
  g.m = c.m;
  g.n = c.n;
  g.k = c.k;
  g.batch = c.batch;
  g.trans_a = c.trans_a;
  g.trans_b = c.trans_b;
  g.a_dtype = g.b_dtype = c.in;
  g.d_dtype = c.out;
  g.alpha = c.alpha;
  g.beta = c.beta;
  g.allow_tf32 = c.tf32;
  int64_t ar = c.trans_a ? c.k : c.m, ac = c.trans_a ? c.m : c.k;
  int64_t br = c.trans_b ? c.n : c.k, bc = c.trans_b ? c.k : c.n;
  g.lda = ac + c.pad;
  g.ldb = bc + c.pad;
  g.ldd = c.n + c.pad;
  g.stride_a = ar * g.lda + c.pad;
  g.stride_b = c.broadcast_b ? 0 : br * g.ldb + c.pad;
  g.stride_d = c.m * g.ldd + c.pad;
  const Device cpu = Device::cpu();
  const int64_t o = c.offset;
  r.offset = o;
  r.a = testing::random_uniform(Shape{o + c.batch * g.stride_a}, c.in, cpu, seed);
  r.b = testing::random_uniform(Shape{o + (c.broadcast_b ? br * g.ldb : c.batch * g.stride_b)}, c.in, cpu, seed + 1);
  // beta = 0 must not read D: poison it; otherwise D is an operand
  r.d = c.beta == 0.0f ? testing::poisoned(Shape{o + c.batch * g.stride_d}, c.out, cpu)
                       : testing::random_uniform(Shape{o + c.batch * g.stride_d}, c.out, cpu, seed + 2);
  if (c.has_bias) {
    r.bias = testing::random_uniform(Shape{o + c.n}, c.bias, cpu, seed + 3);
    g.bias_dtype = c.bias;
  }
  r.point();
  return r;
}

// D as the contract defines it, in f64 from the stored values of host buffers `h` (before the call).
inline Tensor reference(const GemmCase& c, const GemmBuffers& h) {
  const GemmArgs& g = h.args;
  std::vector<double> a = h.a.to_vector<double>(), b = h.b.to_vector<double>(), d0 = h.d.to_vector<double>();
  std::vector<double> bias = h.bias.defined() ? h.bias.to_vector<double>() : std::vector<double>();
  const int64_t o = h.offset;
  Tensor out = Tensor::empty(Shape{c.batch, c.m, c.n}, DType::F64);
  double* res = out.data_ptr<double>();
  for (int64_t bt = 0; bt < c.batch; ++bt)
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double s = 0;
        for (int64_t kk = 0; kk < c.k; ++kk) {
          double x = a[size_t(o + bt * g.stride_a + (c.trans_a ? kk * g.lda + i : i * g.lda + kk))];
          double y = b[size_t(o + bt * g.stride_b + (c.trans_b ? j * g.ldb + kk : kk * g.ldb + j))];
          s += x * y;
        }
        double v = double(c.alpha) * s;
        if (c.beta != 0.0f) v += double(c.beta) * d0[size_t(o + bt * g.stride_d + i * g.ldd + j)];
        if (c.has_bias) v += bias[size_t(o + j)];
        res[(bt * c.m + i) * c.n + j] = v;
      }
  return out;
}

// The matrix part of a (host or device) D buffer as f64 [batch, m, n].
inline Tensor extract(const GemmCase& c, const GemmArgs& g, const Tensor& d) {
  std::vector<double> v = d.to_vector<double>();
  Tensor out = Tensor::empty(Shape{c.batch, c.m, c.n}, DType::F64);
  double* o = out.data_ptr<double>();
  for (int64_t bt = 0; bt < c.batch; ++bt)
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < c.n; ++j)
        o[(bt * c.m + i) * c.n + j] = v[size_t(c.offset + bt * g.stride_d + i * g.ldd + j)];
  return out;
}

// Every element of D outside the matrices keeps its bytes.
inline ::testing::AssertionResult padding_untouched(const GemmCase& c, const GemmArgs& g, const Tensor& before,
                                                    const Tensor& after) {
  Tensor x = before.to(Device::cpu()), y = after.to(Device::cpu());
  const size_t es = x.element_size();
  const char* px = static_cast<const char*>(x.data());
  const char* py = static_cast<const char*>(y.data());
  for (int64_t e = 0; e < x.numel(); ++e) {
    int64_t rel = e - c.offset;
    int64_t bt = rel / g.stride_d, r = rel % g.stride_d;
    bool inside = rel >= 0 && bt < c.batch && r < c.m * g.ldd && (r % g.ldd) < c.n;
    if (!inside && std::memcmp(px + e * int64_t(es), py + e * int64_t(es), es) != 0)
      return ::testing::AssertionFailure() << c.str() << ": element " << e << " of D outside the matrices was written";
  }
  return ::testing::AssertionSuccess();
}

// Tolerance of a result stored in `out` after a k-term f32 (or TF32) accumulation of values in [-1, 1].
inline testing::Tolerance gemm_tolerance(const GemmCase& c) {
  if (c.out == DType::F64) return {1e-12, 1e-12};
  if (c.out == DType::BF16) return {1e-2, 1e-2};
  if (c.tf32) return {5e-3, 2e-3 * std::sqrt(double(c.k))};
  return {1e-5, 1e-6 + 2e-7 * double(c.k)};  // f32 sums (bf16 products are exact in f32)
}

}  // namespace drwkv::kernels::gemm_testing
