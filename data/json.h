// A small JSON value for index.json and `drwkv_data inspect --json`: parse (strict RFC 8259: no comments,
// no trailing commas, UTF-8 strings with \uXXXX escapes incl. surrogate pairs) and deterministic dump
// (object members keep insertion order, so the same manifest always has the same bytes and therefore the
// same fingerprint).
//
// Numbers keep their integer value exactly when the literal has no fraction or exponent and fits in
// int64; u64 values (checksums) are written as hex strings by the format, never as numbers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace drwkv::data {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;
  static Json boolean(bool v);
  static Json integer(int64_t v);
  static Json number(double v);
  static Json string(std::string v);
  static Json array();
  static Json object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_integer() const { return type_ == Type::Number && is_int_; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_double() const { return is_int_ ? double(i_) : d_; }
  const std::string& as_string() const { return s_; }
  const std::vector<Json>& items() const { return items_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }

  // Object member or nullptr.
  const Json* find(std::string_view key) const;
  // Object: sets (replacing an existing member in place) and returns *this for chaining.
  Json& set(const std::string& key, Json v);
  // Array: appends.
  Json& push(Json v);

  // Pretty-printed with two-space indentation and a final newline when `indent` > 0; compact otherwise.
  std::string dump(int indent = 2) const;

  // `where` names the source in error messages ("/data/in/index.json").
  static absl::StatusOr<Json> parse(std::string_view text, const std::string& where);

 private:
  void dump_to(std::string& out, int indent, int level) const;

  Type type_ = Type::Null;
  bool b_ = false;
  bool is_int_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

const char* json_type_name(Json::Type t);

}  // namespace drwkv::data
