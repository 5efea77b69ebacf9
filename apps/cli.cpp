// Command-line parsing (apps/cli.h).
#include "apps/cli.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace drwkv::apps {

std::string CommandLine::get(const std::string& f, const std::string& fallback) const {
  auto it = flags.find(f);
  return it == flags.end() ? fallback : it->second;
}

absl::StatusOr<int64_t> CommandLine::get_int(const std::string& f, int64_t fallback) const {
  if (!has(f)) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(get(f), &v)) return absl::InvalidArgumentError(absl::StrFormat("--%s %s: expected an integer", f, get(f)));
  return v;
}

absl::StatusOr<double> CommandLine::get_double(const std::string& f, double fallback) const {
  if (!has(f)) return fallback;
  double v = 0;
  if (!absl::SimpleAtod(get(f), &v)) return absl::InvalidArgumentError(absl::StrFormat("--%s %s: expected a number", f, get(f)));
  return v;
}

absl::StatusOr<CommandLine> parse_command_line(int argc, char** argv, const std::vector<std::string>& value_flags,
                                               const std::vector<std::string>& switch_flags) {
  CommandLine cl;
  auto takes_value = [&](const std::string& f) { return f == "set" || std::count(value_flags.begin(), value_flags.end(), f); };
  auto is_switch = [&](const std::string& f) { return std::count(switch_flags.begin(), switch_flags.end(), f) > 0; };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      cl.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (is_switch(name) && !inline_value) {
      cl.flags[name] = "true";
      continue;
    }
    if (!takes_value(name)) {
      std::vector<std::string> all = value_flags;
      all.insert(all.end(), switch_flags.begin(), switch_flags.end());
      all.push_back("set");
      return absl::InvalidArgumentError(absl::StrFormat("unknown flag --%s (valid: --%s)", name, absl::StrJoin(all, ", --")));
    }
    if (!inline_value) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrFormat("flag --%s needs a value", name));
      value = argv[++i];
    }
    if (name == "set") {
      cl.repeated_set.push_back(value);
    } else {
      cl.flags[name] = value;
    }
  }
  return cl;
}

}  // namespace drwkv::apps
