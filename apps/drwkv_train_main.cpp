// drwkv_train RECIPE.yaml [--set key=value ...] [--resume none|auto|PATH]
// Trains a DRWKV diffusion model as the recipe says, on the CPU, one GPU, or many ranks launched by
// mpirun or Slurm (launch/). See README.md and docs/ for the recipe keys and outputs.
#include <iostream>

#include "apps/cli.h"
#include "apps/recipe.h"
#include "apps/trainer.h"
#include "core/status.h"

using namespace drwkv;

int main(int argc, char** argv) {
  auto cl = apps::parse_command_line(argc, argv, {"resume"});
  if (!cl.ok() || cl->positional.size() != 1) {
    std::cerr << (cl.ok() ? "expected one recipe file" : std::string(cl.status().message())) << "\n"
              << "usage: drwkv_train RECIPE.yaml [--set key=value ...] [--resume none|auto|PATH]\n";
    return 2;
  }
  std::vector<std::string> overrides = cl->repeated_set;
  if (cl->has("resume")) overrides.push_back("checkpoint.resume=" + cl->get("resume"));
  apps::Recipe recipe = value_or_die(apps::load_recipe(cl->positional[0], overrides));
  value_or_die(apps::train(recipe), "drwkv_train");
  return 0;
}
