// Opening caches by name from quiver.toml (see docs/config.md).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <quiver/store/cache.hpp>
#include <string>

namespace quiver {

struct OpenOptions {
  /// quiver.toml to read; unset: $QUIVER_CONFIG, then ./quiver.toml and each parent
  /// directory's, then $XDG_CONFIG_HOME/quiver/quiver.toml; none: the embedded default.
  std::optional<std::filesystem::path> config_file;
  /// Cache to open; unset: [default] cache, else the embedded default.
  std::optional<std::string> cache_name;
};

/// The default cache: [default] cache of the config, or the embedded HDF5 store under
/// $XDG_CACHE_HOME/quiver (~/.cache/quiver) when there is no config.
std::unique_ptr<Cache> open();
/// The cache called name in the config; throws ConfigError when it is not defined.
std::unique_ptr<Cache> open(std::string_view name);
std::unique_ptr<Cache> open(const OpenOptions& options);

}  // namespace quiver
