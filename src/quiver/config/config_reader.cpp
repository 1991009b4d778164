#include <cmath>
#include <cstdlib>
#include <quiver/config/config_reader.hpp>
#include <quiver/core/errors.hpp>
#include <sstream>

namespace quiver::config {

std::string Origin::where(const std::string& pointer) const {
  if (!file) return {};
  if (lines) {
    for (std::string p = pointer;; p.erase(p.rfind('/'))) {
      if (auto it = lines->find(p); it != lines->end())
        return file->string() + ":" + std::to_string(it->second);
      if (p.empty()) break;
    }
  }
  return file->string();
}

std::string pointer_to(const std::string& pointer, std::string_view key) {
  std::string out = pointer + "/";
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string table_label(std::string_view name, std::optional<std::size_t> layer) {
  if (!layer) return "[" + std::string(name) + "]";
  return "[[" + std::string(name) + "]] layer " + std::to_string(*layer + 1);
}

std::string json_kind(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::string:
      return "string";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "integer";
    case nlohmann::json::value_t::number_float:
      return "float";
    case nlohmann::json::value_t::boolean:
      return "boolean";
    case nlohmann::json::value_t::array:
      return "array";
    case nlohmann::json::value_t::object:
      return "table";
    default:
      return "nothing";
  }
}

TableReader::TableReader(nlohmann::json& table, std::string label, std::string pointer,
                         const Origin& origin)
    : table_(table), label_(std::move(label)), pointer_(std::move(pointer)), origin_(origin) {}

const nlohmann::json* TableReader::find(std::string_view key) {
  known_.emplace(key);
  auto it = table_.find(key);
  return it == table_.end() ? nullptr : &*it;
}

std::string TableReader::identity() const {
  if (!origin_.file) return label_;
  std::error_code ec;
  auto file = std::filesystem::weakly_canonical(*origin_.file, ec);
  return (ec ? origin_.file->string() : file.string()) + " " + label_;
}

void TableReader::fail(std::string_view key, const std::string& message) const {
  const auto where =
      origin_.where(key.empty() || !table_.contains(key) ? pointer_ : pointer_to(pointer_, key));
  throw ConfigError(label_ + (key.empty() ? "" : " " + std::string(key)) + ": " + message, where);
}

void TableReader::wrong_kind(std::string_view key, std::string_view expected) const {
  fail(key, "expected " + std::string(expected) + ", got " + json_kind(table_.at(key)));
}

std::optional<std::string> TableReader::string(std::string_view key) {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_kind(key, "a string");
  return v->get<std::string>();
}

std::string TableReader::required_string(std::string_view key) {
  auto s = string(key);
  if (!s) fail(key, "missing (required)");
  return *s;
}

std::optional<bool> TableReader::boolean(std::string_view key) {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_kind(key, "a boolean (true or false)");
  return v->get<bool>();
}

std::optional<std::int64_t> TableReader::integer(std::string_view key, std::int64_t min,
                                                 std::int64_t max) {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  const auto range = std::to_string(min) + ".." + std::to_string(max);
  if (!v->is_number_integer()) wrong_kind(key, "an integer " + range);
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(max))
    fail(key, "expected an integer " + range + ", got " + std::to_string(v->get<std::uint64_t>()));
  const auto i = v->get<std::int64_t>();
  if (i < min || i > max) fail(key, "expected an integer " + range + ", got " + std::to_string(i));
  return i;
}

std::optional<std::vector<std::string>> TableReader::string_list(std::string_view key) {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_array()) wrong_kind(key, "an array of strings");
  std::vector<std::string> out;
  for (const auto& item : *v) {
    if (!item.is_string()) fail(key, "expected an array of strings, holding " + json_kind(item));
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::optional<double> TableReader::number(std::string_view key, double min, double max) {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  std::ostringstream range;
  range << min << ".." << max;
  if (!v->is_number()) wrong_kind(key, "a number " + range.str());
  const auto d = v->get<double>();
  if (!std::isfinite(d) || d < min || d > max)
    fail(key, "expected a number " + range.str() + ", got " + v->dump());
  return d;
}

std::optional<std::filesystem::path> TableReader::path(std::string_view key) {
  const auto text = string(key);
  if (!text) return std::nullopt;
  if (text->empty()) fail(key, "expected a path, got an empty string");
  std::filesystem::path p = *text;
  if (*text == "~" || text->starts_with("~/")) {
    const char* home = std::getenv("HOME");
    if (!home || !*home) fail(key, "cannot expand ~: HOME is not set");
    p = std::filesystem::path(home) / text->substr(std::min<std::size_t>(text->size(), 2));
  } else if (text->starts_with("~")) {
    fail(key, "only ~ and ~/ are expanded (to $HOME); write another user's directory in full");
  }
  if (p.is_relative())
    p = origin_.base_dir.empty() ? std::filesystem::absolute(p) : origin_.base_dir / p;
  p = p.lexically_normal();
  table_[std::string(key)] = p.string();
  return p;
}

std::filesystem::path TableReader::required_path(std::string_view key) {
  required_string(key);  // absent, or not a string: its error
  return *path(key);
}

void TableReader::reject_unread_keys() const {
  std::optional<std::string> first;
  std::size_t first_line = 0;
  for (auto it = table_.begin(); it != table_.end(); ++it) {
    if (known_.contains(it.key())) continue;
    std::size_t line = 0;
    if (origin_.lines)
      if (auto l = origin_.lines->find(pointer_to(pointer_, it.key())); l != origin_.lines->end())
        line = l->second;
    if (!first || line < first_line) {
      first = it.key();
      first_line = line;
    }
  }
  if (!first) return;
  std::string allowed;
  for (const auto& k : known_) allowed += (allowed.empty() ? "" : ", ") + k;
  fail(*first, "unknown key (allowed: " + allowed + ")");
}

}  // namespace quiver::config
