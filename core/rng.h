// Reproducible random fills from the Philox generator (core/philox.h): the same (seed, stream, offset)
// gives bit-identical numbers on the host and on any CUDA device, whatever the launch configuration.
//
// `stream` separates independent purposes (a per-sample key for noise, another for timesteps, ...);
// `offset` is in Philox blocks (4 numbers each), so consecutive fills of one stream should advance it by
// ceil(n / 4). Fills write f32, bf16, f16 or f64 tensors (values computed in f32/f64 then rounded).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace drwkv {

void rng_uniform_(Tensor& t, uint64_t seed, uint64_t stream, uint64_t offset = 0);
void rng_normal_(Tensor& t, uint64_t seed, uint64_t stream, uint64_t offset = 0, double mean = 0.0,
                 double std_dev = 1.0);

// t is [R, ...]: row r is filled with standard normals of stream row_streams[r] from offset 0.
void rng_normal_rows_(Tensor& t, uint64_t seed, const std::vector<uint64_t>& row_streams);

// Mixes several 64-bit values into one well-spread 64-bit key (SplitMix64 finaliser chain), used to
// derive per-sample streams such as hash(epoch, sample index, purpose).
uint64_t rng_mix(std::initializer_list<uint64_t> values);

}  // namespace drwkv
