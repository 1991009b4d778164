// Call, Metadata and Entry: what is cached and under which key.
#pragma once

#include <chrono>
#include <cstdint>
#include <quiver/core/digest.hpp>
#include <quiver/core/value.hpp>
#include <string>

namespace quiver {

/// Version of the canonical key encoding (docs/digest.md). Changing the encoding bumps it.
inline constexpr std::uint32_t kKeyFormatVersion = 1;

/// A computation: function name, version string and named arguments. Its digest is the
/// cache key. Arguments are ordered by name, so insertion order never changes the key.
struct Call {
  std::string function;
  std::string version;
  Value::Map args;

  Call() = default;
  explicit Call(std::string function_name, std::string version_string = {},
                Value::Map arguments = {})
      : function(std::move(function_name)),
        version(std::move(version_string)),
        args(std::move(arguments)) {}

  /// Adds or replaces an argument; returns *this for chaining.
  Call& arg(std::string name, Value value) {
    args.insert_or_assign(std::move(name), std::move(value));
    return *this;
  }
  /// The SHA-256 digest of the canonical encoding; throws InvalidArgument for an empty
  /// function name.
  Digest digest() const;

  friend bool operator==(const Call&, const Call&) = default;
};

/// The canonical key bytes of call (docs/digest.md); the digest is SHA-256 of these.
std::string canonical_bytes(const Call& call);
/// SHA-256 of the canonical encoding of one value (used to index argument equality).
Digest value_digest(const Value& value);

using Clock = std::chrono::system_clock;

/// Facts recorded with every entry.
struct Metadata {
  Clock::time_point created{};
  std::string host;
  std::string user;
  double wall_time = 0;  ///< seconds the computation took, 0 when unknown
  std::string quiver_version;
  std::uint32_t format_version = 0;
  std::uint32_t key_format_version = kKeyFormatVersion;

  /// Metadata for a save happening now on this host by this user.
  static Metadata now(double wall_time_seconds = 0);
  friend bool operator==(const Metadata&, const Metadata&) = default;
};

/// A stored entry: the call, its result, and its metadata, under digest.
struct Entry {
  Digest digest;
  Call call;
  Value result;
  Metadata meta;

  /// An entry for call and result with fresh metadata; digest computed from call.
  static Entry make(Call call, Value result, double wall_time_seconds = 0);
};

/// The host name of this machine (cached).
const std::string& this_host();
/// The user running this process (cached).
const std::string& this_user();
/// Nanoseconds since the Unix epoch.
std::int64_t to_unix_ns(Clock::time_point t) noexcept;
Clock::time_point from_unix_ns(std::int64_t ns) noexcept;
/// ISO 8601 UTC with microseconds, e.g. 2026-11-22T04:39:12.123456Z.
std::string format_time(Clock::time_point t);

}  // namespace quiver
