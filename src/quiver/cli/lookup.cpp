#include <quiver/cli/lookup.hpp>

namespace quiver::cli {

Entry load_entry(Cache& cache, const std::string& prefix) {
  // A full digest needs no search (which would ask every layer of a stack, a down one too).
  const auto full = Digest::parse(prefix);
  const Digest digest = full ? *full : cache.expand(prefix);
  if (auto entry = cache.load(digest)) return std::move(*entry);
  // A file that cannot be read is a miss to the cache (with a warning); say so here.
  if (cache.contains(digest))
    throw CorruptEntry("entry " + digest.hex() +
                       " is in the cache but cannot be read: a damaged or foreign file (the "
                       "store's warning says why); 'quiver fsck' checks the store, 'quiver fsck "
                       "--repair' moves damaged entries aside");
  throw NotFound("entry " + digest.hex() +
                 (full ? " not found" : " not found (removed while it was being read)"));
}

}  // namespace quiver::cli
