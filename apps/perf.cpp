// Throughput accounting (apps/perf.h).
#include "apps/perf.h"

#include <algorithm>
#include <vector>

#include "core/rng.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "core/build_config.h"
#include "kernels/gemm.h"

namespace drwkv::apps {

double training_flops_per_image(const models::DrwkvConfig& c) {
  return 6.0 * double(models::drwkv_token_path_weights(c)) * double(c.tokens());
}

double measure_gemm_ceiling_tflops(Device device) {
  if (!device.is_cuda()) return 0.0;
  const int64_t n = 8192;
  Tensor a = Tensor::empty(Shape{n, n}, DType::BF16, device), b = Tensor::empty(Shape{n, n}, DType::BF16, device);
  Tensor d = Tensor::empty(Shape{n, n}, DType::BF16, device);
  rng_normal_(a, 1, 1);
  rng_normal_(b, 1, 2);
  kernels::GemmArgs g;
  g.m = g.n = g.k = n;
  g.a = a.data();
  g.b = b.data();
  g.d = d.data();
  g.lda = g.ldb = g.ldd = n;
  g.a_dtype = g.b_dtype = g.d_dtype = DType::BF16;
  Stream s = current_stream(device);
  std::vector<double> tflops;
  for (int i = 0; i < 8; ++i) {
    Event start(true), stop(true);
    start.record(s);
    DRWKV_CUDA_ONLY(kernels::gemm_cuda(g, s.handle()));
    stop.record(s);
    stop.synchronize();
    if (i >= 3) tflops.push_back(2.0 * double(n) * n * n / (start.elapsed_ms(stop) * 1e-3) / 1e12);
  }
  std::sort(tflops.begin(), tflops.end());
  return tflops[tflops.size() / 2];
}

}  // namespace drwkv::apps
