// The smallest DRWKV configuration the CPU model tests run: 3 blocks of width 8 over 3×3 tokens (so
// every parameter's length leaves an alignment gap in the flat buffers), 3 classes and the null class.
#pragma once

#include "models/drwkv.h"

namespace drwkv::models {

inline DrwkvConfig tiny_drwkv() {
  DrwkvConfig c;
  c.depth = 3;
  c.width = 8;
  c.patch = 2;
  c.in_channels = 2;
  c.image_size = 6;  // 3×3 tokens: non-square grids are exercised by the kernel tests
  c.num_classes = 3;
  c.hidden_rate = 2;
  return c;
}

}  // namespace drwkv::models
