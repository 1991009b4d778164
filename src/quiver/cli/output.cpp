#include <array>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <quiver/cli/output.hpp>
#include <quiver/core/json.hpp>
#include <quiver/remote/ssh_cache.hpp>

namespace quiver::cli {

namespace {
std::string dump(const nlohmann::json& j, int indent) {
  // Strings that are not UTF-8 (results may hold any bytes) are printed with U+FFFD.
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

void print_json(const nlohmann::json& j) {
  std::cout << dump(j, 2) << '\n';
}

void print_json_line(const nlohmann::json& j) {
  std::cout << dump(j, -1) << '\n' << std::flush;
}

void print_error(std::string_view message) {
  // A library hint about reconnecting becomes what a user of this one-shot program does.
  std::string text(message);
  if (const auto at = text.find(kReconnectHint); at != std::string::npos)
    text.replace(at, kReconnectHint.size(), "run the command again to open a new connection");
  std::cerr << "quiver: " << text << '\n';
}

std::string format_bytes(std::uint64_t bytes) {
  static constexpr std::array<const char*, 6> kUnits = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, value < 10 ? "%.1f %s" : "%.0f %s", value, kUnits[unit]);
  return buf;
}

std::string format_time_seconds(Clock::time_point t) {
  std::time_t secs = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string pad(std::string s, std::size_t width, bool right) {
  if (s.size() >= width) return s;
  std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

nlohmann::json call_json(const Call& call) {
  nlohmann::json args = nlohmann::json::object();
  for (const auto& [name, value] : call.args) args[name] = to_json(value);
  return {{"function", call.function}, {"version", call.version}, {"args", std::move(args)}};
}

nlohmann::json meta_json(const Metadata& meta) {
  return {{"created", format_time(meta.created)},
          {"host", meta.host},
          {"user", meta.user},
          {"wall_time", meta.wall_time},
          {"quiver_version", meta.quiver_version},
          {"format_version", meta.format_version},
          {"key_format_version", meta.key_format_version}};
}

nlohmann::json summary_json(const EntrySummary& s) {
  return {{"digest", s.digest.hex()},      {"function", s.function},
          {"version", s.version},          {"created", format_time(s.meta.created)},
          {"host", s.meta.host},           {"user", s.meta.user},
          {"wall_time", s.meta.wall_time}, {"bytes", s.bytes}};
}

}  // namespace quiver::cli
