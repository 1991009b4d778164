// Soak through MPI: every rank runs mixed operations through one quiver::mpi::Cache whose
// rank-0 cache is a `quiver serve --stdio` subprocess over an HDF5 store, for a bounded time
// (QUIVER_SOAK_SECONDS, default 45), in rounds that end with collective operations. Each rank
// owns its keys and checks every answer against an in-memory model of them; keys rank 0
// saved before the start are read by all. After a warm-up and at the end every rank samples
// its descriptors, threads, child processes and memory: none may grow.
#include "soak/soak.hpp"

#include <chrono>
#include <iostream>
#include <map>
#include <quiver/mpi/cache.hpp>
#include <random>
#include <set>

#include "mpi_testing.hpp"

namespace quiver::mpi {
namespace {

using quiver::testing::Resources;
using quiver::testing::mpi::all;
using quiver::testing::mpi::ServerStore;
using quiver::testing::mpi::world_rank;
using quiver::testing::mpi::world_size;
using Clock = std::chrono::steady_clock;

constexpr int kKeys = 24;         // per rank
constexpr int kShared = 8;        // saved by rank 0 before the start, read by all
constexpr int kOpsPerRound = 40;  // independent operations between collective ones
constexpr std::int64_t kRssGrowthLimitKiB = 64 * 1024;

Call own_call(int rank, int k) {
  return Call("soak.mpi.r" + std::to_string(rank), "1").arg("k", k);
}
Call shared_call(int k) {
  return Call("soak.mpi.shared", "1").arg("k", k);
}
Call collective_call(int k) {
  return Call("soak.mpi.collective", "1").arg("k", k);
}

/// Mixed sizes: a scalar, a string, 16 doubles, 64 KiB and 256 KiB arrays.
Value result_of(int k, int g) {
  return quiver::testing::mixed_value(k, g, 8192, 32768);
}

struct Counts {
  long long ops = 0, saves = 0, loads = 0, hits = 0, queries = 0, evicts = 0, collectives = 0;
};

/// One rank's worker: its keys, its model of them, and the checks.
class Worker {
 public:
  Worker(Cache& cache, int rank) : cache_(cache), rank_(rank), rng_(4321u + rank) {
    for (int k = 0; k < kKeys; ++k) digests_.push_back(own_call(rank, k).digest());
  }

