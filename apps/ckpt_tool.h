// The commands of drwkv_ckpt (inspect, verify, diff) as functions over a checkpoint path, so tests can
// call them: each writes its report to `out` and returns the process exit status.
#pragma once

#include <ostream>
#include <string>

namespace drwkv::apps {

// Resolved recipe, step, data position, dataset fingerprint, code version, and every tensor (name,
// shape, dtype, bytes, min/max/mean/std, checksum status); `json` gives the same as one JSON object.
int ckpt_inspect(const std::string& path, bool json, std::ostream& out);
// Checks the structure and every checksum; 0 = valid, 1 = invalid (the reason is printed).
int ckpt_verify(const std::string& path, std::ostream& out);
// Per-tensor max absolute and relative difference, tensors present in only one file, recipe lines that
// differ; 0 = identical tensors, 1 = differences found, 2 = a file could not be read.
int ckpt_diff(const std::string& a, const std::string& b, std::ostream& out);

}  // namespace drwkv::apps
