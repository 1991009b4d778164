#include <algorithm>
#include <cstdlib>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>

namespace quiver {

namespace {
bool starts_name(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool continues_name(char c) noexcept {
  return starts_name(c) || (c >= '0' && c <= '9');
}
}  // namespace

std::string expand_variables(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (c != '$') {
      out += c;
      ++i;
    } else if (next == '$') {
      out += '$';
      i += 2;
    } else if (next == '{') {
      const auto close = text.find('}', i + 2);
      if (close == std::string_view::npos) throw ConfigError("'${' without a closing '}'");
      const auto body = text.substr(i + 2, close - i - 2);
      const auto sep = body.find(":-");
      const auto name = std::string(body.substr(0, sep));
      if (name.empty() || !starts_name(name[0]) ||
          !std::all_of(name.begin(), name.end(), continues_name))
        throw ConfigError("'${" + std::string(body) +
                          "}' does not name an environment variable (letters, digits, _)");
      const char* value = std::getenv(name.c_str());
      if (sep != std::string_view::npos) {
        out += value && *value ? std::string_view(value) : body.substr(sep + 2);
      } else if (value) {
        out += value;
      } else {
        throw ConfigError("environment variable " + name + " is not set (write ${" + name +
                          ":-fallback} to give a fallback)");
      }
      i = close + 1;
    } else if (starts_name(next)) {
      std::size_t end = i + 1;
      while (end < text.size() && continues_name(text[end])) ++end;
      const auto name = std::string(text.substr(i + 1, end - i - 1));
      throw ConfigError("'$" + name + "' is not expanded: write ${" + name +
                        "} for the environment variable or $$ for a literal $");
    } else {
      out += '$';
      ++i;
    }
  }
  return out;
}

}  // namespace quiver