  /// One random independent operation; "" or what differed from the model.
  std::string step() {
    const int k = std::uniform_int_distribution<int>(0, kKeys - 1)(rng_);
    const auto& d = digests_[static_cast<std::size_t>(k)];
    const auto expected = expected_of(k);
    const auto where = "rank " + std::to_string(rank_) + " key " + std::to_string(k) + ": ";
    ++counts.ops;
    switch (std::uniform_int_distribution<int>(0, 11)(rng_)) {
      case 0:
      case 1: {
        const int g = ++generation_;
        cache_.save(Entry::make(own_call(rank_, k), result_of(k, g)));
        model_[k] = g;
        ++counts.saves;
        return {};
      }
      case 2: {  // save_many of two keys
        const int j = (k + 1) % kKeys, g = ++generation_;
        std::vector<Entry> es{Entry::make(own_call(rank_, k), result_of(k, g)),
                              Entry::make(own_call(rank_, j), result_of(j, g))};
        cache_.save_many(es);
        model_[k] = model_[j] = g;
        counts.saves += 2;
        return {};
      }
      case 3: {
        auto e = cache_.load(d);
        ++counts.loads;
        if (e.has_value() != expected.has_value()) return where + "load hit differs from model";
        if (e && (e->digest != d || e->call != own_call(rank_, k) || e->result != *expected))
          return where + "load returned other contents";
        counts.hits += e.has_value();
        return {};
      }
      case 4: {
        auto v = cache_.load_value(d);
        ++counts.loads;
        if (v != expected) return where + "load_value differs from model";
        counts.hits += v.has_value();
        return {};
      }
      case 5:
        return cache_.contains(d) == expected.has_value() ? "" : where + "contains differs";
      case 6: {  // contains_many and load_many of every own key and the shared ones
        auto found = cache_.contains_many(digests_);
        for (int j = 0; j < kKeys; ++j)
          if (found.at(static_cast<std::size_t>(j)) != model_.contains(j))
            return "rank " + std::to_string(rank_) + ": contains_many differs at key " +
                   std::to_string(j);
        std::vector<Digest> shared;
        for (int j = 0; j < kShared; ++j) shared.push_back(shared_call(j).digest());
        auto loaded = cache_.load_many(shared);
        ++counts.loads;
        for (int j = 0; j < kShared; ++j)
          if (!loaded.at(static_cast<std::size_t>(j)) ||
              loaded[static_cast<std::size_t>(j)]->result != result_of(j, 0))
            return "rank " + std::to_string(rank_) + ": shared key " + std::to_string(j) +
                   " differs";
        return {};
      }
      case 7: {
        Query q;
        q.function = "soak.mpi.r" + std::to_string(rank_);
        std::set<Digest> found, want;
        for (const auto& s : cache_.query(q)) found.insert(s.digest);
        for (const auto& [key, g] : model_) want.insert(digests_[static_cast<std::size_t>(key)]);
        ++counts.queries;
        return found == want ? "" : "rank " + std::to_string(rank_) + ": query differs";
      }
      case 8: {
        const bool removed = cache_.evict(d);
        ++counts.evicts;
        model_.erase(k);
        return removed == expected.has_value() ? "" : where + "evict result differs";
      }
      case 9: {  // expand a 20-character prefix: the digest when stored, else NotFound
        const auto prefix = d.hex().substr(0, 20);
        try {
          if (cache_.expand(prefix) != d) return where + "expand gave another digest";
          if (!expected) return where + "expand found an evicted key";
        } catch (const NotFound&) {
          if (expected) return where + "expand did not find a stored key";
        }
        return {};
      }
      default: {
        const int j = std::uniform_int_distribution<int>(0, kShared - 1)(rng_);
        auto v = cache_.load_value(shared_call(j).digest());
        ++counts.loads;
        counts.hits += v.has_value();
        return v == result_of(j, 0) ? "" : "rank " + std::to_string(rank_) + ": shared differs";
      }
    }
  }

  /// The collective part of round r (every rank calls it in the same order).
  std::string collective(int r) {
    const int k = r % 6;
    auto memo = cache_.memoize_collective(collective_call(k), [&] { return result_of(k, 7); });
    counts.collectives += 2;
    if (memo.value != result_of(k, 7)) return "memoize_collective returned another value";
    if (memo.hit != (r >= 6))
      return "memoize_collective hit differs (round " + std::to_string(r) + ")";
    std::vector<Digest> ask{digests_[static_cast<std::size_t>(r % kKeys)],
                            shared_call(r % kShared).digest()};
    auto got = cache_.load_many_collective(ask);
    if (got.at(0).has_value() != expected_of(r % kKeys).has_value() ||
        (got[0] && got[0]->result != *expected_of(r % kKeys)))
      return "load_many_collective differs from the model";
    if (!got.at(1) || got[1]->result != result_of(r % kShared, 0))
      return "load_many_collective missed a shared key";
    return {};
  }

  Counts counts;

 private:
  std::optional<Value> expected_of(int k) const {
    const auto it = model_.find(k);
    return it == model_.end() ? std::nullopt : std::optional<Value>(result_of(k, it->second));
  }

