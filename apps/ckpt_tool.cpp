// drwkv_ckpt commands (apps/ckpt_tool.h).
#include "apps/ckpt_tool.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "apps/checkpoint.h"
#include "data/json.h"

namespace drwkv::apps {
using data::Json;

int ckpt_inspect(const std::string& path, bool json, std::ostream& out) {
  std::vector<TensorReport> reports;
  absl::StatusOr<Checkpoint> c = read_checkpoint(path, /*verify=*/false, &reports, /*load_tensors=*/false);
  if (!c.ok()) {
    out << c.status().message() << "\n";
    return 1;
  }
  const CheckpointMeta& m = c->meta;
  int bad = 0;
  for (const TensorReport& r : reports) bad += r.checksum_ok ? 0 : 1;
  if (json) {
    Json j = Json::object();
    j.set("path", Json::string(path)).set("step", Json::integer(m.step)).set("model", Json::string(m.model_name));
    j.set("parameter_count", Json::integer(m.parameter_count)).set("seed", Json::string(absl::StrFormat("%d", m.seed)));
    j.set("dataset_fingerprint", Json::string(m.dataset_fingerprint)).set("code_version", Json::string(m.code_version));
    j.set("created", Json::string(m.created)).set("world_size", Json::integer(m.world_size));
    j.set("nonfinite_streak", Json::integer(m.nonfinite_streak));
    absl::StatusOr<Json> pos = Json::parse(m.resume_state, path + " resume_state");
    j.set("data_position", pos.ok() ? *pos : Json::string(m.resume_state));
    j.set("recipe", Json::string(m.recipe_yaml));
    Json tensors = Json::array();
    for (const TensorReport& r : reports) {
      Json t = Json::object(), shape = Json::array();
      for (int64_t d : r.shape) shape.push(Json::integer(d));
      t.set("group", Json::string(r.group)).set("name", Json::string(r.name)).set("shape", shape);
      t.set("dtype", Json::string(r.dtype)).set("bytes", Json::integer(r.bytes));
      t.set("min", Json::number(r.min)).set("max", Json::number(r.max)).set("mean", Json::number(r.mean));
      t.set("std", Json::number(r.std)).set("checksum_ok", Json::boolean(r.checksum_ok));
      tensors.push(t);
    }
    j.set("tensors", tensors).set("checksum_failures", Json::integer(bad));
    out << j.dump(2);
    return bad ? 1 : 0;
  }
  out << absl::StrFormat("checkpoint      %s\nstep            %d\nmodel           %s (%d parameters)\n", path, m.step,
                         m.model_name, m.parameter_count);
  out << absl::StrFormat("dataset         %s\ncode version    %s\ncreated         %s\nworld size      %d\n",
                         m.dataset_fingerprint, m.code_version, m.created, m.world_size);
  out << absl::StrFormat("seed            %d\nnon-finite run  %d\ndata position   %s\n", m.seed, m.nonfinite_streak,
                         m.resume_state);
  out << "recipe:\n";
  for (absl::string_view line : absl::StrSplit(m.recipe_yaml, '\n'))
    if (!line.empty()) out << "  " << line << "\n";
  out << absl::StrFormat("\n%-12s %-48s %-18s %-5s %12s %12s %12s %12s %12s  %s\n", "group", "tensor", "shape", "dtype",
                         "bytes", "min", "max", "mean", "std", "checksum");
  for (const TensorReport& r : reports)
    out << absl::StrFormat("%-12s %-48s %-18s %-5s %12d %12.5g %12.5g %12.5g %12.5g  %s\n", r.group, r.name,
                           r.shape.str(), r.dtype, r.bytes, r.min, r.max, r.mean, r.std, r.checksum_ok ? "ok" : "MISMATCH");
  out << absl::StrFormat("\n%d tensors, %d checksum mismatch(es)\n", reports.size(), bad);
  return bad ? 1 : 0;
}

int ckpt_verify(const std::string& path, std::ostream& out) {
  absl::StatusOr<Checkpoint> c = read_checkpoint(path, /*verify=*/true, nullptr, /*load_tensors=*/false);
  if (!c.ok()) {
    out << "INVALID: " << c.status().message() << "\n";
    return 1;
  }
  out << absl::StrFormat("valid: %s (step %d, every checksum matches)\n", path, c->meta.step);
  return 0;
}

int ckpt_diff(const std::string& a_path, const std::string& b_path, std::ostream& out) {
  absl::StatusOr<Checkpoint> a = read_checkpoint(a_path, true), b = read_checkpoint(b_path, true);
  if (!a.ok() || !b.ok()) {
    out << (a.ok() ? b.status().message() : a.status().message()) << "\n";
    return 2;
  }
  bool differ = false;
  out << absl::StrFormat("%-12s %-48s %14s %14s\n", "group", "tensor", "max |a-b|", "max rel");
  for (const auto& [group, tensors] : a->groups) {
    std::map<std::string, Tensor> other;
    for (const auto& [n, t] : b->groups[group]) other[n] = t;
    for (const auto& [name, ta] : tensors) {
      auto it = other.find(name);
      if (it == other.end()) {
        out << absl::StrFormat("%-12s %-48s only in %s\n", group, name, a_path);
        differ = true;
        continue;
      }
      const Tensor& tb = it->second;
      if (!(ta.shape() == tb.shape())) {
        out << absl::StrFormat("%-12s %-48s shapes differ: %s vs %s\n", group, name, ta.shape().str(), tb.shape().str());
        differ = true;
        other.erase(it);
        continue;
      }
      const float* pa = ta.data_ptr<float>();
      const float* pb = tb.data_ptr<float>();
      double max_abs = 0, max_rel = 0;
      for (int64_t i = 0; i < ta.numel(); ++i) {
        double d = std::fabs(double(pa[i]) - double(pb[i]));
        max_abs = std::max(max_abs, d);
        double den = std::max(std::fabs(double(pa[i])), std::fabs(double(pb[i])));
        if (den > 0) max_rel = std::max(max_rel, d / den);
      }
      if (max_abs > 0) differ = true;
      out << absl::StrFormat("%-12s %-48s %14.6g %14.6g\n", group, name, max_abs, max_rel);
      other.erase(it);
    }
    for (const auto& [name, t] : other) {
      out << absl::StrFormat("%-12s %-48s only in %s\n", group, name, b_path);
      differ = true;
    }
  }
  // recipe differences, line by line (keys are printed in a fixed order)
  std::vector<std::string> la = absl::StrSplit(a->meta.recipe_yaml, '\n'), lb = absl::StrSplit(b->meta.recipe_yaml, '\n');
  std::set<std::string> sa(la.begin(), la.end()), sb(lb.begin(), lb.end());
  out << "\nrecipe differences:\n";
  int n = 0;
  for (const std::string& l : la)
    if (!sb.count(l)) {
      out << "  - " << l << "\n";
      ++n;
    }
  for (const std::string& l : lb)
    if (!sa.count(l)) {
      out << "  + " << l << "\n";
      ++n;
    }
  if (n == 0) out << "  none\n";
  out << absl::StrFormat("\nstep %d vs %d; %s\n", a->meta.step, b->meta.step, differ ? "tensors differ" : "tensors identical");
  return differ ? 1 : 0;
}

}  // namespace drwkv::apps
