// Soak: mixed operations from several threads through one SshCache over the real loopback
// sshd against a remote HDF5 store, for a bounded time (QUIVER_SOAK_SECONDS, default 60).
// Every answer is checked against an in-memory model, and this process's descriptors,
// threads, child processes and memory, and the remote server's memory, are sampled after a
// warm-up and at the end: none may grow.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <quiver/core/call.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "soak/soak.hpp"
#include "ssh/ssh_fixture.hpp"
#include "testing/testing.hpp"

namespace quiver {
namespace {

using testing::RemoteDir;
using testing::SshFixture;
using SteadyClock = std::chrono::steady_clock;
using testing::child_process_count;
using testing::rss_kib;

constexpr int kThreads = 4;
constexpr int kKeysPerThread = 24;
constexpr std::int64_t kRssGrowthLimitKiB = 64 * 1024;

struct Sample {
  std::size_t fds = 0;
  std::size_t threads = 0;
  int children = 0;
  std::int64_t rss_kib = 0;
  std::int64_t server_rss_kib = 0;
};

Sample sample(std::int64_t server_pid) {
  return {testing::open_fd_count(), testing::thread_count(), child_process_count(), rss_kib("self"),
          rss_kib(std::to_string(server_pid))};
}

std::ostream& operator<<(std::ostream& os, const Sample& s) {
  return os << "fds " << s.fds << ", threads " << s.threads << ", children " << s.children
            << ", rss " << s.rss_kib << " KiB, server rss " << s.server_rss_kib << " KiB";
}

/// The call of key k of worker t; its result changes with each save (generation g).
Call call_of(int t, int k) {
  return Call("soak.t" + std::to_string(t), "1").arg("k", k);
}

/// Mixed sizes: scalars, strings, small and large arrays (up to 2 MiB).
Value result_of(int k, int g) {
  return testing::mixed_value(k, g, 8192 + static_cast<std::uint64_t>(k),
                              k % 3 == 0 ? 262144 : 32768);
}

enum class Op { save, load, load_value, contains, contains_many, query, evict, ping };

/// The operation for a uniform draw r in [0, 100): 30% saves, 30% loads, 10% contains, 8%
/// contains_many, 8% queries, 9% evicts, 5% pings.
Op op_of(int r) {
  constexpr std::pair<int, Op> kUpTo[] = {
      {30, Op::save},          {45, Op::load},  {60, Op::load_value}, {70, Op::contains},
      {78, Op::contains_many}, {86, Op::query}, {95, Op::evict}};
  for (const auto& [limit, op] : kUpTo)
    if (r < limit) return op;
  return Op::ping;
}

struct Counts {
  std::atomic<std::uint64_t> ops{0}, saves{0}, loads{0}, hits{0}, queries{0}, evicts{0}, pings{0},
      errors{0};
};

/// One worker: owns the keys of worker t, so its model is exact without locking.
class Worker {
 public:
  Worker(SshCache& cache, int t, Counts& counts)
      : cache_(cache), t_(t), counts_(counts), rng_(static_cast<unsigned>(1234 + t)) {
    for (int k = 0; k < kKeysPerThread; ++k) digests_.push_back(call_of(t, k).digest());
  }

  /// Runs random operations until deadline; returns the first mismatch ("" when none).
  std::string run_until(SteadyClock::time_point deadline) {
    while (SteadyClock::now() < deadline) {
      try {
        if (auto bad = step(); !bad.empty()) return bad;
      } catch (const std::exception& e) {
        counts_.errors++;
        return std::string("worker ") + std::to_string(t_) + ": " + e.what();
      }
      counts_.ops++;
    }
    return {};
  }

