// The World shared by the tests of one dist test program, created from the environment (ctest sets
// DRWKV_BACKEND, DRWKV_RENDEZVOUS, ... per test) before the first test and shut down cleanly (barrier,
// MPI_Finalize) after the last one. A World that cannot start fails the program with its Status.
#pragma once

#include "dist/world.h"

namespace drwkv::dist::testing {

World& test_world();

// A failing EXPECT on one rank must not desynchronise the collectives of the others: tests check
// values with EXPECT_* and never return early between collectives.

}  // namespace drwkv::dist::testing
