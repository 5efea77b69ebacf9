// Shape and strides: a small fixed-capacity array of int64 (up to 8 dimensions), value semantics.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/check.h"

namespace drwkv {

class Shape {
 public:
  static constexpr int kMaxDims = 8;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    DRWKV_ASSERT(dims.size() <= kMaxDims, "at most %d dims", kMaxDims);
    for (int64_t d : dims) d_[n_++] = d;
  }
  explicit Shape(const std::vector<int64_t>& dims) {
    DRWKV_ASSERT(dims.size() <= kMaxDims, "at most %d dims", kMaxDims);
    for (int64_t d : dims) d_[n_++] = d;
  }
  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  // Python-style index: -1 is the last dimension.
  int64_t at(int i) const {
    int j = i < 0 ? i + n_ : i;
    DRWKV_ASSERT(j >= 0 && j < n_, "dim %d out of range for %d dims", i, n_);
    return d_[j];
  }
  void push_back(int64_t v) {
    DRWKV_ASSERT(n_ < kMaxDims, "at most %d dims", kMaxDims);
    d_[n_++] = v;
  }
  void erase(int i) {
    for (int k = i; k + 1 < n_; ++k) d_[k] = d_[k + 1];
    --n_;
  }
  void insert(int i, int64_t v) {
    DRWKV_ASSERT(n_ < kMaxDims, "at most %d dims", kMaxDims);
    for (int k = n_; k > i; --k) d_[k] = d_[k - 1];
    d_[i] = v;
    ++n_;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < n_; ++i) n *= d_[i];
    return n;
  }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(begin(), end()); }
  bool operator==(const Shape& o) const {
    if (n_ != o.n_) return false;
    for (int i = 0; i < n_; ++i)
      if (d_[i] != o.d_[i]) return false;
    return true;
  }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < n_; ++i) s += (i ? ", " : "") + std::to_string(d_[i]);
    return s + "]";
  }
  // Row-major strides of this shape.
  Shape contiguous_strides() const {
    Shape s;
    s.n_ = n_;
    int64_t acc = 1;
    for (int i = n_ - 1; i >= 0; --i) {
      s.d_[i] = acc;
      acc *= d_[i];
    }
    return s;
  }

 private:
  int64_t d_[kMaxDims] = {};
  int n_ = 0;
};

}  // namespace drwkv
