// NCCL_CHECK: every NCCL call of dist/ goes through it. Include only from dist/*_cuda.cpp (it needs
// <nccl.h>): a failing call ends in drwkv::fail with the rank, file:line, the statement, NCCL's error
// string and its last detailed message; the fatal hook then aborts every rank.
#pragma once

#include <nccl.h>

#include "core/check.h"
#include "core/log.h"

#define NCCL_CHECK(call)                                                                                  \
  do {                                                                                                    \
    ncclResult_t drwkv_nccl_rc_ = (call);                                                                 \
    if (drwkv_nccl_rc_ != ncclSuccess && drwkv_nccl_rc_ != ncclInProgress) {                              \
      ::drwkv::fail(__FILE__, __LINE__, #call,                                                            \
                    ::drwkv::strprintf("NCCL error on rank %d: %s (%s)", ::drwkv::log_rank(),             \
                                       ncclGetErrorString(drwkv_nccl_rc_), ncclGetLastError(nullptr)));   \
    }                                                                                                     \
  } while (0)
