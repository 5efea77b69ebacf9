// DRWKV configurations: parameter counts of the built model against the closed form and against the
// table of MODEL.md §1.13 (all ten configurations, both inputs), and the MAC counts.
#include <gtest/gtest.h>

#include "models/drwkv.h"
#include "models/parameter_store.h"

namespace drwkv::models {
namespace {

DrwkvConfig pixels_uncond() {
  DrwkvConfig c;
  c.in_channels = 3;
  c.image_size = 32;
  c.num_classes = 0;
  c.learn_sigma = true;
  return c;
}
DrwkvConfig latent_imagenet() {
  DrwkvConfig c;
  c.in_channels = 4;
  c.image_size = 32;
  c.num_classes = 1000;
  c.learn_sigma = true;
  return c;
}

TEST(DrwkvConfig, ParameterCountsMatchTheSpecTable) {
  struct Row { const char* name; int64_t pixels, latent; };
  const Row rows[] = {{"S/2", 38934552, 39323552},   {"S/4", 38902368, 39305216},   {"B/2", 74404632, 74793632},
                      {"B/4", 74372448, 74775296},   {"M/2", 132105240, 132623904}, {"M/4", 132062304, 132599424},
                      {"L/2", 438574104, 439352096}, {"L/4", 438509664, 439315328}, {"H/2", 779276312, 780313632},
                      {"H/4", 779190368, 780264576}};
  for (const Row& r : rows) {
    for (bool latent : {false, true}) {
      DrwkvConfig c = drwkv_named_config(r.name, latent ? latent_imagenet() : pixels_uncond()).value();
      int64_t want = latent ? r.latent : r.pixels;
      EXPECT_EQ(drwkv_parameter_count(c), want) << r.name << (latent ? " latent" : " pixels");
      ParameterStore store;  // registration only: counting needs no memory
      DrwkvModel model(c, store);
      EXPECT_EQ(store.parameter_count(), want) << r.name << (latent ? " latent (built)" : " pixels (built)");
    }
  }
}

TEST(DrwkvConfig, MacsMatchTheSpec) {
  // latent 32×32×4 with patch 2 (256 tokens): MODEL.md §1.13 "Measured" row
  const std::pair<const char*, double> p2[] = {{"S/2", 6.849e9}, {"B/2", 13.202e9}, {"M/2", 23.468e9},
                                               {"L/2", 78.207e9}, {"H/2", 139.030e9}};
  for (auto [name, macs] : p2) {
    DrwkvConfig c = drwkv_named_config(name, latent_imagenet()).value();
    EXPECT_NEAR(double(drwkv_macs(c)), macs, 0.0005e9) << name;
  }
  DrwkvConfig b2 = drwkv_named_config("B/2", latent_imagenet()).value();
  EXPECT_NEAR(double(drwkv_token_path_weights(b2)), 51.5e6, 0.05e6);  // ANCHORS.md: 6 × 51.5M × 256 FLOP
}

TEST(DrwkvConfig, InvalidConfigsAreRejectedWithTheField) {
  DrwkvConfig c = latent_imagenet();
  c.width = 30;
  EXPECT_NE(std::string(validate(c).message()).find("model.width"), std::string::npos);
  c = latent_imagenet();
  c.image_size = 30;
  c.patch = 4;
  EXPECT_NE(std::string(validate(c).message()).find("model.image_size"), std::string::npos);
  EXPECT_FALSE(drwkv_named_config("X/2", latent_imagenet()).ok());
  EXPECT_FALSE(drwkv_named_config("S/3", latent_imagenet()).ok());
}

TEST(DrwkvConfig, HostTables) {
  std::vector<float> t = timestep_frequencies({0, 7});
  for (int m = 0; m < 128; ++m) {
    EXPECT_EQ(t[size_t(m)], 1.0f);        // cos(0)
    EXPECT_EQ(t[size_t(128 + m)], 0.0f);  // sin(0)
  }
  EXPECT_NEAR(t[256], std::cos(7.0f), 1e-6);  // m = 0: frequency 1
  std::vector<float> pe = sincos_pos_embed(8, 4);  // D = 8, grid 4
  // token (row 0, column 0): [0, 0, 1, 1, 0, 0, 1, 1]
  EXPECT_EQ(std::vector<float>(pe.begin(), pe.begin() + 8), (std::vector<float>{0, 0, 1, 1, 0, 0, 1, 1}));
  // token (row 0, column 1): entry 0 = sin(1), entry D/4 = cos(1)
  EXPECT_NEAR(pe[8], 0.841471f, 1e-6);
  EXPECT_NEAR(pe[10], 0.540302f, 1e-6);
}

}  // namespace
}  // namespace drwkv::models
