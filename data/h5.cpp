// HDF5 helpers (data/h5.h).
#include "data/h5.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "core/status.h"

namespace drwkv::data {

namespace {
herr_t collect_error(unsigned n, const H5E_error2_t* e, void* out) {
  auto* text = static_cast<std::string*>(out);
  char minor[256] = {0};
  H5Eget_msg(e->min_num, nullptr, minor, sizeof(minor));
  if (n > 0) *text += "; ";
  *text += absl::StrFormat("%s: %s%s%s", e->func_name ? e->func_name : "?", e->desc ? e->desc : "",
                           minor[0] ? " - " : "", minor);
  return 0;
}
}  // namespace

std::string h5_error_text() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? "no HDF5 error recorded" : text;
}

void h5_silence() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void H5Id::reset() {
  if (id_ >= 0) H5Idec_ref(id_);
  id_ = H5I_INVALID_HID;
}

// ---- element types -------------------------------------------------------------------------------
int elem_size(Elem e) {
  switch (e) {
    case Elem::U8: return 1;
    case Elem::U16: return 2;
    case Elem::I32: return 4;
    case Elem::U64: return 8;
    case Elem::F16: return 2;
    case Elem::BF16: return 2;
    case Elem::F32: return 4;
  }
  return 0;
}

const char* elem_name(Elem e) {
  switch (e) {
    case Elem::U8: return "u8";
    case Elem::U16: return "u16";
    case Elem::I32: return "i32";
    case Elem::U64: return "u64";
    case Elem::F16: return "f16";
    case Elem::BF16: return "bf16";
    case Elem::F32: return "f32";
  }
  return "?";
}

DType elem_dtype(Elem e) {
  switch (e) {
    case Elem::U8: return DType::U8;
    case Elem::U16: return DType::I32;
    case Elem::I32: return DType::I32;
    case Elem::F16: return DType::F16;
    case Elem::BF16: return DType::BF16;
    case Elem::F32: return DType::F32;
    case Elem::U64: break;
  }
  DRWKV_FAIL("elem_dtype: %s has no tensor dtype", elem_name(e));
}

namespace {
H5Id half_type(size_t epos, size_t esize, size_t msize, size_t ebias) {
  H5Id t(H5_CHECK(H5Tcopy(H5T_IEEE_F32LE)));
  H5_CHECK(H5Tset_fields(t.get(), 15, epos, esize, 0, msize));
  H5_CHECK(H5Tset_size(t.get(), 2));
  H5_CHECK(H5Tset_ebias(t.get(), ebias));
  return t;
}
}  // namespace

H5Id h5_type(Elem e) {
  switch (e) {
    case Elem::U8: return H5Id(H5_CHECK(H5Tcopy(H5T_STD_U8LE)));
    case Elem::U16: return H5Id(H5_CHECK(H5Tcopy(H5T_STD_U16LE)));
    case Elem::I32: return H5Id(H5_CHECK(H5Tcopy(H5T_STD_I32LE)));
    case Elem::U64: return H5Id(H5_CHECK(H5Tcopy(H5T_STD_U64LE)));
    case Elem::F16: return half_type(10, 5, 10, 15);
    case Elem::BF16: return half_type(7, 8, 7, 127);
    case Elem::F32: return H5Id(H5_CHECK(H5Tcopy(H5T_IEEE_F32LE)));
  }
  DRWKV_FAIL("h5_type: unknown element type");
}

absl::StatusOr<Elem> h5_classify(hid_t type, const std::string& what) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  bool le = size == 1 || H5Tget_order(type) == H5T_ORDER_LE;
  bool full = H5Tget_precision(type) == 8 * size && H5Tget_offset(type) == 0;
  if (cls == H5T_INTEGER && le && full) {
    bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    if (size == 1 && !is_signed) return Elem::U8;
    if (size == 2 && !is_signed) return Elem::U16;
    if (size == 4 && is_signed) return Elem::I32;
    if (size == 8 && !is_signed) return Elem::U64;
  }
  if (cls == H5T_FLOAT && le && full) {
    size_t spos, epos, esize, mpos, msize;
    H5_CHECK(H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize));
    size_t ebias = H5Tget_ebias(type);
    if (size == 2 && spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && ebias == 15)
      return Elem::F16;
    if (size == 2 && spos == 15 && epos == 7 && esize == 8 && mpos == 0 && msize == 7 && ebias == 127)
      return Elem::BF16;
    if (size == 4 && spos == 31 && epos == 23 && esize == 8 && mpos == 0 && msize == 23 && ebias == 127)
      return Elem::F32;
  }
  const char* cls_name = cls == H5T_INTEGER ? "integer" : cls == H5T_FLOAT ? "float" : cls == H5T_STRING ? "string"
                                                                                                         : "other";
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s has an unsupported HDF5 type (%s, %zu bytes, %s-endian); expected one of u8, u16 LE, i32 LE, u64 LE, "
      "f16 '<f2', bf16, f32 LE",
      what, cls_name, size, le ? "little" : "big"));
}

