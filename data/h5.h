// HDF5 helpers of the data package: the H5_CHECK macro, an owning handle, the element types a shard
// stores (with the f16/bf16 file types built by hand, since HDF5 1.10 has no native half type) and
// typed attribute I/O.
//
// Contract: H5_CHECK wraps HDF5 calls whose failure is a programming error (a call on a handle we just
// created); it ends in drwkv::fail with the thread's HDF5 error stack. Anything that can fail because of
// a user's file (missing attribute, wrong type) goes through the StatusOr readers below, whose messages
// name the file, the object and what was expected. Every thread that calls HDF5 calls h5_silence() first
// so that HDF5 does not print its own stack to stderr (the stack is per thread in the thread-safe build).
//
// f16 is stored exactly as h5py writes numpy '<f2' (DATA.md "Facts"): a copy of H5T_IEEE_F32LE with
// fields (sign 15, exponent 10 +5, mantissa 0 +10), size 2, exponent bias 15. bf16 is the same recipe with
// fields (15, 7 +8, 0 +7), bias 127.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/check.h"
#include "core/dtype.h"

namespace drwkv::data {

// The current thread's HDF5 error stack as text ("H5Fopen: unable to open file; ..."), innermost first.
std::string h5_error_text();
// Disables HDF5's automatic error printing on this thread (idempotent, cheap).
void h5_silence();

template <typename T>
T h5_checked(T result, const char* file, int line, const char* statement) {
  if (result < 0) ::drwkv::fail(file, line, statement, "HDF5 error: " + h5_error_text());
  return result;
}

}  // namespace drwkv::data

// Evaluates an HDF5 call (hid_t, herr_t or htri_t), fails on a negative result, yields the result.
#define H5_CHECK(call) ::drwkv::data::h5_checked((call), __FILE__, __LINE__, #call)

namespace drwkv::data {

// Owns one HDF5 identifier (file, group, dataset, dataspace, datatype, property list, attribute) and
// releases it with H5Idec_ref. Move-only.
class H5Id {
 public:
  H5Id() = default;
  explicit H5Id(hid_t id) : id_(id) {}
  ~H5Id() { reset(); }
  H5Id(H5Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }  // the caller closes it
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Element types of shard datasets (a superset of the tensor dtypes: u16 lengths, u64 ids and offsets).
enum class Elem : uint8_t { U8, U16, I32, U64, F16, BF16, F32 };

int elem_size(Elem e);
const char* elem_name(Elem e);
// The tensor dtype a loaded column becomes (u16 -> i32; u64 has no tensor dtype and fails).
DType elem_dtype(Elem e);
// Little-endian file type (a new identifier the caller owns); the same type serves as memory type on
// the little-endian hosts we support.
H5Id h5_type(Elem e);
// What a dataset's file type is, or an error naming `what` and the type's properties when it is none of
// the Elem types (e.g. big-endian data, a 3-byte integer, a half type with other fields).
absl::StatusOr<Elem> h5_classify(hid_t type, const std::string& what);

// ---- attributes (scalar, on a file or group) ---------------------------------------------------------
void h5_write_attr(hid_t obj, const char* name, int64_t value);
void h5_write_attr(hid_t obj, const char* name, double value);
void h5_write_attr(hid_t obj, const char* name, const std::string& value);  // variable-length UTF-8
void h5_write_attr(hid_t obj, const char* name, const std::vector<int64_t>& values);  // 1-D i64

bool h5_has_attr(hid_t obj, const char* name);
// `where` names the file (and group) for messages: "shard /d/shard-00000-of-00002.h5".
absl::StatusOr<int64_t> h5_read_attr_i64(hid_t obj, const std::string& where, const char* name);
absl::StatusOr<double> h5_read_attr_f64(hid_t obj, const std::string& where, const char* name);
absl::StatusOr<std::string> h5_read_attr_str(hid_t obj, const std::string& where, const char* name);
absl::StatusOr<std::vector<int64_t>> h5_read_attr_i64s(hid_t obj, const std::string& where, const char* name);

// Shape of a dataset's (simple) dataspace.
std::vector<int64_t> h5_dataset_shape(hid_t dset);
std::string shape_str(const std::vector<int64_t>& shape);  // "[8, 4, 32, 32]"

}  // namespace drwkv::data
