// Host implementation of kernels/embed.h (CPU backend and test oracle). The backward sums each table
// row's contributions from zero in position order and then writes or adds the sum, exactly the order of
// the CUDA kernels.
#include <cstring>
#include <vector>

#include "core/check.h"
#include "kernels/embed.h"

namespace drwkv::kernels {
namespace {
void check_id(int32_t id, int64_t pos, int64_t table_rows) {
  DRWKV_ASSERT(id >= 0 && id < table_rows, "embedding: id %d at position %lld is outside the table of %lld rows", id,
               (long long)pos, (long long)table_rows);
}
}  // namespace

template <typename T>
void embedding_forward_cpu(T* out, const T* table, const int32_t* ids, int64_t n, int64_t table_rows, int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    check_id(ids[i], i, table_rows);
    std::memcpy(out + i * C, table + int64_t(ids[i]) * C, size_t(C) * sizeof(T));
  }
}

template <typename T>
void embedding_backward_cpu(acc_t<T>* dtable, const T* dout, const int32_t* ids, int64_t n, int64_t table_rows,
                            int64_t C, bool accumulate, void* /*scratch*/) {
  using A = acc_t<T>;
  std::vector<A> sum(size_t(table_rows * C), A(0));
  for (int64_t i = 0; i < n; ++i) {
    check_id(ids[i], i, table_rows);
    A* row = sum.data() + int64_t(ids[i]) * C;
    for (int64_t c = 0; c < C; ++c) row[c] += load_as<A>(dout[i * C + c]);
  }
  for (int64_t k = 0; k < table_rows * C; ++k) dtable[k] = accumulate ? dtable[k] + sum[size_t(k)] : sum[size_t(k)];
}

#define INSTANTIATE(T)                                                                                         \
  template void embedding_forward_cpu<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);            \
  template void embedding_backward_cpu<T>(acc_t<T>*, const T*, const int32_t*, int64_t, int64_t, int64_t, bool, \
                                          void*);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)
#undef INSTANTIATE

}  // namespace drwkv::kernels
