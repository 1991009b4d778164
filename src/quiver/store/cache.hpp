// The Cache interface every backend implements (memory, HDF5 store, stack, read-only,
// remote, MPI), so that they compose.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <quiver/core/call.hpp>
#include <quiver/core/digest.hpp>
#include <quiver/core/value.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quiver {

/// What query() reports of one entry, without loading its result.
struct EntrySummary {
  Digest digest;
  std::string function;
  std::string version;
  Metadata meta;
  std::uint64_t bytes = 0;  ///< stored size of the entry
  /// value_digest() of each argument, for equality filters.
  std::map<std::string, Digest, std::less<>> arg_digests;

  /// A summary of a full entry (bytes left for the store to fill).
  static EntrySummary of(const Entry& e);
  friend bool operator==(const EntrySummary&, const EntrySummary&) = default;
};

/// Filters of query(). Unset fields match everything.
struct Query {
  std::optional<std::string> function;
  Value::Map args;  ///< each must be equal to the entry's argument of that name
  std::optional<Clock::time_point> created_after;   ///< inclusive
  std::optional<Clock::time_point> created_before;  ///< exclusive
  std::optional<std::string> host;
  std::optional<std::size_t> limit;
};

/// Precompiled form of a Query, shared by every backend so filters mean the same
/// everywhere.
class QueryMatcher {
 public:
  explicit QueryMatcher(const Query& q);
  bool matches(const EntrySummary& s) const;
  std::optional<std::size_t> limit() const noexcept { return limit_; }

 private:
  std::optional<std::string> function_;
  std::vector<std::pair<std::string, Digest>> args_;
  std::optional<Clock::time_point> after_, before_;
  std::optional<std::string> host_;
  std::optional<std::size_t> limit_;
};

/// Receives query results one at a time; return false to stop early.
using QuerySink = std::function<bool(const EntrySummary&)>;

/// What memoize() returns.
struct Memo {
  Value value;
  bool hit = false;
  Digest digest;
  double seconds = 0;  ///< time spent computing (miss) or loading (hit)
};

class Cache {
 public:
  virtual ~Cache() = default;
  Cache() = default;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  /// Stores entry under entry.digest, replacing any entry there. Throws Rejected when
  /// read-only, InvalidArgument when the digest does not match the call.
  virtual void save(const Entry& entry) = 0;
  /// The whole entry, or nullopt on a miss (a corrupt entry is logged and is a miss).
  virtual std::optional<Entry> load(const Digest& digest) = 0;
  /// Only the result, or nullopt on a miss.
  virtual std::optional<Value> load_value(const Digest& digest) = 0;
  /// The result, or nullopt on a miss, with each array at a path of into placed in that
  /// caller memory (the returned Value borrows it): HDF5 stores, remote and MPI caches read
  /// or receive it there directly, the memory cache copies it there. Throws TypeError when a
  /// path names no array of the result or an array does not fit its destination; the
  /// destinations' contents are then unspecified.
  virtual std::optional<Value> load_value_into(const Digest& digest, const ArrayDestinations& into);
  /// load() whose result's arrays are placed in into's memory as by load_value_into (a stack
  /// promoting an entry from a deeper layer loads it so). Throws as load_value_into.
  virtual std::optional<Entry> load_into(const Digest& digest, const ArrayDestinations& into);
  /// True when an entry is stored under digest.
  virtual bool contains(const Digest& digest) = 0;
  /// The unique stored digest starting with prefix (>= 4 lowercase hex chars). Throws
  /// InvalidArgument, NotFound or AmbiguousDigest (saying how many chars are unique).
  virtual Digest expand(std::string_view prefix) = 0;
  /// The shortest prefix (>= 4 chars) that names digest uniquely in this cache.
  virtual std::string shrink(const Digest& digest) = 0;
  /// Streams the summaries of matching entries to sink, at most q.limit of them.
  virtual void query(const Query& q, const QuerySink& sink) = 0;
  /// Removes the entry; false when it was not there. Throws Rejected when read-only.
  virtual bool evict(const Digest& digest) = 0;
  /// The cache's own configuration as a tree (type, path, ...), secrets included; the
  /// config layer turns it back into quiver.toml and redacts it.
  virtual nlohmann::json config() const = 0;
  /// A description for humans and scripts: config (redacted), counts, versions.
  virtual nlohmann::json info() = 0;
  /// True when save and evict are refused.
  virtual bool read_only() const = 0;

  /// Batch forms: one round trip on remote caches. Defaults loop over the single forms.
  virtual std::vector<bool> contains_many(std::span<const Digest> digests);
  virtual std::vector<std::optional<Entry>> load_many(std::span<const Digest> digests);
  virtual void save_many(std::span<const Entry> entries);

  /// Saves result for call with fresh metadata; returns the digest.
  Digest save(const Call& call, const Value& result, double wall_time_seconds = 0);
  /// Collects query results into a vector.
  std::vector<EntrySummary> query(const Query& q);
  /// Returns the cached result of call, or runs fn(), saves and returns its result. An
  /// exception from fn propagates and nothing is stored.
  template <class F>
  Memo memoize(const Call& call, F&& fn);
};

template <class F>
Memo Cache::memoize(const Call& call, F&& fn) {
  using Seconds = std::chrono::duration<double>;
  Memo m;
  m.digest = call.digest();
  auto t0 = std::chrono::steady_clock::now();
  if (auto v = load_value(m.digest)) {
    m.value = std::move(*v);
    m.hit = true;
    m.seconds = Seconds(std::chrono::steady_clock::now() - t0).count();
    return m;
  }
  t0 = std::chrono::steady_clock::now();
  m.value = Value(std::forward<F>(fn)());
  m.seconds = Seconds(std::chrono::steady_clock::now() - t0).count();
  Entry e;
  e.digest = m.digest;
  e.call = call;
  e.result = m.value;
  e.meta = Metadata::now(m.seconds);
  if (!read_only()) save(e);
  return m;
}

}  // namespace quiver
