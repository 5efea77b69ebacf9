// MPI start-up and shutdown (dist/mpi_runtime.h).
#include "dist/mpi_runtime.h"

#include <cstdlib>
#include <mutex>

#include "dist/mpi_check.h"

namespace drwkv::dist {
namespace {
std::mutex g_mu;
bool g_we_initialized = false;
int g_provided = 0;
}  // namespace

absl::Status mpi_init() {
  std::lock_guard<std::mutex> lock(g_mu);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return absl::OkStatus();
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &g_provided);
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING] = {0};
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return absl::UnavailableError(absl::StrFormat(
        "MPI_Init_thread failed: %s (under srun, this MPI may need --mpi=pmix; or use DRWKV_RENDEZVOUS=file:DIR "
        "or tcp://HOST:PORT, which need no MPI)",
        msg));
  }
  g_we_initialized = true;
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  return absl::OkStatus();
}

bool mpi_initialized() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

bool mpi_thread_multiple() { return g_provided >= MPI_THREAD_MULTIPLE; }

void mpi_finalize() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_we_initialized && mpi_initialized()) MPI_Finalize();
  g_we_initialized = false;
}

int mpi_world_rank() {
  int r = 0;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &r));
  return r;
}

int mpi_world_size() {
  int w = 0;
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &w));
  return w;
}

std::string mpi_broadcast_bytes(const std::string& bytes, int root) {
  int n = int(bytes.size());
  MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT, root, MPI_COMM_WORLD));
  std::string out = bytes;
  out.resize(size_t(n));
  MPI_CHECK(MPI_Bcast(out.data(), n, MPI_BYTE, root, MPI_COMM_WORLD));
  return out;
}

int mpi_all_min(int v) {
  int out = 0;
  MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  return out;
}

void mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace drwkv::dist
