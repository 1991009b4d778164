// Reading the keys of one cache table with errors that name file, line and key. Internal
// header of the config layer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::config {

/// Where a configuration tree came from, for error messages and relative paths.
struct Origin {
  std::optional<std::filesystem::path> file;
  const std::map<std::string, std::size_t>* lines = nullptr;  ///< by JSON pointer
  std::filesystem::path base_dir;  ///< relative paths start here; empty: working directory

  /// "file:line" of the value at pointer (or of its nearest parent), "file", or "".
  std::string where(const std::string& pointer) const;
};

/// The JSON pointer of key inside the object at pointer.
std::string pointer_to(const std::string& pointer, std::string_view key);
/// How errors name a cache table: "[name]", or "[[name]] layer N" (from 1) in a stack.
std::string table_label(std::string_view name, std::optional<std::size_t> layer = std::nullopt);
/// "string", "integer", "float", "boolean", "array", "table" or "nothing".
std::string json_kind(const nlohmann::json& j);

/// Reads the keys of one cache table. Every key a reader asks for is a known key; the
/// others are reported by reject_unread_keys().
class TableReader {
 public:
  /// table is the object at pointer of the tree; label names it in errors.
  TableReader(nlohmann::json& table, std::string label, std::string pointer, const Origin& origin);

  /// The string at key; nullopt when absent; ConfigError when not a string.
  std::optional<std::string> string(std::string_view key);
  /// The string at key; ConfigError when absent or not a string.
  std::string required_string(std::string_view key);
  /// The boolean at key; nullopt when absent; ConfigError when not a boolean.
  std::optional<bool> boolean(std::string_view key);
  /// The integer at key; nullopt when absent; ConfigError unless an integer in [min, max].
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max);
  /// The array of strings at key; nullopt when absent; ConfigError for anything else.
  std::optional<std::vector<std::string>> string_list(std::string_view key);
  /// The number (integer or float) at key; nullopt when absent; ConfigError unless a
  /// finite number in [min, max].
  std::optional<double> number(std::string_view key, double min, double max);
  /// The value at key as it is (the caller checks its kind); nullptr when absent.
  const nlohmann::json* value(std::string_view key) { return find(key); }
  /// The string at key naming a path; nullopt when absent: ~/ is $HOME, a relative path
  /// starts at the origin's base directory. The absolute path is written back into the table.
  std::optional<std::filesystem::path> path(std::string_view key);
  /// As path, for a required key.
  std::filesystem::path required_path(std::string_view key);

  /// The table as errors name it, with its file: "/path/quiver.toml [name]".
  std::string identity() const;

  /// Throws ConfigError "<label> <key>: <message>" located at key (or at the table).
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;
  /// Throws ConfigError for the first key of the table no reader asked for.
  void reject_unread_keys() const;

 private:
  const nlohmann::json* find(std::string_view key);
  [[noreturn]] void wrong_kind(std::string_view key, std::string_view expected) const;

  nlohmann::json& table_;
  std::string label_, pointer_;
  const Origin& origin_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace quiver::config
