// Finding entries named on the command line.
#pragma once

#include <quiver/store/cache.hpp>
#include <string>

namespace quiver::cli {

/// The entry named by prefix (already checked by parse_prefix); throws NotFound or
/// AmbiguousDigest from the cache, CorruptEntry when its file is there but cannot be read,
/// or NotFound when the entry is gone before it is read.
Entry load_entry(Cache& cache, const std::string& prefix);

}  // namespace quiver::cli
