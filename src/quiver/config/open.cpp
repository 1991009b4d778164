#include <quiver/config/config.hpp>
#include <quiver/config/open.hpp>
#include <quiver/core/log.hpp>
#include <quiver/core/redact.hpp>

namespace quiver {

std::unique_ptr<Cache> open() {
  return open(OpenOptions{});
}

std::unique_ptr<Cache> open(std::string_view name) {
  OpenOptions options;
  options.cache_name = std::string(name);
  return open(options);
}

std::unique_ptr<Cache> open(const OpenOptions& options) {
  auto resolved = resolve_config(options);
  logger("quiver.config")
      ->debug("opening cache '{}' ({}): {}", resolved.cache_name,
              resolved.embedded_default ? std::string("embedded default") : resolved.file->string(),
              redact(resolved.tree).dump());
  return make_cache(resolved);
}

}  // namespace quiver
