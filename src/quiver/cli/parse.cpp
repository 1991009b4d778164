#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <limits>
#include <optional>
#include <quiver/cli/command.hpp>
#include <quiver/cli/parse.hpp>
#include <quiver/core/json.hpp>

namespace quiver::cli {

namespace {

[[noreturn]] void bad_value(std::string_view option, std::string_view text,
                            std::string_view expected) {
  throw UsageError("invalid value '" + std::string(text) + "' for " + std::string(option) +
                   ": expected " + std::string(expected));
}

/// Reads a non-negative decimal number (digits with an optional fraction) from the front of s.
std::optional<double> take_number(std::string_view& s) {
  std::size_t n = 0;
  while (n < s.size() && (std::isdigit(static_cast<unsigned char>(s[n])) || s[n] == '.')) ++n;
  if (n == 0) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + n, value);
  if (ec != std::errc() || end != s.data() + n || !std::isfinite(value)) return std::nullopt;
  s.remove_prefix(n);
  return value;
}

/// Reads exactly width digits from the front of s.
std::optional<int> take_digits(std::string_view& s, std::size_t width) {
  if (s.size() < width) return std::nullopt;
  int value = 0;
  for (std::size_t i = 0; i < width; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    value = value * 10 + (s[i] - '0');
  }
  s.remove_prefix(width);
  return value;
}

bool take_char(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

std::optional<Clock::time_point> parse_iso8601(std::string_view s) {
  std::tm tm{};
  auto year = take_digits(s, 4);
  if (!year || !take_char(s, '-')) return std::nullopt;
  auto month = take_digits(s, 2);
  if (!month || !take_char(s, '-')) return std::nullopt;
  auto day = take_digits(s, 2);
  if (!day) return std::nullopt;
  tm.tm_year = *year - 1900;
  tm.tm_mon = *month - 1;
  tm.tm_mday = *day;
  std::chrono::nanoseconds fraction{0};
  std::chrono::seconds offset{0};
  if (take_char(s, 'T') || take_char(s, ' ')) {
    auto hour = take_digits(s, 2);
    if (!hour || !take_char(s, ':')) return std::nullopt;
    auto minute = take_digits(s, 2);
    if (!minute) return std::nullopt;
    tm.tm_hour = *hour;
    tm.tm_min = *minute;
    if (take_char(s, ':')) {
      auto second = take_digits(s, 2);
      if (!second) return std::nullopt;
      tm.tm_sec = *second;
      if (take_char(s, '.')) {
        std::int64_t scale = 100'000'000, ns = 0;
        std::size_t digits = 0;
        while (!s.empty() && std::isdigit(static_cast<unsigned char>(s.front()))) {
          ns += (s.front() - '0') * scale;
          scale /= 10;
          s.remove_prefix(1);
          ++digits;
        }
        if (digits == 0) return std::nullopt;
        fraction = std::chrono::nanoseconds(ns);
      }
    }
    if (!take_char(s, 'Z') && !s.empty() && (s.front() == '+' || s.front() == '-')) {
      int sign = s.front() == '+' ? 1 : -1;
      s.remove_prefix(1);
      auto oh = take_digits(s, 2);
      if (!oh) return std::nullopt;
      take_char(s, ':');
      auto om = take_digits(s, 2);
      if (!om || *oh > 23 || *om > 59) return std::nullopt;
      offset = std::chrono::seconds(sign * (*oh * 3600 + *om * 60));
    }
  }
  if (!s.empty()) return std::nullopt;
  if (tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) return std::nullopt;
  std::tm check = tm;
  std::time_t t = timegm(&check);
  // timegm normalises out-of-range fields (2026-02-30 -> 2026-03-02): reject those.
  if (check.tm_year != tm.tm_year || check.tm_mon != tm.tm_mon || check.tm_mday != tm.tm_mday)
    return std::nullopt;
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(t) - offset + fraction));
}

}  // namespace

std::chrono::seconds parse_duration(std::string_view text, std::string_view option) {
  constexpr std::string_view kExpected = "a duration such as 30s, 90m, 2h, 3d, 1w or 1h30m";
  std::string_view s = text;
  double total = 0;
  if (s.empty()) bad_value(option, text, kExpected);
  while (!s.empty()) {
    auto number = take_number(s);
    if (!number || s.empty()) bad_value(option, text, kExpected);
    double unit = 0;
    switch (s.front()) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      case 'w':
        unit = 7 * 86400;
        break;
      default:
        bad_value(option, text, kExpected);
    }
    s.remove_prefix(1);
    total += *number * unit;
  }
  if (total > 1e15) bad_value(option, text, kExpected);
  return std::chrono::seconds(std::llround(total));
}

Clock::time_point parse_time(std::string_view text, std::string_view option,
                             Clock::time_point now) {
  if (auto t = parse_iso8601(text)) return *t;
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.front())) &&
      std::isalpha(static_cast<unsigned char>(text.back())))
    return now - parse_duration(text, option);
  bad_value(option, text,
            "an ISO 8601 time (2026-11-22, 2026-11-22T04:39:12Z) or a duration ago (2h, 3d)");
}

std::uint64_t parse_size(std::string_view text, std::string_view option) {
  constexpr std::string_view kExpected = "a size such as 512, 10K, 1.5M, 2G or 1T";
  std::string_view s = text;
  auto number = take_number(s);
  if (!number) bad_value(option, text, kExpected);
  double scale = 1;
  if (!s.empty()) {
    switch (std::toupper(static_cast<unsigned char>(s.front()))) {
      case 'B':
        scale = 1;
        break;
      case 'K':
        scale = 0x1p10;
        break;
      case 'M':
        scale = 0x1p20;
        break;
      case 'G':
        scale = 0x1p30;
        break;
      case 'T':
        scale = 0x1p40;
        break;
      case 'P':
        scale = 0x1p50;
        break;
      default:
        bad_value(option, text, kExpected);
    }
    std::string rest(s.substr(1));
    for (auto& c : rest) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!(rest.empty() || (scale > 1 && (rest == "b" || rest == "ib"))))
      bad_value(option, text, kExpected);
  }
  double bytes = std::round(*number * scale);
  if (bytes >= 0x1p64) bad_value(option, text, kExpected);
  return static_cast<std::uint64_t>(bytes);
}

Value::Map parse_assignments(const std::vector<std::string>& items, std::string_view option) {
  Value::Map out;
  for (const auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      bad_value(option, item, "key=value (for example n=3, name=foo, 'v=[1,2]', 'id=\"007\"')");
    std::string key = item.substr(0, eq);
    Value value;
    try {
      value = parse_literal(std::string_view(item).substr(eq + 1));
    } catch (const InvalidArgument& e) {
      throw UsageError("invalid value for " + std::string(option) + " " + key + ": " + e.what());
    }
    if (!out.emplace(key, std::move(value)).second)
      throw UsageError(std::string(option) + " " + key + " is given more than once");
  }
  return out;
}

std::string parse_prefix(std::string_view text) {
  try {
    check_prefix(text, "PREFIX");
  } catch (const InvalidArgument& e) {
    throw UsageError(e.what());
  }
  return std::string(text);
}

Digest parse_digest(std::string_view text) {
  if (auto d = Digest::parse(text)) return *d;
  throw UsageError("DIGEST: '" + std::string(text) +
                   "' is not a full digest (64 lowercase hex characters)");
}

}  // namespace quiver::cli
