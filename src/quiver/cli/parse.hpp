// Parsers for command-line values. Each throws UsageError naming the option on bad input.
#pragma once

#include <chrono>
#include <cstdint>
#include <quiver/core/call.hpp>
#include <quiver/core/digest.hpp>
#include <quiver/core/value.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::cli {

/// A duration such as 30s, 90m, 2h, 3d, 1w or 1h30m (units s, m, h, d, w; decimals allowed).
std::chrono::seconds parse_duration(std::string_view text, std::string_view option);
/// An ISO 8601 date or time (2026-11-22, 2026-11-22T04:39:12Z, ...+02:00; UTC when no zone
/// is given), or a duration meaning that long before now.
Clock::time_point parse_time(std::string_view text, std::string_view option,
                             Clock::time_point now = Clock::now());
/// A byte count with an optional binary suffix: 512, 10K, 1.5M, 2G, 1T (also KiB, KB, ...).
std::uint64_t parse_size(std::string_view text, std::string_view option);
/// key=value pairs; each value is a JSON literal when it parses as one, else a string.
/// Throws UsageError for a missing '=', an empty key or a key given twice.
Value::Map parse_assignments(const std::vector<std::string>& items, std::string_view option);
/// A lowercase hex digest prefix of at least 4 characters.
std::string parse_prefix(std::string_view text);
/// A full 64-character lowercase hex digest.
Digest parse_digest(std::string_view text);

}  // namespace quiver::cli
