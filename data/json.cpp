// JSON value, parser and printer (data/json.h).
#include "data/json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_format.h"

namespace drwkv::data {

Json Json::boolean(bool v) {
  Json j;
  j.type_ = Type::Bool;
  j.b_ = v;
  return j;
}
Json Json::integer(int64_t v) {
  Json j;
  j.type_ = Type::Number;
  j.is_int_ = true;
  j.i_ = v;
  return j;
}
Json Json::number(double v) {
  Json j;
  j.type_ = Type::Number;
  j.d_ = v;
  return j;
}
Json Json::string(std::string v) {
  Json j;
  j.type_ = Type::String;
  j.s_ = std::move(v);
  return j;
}
Json Json::array() {
  Json j;
  j.type_ = Type::Array;
  return j;
}
Json Json::object() {
  Json j;
  j.type_ = Type::Object;
  return j;
}

const Json* Json::find(std::string_view key) const {
  for (const auto& [k, v] : members_)
    if (k == key) return &v;
  return nullptr;
}

Json& Json::set(const std::string& key, Json v) {
  for (auto& [k, old] : members_) {
    if (k == key) {
      old = std::move(v);
      return *this;
    }
  }
  members_.emplace_back(key, std::move(v));
  return *this;
}

Json& Json::push(Json v) {
  items_.push_back(std::move(v));
  return *this;
}

const char* json_type_name(Json::Type t) {
  switch (t) {
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return "a boolean";
    case Json::Type::Number: return "a number";
    case Json::Type::String: return "a string";
    case Json::Type::Array: return "an array";
    case Json::Type::Object: return "an object";
  }
  return "?";
}

// ---- printing ------------------------------------------------------------------------------------
namespace {
void dump_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}
void newline(std::string& out, int indent, int level) {
  if (indent <= 0) return;
  out += '\n';
  out.append(size_t(indent * level), ' ');
}
}  // namespace

void Json::dump_to(std::string& out, int indent, int level) const {
  switch (type_) {
    case Type::Null: out += "null"; return;
    case Type::Bool: out += b_ ? "true" : "false"; return;
    case Type::Number:
      if (is_int_) {
        out += std::to_string(i_);
      } else if (std::isfinite(d_)) {
        out += absl::StrFormat("%.17g", d_);
      } else {
        out += "null";  // JSON has no inf/NaN
      }
      return;
    case Type::String: dump_string(out, s_); return;
    case Type::Array:
      if (items_.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out += ',';
        newline(out, indent, level + 1);
        items_[i].dump_to(out, indent, level + 1);
      }
      newline(out, indent, level);
      out += ']';
      return;
    case Type::Object:
      if (members_.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i) out += ',';
        newline(out, indent, level + 1);
        dump_string(out, members_[i].first);
        out += indent > 0 ? ": " : ":";
        members_[i].second.dump_to(out, indent, level + 1);
      }
      newline(out, indent, level);
      out += '}';
      return;
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  if (indent > 0) out += '\n';
  return out;
}

// ---- parsing -------------------------------------------------------------------------------------
namespace {
class Parser {
 public:
  Parser(std::string_view text, const std::string& where) : t_(text), where_(where) {}

  absl::StatusOr<Json> document() {
    Json v;
    if (!value(v, 0)) return error_;
    skip_ws();
    if (pos_ != t_.size()) return fail("unexpected text after the JSON value");
    return v;
  }

