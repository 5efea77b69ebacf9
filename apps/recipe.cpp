// Recipe parsing and validation (apps/recipe.h).
#include "apps/recipe.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace drwkv::apps {
namespace {

enum class Kind { Int, Double, Bool, String, IntList };

struct Field {
  std::string key;  // "section.name"
  Kind kind;
  void* target;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // strings: allowed values (empty = any)
};

// The one place where recipe keys are declared.
std::vector<Field> fields_of(Recipe& r) {
  const double inf = std::numeric_limits<double>::infinity();
  auto I = [](const char* k, int64_t* t, double lo, double hi) { return Field{k, Kind::Int, t, lo, hi, {}}; };
  auto D = [](const char* k, double* t, double lo, double hi) { return Field{k, Kind::Double, t, lo, hi, {}}; };
  auto B = [](const char* k, bool* t) { return Field{k, Kind::Bool, t, 0, 0, {}}; };
  auto S = [](const char* k, std::string* t, std::vector<std::string> choices = {}) {
    return Field{k, Kind::String, t, 0, 0, std::move(choices)};
  };
  return {
      S("run.name", &r.run.name), S("run.out_dir", &r.run.out_dir), I("run.seed", &r.run.seed, 0, 9.0e18),
      S("run.device", &r.run.device, {"auto", "cpu", "cuda"}), I("run.max_steps", &r.run.max_steps, 0, inf),
      D("run.max_minutes", &r.run.max_minutes, 0, inf),
      S("model.config", &r.model.config,
        {"custom", "S/2", "S/4", "B/2", "B/4", "M/2", "M/4", "L/2", "L/4", "H/2", "H/4"}),
      I("model.depth", &r.model.depth, 1, 1000), I("model.width", &r.model.width, 4, 65536),
      I("model.patch", &r.model.patch, 1, 64), I("model.in_channels", &r.model.in_channels, 1, 64),
      I("model.image_size", &r.model.image_size, 1, 65536), I("model.num_classes", &r.model.num_classes, 0, 1e9),
      B("model.learn_sigma", &r.model.learn_sigma), I("model.hidden_rate", &r.model.hidden_rate, 1, 64),
      D("model.drop_path", &r.model.drop_path, 0, 0.999), D("model.class_dropout", &r.model.class_dropout, 0, 0.999),
      B("model.key_norm", &r.model.key_norm), S("model.bi_wkv", &r.model.bi_wkv, {"exact", "official_compat"}),
      B("model.activation_checkpointing", &r.model.activation_checkpointing),
      B("model.recompute_elementwise", &r.model.recompute_elementwise),
      I("model.checkpoint_blocks", &r.model.checkpoint_blocks, 0, 1000),
      S("data.path", &r.data.path), B("data.flip", &r.data.flip), I("data.threads", &r.data.threads, 1, 256),
      I("data.prefetch", &r.data.prefetch, 1, 1024),
      I("train.global_batch", &r.train.global_batch, 1, 1e9), I("train.micro_batch", &r.train.micro_batch, 1, 1e9),
      S("train.precision", &r.train.precision, {"auto", "f32", "bf16"}),
      D("optimizer.lr", &r.optimizer.lr, 0, 10), D("optimizer.beta1", &r.optimizer.beta1, 0, 0.999999),
      D("optimizer.beta2", &r.optimizer.beta2, 0, 0.9999999), D("optimizer.eps", &r.optimizer.eps, 0, 1),
      D("optimizer.weight_decay", &r.optimizer.weight_decay, 0, 10),
      S("optimizer.schedule", &r.optimizer.schedule, {"constant", "cosine"}),
      I("optimizer.warmup_steps", &r.optimizer.warmup_steps, 0, inf), D("optimizer.min_lr", &r.optimizer.min_lr, 0, 10),
      D("optimizer.grad_clip", &r.optimizer.grad_clip, 0, inf),
      I("optimizer.max_nonfinite_steps", &r.optimizer.max_nonfinite_steps, 1, inf),
      D("ema.decay", &r.ema.decay, 0, 1), I("ema.warmup_steps", &r.ema.warmup_steps, 0, inf),
      I("checkpoint.every_steps", &r.checkpoint.every_steps, 0, inf),
      I("checkpoint.keep_last", &r.checkpoint.keep_last, 1, 10000), S("checkpoint.resume", &r.checkpoint.resume),
      I("log.every_steps", &r.log.every_steps, 1, inf), S("log.metrics_file", &r.log.metrics_file),
      I("sample.every_steps", &r.sample.every_steps, 0, inf),
      Field{"sample.labels", Kind::IntList, &r.sample.labels, 0, 1e9, {}},
      I("sample.per_label", &r.sample.per_label, 1, 64), I("sample.steps", &r.sample.steps, 1, 1000),
      S("sample.sampler", &r.sample.sampler, {"ddpm", "ddim"}), D("sample.cfg_scale", &r.sample.cfg_scale, 0, 100),
      I("sample.seed", &r.sample.seed, 0, 9.0e18),
      S("dist.backend", &r.dist.backend, {"auto", "nccl", "mpi"}),
      S("dist.rendezvous", &r.dist.rendezvous, {"auto", "mpi", "file", "tcp"}),
      S("dist.rendezvous_path", &r.dist.rendezvous_path), S("dist.rendezvous_address", &r.dist.rendezvous_address),
      D("dist.bucket_mb", &r.dist.bucket_mb, 0.001, 1e6), S("dist.reduce_dtype", &r.dist.reduce_dtype, {"f32", "bf16"}),
      D("dist.timeout_s", &r.dist.timeout_s, 1, 1e7), B("dist.zero1", &r.dist.zero1),
  };
}

std::string where(const std::string& source, const YAML::Node& n) {
  if (n.Mark().is_null()) return source;
  return absl::StrFormat("%s:%d", source, n.Mark().line + 1);
}

absl::Status range_error(const std::string& at, const Field& f, const std::string& got) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: key '%s' = %s is outside [%g, %g]", at, f.key, got, f.min, f.max));
}

