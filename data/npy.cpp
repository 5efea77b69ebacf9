// .npy reader and writer (data/npy.h).
#include "data/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/dtype.h"
#include "core/status.h"
#include "data/file_util.h"

namespace drwkv::data {

namespace {
struct TypeInfo {
  NpyType type;
  const char* name;
  int size;
};
constexpr TypeInfo kTypes[] = {
    {NpyType::F16, "f2", 2}, {NpyType::F32, "f4", 4}, {NpyType::F64, "f8", 8}, {NpyType::U8, "u1", 1},
    {NpyType::I8, "i1", 1},  {NpyType::U16, "u2", 2}, {NpyType::I16, "i2", 2}, {NpyType::U32, "u4", 4},
    {NpyType::I32, "i4", 4}, {NpyType::U64, "u8", 8}, {NpyType::I64, "i8", 8}, {NpyType::Bool, "b1", 1},
};

absl::Status bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: not a valid .npy file: %s", path, what));
}

// A cursor over the header dict text: {'descr': '<f2', 'fortran_order': False, 'shape': (3, 4), }
class Header {
 public:
  explicit Header(std::string_view s) : s_(s) {}
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n')) ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool quoted(std::string& out) {
    ws();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) return false;
    char q = s_[i_++];
    size_t end = s_.find(q, i_);
    if (end == std::string_view::npos) return false;
    out = std::string(s_.substr(i_, end - i_));
    i_ = end + 1;
    return true;
  }
  bool word(std::string_view w) {
    ws();
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool integer(int64_t& v) {
    ws();
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    if (i_ == start || i_ - start > 18) return false;
    v = std::stoll(std::string(s_.substr(start, i_ - start)));
    return true;
  }
  bool at_end() {
    ws();
    return i_ == s_.size();
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};
}  // namespace

const char* npy_type_name(NpyType t) {
  for (const auto& e : kTypes)
    if (e.type == t) return e.name;
  return "?";
}
int npy_type_size(NpyType t) {
  for (const auto& e : kTypes)
    if (e.type == t) return e.size;
  return 0;
}
bool npy_type_is_float(NpyType t) { return t == NpyType::F16 || t == NpyType::F32 || t == NpyType::F64; }

NpyFile::~NpyFile() {
  if (fd_ >= 0) ::close(fd_);
}

int64_t NpyFile::row_elements() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

absl::StatusOr<std::unique_ptr<NpyFile>> NpyFile::open(const std::string& path) {
  std::unique_ptr<NpyFile> f(new NpyFile());
  f->path_ = path;
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrFormat("%s does not exist", path));
    return absl::UnavailableError(absl::StrFormat("cannot open %s: %s", path, errno_text()));
  }
  DRWKV_ASSIGN_OR_RETURN(int64_t size, file_size(path));
  unsigned char pre[12];
  if (size < 10 || ::pread(f->fd_, pre, 12, 0) < 10) return bad(path, "shorter than the 10-byte preamble");
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) return bad(path, "missing the \\x93NUMPY magic string");
  int major = pre[6];
  int64_t header_len, header_start;
  if (major == 1) {
    header_len = pre[8] | (pre[9] << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return bad(path, "truncated preamble");
    header_len = int64_t(pre[8]) | int64_t(pre[9]) << 8 | int64_t(pre[10]) << 16 | int64_t(pre[11]) << 24;
    header_start = 12;
  } else {
    return bad(path, absl::StrFormat("format version %d.%d is not supported (1.0, 2.0, 3.0 are)", major, pre[7]));
  }
  if (header_start + header_len > size) return bad(path, "header runs past the end of the file");
  std::string text(size_t(header_len), '\0');
  if (::pread(f->fd_, text.data(), size_t(header_len), header_start) != header_len) return bad(path, "cannot read the header");
  if (text.empty() || text.back() != '\n') return bad(path, "header does not end with a newline");

  Header h(text);
  std::string descr;
  bool have_descr = false, have_order = false, have_shape = false;
  if (!h.eat('{')) return bad(path, "header is not a dict");
  while (!h.eat('}')) {
    std::string key;
    if (!h.quoted(key) || !h.eat(':')) return bad(path, "malformed header dict");
    if (key == "descr" && !have_descr) {
      if (!h.quoted(descr)) return bad(path, "'descr' is not a string");
      have_descr = true;
    } else if (key == "fortran_order" && !have_order) {
      if (h.word("True")) return bad(path, "fortran_order arrays are not supported; save with np.ascontiguousarray");
      if (!h.word("False")) return bad(path, "'fortran_order' is not a boolean");
      have_order = true;
    } else if (key == "shape" && !have_shape) {
      if (!h.eat('(')) return bad(path, "'shape' is not a tuple");
      while (!h.eat(')')) {
        int64_t d;
        if (!h.integer(d)) return bad(path, "'shape' holds a non-integer");
        f->shape_.push_back(d);
        if (!h.eat(',')) {
          if (!h.eat(')')) return bad(path, "malformed 'shape' tuple");
          break;
        }
      }
      have_shape = true;
    } else {
      return bad(path, "unexpected or repeated header key '" + key + "'");
    }
    if (!h.eat(',')) {
      if (!h.eat('}')) return bad(path, "malformed header dict");
      break;
    }
  }
  if (!h.at_end()) return bad(path, "text after the header dict");
  if (!have_descr || !have_order || !have_shape) return bad(path, "header lacks 'descr', 'fortran_order' or 'shape'");
  if (descr.size() < 3 || (descr[0] != '<' && descr[0] != '|'))
    return bad(path, absl::StrFormat("dtype '%s' is not little-endian numeric (expected e.g. '<f2', '<f4', '|u1')", descr));
  bool found = false;
  for (const auto& e : kTypes) {
    if (descr.substr(1) == e.name && (e.size == 1 || descr[0] == '<')) {
      f->type_ = e.type;
      found = true;
    }
  }
  if (!found) return bad(path, absl::StrFormat("dtype '%s' is not supported (f2 f4 f8 u1 i1 u2 i2 u4 i4 u8 i8 b1)", descr));
  int64_t n = 1;
  for (int64_t d : f->shape_) n *= d;
  f->data_offset_ = header_start + header_len;
  int64_t want = f->data_offset_ + n * npy_type_size(f->type_);
  if (size != want)
    return bad(path, absl::StrFormat("file has %d bytes, but the header (%s, shape %d elements) needs %d", size, descr,
                                     n, want));
  return f;
}