 private:
  absl::Status fail(const std::string& what) {
    int line = 1;
    for (size_t i = 0; i < pos_ && i < t_.size(); ++i) line += t_[i] == '\n';
    error_ = absl::InvalidArgumentError(absl::StrFormat("%s:%d: invalid JSON: %s", where_, line, what));
    return error_;
  }
  void skip_ws() {
    while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r')) ++pos_;
  }
  bool literal(std::string_view word) {
    if (t_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool value(Json& out, int depth) {
    if (depth > 64) return fail("nesting deeper than 64").ok();
    skip_ws();
    if (pos_ >= t_.size()) return fail("unexpected end of input").ok();
    char c = t_[pos_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      std::string s;
      if (!string(s)) return false;
      out = Json::string(std::move(s));
      return true;
    }
    if (literal("true")) return (out = Json::boolean(true)), true;
    if (literal("false")) return (out = Json::boolean(false)), true;
    if (literal("null")) return (out = Json()), true;
    if (c == '-' || (c >= '0' && c <= '9')) return number(out);
    return fail(absl::StrFormat("unexpected character '%c'", c)).ok();
  }
  bool object(Json& out, int depth) {
    out = Json::object();
    ++pos_;
    skip_ws();
    if (pos_ < t_.size() && t_[pos_] == '}') return ++pos_, true;
    while (true) {
      skip_ws();
      if (pos_ >= t_.size() || t_[pos_] != '"') return fail("expected a member name").ok();
      std::string key;
      if (!string(key)) return false;
      if (out.find(key)) return fail("duplicate member \"" + key + "\"").ok();
      skip_ws();
      if (pos_ >= t_.size() || t_[pos_] != ':') return fail("expected ':'").ok();
      ++pos_;
      Json v;
      if (!value(v, depth + 1)) return false;
      out.set(key, std::move(v));
      skip_ws();
      if (pos_ < t_.size() && t_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < t_.size() && t_[pos_] == '}') return ++pos_, true;
      return fail("expected ',' or '}'").ok();
    }
  }
  bool array(Json& out, int depth) {
    out = Json::array();
    ++pos_;
    skip_ws();
    if (pos_ < t_.size() && t_[pos_] == ']') return ++pos_, true;
    while (true) {
      Json v;
      if (!value(v, depth + 1)) return false;
      out.push(std::move(v));
      skip_ws();
      if (pos_ < t_.size() && t_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < t_.size() && t_[pos_] == ']') return ++pos_, true;
      return fail("expected ',' or ']'").ok();
    }
  }
  bool hex4(uint32_t& v) {
    if (pos_ + 4 > t_.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = t_[pos_++];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + uint32_t(d);
    }
    return true;
  }
  static void utf8(std::string& s, uint32_t cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += char(0xE0 | (cp >> 12));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    } else {
      s += char(0xF0 | (cp >> 18));
      s += char(0x80 | ((cp >> 12) & 0x3F));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    }
  }
  bool string(std::string& s) {
    ++pos_;  // opening quote
    while (pos_ < t_.size()) {
      unsigned char c = static_cast<unsigned char>(t_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return fail("control character in a string").ok();
      if (c != '\\') {
        s += char(c);
        continue;
      }
      if (pos_ >= t_.size()) break;
      char e = t_[pos_++];
      switch (e) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return fail("bad \\u escape").ok();
          if (cp >= 0xD800 && cp < 0xDC00) {
            uint32_t lo;
            if (!literal("\\u") || !hex4(lo) || lo < 0xDC00 || lo >= 0xE000) return fail("unpaired surrogate").ok();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            return fail("unpaired surrogate").ok();
          }
          utf8(s, cp);
          break;
        }
        default: return fail(absl::StrFormat("bad escape '\\%c'", e)).ok();
      }
    }
    return fail("unterminated string").ok();
  }
  bool number(Json& out) {
    size_t start = pos_;
    if (t_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t s = pos_;
      while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') ++pos_;
      return pos_ - s;
    };
    size_t int_start = pos_;
    if (digits() == 0) return fail("bad number").ok();
    if (t_[int_start] == '0' && pos_ - int_start > 1) return fail("leading zero in a number").ok();
    bool integral = true;
    if (pos_ < t_.size() && t_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) return fail("bad number").ok();
    }
    if (pos_ < t_.size() && (t_[pos_] == 'e' || t_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-')) ++pos_;
      if (digits() == 0) return fail("bad number").ok();
    }
    std::string lit(t_.substr(start, pos_ - start));
    errno = 0;
    if (integral) {
      long long v = std::strtoll(lit.c_str(), nullptr, 10);
      if (errno == 0) {
        out = Json::integer(v);
        return true;
      }
      errno = 0;
    }
    out = Json::number(std::strtod(lit.c_str(), nullptr));
    return true;
  }

  std::string_view t_;
  const std::string& where_;
  size_t pos_ = 0;
  absl::Status error_;
};
}  // namespace

absl::StatusOr<Json> Json::parse(std::string_view text, const std::string& where) {
  return Parser(text, where).document();
}

}  // namespace drwkv::data
