// Command-line parsing for the programs: positional arguments and --flag value / --flag=value options
// checked against the flags a program declares (an unknown flag or a missing value is an error that
// names it).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace drwkv::apps {

struct CommandLine {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;   // without the leading "--"
  std::vector<std::string> repeated_set;      // every --set key=value, in order

  bool has(const std::string& f) const { return flags.count(f) > 0; }
  std::string get(const std::string& f, const std::string& fallback = "") const;
  absl::StatusOr<int64_t> get_int(const std::string& f, int64_t fallback) const;
  absl::StatusOr<double> get_double(const std::string& f, double fallback) const;
};

// `value_flags` take a value; `switch_flags` take none. --set is always repeated-value.
absl::StatusOr<CommandLine> parse_command_line(int argc, char** argv, const std::vector<std::string>& value_flags,
                                               const std::vector<std::string>& switch_flags = {});

}  // namespace drwkv::apps