absl::Status NpyFile::read_raw(int64_t first, int64_t count, void* dst) const {
  int64_t rb = row_elements() * npy_type_size(type_);
  if (first < 0 || count < 0 || first + count > rows())
    return absl::OutOfRangeError(absl::StrFormat("%s: rows [%d, %d) outside [0, %d)", path_, first, first + count, rows()));
  auto* p = static_cast<char*>(dst);
  int64_t off = data_offset_ + first * rb, left = count * rb;
  while (left > 0) {
    ssize_t r = ::pread(fd_, p, size_t(left), off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return absl::DataLossError(absl::StrFormat("%s: read failed at byte %d: %s", path_, off, r == 0 ? "end of file" : errno_text()));
    p += r;
    off += r;
    left -= r;
  }
  return absl::OkStatus();
}

namespace {
template <typename T>
void convert(const unsigned char* src, int64_t n, T* dst, NpyType t) {
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* p = src + i * npy_type_size(t);
    switch (t) {
      case NpyType::F16: { uint16_t v; std::memcpy(&v, p, 2); dst[i] = T(f16::to_float(v)); break; }
      case NpyType::F32: { float v; std::memcpy(&v, p, 4); dst[i] = T(v); break; }
      case NpyType::F64: { double v; std::memcpy(&v, p, 8); dst[i] = T(v); break; }
      case NpyType::U8: dst[i] = T(*p); break;
      case NpyType::I8: dst[i] = T(int8_t(*p)); break;
      case NpyType::Bool: dst[i] = T(*p != 0); break;
      case NpyType::U16: { uint16_t v; std::memcpy(&v, p, 2); dst[i] = T(v); break; }
      case NpyType::I16: { int16_t v; std::memcpy(&v, p, 2); dst[i] = T(v); break; }
      case NpyType::U32: { uint32_t v; std::memcpy(&v, p, 4); dst[i] = T(v); break; }
      case NpyType::I32: { int32_t v; std::memcpy(&v, p, 4); dst[i] = T(v); break; }
      case NpyType::U64: { uint64_t v; std::memcpy(&v, p, 8); dst[i] = T(v); break; }
      case NpyType::I64: { int64_t v; std::memcpy(&v, p, 8); dst[i] = T(v); break; }
    }
  }
}
}  // namespace

absl::Status NpyFile::read_f32(int64_t first, int64_t count, float* dst) const {
  std::vector<unsigned char> raw(size_t(count * row_elements() * npy_type_size(type_)));
  DRWKV_RETURN_IF_ERROR(read_raw(first, count, raw.data()));
  convert(raw.data(), count * row_elements(), dst, type_);
  return absl::OkStatus();
}

absl::Status NpyFile::read_i64(int64_t first, int64_t count, int64_t* dst) const {
  if (npy_type_is_float(type_))
    return absl::InvalidArgumentError(absl::StrFormat("%s holds %s floats, expected integers", path_, npy_type_name(type_)));
  if (type_ == NpyType::U64) {
    std::vector<uint64_t> tmp(static_cast<size_t>(count * row_elements()));
    DRWKV_RETURN_IF_ERROR(read_raw(first, count, tmp.data()));
    for (size_t i = 0; i < tmp.size(); ++i) {
      if (tmp[i] > uint64_t(INT64_MAX))
        return absl::OutOfRangeError(absl::StrFormat("%s: value %d does not fit int64", path_, tmp[i]));
      dst[i] = int64_t(tmp[i]);
    }
    return absl::OkStatus();
  }
  std::vector<unsigned char> raw(size_t(count * row_elements() * npy_type_size(type_)));
  DRWKV_RETURN_IF_ERROR(read_raw(first, count, raw.data()));
  convert(raw.data(), count * row_elements(), dst, type_);
  return absl::OkStatus();
}

absl::Status write_npy(const std::string& path, NpyType type, const std::vector<int64_t>& shape, const void* data) {
  std::string dims;
  int64_t n = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ", ";
    n *= d;
  }
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  int size = npy_type_size(type);
  std::string header = absl::StrFormat("{'descr': '%c%s', 'fortran_order': False, 'shape': (%s), }",
                                       size == 1 ? '|' : '<', npy_type_name(type), dims);
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += char(1);
  bytes += char(0);
  bytes += char(header.size() & 0xff);
  bytes += char(header.size() >> 8);
  bytes += header;
  bytes.append(static_cast<const char*>(data), size_t(n * size));
  return write_file_atomic(path, bytes);
}

}  // namespace drwkv::data
