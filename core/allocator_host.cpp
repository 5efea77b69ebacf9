// 64-byte aligned host memory (core/allocator.h).
#include <cstdlib>

#include "core/allocator.h"
#include "core/check.h"

namespace drwkv {
void* host_allocate(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  DRWKV_ASSERT(p != nullptr, "host allocation of %zu bytes failed", bytes);
  return p;
}
void host_release(void* ptr) { std::free(ptr); }
}  // namespace drwkv
