// drwkv_data: packs source data into drwkv datasets and inspects them (docs/DATA.md).
//
//   drwkv_data pack fmnist --input DIR --split train|test --out DIR [--pad 32] [--shard-size N]
//   drwkv_data pack npy --latents DIR_OR_FILE [--labels FILE] [--latent-flip DIR_OR_FILE] [--ids FILE]
//                       --out DIR [--dtype f16|bf16] [--scale-factor 0.18215] [--encoder NAME]
//                       [--num-classes N] [--shard-size N] [--source TEXT]
//   drwkv_data pack text --dataset DIR --emb FILE.npy --len FILE.npy [--tokens FILE.npy]
//                        [--pooled FILE.npy] [--captions FILE.txt] --out DIR [--dtype f16|bf16]
//                        [--encoder NAME] [--prefix TEXT]
//   drwkv_data inspect DIR_OR_SHARD [--verify] [--json] [--stats-samples N]
// Exit status: 0 on success, 2 on any error (the message names the file and what was expected).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/status.h"
#include "data/inspect.h"
#include "data/pack.h"

namespace {
using namespace drwkv::data;

const char* kUsage =
    "usage: drwkv_data pack fmnist --input DIR --split train|test --out DIR [--pad 32] [--shard-size N]\n"
    "       drwkv_data pack npy --latents DIR_OR_FILE [--labels FILE] [--latent-flip DIR_OR_FILE] [--ids FILE]\n"
    "                           --out DIR [--dtype f16|bf16] [--scale-factor F] [--encoder NAME] [--num-classes N]\n"
    "                           [--shard-size N] [--source TEXT]\n"
    "       drwkv_data pack text --dataset DIR --emb FILE.npy --len FILE.npy [--tokens FILE.npy] [--pooled FILE.npy]\n"
    "                            [--captions FILE.txt] --out DIR [--dtype f16|bf16] [--encoder NAME] [--prefix TEXT]\n"
    "       drwkv_data inspect DIR_OR_SHARD [--verify] [--json] [--stats-samples N]\n";

// --key value flags (and bare boolean switches) after the positional words.
struct Flags {
  std::map<std::string, std::string> values;
  std::set<std::string> switches;
  std::vector<std::string> positional;
};

absl::StatusOr<Flags> parse_flags(int argc, char** argv, int first, const std::set<std::string>& known,
                                  const std::set<std::string>& bools) {
  Flags f;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      f.positional.push_back(a);
      continue;
    }
    std::string key = a.substr(2);
    if (bools.count(key)) {
      f.switches.insert(key);
      continue;
    }
    if (!known.count(key)) return absl::InvalidArgumentError("unknown flag " + a);
    if (i + 1 >= argc) return absl::InvalidArgumentError("flag " + a + " needs a value");
    f.values[key] = argv[++i];
  }
  return f;
}

absl::StatusOr<int64_t> int_flag(const Flags& f, const std::string& key, int64_t def) {
  auto it = f.values.find(key);
  if (it == f.values.end()) return def;
  int64_t v;
  if (!absl::SimpleAtoi(it->second, &v)) return absl::InvalidArgumentError("--" + key + " expects an integer, got '" + it->second + "'");
  return v;
}

absl::StatusOr<std::string> required(const Flags& f, const std::string& key) {
  auto it = f.values.find(key);
  if (it == f.values.end()) return absl::InvalidArgumentError("missing required flag --" + key);
  return it->second;
}

std::string opt(const Flags& f, const std::string& key, const std::string& def = "") {
  auto it = f.values.find(key);
  return it == f.values.end() ? def : it->second;
}

absl::StatusOr<Elem> dtype_flag(const Flags& f) {
  std::string d = opt(f, "dtype", "f16");
  if (d == "f16") return Elem::F16;
  if (d == "bf16") return Elem::BF16;
  return absl::InvalidArgumentError("--dtype is '" + d + "', expected f16 or bf16");
}