  Cache& cache_;
  int rank_;
  std::mt19937 rng_;
  std::vector<Digest> digests_;
  std::map<int, int> model_;  ///< key -> generation of its stored result
  int generation_ = 0;
};

/// Rank 0 decides for everyone whether to go on (so every rank runs the same rounds).
bool before(Clock::time_point end) {
  int go = Clock::now() < end ? 1 : 0;
  MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return go == 1;
}

/// Runs rounds until end; returns the first mismatch ("" when none).
std::string run_until(Worker& w, int& round, Clock::time_point end) {
  std::string bad;
  while (before(end)) {
    for (int i = 0; i < kOpsPerRound && bad.empty(); ++i) bad = w.step();
    // Every rank still takes part in the collective step, so that none is left waiting.
    auto c = w.collective(round++);
    if (bad.empty()) bad = c;
    if (!all(bad.empty())) return bad.empty() ? "another rank failed" : bad;
  }
  return {};
}

TEST(MpiSoak, MixedOperationsThroughRank0KeepResultsAndResourcesSteady) {
  const int rank = world_rank();
  const double seconds = quiver::testing::soak_seconds(45);
  const double warmup = std::min(5.0, seconds / 6);
  std::unique_ptr<ServerStore> store;
  if (rank == 0) store = std::make_unique<ServerStore>();
  SshCache* server = nullptr;
  Cache cache(MPI_COMM_WORLD, quiver::testing::mpi::served_by(store.get(), server));
  if (rank == 0)
    for (int k = 0; k < kShared; ++k) cache.save(Entry::make(shared_call(k), result_of(k, 0)));
  MPI_Barrier(MPI_COMM_WORLD);

  Worker w(cache, rank);
  int round = 0;
  auto after = [](double s) {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  auto bad = run_until(w, round, after(warmup));
  ASSERT_TRUE(all(bad.empty())) << bad;
  const Resources start = quiver::testing::resources();
  const auto ops_at_start = w.counts.ops + w.counts.collectives;
  const auto t0 = Clock::now();
  bad = run_until(w, round, after(seconds - warmup));
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const Resources end = quiver::testing::resources();
  EXPECT_TRUE(bad.empty()) << bad;

  // Rank 0 prints every rank's figures.
  const auto ops = w.counts.ops + w.counts.collectives - ops_at_start;
  std::array<long long, 15> mine{w.counts.ops,
                                 w.counts.saves,
                                 w.counts.loads,
                                 w.counts.hits,
                                 w.counts.queries,
                                 w.counts.evicts,
                                 w.counts.collectives,
                                 ops,
                                 start.fds,
                                 end.fds,
                                 start.threads,
                                 end.threads,
                                 start.children,
                                 end.children,
                                 end.rss_kib - start.rss_kib};
  std::vector<long long> every(mine.size() * static_cast<std::size_t>(world_size()));
  std::array<long long, 2> rss{start.rss_kib, end.rss_kib};
  std::vector<long long> every_rss(2 * static_cast<std::size_t>(world_size()));
  MPI_Gather(mine.data(), static_cast<int>(mine.size()), MPI_LONG_LONG, every.data(),
             static_cast<int>(mine.size()), MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  MPI_Gather(rss.data(), 2, MPI_LONG_LONG, every_rss.data(), 2, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    std::cout << "mpi soak: " << seconds << " s, " << world_size() << " ranks, " << round
              << " rounds; server rank 0 served " << cache.stats().requests << " requests in "
              << cache.stats().rounds << " rounds\n";
    long long total = 0;
    for (int r = 0; r < world_size(); ++r) {
      const auto* f = every.data() + mine.size() * static_cast<std::size_t>(r);
      const auto* m = every_rss.data() + 2 * static_cast<std::size_t>(r);
      total += f[7];
      std::cout << "  rank " << r << ": " << f[0] << " independent ops (" << f[1] << " saves, "
                << f[2] << " loads (" << f[3] << " hits), " << f[4] << " queries, " << f[5]
                << " evicts), " << f[6] << " collective ops; " << f[7] / elapsed
                << " ops/s after warm-up; fds " << f[8] << " -> " << f[9] << ", threads " << f[10]
                << " -> " << f[11] << ", children " << f[12] << " -> " << f[13] << ", rss " << m[0]
                << " -> " << m[1] << " KiB\n";
    }
    std::cout << "  all ranks: " << total / elapsed << " ops/s after warm-up\n";
  }

  EXPECT_GT(w.counts.saves, 0);
  EXPECT_GT(w.counts.hits, 0);
  EXPECT_EQ(end.fds, start.fds) << "rank " << rank;
  EXPECT_EQ(end.threads, start.threads) << "rank " << rank;
  EXPECT_EQ(end.children, start.children) << "rank " << rank;
  EXPECT_EQ(start.children, rank == 0 ? 1 : 0) << "rank " << rank << " (rank 0: the server)";
  EXPECT_LT(end.rss_kib - start.rss_kib, kRssGrowthLimitKiB) << "rank " << rank;
  if (rank == 0) {
    EXPECT_EQ(server->stats().connects, 1u) << "the soak must run on one connection";
  }
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

}  // namespace
}  // namespace quiver::mpi

int main(int argc, char** argv) {
  return quiver::testing::mpi::run_all_tests(argc, argv, MPI_THREAD_MULTIPLE);
}
