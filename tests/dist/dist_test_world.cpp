// The World of a dist test program (tests/dist/dist_test_world.h).
#include "tests/dist/dist_test_world.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace drwkv::dist::testing {
namespace {

std::unique_ptr<World>& the_world() {
  static std::unique_ptr<World> w;
  return w;
}

class WorldEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto options = dist_options_from_env();
    if (!options.ok()) {
      std::fprintf(stderr, "dist test: %s\n", std::string(options.status().message()).c_str());
      std::exit(1);
    }
    auto w = World::init(*options);
    if (!w.ok()) {
      std::fprintf(stderr, "dist test: World::init: %s\n", std::string(w.status().message()).c_str());
      std::exit(1);
    }
    the_world() = std::move(*w);
  }
  void TearDown() override { the_world().reset(); }
};

[[maybe_unused]] ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new WorldEnvironment);

}  // namespace

World& test_world() {
  if (!the_world()) {
    std::fprintf(stderr, "dist test: no World (the global test environment did not run)\n");
    std::abort();
  }
  return *the_world();
}

}  // namespace drwkv::dist::testing