// Assigns one YAML value to a field, with type and range checks.
absl::Status assign(const Field& f, const YAML::Node& v, const std::string& at) {
  auto type_error = [&](const char* want) {
    std::string got = v.IsScalar() ? "'" + v.Scalar() + "'" : v.IsSequence() ? "a list" : v.IsMap() ? "a map" : "nothing";
    return absl::InvalidArgumentError(absl::StrFormat("%s: key '%s' must be %s, got %s", at, f.key, want, got));
  };
  try {
    switch (f.kind) {
      case Kind::Int: {
        if (!v.IsScalar()) return type_error("an integer");
        // accept 1e6-style integers written as floats, but not fractions
        double d = v.as<double>();
        if (d != std::floor(d)) return type_error("an integer");
        if (d < f.min || d > f.max) return range_error(at, f, v.Scalar());
        *static_cast<int64_t*>(f.target) = int64_t(d);
        return absl::OkStatus();
      }
      case Kind::Double: {
        if (!v.IsScalar()) return type_error("a number");
        double d = v.as<double>();
        if (!std::isfinite(d)) return type_error("a finite number");
        if (d < f.min || d > f.max) return range_error(at, f, v.Scalar());
        *static_cast<double*>(f.target) = d;
        return absl::OkStatus();
      }
      case Kind::Bool: {
        if (!v.IsScalar()) return type_error("true or false");
        *static_cast<bool*>(f.target) = v.as<bool>();
        return absl::OkStatus();
      }
      case Kind::String: {
        if (!v.IsScalar()) return type_error("a string");
        std::string s = v.Scalar();
        if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end())
          return absl::InvalidArgumentError(absl::StrFormat("%s: key '%s' = '%s' is not one of: %s", at, f.key, s,
                                                            absl::StrJoin(f.choices, ", ")));
        *static_cast<std::string*>(f.target) = s;
        return absl::OkStatus();
      }
      case Kind::IntList: {
        if (!v.IsSequence()) return type_error("a list of integers such as [0, 1, 2]");
        std::vector<int64_t> out;
        for (const YAML::Node& e : v) {
          double d = e.as<double>();
          if (d != std::floor(d)) return type_error("a list of integers");
          if (d < f.min || d > f.max) return range_error(at, f, e.Scalar());
          out.push_back(int64_t(d));
        }
        *static_cast<std::vector<int64_t>*>(f.target) = out;
        return absl::OkStatus();
      }
    }
  } catch (const YAML::Exception&) {
    return type_error(f.kind == Kind::Int ? "an integer" : f.kind == Kind::Double ? "a number" : f.kind == Kind::Bool ? "true or false" : "a list of integers");
  }
  return absl::OkStatus();
}

