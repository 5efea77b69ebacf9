// Rank-aware logging to stderr: "[drwkv r3/8 12:00:01] message". Single-process runs omit the rank.
// log_info prints on every rank; log_info0 only on rank 0 (progress lines, config dumps).
#pragma once

namespace drwkv {

void set_log_rank(int rank, int world_size);
int log_rank();
int log_world_size();

void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info0(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Prefix used by log lines and fatal errors, e.g. "[drwkv r1/2 10:11:12]".
const char* log_prefix(char* buf, int size);

}  // namespace drwkv
