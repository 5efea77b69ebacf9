// Bidirectional WKV (MODEL.md §2) as a differentiable op over kernels/bi_wkv.h.
#pragma once

#include "autograd/variable.h"

namespace drwkv::autograd {

enum class BiWkvVariant : uint8_t {
  Exact,           // definition §2.1 with exact gradients (FOLLOW)
  OfficialCompat,  // the official kernel's weights (§2.6) and their true gradient: parity checks only
};

// y[b, t, c] = BiWKV(w = decay[c] / T, u = first[c] / T, k[b, :, c], v[b, :, c])[t].
// k, v, y: [B, T, C] (bf16 or f32; computed in f32); decay, first: [C] f32 parameters whose gradients
// (summed over batch and tokens, divided by T) accumulate into their gradient buffers, deterministically.
Variable bi_wkv(const Variable& decay, const Variable& first, const Variable& k, const Variable& v,
                BiWkvVariant variant = BiWkvVariant::Exact);

}  // namespace drwkv::autograd
