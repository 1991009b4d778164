// Helpers of the MPI tests: a GoogleTest main for mpirun (every rank runs every test; rank 0
// prints; the job fails when any rank fails), agreement across ranks, and the real caches
// rank 0 opens (a counting in-memory cache, a server subprocess over an HDF5 store).
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/memory_cache.hpp>
#include <string>

namespace quiver::testing::mpi {

/// Initialises MPI at level (failing when it is not provided), runs every test on every rank,
/// finalises; returns non-zero on every rank when a test failed on any rank.
int run_all_tests(int argc, char** argv, int level);

int world_rank();
int world_size();
/// True on every rank when flag is true on every rank.
bool all(bool flag);
/// The sum of v over the ranks, on every rank.
long long sum(long long v);

/// A MemoryCache that counts the calls it gets and can make the batched ones slow (as a
/// remote round trip is), so that requests pile up while one is in progress.
class CountingCache : public MemoryCache {
 public:
  /// Atomic: the tests set it while rank 0's serving threads read it.
  std::atomic<std::chrono::milliseconds> batch_delay{std::chrono::milliseconds(0)};
  std::atomic<int> contains_calls{0}, contains_many_calls{0}, load_many_calls{0},
      save_many_calls{0}, single_calls{0};
  /// The most contains_many calls that were in progress at once.
  std::atomic<int> max_concurrent{0};

  using MemoryCache::query;
  using MemoryCache::save;
  void save(const Entry& e) override;
  std::optional<Entry> load(const Digest& d) override;
  std::optional<Value> load_value(const Digest& d) override;
  bool contains(const Digest& d) override;
  std::vector<bool> contains_many(std::span<const Digest> digests) override;
  std::vector<std::optional<Entry>> load_many(std::span<const Digest> digests) override;
  void save_many(std::span<const Entry> entries) override;
  /// Calls of any kind.
  int total() const;

 private:
  std::atomic<int> in_progress_{0};
};

/// A directory holding server.toml (one HDF5 store, the default cache) for `quiver serve`,
/// removed on destruction.
class ServerStore {
 public:
  ServerStore();
  ~ServerStore();
  ServerStore(const ServerStore&) = delete;
  ServerStore& operator=(const ServerStore&) = delete;
  const std::filesystem::path& dir() const noexcept { return dir_; }
  /// Options of a subprocess SshCache serving this store with the built CLI (or quiver).
  SshCacheOptions subprocess(const std::string& quiver = "") const;
  /// Writes an executable script that appends its pid to log, then execs the built CLI.
  std::filesystem::path counting_wrapper(const std::filesystem::path& log) const;

 private:
  std::filesystem::path dir_;
};

/// An opener for quiver::mpi::Cache: rank 0's cache is a subprocess SshCache serving store
/// (which only rank 0 needs), recorded in server for the test to inspect.
inline auto served_by(const ServerStore* store, SshCache*& server) {
  return [store, &server]() -> std::unique_ptr<quiver::Cache> {
    auto c = std::make_unique<SshCache>(store->subprocess());
    server = c.get();
    return c;
  };
}

/// A call unique to (tag, rank, i).
Call call_of(const std::string& tag, int rank, int i);

}  // namespace quiver::testing::mpi