 private:
  std::string step() {
    const int k = std::uniform_int_distribution<int>(0, kKeysPerThread - 1)(rng_);
    const auto& d = digests_[static_cast<std::size_t>(k)];
    const auto it = model_.find(k);
    const std::optional<Value> expected =
        it == model_.end() ? std::nullopt : std::optional<Value>(result_of(k, it->second));
    const auto where = "worker " + std::to_string(t_) + " key " + std::to_string(k) + ": ";
    switch (op_of(std::uniform_int_distribution<int>(0, 99)(rng_))) {
      case Op::save: {
        const int g = ++generation_;
        cache_.save(Entry::make(call_of(t_, k), result_of(k, g)));
        model_[k] = g;
        counts_.saves++;
        return {};
      }
      case Op::load: {
        auto e = cache_.load(d);
        counts_.loads++;
        if (e.has_value() != expected.has_value()) return where + "load hit differs from model";
        if (!e) return {};
        counts_.hits++;
        if (e->digest != d || e->call != call_of(t_, k) || e->result != *expected)
          return where + "load returned other contents";
        return {};
      }
      case Op::load_value: {
        auto v = cache_.load_value(d);
        counts_.loads++;
        if (v != expected) return where + "load_value differs from model";
        if (v) counts_.hits++;
        return {};
      }
      case Op::contains:
        if (cache_.contains(d) != expected.has_value()) return where + "contains differs";
        return {};
      case Op::contains_many: {
        auto got = cache_.contains_many(digests_);
        for (int j = 0; j < kKeysPerThread; ++j)
          if (got.at(static_cast<std::size_t>(j)) != model_.contains(j))
            return "worker " + std::to_string(t_) + ": contains_many differs at key " +
                   std::to_string(j);
        return {};
      }
      case Op::query: {
        Query q;
        q.function = "soak.t" + std::to_string(t_);
        std::set<Digest> found;
        for (const auto& s : cache_.query(q)) found.insert(s.digest);
        std::set<Digest> want;
        for (const auto& [key, g] : model_) want.insert(digests_[static_cast<std::size_t>(key)]);
        counts_.queries++;
        if (found != want) return "worker " + std::to_string(t_) + ": query differs from model";
        return {};
      }
      case Op::evict: {
        const bool removed = cache_.evict(d);
        counts_.evicts++;
        if (removed != expected.has_value()) return where + "evict result differs";
        model_.erase(k);
        return {};
      }
      case Op::ping:
        if (!(cache_.ping() > 0)) return "ping returned no time";
        counts_.pings++;
        return {};
    }
    return {};
  }

  SshCache& cache_;
  int t_;
  Counts& counts_;
  std::mt19937 rng_;
  std::vector<Digest> digests_;
  std::map<int, int> model_;  ///< key -> generation of its stored result
  int generation_ = 0;
};

/// Runs every worker until deadline on its own thread; returns the mismatches.
std::vector<std::string> run_phase(std::vector<Worker>& workers, SteadyClock::time_point deadline) {
  std::vector<std::string> bad(workers.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < workers.size(); ++i)
    threads.emplace_back([&, i] { bad[i] = workers[i].run_until(deadline); });
  for (auto& t : threads) t.join();
  std::erase(bad, std::string{});
  return bad;
}

TEST(Soak, MixedOperationsThroughSshKeepResultsAndResourcesSteady) {
  const double seconds = testing::soak_seconds();
  const double warmup = std::min(5.0, seconds / 6);
  RemoteDir dir("soak");
  SshCache cache(SshFixture::get().options(dir.write_config()));
  const auto server = cache.info()["pid"].get<std::int64_t>();
  Counts counts;
  std::vector<Worker> workers;
  for (int t = 0; t < kThreads; ++t) workers.emplace_back(cache, t, counts);

  auto phase_end = [](double s) {
    return SteadyClock::now() +
           std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
  };
  auto bad = run_phase(workers, phase_end(warmup));
  ASSERT_TRUE(bad.empty()) << bad.front();
  const Sample start = sample(server);
  const auto ops_at_start = counts.ops.load();
  const auto t0 = SteadyClock::now();
  bad = run_phase(workers, phase_end(seconds - warmup));
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const Sample end = sample(server);
  for (const auto& b : bad) ADD_FAILURE() << b;

  const auto ops = counts.ops.load() - ops_at_start;
  std::cout << "soak: " << seconds << " s, " << kThreads << " threads, " << counts.ops
            << " operations (" << counts.saves << " saves, " << counts.loads << " loads ("
            << counts.hits << " hits), " << counts.queries << " queries, " << counts.evicts
            << " evicts, " << counts.pings << " pings), " << ops / elapsed
            << " ops/s after warm-up\n  start: " << start << "\n  end:   " << end << '\n';
  RecordProperty("operations", static_cast<int>(counts.ops.load()));
  RecordProperty("ops_per_second", static_cast<int>(ops / elapsed));
  RecordProperty("rss_growth_kib", static_cast<int>(end.rss_kib - start.rss_kib));
  RecordProperty("server_rss_growth_kib",
                 static_cast<int>(end.server_rss_kib - start.server_rss_kib));

  EXPECT_EQ(counts.errors.load(), 0u);
  EXPECT_GT(counts.saves.load(), 0u);
  EXPECT_GT(counts.hits.load(), 0u);
  EXPECT_EQ(cache.stats().connects, 1u) << "the soak must run on one connection";
  EXPECT_EQ(cache.info()["pid"].get<std::int64_t>(), server);
  ASSERT_GT(start.server_rss_kib, 0) << "cannot read the server's /proc/" << server << "/status";
  EXPECT_EQ(end.fds, start.fds);
  EXPECT_EQ(end.threads, start.threads);
  EXPECT_EQ(end.children, start.children);
  EXPECT_EQ(start.children, 1) << "one ssh process";
  EXPECT_LT(end.rss_kib - start.rss_kib, kRssGrowthLimitKiB);
  EXPECT_LT(end.server_rss_kib - start.server_rss_kib, kRssGrowthLimitKiB);
}

}  // namespace
}  // namespace quiver
