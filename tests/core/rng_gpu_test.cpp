// The same (seed, stream, offset) gives bit-identical numbers on the host and the device.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "tests/support/testing.h"

namespace drwkv {
namespace {

TEST(RngGpu, BitIdenticalToHost) {
  DRWKV_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::F64, DType::BF16}) {
    for (int64_t n : {1, 7, 4099, 1 << 20}) {
      Tensor h = Tensor::empty(Shape{n}, dt), d = Tensor::empty(Shape{n}, dt, Device::cuda(0));
      rng_normal_(h, 1234, 5, 3, 0.5, 2.0);
      rng_normal_(d, 1234, 5, 3, 0.5, 2.0);
      EXPECT_EQ(d.to_vector<double>(), h.to_vector<double>()) << "normal " << dtype_name(dt) << " n=" << n;
      rng_uniform_(h, 99, 1, 0);
      rng_uniform_(d, 99, 1, 0);
      EXPECT_EQ(d.to_vector<double>(), h.to_vector<double>()) << "uniform " << dtype_name(dt) << " n=" << n;
    }
  }
  Tensor h = Tensor::empty(Shape{5, 33}, DType::F32), d = Tensor::empty(Shape{5, 33}, DType::F32, Device::cuda(0));
  std::vector<uint64_t> streams = {3, 1, 4, 1, 5};
  rng_normal_rows_(h, 8, streams);
  rng_normal_rows_(d, 8, streams);
  EXPECT_EQ(d.to_vector<float>(), h.to_vector<float>());
}

}  // namespace
}  // namespace drwkv
