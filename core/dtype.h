// Element types. Dtype is a runtime property of a tensor; kernels are templates over the C++ element
// types below (float, bf16, double; f16 for storage and data files).
//
// bf16 and f16 are plain 16-bit storage types with round-to-nearest-even conversions usable on the host
// and, in .cu files, on the device (they are layout-compatible with __nv_bfloat16 / __half).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define DRWKV_HD __host__ __device__ __forceinline__
#else
#define DRWKV_HD inline
#endif

namespace drwkv {

enum class DType : uint8_t { F32, BF16, F16, F64, I32, I64, U8 };

constexpr int dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

constexpr bool dtype_is_float(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F64;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
  }
  return "?";
}

DRWKV_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
DRWKV_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// Brain float: the top 16 bits of an IEEE f32, rounded to nearest even; NaN stays NaN.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  DRWKV_HD explicit bf16(float f) : bits(from_float(f)) {}
  DRWKV_HD explicit operator float() const { return bits_float(uint32_t(bits) << 16); }
  DRWKV_HD static uint16_t from_float(float f) {
#if defined(__CUDA_ARCH__)
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
#endif
  }
  DRWKV_HD static bf16 from_bits(uint16_t b) {
    bf16 r;
    r.bits = b;
    return r;
  }
};

// IEEE binary16, stored exactly as numpy's '<f2'; conversions round to nearest even.
struct f16 {
  uint16_t bits = 0;
  f16() = default;
  DRWKV_HD explicit f16(float f) : bits(from_float(f)) {}
  DRWKV_HD explicit operator float() const { return to_float(bits); }
  DRWKV_HD static uint16_t from_float(float f) {
#if defined(__CUDA_ARCH__)
    return __half_as_ushort(__float2half_rn(f));
#else
    uint32_t x = float_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return uint16_t(sign | 0x7e00u);   // NaN
    if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow (incl. rounding) -> inf
    if (ax < 0x38800000u) {                                  // subnormal or zero in f16
      if (ax < 0x33000000u) return uint16_t(sign);           // below half the smallest subnormal
      uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
      int shift = 126 - int(ax >> 23);  // 14 .. 24: value = mant * 2^-24 after the shift
      uint32_t rem = mant & ((1u << shift) - 1u);
      uint32_t half = 1u << (shift - 1);
      uint32_t r = mant >> shift;
      if (rem > half || (rem == half && (r & 1u))) r += 1;
      return uint16_t(sign | r);
    }
    uint32_t r = ((ax - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r += 1;
    return uint16_t(sign | r);
#endif
  }
  DRWKV_HD static float to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
      if (mant == 0) return bits_float(sign);
      // subnormal: normalise
      int e = -1;
      do { mant <<= 1; ++e; } while (!(mant & 0x400u));
      mant &= 0x3ffu;
      return bits_float(sign | uint32_t(127 - 15 - e) << 23 | mant << 13);
    }
    if (exp == 31) return bits_float(sign | 0x7f800000u | mant << 13);
    return bits_float(sign | (exp + 112u) << 23 | mant << 13);
  }
  DRWKV_HD static f16 from_bits(uint16_t b) {
    f16 r;
    r.bits = b;
    return r;
  }
};

// Compile-time mapping C++ type -> DType.
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<f16> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };
template <typename T> inline constexpr DType dtype_v = dtype_of<T>::value;

// Accumulation type: double for double, float for everything narrower.
template <typename T> struct acc_type { using type = float; };
template <> struct acc_type<double> { using type = double; };
template <typename T> using acc_t = typename acc_type<T>::type;

// Uniform load/store through the accumulation type, for code templated over element types.
template <typename A, typename T> DRWKV_HD A load_as(const T& x) { return A(x); }
template <typename A> DRWKV_HD A load_as(const bf16& x) { return A(float(x)); }
template <typename A> DRWKV_HD A load_as(const f16& x) { return A(float(x)); }
template <typename T, typename A> DRWKV_HD T store_as(A x) { return T(x); }
template <> DRWKV_HD bf16 store_as<bf16, float>(float x) { return bf16(x); }
template <> DRWKV_HD bf16 store_as<bf16, double>(double x) { return bf16(float(x)); }
template <> DRWKV_HD f16 store_as<f16, float>(float x) { return f16(x); }
template <> DRWKV_HD f16 store_as<f16, double>(double x) { return f16(float(x)); }

}  // namespace drwkv
