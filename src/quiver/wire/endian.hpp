// Little-endian loads and stores of unsigned integers, independent of the host's byte order.
// Internal header of the wire layer.
#pragma once

#include <concepts>
#include <cstddef>

namespace quiver::wire {

/// Stores v at p, least significant byte first.
template <std::unsigned_integral T>
constexpr void store_le(std::byte* p, T v) noexcept {
  for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}

/// Loads a T stored least significant byte first at p.
template <std::unsigned_integral T>
constexpr T load_le(const std::byte* p) noexcept {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
  return v;
}

}  // namespace quiver::wire