absl::Status apply_map(const YAML::Node& root, std::vector<Field>& fields, const std::string& source) {
  if (!root.IsMap())
    return absl::InvalidArgumentError(absl::StrFormat("%s: a recipe must be a map of sections (run, model, data, ...)", source));
  std::map<std::string, Field*> by_key;
  std::set<std::string> sections;
  for (Field& f : fields) {
    by_key[f.key] = &f;
    sections.insert(f.key.substr(0, f.key.find('.')));
  }
  for (const auto& sec : root) {
    std::string name = sec.first.Scalar();
    if (!sections.count(name))
      return absl::InvalidArgumentError(absl::StrFormat("%s: unknown section '%s' (valid: %s)", where(source, sec.first),
                                                        name, absl::StrJoin(sections, ", ")));
    if (sec.second.IsNull()) continue;
    if (!sec.second.IsMap())
      return absl::InvalidArgumentError(absl::StrFormat("%s: section '%s' must be a map of keys", where(source, sec.second), name));
    for (const auto& kv : sec.second) {
      std::string key = name + "." + kv.first.Scalar();
      auto it = by_key.find(key);
      if (it == by_key.end()) {
        std::vector<std::string> valid;
        for (const Field& f : fields)
          if (f.key.rfind(name + ".", 0) == 0) valid.push_back(f.key.substr(name.size() + 1));
        return absl::InvalidArgumentError(absl::StrFormat("%s: unknown key '%s' (valid keys of '%s': %s)",
                                                          where(source, kv.first), key, name, absl::StrJoin(valid, ", ")));
      }
      absl::Status st = assign(*it->second, kv.second, where(source, kv.second));
      if (!st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::Status apply_override(const std::string& ov, std::vector<Field>& fields) {
  auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0)
    return absl::InvalidArgumentError(absl::StrFormat("--set '%s': expected key=value, e.g. optimizer.lr=2e-4", ov));
  std::string key = ov.substr(0, eq), value = ov.substr(eq + 1);
  for (Field& f : fields) {
    if (f.key != key) continue;
    YAML::Node v;
    try {
      v = YAML::Load(value.empty() ? "''" : value);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrFormat("--set %s: cannot parse the value: %s", ov, e.what()));
    }
    return assign(f, v, "--set " + ov);
  }
  return absl::InvalidArgumentError(absl::StrFormat("--set %s: unknown key '%s' (see the resolved recipe printed at start for all keys)", ov, key));
}

// Cross-field checks that no single key can make.
absl::Status check_consistency(const Recipe& r, const std::string& source) {
  if (r.train.global_batch % r.train.micro_batch != 0)
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: train.global_batch (%d) must be a multiple of train.micro_batch (%d) times the number of ranks", source,
        r.train.global_batch, r.train.micro_batch));
  if (r.model.config == "custom" && r.model.width % 4 != 0)
    return absl::InvalidArgumentError(absl::StrFormat("%s: model.width (%d) must be a multiple of 4", source, r.model.width));
  if (r.model.image_size % r.model.patch != 0)
    return absl::InvalidArgumentError(absl::StrFormat("%s: model.image_size (%d) must be a multiple of model.patch (%d)",
                                                      source, r.model.image_size, r.model.patch));
  for (int64_t y : r.sample.labels)
    if (y >= r.model.num_classes)
      return absl::InvalidArgumentError(absl::StrFormat("%s: sample.labels contains %d, but model.num_classes is %d",
                                                        source, y, r.model.num_classes));
  if (r.model.activation_checkpointing && r.model.checkpoint_blocks > 0)
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: model.activation_checkpointing (every block) and model.checkpoint_blocks (%d of them) are both set; "
        "keep one",
        source, r.model.checkpoint_blocks));
  if (r.data.path.empty())
    return absl::InvalidArgumentError(absl::StrFormat("%s: data.path is required (a dataset directory made by drwkv_data pack)", source));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Recipe> parse_recipe(const std::string& text, const std::string& source,
                                    const std::vector<std::string>& overrides) {
  Recipe r;
  r.source = source;
  std::vector<Field> fields = fields_of(r);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrFormat("%s:%d: YAML syntax error: %s", source, e.mark.line + 1, e.msg));
  }
  if (!root.IsNull()) {
    absl::Status st = apply_map(root, fields, source);
    if (!st.ok()) return st;
  }
  for (const std::string& ov : overrides) {
    absl::Status st = apply_override(ov, fields);
    if (!st.ok()) return st;
  }
  absl::Status st = check_consistency(r, source);
  if (!st.ok()) return st;
  return r;
}

absl::StatusOr<Recipe> load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrFormat("recipe %s: cannot open the file", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_recipe(ss.str(), path, overrides);
}

std::string to_yaml(const Recipe& r_in) {
  Recipe r = r_in;
  std::vector<Field> fields = fields_of(r);
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const Field& f : fields) {
    std::string sec = f.key.substr(0, f.key.find('.')), key = f.key.substr(f.key.find('.') + 1);
    if (sec != section) {
      if (!section.empty()) out << YAML::EndMap;
      out << YAML::Key << sec << YAML::Value << YAML::BeginMap;
      section = sec;
    }
    out << YAML::Key << key << YAML::Value;
    switch (f.kind) {
      case Kind::Int: out << *static_cast<int64_t*>(f.target); break;
      case Kind::Double: out << *static_cast<double*>(f.target); break;
      case Kind::Bool: out << *static_cast<bool*>(f.target); break;
      case Kind::String: out << YAML::DoubleQuoted << *static_cast<std::string*>(f.target); break;
      case Kind::IntList: {
        out << YAML::Flow << YAML::BeginSeq;
        for (int64_t v : *static_cast<std::vector<int64_t>*>(f.target)) out << v;
        out << YAML::EndSeq;
        break;
      }
    }
  }
  if (!section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> recipe_keys() {
  Recipe r;
  std::vector<std::string> keys;
  for (const Field& f : fields_of(r)) keys.push_back(f.key);
  return keys;
}

}  // namespace drwkv::apps
