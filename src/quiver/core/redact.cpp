#include <algorithm>
#include <array>
#include <cctype>
#include <quiver/core/redact.hpp>

namespace quiver {

bool is_secret_key(std::string_view key) noexcept {
  std::string lower(key);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) {
    return c == '-' ? '_' : static_cast<char>(std::tolower(c));
  });
  static constexpr std::array<std::string_view, 8> kWords{
      "secret", "password", "passwd", "token", "credential", "private_key", "api_key", "apikey"};
  return std::any_of(kWords.begin(), kWords.end(),
                     [&](std::string_view w) { return lower.find(w) != std::string::npos; });
}

std::string redact_url(std::string_view s) {
  std::string out(s);
  std::size_t pos = 0;
  while ((pos = out.find("://", pos)) != std::string::npos) {
    auto start = pos + 3;
    auto end = out.find_first_of("/?# \t\"'", start);
    if (end == std::string::npos) end = out.size();
    auto at = out.rfind('@', end - 1);
    if (at != std::string::npos && at >= start && at < end) {
      auto colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, kRedacted);
        end = colon + 1 + kRedacted.size() + 1;
      }
    }
    pos = end;
  }
  return out;
}

nlohmann::json redact(const nlohmann::json& j) {
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : j.items())
      out[k] = (is_secret_key(k) && !v.is_null()) ? nlohmann::json(kRedacted) : redact(v);
    return out;
  }
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : j) out.push_back(redact(v));
    return out;
  }
  if (j.is_string()) return redact_url(j.get<std::string>());
  return j;
}

}  // namespace quiver