absl::Status run(int argc, char** argv) {
  if (argc < 3) return absl::InvalidArgumentError("missing command");
  std::string cmd = argv[1];
  if (cmd == "inspect") {
    DRWKV_ASSIGN_OR_RETURN(Flags f, parse_flags(argc, argv, 2, {"stats-samples"}, {"verify", "json"}));
    if (f.positional.size() != 1) return absl::InvalidArgumentError("inspect takes one DIR_OR_SHARD");
    InspectOptions o;
    o.verify = f.switches.count("verify") > 0;
    DRWKV_ASSIGN_OR_RETURN(o.stats_samples, int_flag(f, "stats-samples", 1024));
    DRWKV_ASSIGN_OR_RETURN(Json report, inspect(f.positional[0], o));
    std::string text = f.switches.count("json") ? report.dump() : render_inspect(report);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return absl::OkStatus();
  }
  if (cmd != "pack") return absl::InvalidArgumentError("unknown command '" + cmd + "'");
  std::string what = argv[2];
  std::string fingerprint;
  if (what == "fmnist") {
    DRWKV_ASSIGN_OR_RETURN(Flags f, parse_flags(argc, argv, 3, {"input", "split", "out", "pad", "shard-size"}, {}));
    FmnistOptions o;
    o.input = opt(f, "input", o.input);
    o.split = opt(f, "split", o.split);
    DRWKV_ASSIGN_OR_RETURN(o.out, required(f, "out"));
    DRWKV_ASSIGN_OR_RETURN(int64_t pad, int_flag(f, "pad", 32));
    o.pad = int(pad);
    DRWKV_ASSIGN_OR_RETURN(o.shard_size, int_flag(f, "shard-size", 0));
    DRWKV_ASSIGN_OR_RETURN(fingerprint, pack_fmnist(o));
  } else if (what == "npy") {
    DRWKV_ASSIGN_OR_RETURN(Flags f, parse_flags(argc, argv, 3,
                                                {"latents", "labels", "latent-flip", "ids", "out", "dtype", "scale-factor",
                                                 "encoder", "num-classes", "shard-size", "source"},
                                                {}));
    NpyPackOptions o;
    DRWKV_ASSIGN_OR_RETURN(o.latents, required(f, "latents"));
    DRWKV_ASSIGN_OR_RETURN(o.out, required(f, "out"));
    o.labels = opt(f, "labels");
    o.latent_flip = opt(f, "latent-flip");
    o.ids = opt(f, "ids");
    DRWKV_ASSIGN_OR_RETURN(o.dtype, dtype_flag(f));
    std::string scale = opt(f, "scale-factor", "0.18215");
    if (!absl::SimpleAtod(scale, &o.scale_factor)) return absl::InvalidArgumentError("--scale-factor expects a number");
    o.encoder = opt(f, "encoder", o.encoder);
    DRWKV_ASSIGN_OR_RETURN(o.num_classes, int_flag(f, "num-classes", -1));
    DRWKV_ASSIGN_OR_RETURN(o.shard_size, int_flag(f, "shard-size", 0));
    o.source = opt(f, "source");
    DRWKV_ASSIGN_OR_RETURN(fingerprint, pack_npy(o));
  } else if (what == "text") {
    DRWKV_ASSIGN_OR_RETURN(Flags f, parse_flags(argc, argv, 3,
                                                {"dataset", "emb", "len", "tokens", "pooled", "captions", "out", "dtype",
                                                 "encoder", "prefix"},
                                                {}));
    TextPackOptions o;
    DRWKV_ASSIGN_OR_RETURN(o.dataset, required(f, "dataset"));
    DRWKV_ASSIGN_OR_RETURN(o.emb, required(f, "emb"));
    DRWKV_ASSIGN_OR_RETURN(o.len, required(f, "len"));
    DRWKV_ASSIGN_OR_RETURN(o.out, required(f, "out"));
    o.tokens = opt(f, "tokens");
    o.pooled = opt(f, "pooled");
    o.captions = opt(f, "captions");
    DRWKV_ASSIGN_OR_RETURN(o.dtype, dtype_flag(f));
    o.encoder = opt(f, "encoder", o.encoder);
    o.prefix = opt(f, "prefix");
    DRWKV_ASSIGN_OR_RETURN(fingerprint, pack_text(o));
  } else {
    return absl::InvalidArgumentError("unknown pack source '" + what + "' (fmnist, npy, text)");
  }
  std::printf("packed: fingerprint %s\n", fingerprint.c_str());
  return absl::OkStatus();
}
}  // namespace

int main(int argc, char** argv) {
  absl::Status s = run(argc, argv);
  if (!s.ok()) {
    std::fprintf(stderr, "drwkv_data: %s\n%s", std::string(s.message()).c_str(),
                 absl::IsInvalidArgument(s) && argc < 3 ? kUsage : "");
    return 2;
  }
  return 0;
}
