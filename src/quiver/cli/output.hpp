// Output shared by the subcommands: JSON documents and JSON lines on stdout, sizes and times
// for humans, and the JSON forms of calls, metadata and entry summaries.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <quiver/store/cache.hpp>
#include <string>

namespace quiver::cli {

/// Writes j to stdout as one indented JSON document.
void print_json(const nlohmann::json& j);
/// Writes j to stdout as one line (JSON lines) and flushes, so consumers see it at once.
void print_json_line(const nlohmann::json& j);

/// Writes "quiver: <message>" as one line on stderr; advice meant for programs using the
/// library (call reconnect()) is said as the command line's (run the command again).
void print_error(std::string_view message);

/// "512 B", "1.5 KiB", "3.2 GiB".
std::string format_bytes(std::uint64_t bytes);
/// "2026-11-22T04:39:12Z": UTC, whole seconds.
std::string format_time_seconds(Clock::time_point t);
/// s padded with spaces to width (left-aligned, or right-aligned when right is true).
std::string pad(std::string s, std::size_t width, bool right = false);

/// {"function", "version", "args": {name: to_json(value)}}.
nlohmann::json call_json(const Call& call);
/// {"created", "host", "user", "wall_time", "quiver_version", "format_version",
/// "key_format_version"}.
nlohmann::json meta_json(const Metadata& meta);
/// {"digest", "function", "version", "created", "host", "user", "wall_time", "bytes"}.
nlohmann::json summary_json(const EntrySummary& s);

}  // namespace quiver::cli
