// The cache types quiver.toml can name, and building a cache from its configuration tree.
// Internal header of the config layer.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <quiver/config/config_reader.hpp>
#include <quiver/store/cache.hpp>
#include <string_view>

namespace quiver::config {

/// Builds a cache whose configuration has already been read and checked.
using CacheBuilder = std::function<std::unique_ptr<Cache>()>;

/// Reads and checks tree, the configuration of cache name: one table, or an array of tables
/// for a stack. Normalises it in place (absolute paths). Throws ConfigError naming the key.
CacheBuilder read_cache_config(nlohmann::json& tree, std::string_view name, const Origin& origin);

}  // namespace quiver::config
