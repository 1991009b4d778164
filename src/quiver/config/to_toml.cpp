#include <algorithm>
#include <cmath>
#include <cstdio>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/redact.hpp>
#include <sstream>

namespace quiver {

namespace {

enum class Text { key, value };

/// A TOML basic string. Values escape $ as $$, since reading expands ${VAR}.
std::string quote(std::string_view s, Text text) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '$':
        out += text == Text::value ? "$$" : "$";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string key(std::string_view k) {
  const bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return bare ? std::string(k) : quote(k, Text::key);
}

std::string value(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::string:
      return quote(j.get_ref<const std::string&>(), Text::value);
    case nlohmann::json::value_t::boolean:
      return j.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return j.dump();
    case nlohmann::json::value_t::number_float: {
      const double d = j.get<double>();
      if (std::isnan(d)) return "nan";
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      auto s = j.dump();
      return s.find_first_of(".eE") == std::string::npos ? s + ".0" : s;
    }
    case nlohmann::json::value_t::array: {
      std::string out = "[";
      for (const auto& item : j) {
        if (item.is_null()) continue;
        out += (out.size() > 1 ? ", " : "") + value(item);
      }
      return out + "]";
    }
    case nlohmann::json::value_t::object: {
      std::string out = "{";
      for (const auto& [k, v] : j.items()) {
        if (v.is_null()) continue;
        out += (out.size() > 1 ? ", " : " ") + key(k) + " = " + value(v);
      }
      return out + (out.size() > 1 ? " }" : "}");
    }
    default:
      throw InvalidArgument("a cache configuration holds a value TOML cannot express: " + j.dump(),
                            "to_toml");
  }
}

/// The body of one cache table: type first, then the other keys in order; nulls omitted.
std::string table_body(const nlohmann::json& table, std::string_view name) {
  if (!table.is_object())
    throw InvalidArgument("expected a cache configuration object, got " + redact(table).dump(),
                          "to_toml " + std::string(name));
  std::string out;
  if (auto type = table.find("type"); type != table.end()) out += "type = " + value(*type) + "\n";
  for (const auto& [k, v] : table.items())
    if (k != "type" && !v.is_null()) out += key(k) + " = " + value(v) + "\n";
  return out;
}

}  // namespace

std::string to_toml(std::string_view name, const nlohmann::json& cache_config, Secrets secrets) {
  const auto config = secrets == Secrets::redact ? redact(cache_config) : cache_config;
  if (!config.is_array()) return "[" + key(name) + "]\n" + table_body(config, name);
  std::string out;
  for (const auto& layer : config)
    out += (out.empty() ? "" : "\n") + ("[[" + key(name) + "]]\n") + table_body(layer, name);
  return out;
}

}  // namespace quiver
