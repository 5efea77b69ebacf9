// MPI start-up and shutdown for the process, and the few MPI calls the bootstrap needs, without
// exposing <mpi.h> to callers.
//
// mpi_init() asks for MPI_THREAD_MULTIPLE: the MPI communicator's thread makes the collectives while
// the watchdog thread may call MPI_Abort. With a lower level (an MPI built without it) the run still
// works, and the watchdog exits the process instead of calling MPI_Abort.
#pragma once

#include <string>

#include "core/status.h"

namespace drwkv::dist {

// Idempotent. Error when MPI cannot start (e.g. srun without PMI support for this MPI).
absl::Status mpi_init();
bool mpi_initialized();
bool mpi_thread_multiple();
// Idempotent; call after every MPI communicator is destroyed.
void mpi_finalize();

int mpi_world_rank();
int mpi_world_size();
// Root's bytes on every rank (MPI_COMM_WORLD; start-up only, before a communicator thread exists).
std::string mpi_broadcast_bytes(const std::string& bytes, int root);
// The minimum of `v` over MPI_COMM_WORLD (start-up only).
int mpi_all_min(int v);
// Ends the whole MPI job with `code` (MPI_Abort on MPI_COMM_WORLD).
[[noreturn]] void mpi_abort(int code);

}  // namespace drwkv::dist
