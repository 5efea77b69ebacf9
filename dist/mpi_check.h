// MPI_CHECK: every MPI call of dist/ goes through it. Include only from dist/ sources (it needs <mpi.h>).
//
// Communicators created by dist/ use MPI_ERRORS_RETURN, so a failing call returns its code here and
// ends in drwkv::fail with the rank, file:line, the statement and MPI's error string; the fatal hook of
// a distributed run then aborts every rank (MPI_Abort).
#pragma once

#include <mpi.h>

#include "core/check.h"
#include "core/log.h"

#define MPI_CHECK(call)                                                                                   \
  do {                                                                                                    \
    int drwkv_mpi_rc_ = (call);                                                                           \
    if (drwkv_mpi_rc_ != MPI_SUCCESS) {                                                                   \
      char drwkv_mpi_msg_[MPI_MAX_ERROR_STRING] = {0};                                                    \
      int drwkv_mpi_len_ = 0;                                                                             \
      MPI_Error_string(drwkv_mpi_rc_, drwkv_mpi_msg_, &drwkv_mpi_len_);                                   \
      ::drwkv::fail(__FILE__, __LINE__, #call,                                                            \
                    ::drwkv::strprintf("MPI error on rank %d: %s", ::drwkv::log_rank(), drwkv_mpi_msg_)); \
    }                                                                                                     \
  } while (0)
