// Element types of n-dimensional arrays.
#pragma once

#include <complex>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

namespace quiver {

/// Array element types. The numeric codes are part of the digest and wire formats.
enum class DType : std::uint8_t {
  int8 = 1,
  int16 = 2,
  int32 = 3,
  int64 = 4,
  uint8 = 5,
  uint16 = 6,
  uint32 = 7,
  uint64 = 8,
  float32 = 9,
  float64 = 10,
  complex64 = 11,
  complex128 = 12,
};

/// Bytes per element of t.
std::size_t dtype_size(DType t) noexcept;
/// Lowercase numpy-style name ("float64", "complex64").
std::string_view dtype_name(DType t) noexcept;
/// Parses a name written by dtype_name; nullopt when unknown.
std::optional<DType> dtype_from_name(std::string_view name) noexcept;
/// Parses a numeric code; nullopt when out of range.
std::optional<DType> dtype_from_code(std::uint8_t code) noexcept;
/// Size in bytes of one scalar component (complex64 -> 4).
std::size_t dtype_component_size(DType t) noexcept;

/// The C++ element types an Array can hold.
template <class T>
concept Element = (std::integral<T> && !std::same_as<T, bool> && sizeof(T) <= 8) ||
                  std::same_as<T, float> || std::same_as<T, double> ||
                  std::same_as<T, std::complex<float>> || std::same_as<T, std::complex<double>>;

/// The DType of a C++ element type.
template <Element T>
constexpr DType dtype_of() noexcept {
  if constexpr (std::same_as<T, float>)
    return DType::float32;
  else if constexpr (std::same_as<T, double>)
    return DType::float64;
  else if constexpr (std::same_as<T, std::complex<float>>)
    return DType::complex64;
  else if constexpr (std::same_as<T, std::complex<double>>)
    return DType::complex128;
  else if constexpr (std::is_signed_v<T>) {
    if constexpr (sizeof(T) == 1)
      return DType::int8;
    else if constexpr (sizeof(T) == 2)
      return DType::int16;
    else if constexpr (sizeof(T) == 4)
      return DType::int32;
    else
      return DType::int64;
  } else {
    if constexpr (sizeof(T) == 1)
      return DType::uint8;
    else if constexpr (sizeof(T) == 2)
      return DType::uint16;
    else if constexpr (sizeof(T) == 4)
      return DType::uint32;
    else
      return DType::uint64;
  }
}

}  // namespace quiver
