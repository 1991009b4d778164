// Maintenance that works on any Cache: statistics and garbage collection.
#pragma once

#include <map>
#include <optional>
#include <quiver/store/cache.hpp>
#include <quiver/store/hdf5_store.hpp>

namespace quiver {

struct CacheStats {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
  struct PerFunction {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
  };
  std::map<std::string, PerFunction> functions;
};

/// Counts entries and bytes, per function, by streaming query().
CacheStats stats(Cache& cache, const Progress& progress = {});

struct GcOptions {
  std::optional<std::uint64_t> max_bytes;          ///< evict oldest until total <= this
  std::optional<std::chrono::seconds> older_than;  ///< evict entries created before now - this
  bool dry_run = false;
};

struct GcReport {
  std::uint64_t examined = 0;
  std::uint64_t evicted = 0;
  std::uint64_t bytes_freed = 0;
  std::uint64_t bytes_remaining = 0;
  std::vector<Digest> victims;  ///< what was (or, with dry_run, would be) evicted
};

/// Evicts oldest-first until the options hold.
GcReport gc(Cache& cache, const GcOptions& options, const Progress& progress = {});

}  // namespace quiver
