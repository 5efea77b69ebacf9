// Rank-order reductions on the host: the arithmetic of the MPI backend and of the agreed host scalars.
//
// reduce_blocks: out[i] = op over r = 0..W-1 of block r's element i, accumulated in acc_t of the dtype
// (f32 for f32 and bf16, f64 for f64, the integer itself for i32/i64) strictly in rank order,
// ((b_0 + b_1) + b_2) + ..., then (Avg) divided by W, then rounded once to the element type.
// The same inputs give the same bits on every machine: this is the reference the dist tests compare
// against.
#pragma once

#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "dist/communicator.h"

namespace drwkv::dist {

// `blocks`: W consecutive blocks of n elements of `dtype`; `out`: n elements (may alias block 0).
void reduce_blocks(const void* blocks, int world, int64_t n, DType dtype, ReduceOp op, void* out);

// Element-wise reduction of W consecutive rows of n doubles, in rank order.
void reduce_host_rows(std::span<const double> rows, int world, std::span<const HostOp> ops, std::span<double> out);

}  // namespace drwkv::dist
