// Digest: the SHA-256 cache key of a call, and the rules for hex digests and prefixes.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace quiver {

/// Hex characters in a full digest.
inline constexpr std::size_t kDigestHexLength = 64;
/// The shortest prefix expand() accepts and shrink() returns.
inline constexpr std::size_t kMinPrefixLength = 4;

class Digest {
 public:
  Digest() = default;
  explicit Digest(const std::array<std::uint8_t, 32>& bytes) : bytes_(bytes) {}

  /// Parses 64 lowercase hex characters; throws InvalidArgument otherwise.
  static Digest from_hex(std::string_view hex);
  /// Parses 64 lowercase hex characters; nullopt otherwise. Never throws.
  static std::optional<Digest> parse(std::string_view hex) noexcept;

  /// 64 lowercase hex characters.
  std::string hex() const;
  const std::array<std::uint8_t, 32>& bytes() const noexcept { return bytes_; }

  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  std::array<std::uint8_t, 32> bytes_{};
};

/// True when s is non-empty, at most 64 chars, all in [0-9a-f].
bool is_hex_prefix(std::string_view s) noexcept;
/// Throws InvalidArgument (naming where) unless s is a lowercase hex prefix of at least
/// min_length chars. Run before a prefix touches any path.
void check_prefix(std::string_view s, std::string_view where,
                  std::size_t min_length = kMinPrefixLength);
/// Length of the common hex prefix of two digests.
std::size_t common_prefix_length(const Digest& a, const Digest& b) noexcept;

/// Incremental SHA-256 (OpenSSL EVP), one RAII object per hash.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t n);
  void update(std::span<const std::byte> bytes) { update(bytes.data(), bytes.size()); }
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// The digest of everything passed to update(); the object is spent afterwards.
  Digest finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver

template <>
struct std::hash<quiver::Digest> {
  std::size_t operator()(const quiver::Digest& d) const noexcept {
    std::size_t h;
    static_assert(sizeof(h) <= 32);
    __builtin_memcpy(&h, d.bytes().data(), sizeof(h));
    return h;
  }
};
