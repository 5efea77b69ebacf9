// Finite-difference gradient check for differentiable functions (f64, CPU).
//
// For f: inputs -> output, draws a random projection P (never zeros) and compares the gradients of
// L = Σ P ⊙ f(inputs) from backward() with central differences (L(x + h e_i) − L(x − h e_i)) / 2h on
// every element of every input that requires a gradient.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "autograd/variable.h"

namespace drwkv::testing {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double rtol = 1e-6;  // |analytic − numeric| <= atol + rtol·|numeric|
  double atol = 1e-8;
  uint64_t seed = 1;
};

using GradFn = std::function<autograd::Variable(const std::vector<autograd::Variable>&)>;

// Inputs are f64 CPU tensors; `requires_grad[i]` selects which are checked (all when empty).
::testing::AssertionResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs,
                                     const GradcheckOptions& opt = {}, std::vector<bool> requires_grad = {});

}  // namespace drwkv::testing