// ---- attributes ------------------------------------------------------------------------------------
namespace {
void write_scalar(hid_t obj, const char* name, hid_t type, const void* value) {
  H5Id space(H5_CHECK(H5Screate(H5S_SCALAR)));
  H5Id attr(H5_CHECK(H5Acreate2(obj, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT)));
  H5_CHECK(H5Awrite(attr.get(), type, value));
}

absl::StatusOr<H5Id> open_attr(hid_t obj, const std::string& where, const char* name) {
  htri_t exists = H5Aexists(obj, name);
  if (exists < 0) return absl::InternalError(absl::StrFormat("%s: cannot query attribute '%s': %s", where, name,
                                                             h5_error_text()));
  if (exists == 0) return absl::NotFoundError(absl::StrFormat("%s: missing attribute '%s'", where, name));
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return absl::DataLossError(absl::StrFormat("%s: cannot open attribute '%s': %s", where, name,
                                                        h5_error_text()));
  return H5Id(a);
}

// Number of elements of the attribute's dataspace (1 for scalars).
int64_t attr_points(hid_t attr) {
  H5Id space(H5_CHECK(H5Aget_space(attr)));
  return int64_t(H5_CHECK(H5Sget_simple_extent_npoints(space.get())));
}

absl::Status expect_class(hid_t attr, H5T_class_t want, const std::string& where, const char* name,
                          const char* want_name, bool scalar) {
  H5Id type(H5_CHECK(H5Aget_type(attr)));
  if (H5Tget_class(type.get()) != want)
    return absl::InvalidArgumentError(absl::StrFormat("%s: attribute '%s' is not %s", where, name, want_name));
  if (scalar && attr_points(attr) != 1)
    return absl::InvalidArgumentError(absl::StrFormat("%s: attribute '%s' has %lld elements, expected a scalar",
                                                      where, name, (long long)attr_points(attr)));
  return absl::OkStatus();
}
}  // namespace

void h5_write_attr(hid_t obj, const char* name, int64_t value) { write_scalar(obj, name, H5T_STD_I64LE, &value); }
void h5_write_attr(hid_t obj, const char* name, double value) { write_scalar(obj, name, H5T_IEEE_F64LE, &value); }

void h5_write_attr(hid_t obj, const char* name, const std::string& value) {
  H5Id type(H5_CHECK(H5Tcopy(H5T_C_S1)));
  H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE));
  H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  const char* p = value.c_str();
  write_scalar(obj, name, type.get(), &p);
}

void h5_write_attr(hid_t obj, const char* name, const std::vector<int64_t>& values) {
  hsize_t n = values.size();
  H5Id space(H5_CHECK(H5Screate_simple(1, &n, nullptr)));
  H5Id attr(H5_CHECK(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT)));
  H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, values.data()));
}

bool h5_has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

absl::StatusOr<int64_t> h5_read_attr_i64(hid_t obj, const std::string& where, const char* name) {
  DRWKV_ASSIGN_OR_RETURN(H5Id attr, open_attr(obj, where, name));
  DRWKV_RETURN_IF_ERROR(expect_class(attr.get(), H5T_INTEGER, where, name, "an integer", true));
  int64_t v = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, &v) < 0)
    return absl::DataLossError(absl::StrFormat("%s: cannot read attribute '%s': %s", where, name, h5_error_text()));
  return v;
}

absl::StatusOr<double> h5_read_attr_f64(hid_t obj, const std::string& where, const char* name) {
  DRWKV_ASSIGN_OR_RETURN(H5Id attr, open_attr(obj, where, name));
  H5Id type(H5_CHECK(H5Aget_type(attr.get())));
  H5T_class_t cls = H5Tget_class(type.get());
  if ((cls != H5T_FLOAT && cls != H5T_INTEGER) || attr_points(attr.get()) != 1)
    return absl::InvalidArgumentError(absl::StrFormat("%s: attribute '%s' is not a numeric scalar", where, name));
  double v = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v) < 0)
    return absl::DataLossError(absl::StrFormat("%s: cannot read attribute '%s': %s", where, name, h5_error_text()));
  return v;
}

absl::StatusOr<std::string> h5_read_attr_str(hid_t obj, const std::string& where, const char* name) {
  DRWKV_ASSIGN_OR_RETURN(H5Id attr, open_attr(obj, where, name));
  DRWKV_RETURN_IF_ERROR(expect_class(attr.get(), H5T_STRING, where, name, "a string", true));
  H5Id ftype(H5_CHECK(H5Aget_type(attr.get())));
  H5Id mtype(H5_CHECK(H5Tcopy(H5T_C_S1)));
  H5_CHECK(H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())));  // UTF-8 and ASCII do not convert
  if (H5_CHECK(H5Tis_variable_str(ftype.get())) > 0) {
    H5_CHECK(H5Tset_size(mtype.get(), H5T_VARIABLE));
    char* p = nullptr;
    if (H5Aread(attr.get(), mtype.get(), &p) < 0)
      return absl::DataLossError(absl::StrFormat("%s: cannot read attribute '%s': %s", where, name, h5_error_text()));
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  size_t n = H5Tget_size(ftype.get());
  std::string s(n + 1, '\0');
  H5_CHECK(H5Tset_size(mtype.get(), n + 1));
  if (H5Aread(attr.get(), mtype.get(), s.data()) < 0)
    return absl::DataLossError(absl::StrFormat("%s: cannot read attribute '%s': %s", where, name, h5_error_text()));
  s.resize(std::strlen(s.c_str()));
  return s;
}

absl::StatusOr<std::vector<int64_t>> h5_read_attr_i64s(hid_t obj, const std::string& where, const char* name) {
  DRWKV_ASSIGN_OR_RETURN(H5Id attr, open_attr(obj, where, name));
  DRWKV_RETURN_IF_ERROR(expect_class(attr.get(), H5T_INTEGER, where, name, "an integer array", false));
  std::vector<int64_t> v(size_t(attr_points(attr.get())));
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, v.data()) < 0)
    return absl::DataLossError(absl::StrFormat("%s: cannot read attribute '%s': %s", where, name, h5_error_text()));
  return v;
}

std::vector<int64_t> h5_dataset_shape(hid_t dset) {
  H5Id space(H5_CHECK(H5Dget_space(dset)));
  int rank = H5_CHECK(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
  return std::vector<int64_t>(dims.begin(), dims.end());
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace drwkv::data
