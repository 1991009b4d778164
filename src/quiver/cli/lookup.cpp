#include <quiver/cli/lookup.hpp>

namespace quiver::cli {

Entry load_entry(Cache& cache, const std::string& prefix) {
  Digest digest = cache.expand(prefix);
  auto entry = cache.load(digest);
  if (!entry) throw NotFound("entry " + digest.hex() + " not found");
  return std::move(*entry);
}

}  // namespace quiver::cli
