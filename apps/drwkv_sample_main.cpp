// drwkv_sample CHECKPOINT --labels 0,1,2 [--per-label N] [--count N] [--cfg-scale S] [--steps K]
//              [--sampler ddpm|ddim] [--eta E] [--guided-channels all|N] [--seed S] [--weights ema|params]
//              [--device auto|cpu|cuda] [--columns N] --out grid.png [--raw samples.h5]
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "apps/cli.h"
#include "apps/sampling.h"
#include "core/status.h"

using namespace drwkv;

int main(int argc, char** argv) {
  auto cl = apps::parse_command_line(argc, argv,
                                     {"labels", "per-label", "count", "cfg-scale", "steps", "sampler", "eta",
                                      "guided-channels", "seed", "weights", "device", "columns", "out", "raw"});
  if (!cl.ok() || cl->positional.size() != 1) {
    std::cerr << (cl.ok() ? "expected one checkpoint path" : std::string(cl.status().message())) << "\n"
              << "usage: drwkv_sample CHECKPOINT --labels 0,1,2 [--per-label N] [--cfg-scale S] [--steps K] "
                 "[--sampler ddpm|ddim] [--seed S] --out grid.png [--raw samples.h5]\n";
    return 2;
  }
  apps::SampleRequest req;
  req.checkpoint = cl->positional[0];
  int64_t per_label = value_or_die(cl->get_int("per-label", 1));
  if (cl->has("labels"))
    for (absl::string_view s : absl::StrSplit(cl->get("labels"), ',')) {
      int v = 0;
      if (!absl::SimpleAtoi(s, &v)) die_with_status(absl::InvalidArgumentError("--labels: expected integers like 0,1,2"));
      for (int64_t k = 0; k < per_label; ++k) req.labels.push_back(v);
    }
  req.count = int(value_or_die(cl->get_int("count", 16)));
  req.options.cfg_scale = value_or_die(cl->get_double("cfg-scale", 1.5));
  req.options.steps = int(value_or_die(cl->get_int("steps", 250)));
  req.options.sampler = cl->get("sampler", "ddpm");
  req.options.ddim_eta = value_or_die(cl->get_double("eta", 0.0));
  std::string guided = cl->get("guided-channels", "all");
  req.options.guided_channels = guided == "all" ? -1 : int(value_or_die(cl->get_int("guided-channels", -1)));
  req.options.seed = uint64_t(value_or_die(cl->get_int("seed", 0)));
  req.weights = cl->get("weights", "ema");
  req.device = cl->get("device", "auto");
  req.columns = int(value_or_die(cl->get_int("columns", per_label > 1 ? per_label : 8)));
  req.out_png = cl->get("out");
  req.out_raw = cl->get("raw");
  if (req.out_png.empty() && req.out_raw.empty()) die_with_status(absl::InvalidArgumentError("give --out grid.png and/or --raw samples.h5"));
  value_or_die(apps::run_sampling(req), "drwkv_sample");
  std::cout << "wrote " << (req.out_png.empty() ? "" : req.out_png + " ") << req.out_raw << "\n";
  return 0;
}
