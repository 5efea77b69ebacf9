// Finite-difference gradient check (tests/support/gradcheck.h).
#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/rng.h"

namespace drwkv::testing {
using autograd::Variable;

namespace {
double projected(const GradFn& f, const std::vector<Tensor>& inputs, const Tensor& proj) {
  autograd::NoGradGuard ng;
  std::vector<Variable> vars;
  for (const Tensor& t : inputs) vars.emplace_back(t, false);
  Tensor y = f(vars).value().contiguous();
  const double* py = y.data_ptr<double>();
  const double* pp = proj.data_ptr<double>();
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += py[i] * pp[i];
  return s;
}
}  // namespace

::testing::AssertionResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs_in,
                                     const GradcheckOptions& opt, std::vector<bool> requires_grad) {
  if (requires_grad.empty()) requires_grad.assign(inputs_in.size(), true);
  std::vector<Tensor> inputs;
  for (const Tensor& t : inputs_in) {
    if (t.dtype() != DType::F64 || !t.is_cpu())
      return ::testing::AssertionFailure() << "gradcheck needs f64 CPU inputs, got " << describe(t);
    inputs.push_back(t.clone());
  }
  // analytic
  std::vector<Variable> vars;
  for (size_t i = 0; i < inputs.size(); ++i) vars.emplace_back(inputs[i], bool(requires_grad[i]));
  Variable y = f(vars);
  Tensor proj = Tensor::empty(y.shape(), DType::F64);
  rng_normal_(proj, opt.seed, 0x9ad);
  if (!y.requires_grad()) return ::testing::AssertionFailure() << "output does not require a gradient";
  y.backward(proj.clone());
  // numeric, element by element
  std::ostringstream report;
  int failures = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!requires_grad[k]) continue;
    Tensor g = vars[k].grad();
    std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(size_t(inputs[k].numel()), 0.0);
    Tensor x = inputs[k];  // contiguous clone
    double* px = x.data_ptr<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = px[i];
      px[i] = orig + opt.eps;
      double lp = projected(f, inputs, proj);
      px[i] = orig - opt.eps;
      double lm = projected(f, inputs, proj);
      px[i] = orig;
      double numeric = (lp - lm) / (2 * opt.eps);
      double a = analytic[size_t(i)];
      if (!(std::fabs(a - numeric) <= opt.atol + opt.rtol * std::fabs(numeric))) {
        if (failures < 5)
          report << "\n  input " << k << " element " << i << ": analytic " << a << ", numeric " << numeric;
        ++failures;
      }
    }
  }
  if (failures == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << failures << " gradient element(s) differ (rtol " << opt.rtol << ", atol "
                                       << opt.atol << ", eps " << opt.eps << ", seed " << opt.seed << ")"
                                       << report.str();
}

}  // namespace drwkv::testing
