// Agreed step decisions and metrics (dist/agree.h).
#include "dist/agree.h"

#include <cmath>

#include "core/check.h"

namespace drwkv::dist {

AgreedStep agree_step(Communicator& comm, const LocalStepStats& local) {
  const size_t n = 2 + local.sums.size();
  std::vector<double> row(n);
  row[0] = local.grad_sq_sum;
  row[1] = (local.nonfinite || !std::isfinite(local.grad_sq_sum)) ? 1.0 : 0.0;
  for (size_t i = 0; i < local.sums.size(); ++i) row[2 + i] = local.sums[i];
  const int W = comm.world_size();
  std::vector<double> rows(n * size_t(W));
  comm.all_gather_host(row, rows);
  AgreedStep out;
  double sq = rows[0];  // rank 0's: the reduced gradients are the same everywhere
  if (local.grad_is_sharded) {
    for (int r = 1; r < W; ++r) sq = sq + rows[size_t(r) * n];
  }
  bool any_nonfinite = false;
  for (int r = 0; r < W; ++r) any_nonfinite = any_nonfinite || rows[size_t(r) * n + 1] != 0.0;
  out.grad_norm = std::sqrt(sq);
  out.skip = any_nonfinite || !std::isfinite(out.grad_norm);
  out.sums.resize(local.sums.size());
  for (size_t i = 0; i < local.sums.size(); ++i) {
    double s = rows[2 + i];
    for (int r = 1; r < W; ++r) s = s + rows[size_t(r) * n + 2 + i];
    out.sums[i] = s;
  }
  return out;
}

bool agree_any(Communicator& comm, bool local) { return comm.all_reduce_host(local ? 1.0 : 0.0, HostOp::Max) != 0.0; }

double agree_sum(Communicator& comm, double local) { return comm.all_reduce_host(local, HostOp::Sum); }

double clip_coefficient(double grad_norm, double max_norm) {
  if (max_norm <= 0 || !(grad_norm > max_norm)) return 1.0;
  return max_norm / grad_norm;
}

}  // namespace drwkv::dist
