// quiver.toml: finding it, reading one cache's configuration out of it, building the cache,
// and turning a cache's configuration back into quiver.toml. Reference: docs/config.md.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <quiver/config/open.hpp>
#include <quiver/store/cache.hpp>
#include <string>
#include <string_view>

namespace quiver {

/// The name of the cache used when no config names one.
inline constexpr std::string_view kDefaultCacheName = "default";

/// One cache's configuration, resolved from quiver.toml (or the embedded default).
struct ResolvedConfig {
  /// The quiver.toml read; unset when none was found.
  std::optional<std::filesystem::path> file;
  /// The cache chosen: the name asked for, [default] cache, or "default".
  std::string cache_name;
  /// The cache's configuration: an object for a [NAME] table, an array of objects for a
  /// [[NAME]] stack; ${VAR} expanded and hdf5 paths made absolute.
  nlohmann::json tree;
  /// Line in file of each value of tree, by JSON pointer ("" is the table itself).
  std::map<std::string, std::size_t> lines;
  /// True when tree is the embedded default, not a table of file.
  bool embedded_default = false;
};

/// The quiver.toml that applies: $QUIVER_CONFIG when set, else quiver.toml in the working
/// directory or its nearest parent, else $XDG_CONFIG_HOME/quiver/quiver.toml
/// (~/.config/...); nullopt when none exists.
std::optional<std::filesystem::path> find_config_file();

/// The configuration of the cache options asks for (file: options.config_file, else
/// find_config_file()). Checks it completely; throws ConfigError naming file, line and key.
ResolvedConfig resolve_config(const OpenOptions& options);

/// The embedded default: an hdf5 store at $XDG_CACHE_HOME/quiver (~/.cache/quiver).
nlohmann::json default_cache_config();

/// Builds the cache config describes; relative paths in config are relative to the file's
/// directory, and errors name its lines.
std::unique_ptr<Cache> make_cache(const ResolvedConfig& config);
/// Builds the cache tree describes (an object, or an array of objects for a stack), as if
/// it were the table [name] of a quiver.toml in the working directory.
std::unique_ptr<Cache> make_cache(const nlohmann::json& tree, std::string_view name);

/// Whether to_toml() shows secrets.
enum class Secrets { redact, keep };

/// A quiver.toml snippet defining cache name from a Cache::config() tree: [name] for an
/// object, [[name]] per layer for an array. Read back, it builds an equivalent cache.
/// Secrets are replaced by quiver::redact unless kept.
std::string to_toml(std::string_view name, const nlohmann::json& cache_config,
                    Secrets secrets = Secrets::redact);

/// text with ${VAR} and ${VAR:-fallback} replaced from the environment and $$ by $. Throws
/// ConfigError for an unset variable without fallback and for malformed references.
std::string expand_variables(std::string_view text);

}  // namespace quiver
