// A minimal reader and writer of NumPy .npy files (format versions 1.0, 2.0, 3.0), for the packers.
//
// Contract: open() validates strictly and returns a Status naming the file: the magic string, the
// version, the header dict (exactly the keys 'descr', 'fortran_order', 'shape'; fortran_order False;
// a little-endian or byte-order-free numeric descr among f2 f4 f8 u1 i1 u2 i2 u4 i4 u8 i8 b1), and the
// file size = header + product(shape) × itemsize. Rows (along dim 0) are read with pread, so files
// larger than memory can be packed row by row. Conversions: to f32 (floats and integers) and to i64
// (integers and booleans only).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace drwkv::data {

enum class NpyType : uint8_t { F16, F32, F64, U8, I8, U16, I16, U32, I32, U64, I64, Bool };

const char* npy_type_name(NpyType t);  // "f2", "f4", ... as in the descr, without byte order
int npy_type_size(NpyType t);
bool npy_type_is_float(NpyType t);

class NpyFile {
 public:
  static absl::StatusOr<std::unique_ptr<NpyFile>> open(const std::string& path);
  ~NpyFile();

  const std::string& path() const { return path_; }
  NpyType type() const { return type_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t rows() const { return shape_.empty() ? 1 : shape_[0]; }
  int64_t row_elements() const;  // product of shape[1:]

  // Raw bytes of rows [first, first + count) into dst.
  absl::Status read_raw(int64_t first, int64_t count, void* dst) const;
  // The same rows converted to f32 / i64 (i64 fails for float files).
  absl::Status read_f32(int64_t first, int64_t count, float* dst) const;
  absl::Status read_i64(int64_t first, int64_t count, int64_t* dst) const;

 private:
  NpyFile() = default;
  std::string path_;
  int fd_ = -1;
  NpyType type_ = NpyType::F32;
  std::vector<int64_t> shape_;
  int64_t data_offset_ = 0;
};

// Writes a C-order little-endian array (format 1.0); `data` holds product(shape) elements. Atomic.
absl::Status write_npy(const std::string& path, NpyType type, const std::vector<int64_t>& shape, const void* data);

}  // namespace drwkv::data
