// quiver::mpi::Cache: every rank of an MPI job uses one cache through rank 0, which owns the
// only connection (one ssh process, one server, one 2FA prompt per job). See docs/mpi.md.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <quiver/config/open.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/store/cache.hpp>
#include <span>
#include <vector>

namespace quiver::mpi {

/// What the ranks may do with the cache; it decides the MPI thread level needed.
enum class Mode {
  /// Any rank calls any operation at any time; rank 0 serves the others from progress
  /// threads. Needs MPI_THREAD_MULTIPLE.
  independent,
  /// Collective operations on every rank, the single-rank operations on rank 0 only. No
  /// progress threads; works at any thread level.
  collective,
};

/// A collective operation (or the collective destructor) waited Options::collective_timeout
/// for the other ranks. The message names the operation, the rank and what it waited for.
class CollectiveTimeout : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};

struct Options {
  Mode mode = Mode::independent;
  /// A waiting thread (a caller, or a serving thread of rank 0) polls without
  /// sleeping for this long, then sleeps in doubling steps up to max_sleep.
  std::chrono::microseconds spin{1000};
  std::chrono::microseconds max_sleep{1000};
  /// Bytes per MPI message of a large value (values of any size travel in such chunks).
  /// Must be the same on every rank; 4 KiB to INT_MAX.
  std::size_t chunk_bytes = 32u << 20;
  /// Most requests rank 0 gathers into one round of batched calls.
  std::size_t max_batch = 4096;
  /// Threads serving the other ranks on rank 0: the most rounds in flight at once. Requests
  /// that arrive while all are busy are coalesced into the next round.
  std::size_t progress_threads = 4;
  /// Rounds of only contains, expand and shrink overlap (another thread polls for requests
  /// while one is served) once such rounds take this long on average; a real cache that
  /// answers them faster is served by one thread at a time, sparing the cores its polling.
  /// Rounds with anything else always overlap. Zero: every round overlaps.
  std::chrono::microseconds overlap_after{100};
  /// The longest a rank waits at one step of a collective operation (destructor included)
  /// for the other ranks: to arrive, to finish memoize_collective's fn, or for rank 0's
  /// answer (so keep it above the real cache's call_timeout). Then CollectiveTimeout, and
  /// this cache's collective operations throw it at once from then on. Zero: no deadline.
  std::chrono::milliseconds collective_timeout{std::chrono::hours(1)};
};

/// Opens the real cache; called on rank 0 only.
using Opener = std::function<std::unique_ptr<quiver::Cache>()>;

class Cache : public quiver::Cache {
 public:
  /// Collective over comm, which is duplicated. Rank 0 opens the cache named by open (see
  /// quiver::open); the other ranks open nothing. Every rank throws the same typed error when
  /// that fails, when MPI is not initialised, or when options.mode needs a thread level MPI
  /// was not initialised with (InvalidArgument).
  explicit Cache(MPI_Comm comm, const OpenOptions& open = {}, Options options = {});
  /// As above, with rank 0 calling opener for the real cache.
  Cache(MPI_Comm comm, Opener opener, Options options = {});
  /// Collective: waits (at most collective_timeout) until every rank is done with the cache,
  /// stops the progress threads, closes the real cache and frees the communicator. Call
  /// before MPI_Finalize.
  ~Cache() override;

  using quiver::Cache::query;
  using quiver::Cache::save;

  // Independent operations: any rank, any time (Mode::independent); rank 0 calls the real
  // cache directly, other ranks send the request to rank 0, which coalesces requests arriving
  // together into one batched call. Errors (RemoteConnectionError, TimeoutError, ...) reach
  // the caller typed. In Mode::collective, only rank 0 may call them (else InvalidArgument).
  void save(const Entry& entry) override;
  std::optional<Entry> load(const Digest& digest) override;
  std::optional<Value> load_value(const Digest& digest) override;
  /// On ranks other than 0, the arrays that fit their destination are received straight
  /// into it from rank 0's messages (no copy on this rank).
  std::optional<Value> load_value_into(const Digest& digest,
                                       const ArrayDestinations& into) override;
  /// load() received into into's memory as load_value_into is.
  std::optional<Entry> load_into(const Digest& digest, const ArrayDestinations& into) override;
  bool contains(const Digest& digest) override;
  Digest expand(std::string_view prefix) override;
  std::string shrink(const Digest& digest) override;
  /// The matching summaries; from ranks other than 0 they are gathered on rank 0 first, so
  /// stopping early saves transfer only with q.limit.
  void query(const Query& q, const QuerySink& sink) override;
  bool evict(const Digest& digest) override;
  /// The real cache's configuration (fetched once, at construction).
  nlohmann::json config() const override;
  /// The real cache's info, plus an "mpi" object (ranks, mode, requests served).
  nlohmann::json info() override;
  bool read_only() const override;
  std::vector<bool> contains_many(std::span<const Digest> digests) override;
  std::vector<std::optional<Entry>> load_many(std::span<const Digest> digests) override;
  void save_many(std::span<const Entry> entries) override;

  // Collective operations: every rank of the communicator calls them, in the same order.

  /// All ranks pass the same call. Rank 0 looks it up: on a hit every rank returns the
  /// stored result; on a miss every rank runs fn (a parallel computation), and rank 0 saves
  /// the result its fn returned. If fn throws on any rank, nothing is saved and every rank
  /// throws (the original exception where fn threw). Errors of the cache reach every rank.
  template <class F>
  Memo memoize_collective(const Call& call, F&& fn);
  /// Each rank passes its own digests and gets their entries; the job costs one load_many
  /// of the union on the real cache (one remote round trip).
  std::vector<std::optional<Entry>> load_many_collective(std::span<const Digest> digests);
  /// As load_many_collective, for contains_many.
  std::vector<bool> contains_many_collective(std::span<const Digest> digests);

  int rank() const noexcept;
  int size() const noexcept;
  /// The duplicated communicator the cache talks on.
  MPI_Comm comm() const noexcept;
  const Options& options() const noexcept;
  /// The real cache on rank 0; nullptr on the other ranks.
  quiver::Cache* local() noexcept;

  struct Stats {
    std::uint64_t requests = 0;    ///< requests rank 0 served for other ranks
    std::uint64_t rounds = 0;      ///< rounds of batched calls they were served in
    std::uint64_t calls = 0;       ///< calls made on the real cache for them
    std::uint64_t overlapped = 0;  ///< rounds served while another thread polled
  };
  /// Counters of rank 0's serving threads (zero on other ranks).
  Stats stats() const;

 private:
  struct Lookup {
    Memo memo;
    std::chrono::steady_clock::time_point start;
  };
  Lookup lookup_collective(const Call& call);
  Memo finish_collective(const Call& call, Lookup lookup, std::optional<Value> result,
                         std::exception_ptr failure);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

template <class F>
Memo Cache::memoize_collective(const Call& call, F&& fn) {
  auto lookup = lookup_collective(call);
  if (lookup.memo.hit) return std::move(lookup.memo);
  std::optional<Value> result;
  std::exception_ptr failure;
  try {
    result.emplace(std::forward<F>(fn)());
  } catch (...) {
    failure = std::current_exception();
  }
  return finish_collective(call, std::move(lookup), std::move(result), failure);
}

}  // namespace quiver::mpi
