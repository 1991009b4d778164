// quiver::mpi::Cache under mpirun -np 4: independent calls from every rank, rank 0 busy in
// an MPI_Barrier, coalescing, collective memoize and batches, errors reaching every rank.
#include <gmock/gmock.h>
#include <spdlog/sinks/ostream_sink.h>

#include <quiver/core/log.hpp>
#include <quiver/mpi/cache.hpp>
#include <sstream>
#include <testing/testing.hpp>
#include <thread>

#include "mpi_testing.hpp"
#include "soak/soak.hpp"

namespace quiver::mpi {
namespace {

using quiver::testing::ramp;
using quiver::testing::mpi::all;
using quiver::testing::mpi::call_of;
using quiver::testing::mpi::CountingCache;
using quiver::testing::mpi::ServerStore;
using quiver::testing::mpi::sum;

// The real cache behind rank 0, per parameter: in memory (counted), or a server subprocess.
class MpiCacheTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Cache> make(Options options = {}) {
    const int rank = quiver::testing::mpi::world_rank();
    if (rank == 0 && GetParam() == "subprocess") server_ = std::make_unique<ServerStore>();
    return std::make_unique<Cache>(
        MPI_COMM_WORLD,
        [this]() -> std::unique_ptr<quiver::Cache> {
          if (GetParam() == "subprocess") {
            auto c = std::make_unique<SshCache>(server_->subprocess());
            ssh_ = c.get();
            return c;
          }
          auto c = std::make_unique<CountingCache>();
          counting_ = c.get();
          return c;
        },
        options);
  }

  std::unique_ptr<ServerStore> server_;  // rank 0
  CountingCache* counting_ = nullptr;    // rank 0, memory
  SshCache* ssh_ = nullptr;              // rank 0, subprocess
};

TEST_P(MpiCacheTest, IndependentCallsFromEveryRankInterleave) {
  auto cache = make();
  const int rank = cache->rank(), size = cache->size();
  constexpr int kPerThread = 12;
  // Two threads per rank save, check and load their own entries at the same time.
  auto work = [&](int thread) {
    for (int i = 0; i < kPerThread; ++i) {
      auto call = call_of("inter", rank, thread * 100 + i);
      const Value result = Value(ramp(8 + i, rank * 1000.0 + i));
      EXPECT_FALSE(cache->contains(call.digest()));
      auto d = cache->save(call, result);
      EXPECT_EQ(d, call.digest());
      EXPECT_TRUE(cache->contains(d));
      auto v = cache->load_value(d);
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, result);
      auto e = cache->load(d);
      ASSERT_TRUE(e);
      EXPECT_EQ(e->call.function, call.function);
      EXPECT_EQ(e->result, result);
    }
  };
  std::thread other(work, 1);
  work(0);
  other.join();
  ASSERT_TRUE(all(!::testing::Test::HasFailure()));
  MPI_Barrier(MPI_COMM_WORLD);

  // Every rank sees every other rank's entries.
  const int next = (rank + 1) % size;
  for (int i = 0; i < kPerThread; ++i) {
    auto d = call_of("inter", next, i).digest();
    EXPECT_TRUE(cache->contains(d));
    auto v = cache->load_value(d);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, Value(ramp(8 + i, next * 1000.0 + i)));
    auto prefix = cache->shrink(d);
    EXPECT_GE(prefix.size(), 4u);
    EXPECT_EQ(cache->expand(prefix), d);
  }
  Query q;
  q.function = "test.mpi.inter";
  EXPECT_EQ(cache->query(q).size(), static_cast<std::size_t>(size * 2 * kPerThread));
  q.args["rank"] = Value(std::int64_t{next});
  q.limit = 3;
  auto some = cache->query(q);
  EXPECT_EQ(some.size(), 3u);
  for (const auto& s : some) EXPECT_EQ(s.function, "test.mpi.inter");

  // Batch forms from every rank, misses included.
  std::vector<Digest> mixed{call_of("inter", next, 0).digest(), call_of("never", rank, 0).digest(),
                            call_of("inter", rank, 101).digest()};
  EXPECT_EQ(cache->contains_many(mixed), (std::vector<bool>{true, false, true}));
  auto loaded = cache->load_many(mixed);
  ASSERT_EQ(loaded.size(), 3u);
  EXPECT_TRUE(loaded[0] && !loaded[1] && loaded[2]);
  std::vector<Entry> batch{Entry::make(call_of("many", rank, 0), Value(1.5)),
                           Entry::make(call_of("many", rank, 1), Value("two"))};
  cache->save_many(batch);
  EXPECT_EQ(cache->load_value(batch[1].digest), Value("two"));
  MPI_Barrier(MPI_COMM_WORLD);

  // Each rank evicts its own entries.
  for (int i = 0; i < kPerThread; ++i) {
    EXPECT_TRUE(cache->evict(call_of("inter", rank, i).digest()));
    EXPECT_FALSE(cache->evict(call_of("inter", rank, i).digest()));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(cache->contains(call_of("inter", next, 0).digest()));
  auto info = cache->info();
  EXPECT_EQ(info["mpi"]["ranks"], size);
  EXPECT_EQ(info["mpi"]["rank"], rank);
  EXPECT_EQ(cache->config(), rank == 0 ? cache->local()->config() : cache->config());
}

TEST_P(MpiCacheTest, OtherRanksAreServedWhileRankZeroSitsInABarrier) {
  auto cache = make();
  const int rank = cache->rank();
  constexpr int kCalls = 40;
  if (rank == 0) {
    // The application's own barrier: rank 0's thread is blocked here until every other rank
    // has finished all of its cache calls, which only rank 0's progress thread can answer.
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT_GE(cache->stats().requests,
              static_cast<std::uint64_t>((cache->size() - 1) * kCalls * 3));
  } else {
    for (int i = 0; i < kCalls; ++i) {
      auto call = call_of("barrier", rank, i);
      cache->save(call, Value(std::int64_t{i * rank}));
      EXPECT_TRUE(cache->contains(call.digest()));
      EXPECT_EQ(cache->load_value(call.digest()), Value(std::int64_t{i * rank}));
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

// Three ranks call contains in a loop while each round on rank 0 takes 5 ms (a slow remote):
// with one serving thread, requests pile up during a round and the next round takes them
// all in one contains_many.
TEST_P(MpiCacheTest, RequestsArrivingTogetherShareOneBatchedCall) {
  if (GetParam() != "memory") GTEST_SKIP() << "counted on the in-memory cache";
  Options one_round_at_a_time;
  one_round_at_a_time.progress_threads = 1;
  auto cache = make(one_round_at_a_time);
  const int rank = cache->rank();
  constexpr int kCalls = 30;
  if (rank == 0) counting_->batch_delay = std::chrono::milliseconds(5);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank != 0) {
    for (int i = 0; i < kCalls; ++i) EXPECT_FALSE(cache->contains(call_of("co", rank, i).digest()));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    const auto requests = (cache->size() - 1) * kCalls;
    EXPECT_EQ(cache->stats().requests, static_cast<std::uint64_t>(requests));
    EXPECT_EQ(counting_->contains_calls, 0);
    // Without coalescing there would be one call per request.
    EXPECT_LE(counting_->contains_many_calls, requests * 2 / 3) << "calls for " << requests;
    EXPECT_EQ(static_cast<std::uint64_t>(counting_->contains_many_calls), cache->stats().calls);
    EXPECT_EQ(counting_->max_concurrent, 1);
  }
}

// The same load with several serving threads: rounds overlap, so one slow round does not
// hold up the requests that arrive during it.
TEST_P(MpiCacheTest, RoundsOverlapWhileTheRemoteIsSlow) {
  if (GetParam() != "memory") GTEST_SKIP() << "counted on the in-memory cache";
  auto cache = make();
  const int rank = cache->rank();
  constexpr int kCalls = 30;
  if (rank == 0) counting_->batch_delay = std::chrono::milliseconds(5);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank != 0) {
    for (int i = 0; i < kCalls; ++i) EXPECT_FALSE(cache->contains(call_of("ov", rank, i).digest()));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    EXPECT_GE(counting_->max_concurrent, 2);
    EXPECT_LE(counting_->max_concurrent, static_cast<int>(cache->options().progress_threads));
    // Each round took longer than Options::overlap_after, so every one after the first was
    // served while another thread polled.
    const auto s = cache->stats();
    EXPECT_GE(s.overlapped + 1, s.rounds) << s.overlapped << " of " << s.rounds;
  }
}

// Rounds of contains that are quicker than overlap_after are served by one thread at a time
// (nobody polls beside them); rounds holding anything else still overlap. overlap_after = 0
// makes every round overlap.
TEST_P(MpiCacheTest, OnlyRoundsSlowerThanOverlapAfterOrNotQuickOverlap) {
  if (GetParam() != "memory") GTEST_SKIP() << "counted on the in-memory cache";
  for (const auto after :
       {std::chrono::microseconds(std::chrono::hours(1)), std::chrono::microseconds(0)}) {
    Options options;
    options.overlap_after = after;
    auto cache = make(options);
    const int rank = cache->rank();
    constexpr int kCalls = 40;
    if (rank != 0) {
      for (int i = 0; i < kCalls; ++i)
        EXPECT_FALSE(cache->contains(call_of("quick", rank, i).digest()));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      const auto s = cache->stats();
      EXPECT_GT(s.rounds, 0u);
      EXPECT_EQ(s.overlapped, after.count() == 0 ? s.rounds : 0u)
          << s.overlapped << " of " << s.rounds << " rounds, overlap_after " << after.count();
      if (after.count() != 0) {
        EXPECT_EQ(counting_->max_concurrent, 1);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank != 0) cache->save(call_of("not quick", rank, 0), Value(1.0));
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      const auto s = cache->stats();
      EXPECT_GE(s.overlapped, after.count() == 0 ? s.rounds : 1u);
    }
  }
}

// load_value_into on every rank. On the other ranks the array is received from rank 0's
// messages straight into the caller's vector: the peak resident memory does not grow by
// another copy of it. A destination that does not fit is a TypeError naming the path, and
// the cache goes on working.
TEST_P(MpiCacheTest, LoadValueIntoReceivesTheArrayInPlace) {
  auto cache = make();
  const int rank = cache->rank();
  constexpr std::size_t kElements = std::size_t{8} << 20;  // 64 MiB of double
  const auto call = call_of("into", 0, 0);
  if (rank == 0) {
    Value::Map m;
    m["T"] = Value(ramp(kElements, 7.0));
    m["steps"] = Value(std::int64_t{3});
    cache->save(call, Value(std::move(m)));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  std::vector<double> t(kElements);
  quiver::testing::reset_peak_rss("self");
  const auto before = quiver::testing::peak_rss_kib("self");
  auto v = cache->load_value_into(call.digest(), {{"T", ArrayInto::of(std::span(t))}});
  const auto grew = quiver::testing::peak_rss_kib("self") - before;
  ASSERT_TRUE(v);
  EXPECT_EQ(v->as_map().at("steps"), Value(std::int64_t{3}));
  EXPECT_EQ(v->as_map().at("T").as_array().buffer().data(), reinterpret_cast<std::byte*>(t.data()));
  EXPECT_EQ(v->as_map().at("T").as_array(), ramp(kElements, 7.0));
  if (rank != 0 && !quiver::testing::kSanitized) {
    EXPECT_LT(grew, static_cast<long long>(kElements * sizeof(double) / 2 / 1024))
        << "rank " << rank << ": the peak grew by " << grew << " KiB";
  }
  // The whole entry, received into the memory the same way.
  std::fill(t.begin(), t.end(), -1.0);
  quiver::testing::reset_peak_rss("self");
  const auto before_entry = quiver::testing::peak_rss_kib("self");
  auto e = cache->load_into(call.digest(), {{"T", ArrayInto::of(std::span(t))}});
  const auto grew_entry = quiver::testing::peak_rss_kib("self") - before_entry;
  ASSERT_TRUE(e);
  EXPECT_EQ(e->call, call);
  EXPECT_EQ(e->result.as_map().at("T").as_array().buffer().data(),
            reinterpret_cast<std::byte*>(t.data()));
  EXPECT_EQ(e->result.as_map().at("T").as_array(), ramp(kElements, 7.0));
  if (rank != 0 && !quiver::testing::kSanitized) {
    EXPECT_LT(grew_entry, static_cast<long long>(kElements * sizeof(double) / 2 / 1024))
        << "rank " << rank << ": the peak grew by " << grew_entry << " KiB";
  }
  std::vector<float> wrong(kElements);
  EXPECT_THAT(quiver::testing::error_of<TypeError>([&] {
                cache->load_value_into(call.digest(), {{"T", ArrayInto::of(std::span(wrong))}});
              }),
              ::testing::HasSubstr("'T'"));
  EXPECT_TRUE(cache->contains(call.digest()));
  EXPECT_FALSE(
      cache->load_value_into(call_of("into", 0, 1).digest(), {{"T", ArrayInto::of(std::span(t))}}));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_P(MpiCacheTest, MemoizeCollectiveMissRunsEverywhereThenHitsEverywhere) {
  auto cache = make();
  const int rank = cache->rank(), size = cache->size();
  Call call("test.mpi.collective", "1");
  call.arg("n", 1000);
  int runs = 0;
  // A parallel computation: every rank contributes a partial sum. The rank-0-only extra
  // element shows that rank 0's result is the one stored.
  auto compute = [&] {
    ++runs;
    double part = 0;
    for (int i = rank; i < 1000; i += size) part += i;
    double total = 0;
    MPI_Allreduce(&part, &total, 1, MPI_DOUBLE, MPI_SUM, cache->comm());
    Value::Map m;
    m["total"] = total;
    m["by_rank"] = std::int64_t{rank};
    return Value(std::move(m));
  };
  auto first = cache->memoize_collective(call, compute);
  EXPECT_FALSE(first.hit);
  EXPECT_EQ(first.digest, call.digest());
  EXPECT_EQ(first.value["total"].as_double(), 999.0 * 1000 / 2);
  EXPECT_EQ(sum(runs), size);

  auto second = cache->memoize_collective(call, compute);
  EXPECT_TRUE(second.hit);
  EXPECT_EQ(sum(runs), size);  // nobody ran it again
  EXPECT_EQ(second.value["total"].as_double(), 999.0 * 1000 / 2);
  EXPECT_EQ(second.value["by_rank"].as_int(), 0);  // rank 0's result, on every rank
  EXPECT_TRUE(cache->contains(call.digest()));
}

TEST_P(MpiCacheTest, MemoizeCollectiveFailureOnOneRankReachesAllAndSavesNothing) {
  auto cache = make();
  const int rank = cache->rank();
  Call call("test.mpi.collective_throw", "1");
  bool original = false, reported = false;
  try {
    cache->memoize_collective(call, [&]() -> Value {
      if (rank == 2) throw std::runtime_error("diverged");
      return Value(1.0);
    });
  } catch (const ServerError& e) {
    reported = std::string(e.what()).find("rank 2") != std::string::npos;
  } catch (const std::runtime_error& e) {
    original = std::string(e.what()) == "diverged";
  }
  EXPECT_TRUE(rank == 2 ? original : reported);
  EXPECT_FALSE(cache->contains(call.digest()));

  // Different calls on different ranks are refused on every rank.
  EXPECT_THROW(cache->memoize_collective(call_of("differs", rank, 0), [] { return Value(1.0); }),
               InvalidArgument);
}

TEST_P(MpiCacheTest, CollectiveBatchesCostOneCallForTheJob) {
  auto cache = make();
  const int rank = cache->rank(), size = cache->size();
  constexpr int kEach = 25;
  for (int i = 0; i < kEach; ++i)
    cache->save(call_of("coll", rank, i), Value(std::int64_t{rank * 100 + i}));
  MPI_Barrier(MPI_COMM_WORLD);
  // Each rank asks for its neighbour's entries, one miss, and a digest every rank asks for.
  const int next = (rank + 1) % size;
  std::vector<Digest> mine;
  for (int i = 0; i < kEach; ++i) mine.push_back(call_of("coll", next, i).digest());
  mine.push_back(call_of("coll-miss", rank, 0).digest());
  mine.push_back(call_of("coll", 0, 0).digest());

  std::uint64_t remote_before = 0;
  int calls_before = 0;
  if (rank == 0) {
    if (ssh_) remote_before = ssh_->stats().requests;
    if (counting_) calls_before = counting_->total();
  }
  auto entries = cache->load_many_collective(mine);
  auto present = cache->contains_many_collective(mine);
  if (rank == 0) {
    // One load_many and one contains_many for the whole job.
    if (ssh_) {
      EXPECT_EQ(ssh_->stats().requests - remote_before, 2u);
    }
    if (counting_) {
      EXPECT_EQ(counting_->total() - calls_before, 2);
      EXPECT_EQ(counting_->load_many_calls, 1);
    }
  }
  ASSERT_EQ(entries.size(), mine.size());
  ASSERT_EQ(present.size(), mine.size());
  for (int i = 0; i < kEach; ++i) {
    ASSERT_TRUE(entries[i]);
    EXPECT_EQ(entries[i]->result, Value(std::int64_t{next * 100 + i}));
    EXPECT_TRUE(present[i]);
  }
  EXPECT_FALSE(entries[kEach]);
  EXPECT_FALSE(present[kEach]);
  ASSERT_TRUE(entries[kEach + 1]);
  EXPECT_EQ(entries[kEach + 1]->result, Value(std::int64_t{0}));
  // Ranks may pass nothing.
  EXPECT_TRUE(cache->contains_many_collective({}).empty());
}

TEST_P(MpiCacheTest, ErrorsArriveTyped) {
  auto cache = make();
  const int rank = cache->rank();
  EXPECT_THROW(cache->expand("zz"), InvalidArgument);
  EXPECT_THROW(cache->expand("0123456789abcdef"), NotFound);  // decided on rank 0
  EXPECT_FALSE(cache->load(call_of("nothing", rank, 0).digest()));
  Entry bad = Entry::make(call_of("bad", rank, 0), Value(1.0));
  bad.digest = call_of("bad", rank, 1).digest();
  Entry good = Entry::make(call_of("good", rank, 0), Value(2.0));
  // Saves from all ranks may share a batch: a bad one fails alone.
  EXPECT_THROW(cache->save(bad), InvalidArgument);
  cache->save(good);
  EXPECT_TRUE(cache->contains(good.digest));
}

TEST(MpiCacheOpen, AFailedOpenReachesEveryRank) {
  const int rank = quiver::testing::mpi::world_rank();
  try {
    Cache cache(MPI_COMM_WORLD, []() -> std::unique_ptr<quiver::Cache> {
      throw ConfigError("no such cache 'nowhere'", "quiver.toml:3");
    });
    ADD_FAILURE() << "rank " << rank << " opened a cache";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where(), "quiver.toml:3");
    EXPECT_THAT(e.what(), ::testing::HasSubstr("nowhere"));
  }
}

// The classic launch mistake: N tasks started as N singletons, each with a 1-rank world.
TEST(MpiCacheOpen, WarnsWhenSlurmStartedTasksThatAreNotOneJob) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto log = logger("quiver.mpi");
  log->sinks().push_back(sink);
  const char* before = std::getenv("SLURM_NTASKS");
  const std::string saved = before ? before : "";
  ::setenv("SLURM_NTASKS", "4", 1);
  {
    Cache alone(MPI_COMM_SELF, [] { return std::make_unique<MemoryCache>(); });
  }
  EXPECT_THAT(captured.str(),
              ::testing::HasSubstr("SLURM_NTASKS=4 but the communicator has 1 rank"));
  captured.str("");
  {
    Cache job(MPI_COMM_WORLD, [] { return std::make_unique<MemoryCache>(); });
  }
  EXPECT_EQ(captured.str(), "");  // a real 4-rank job: no warning
  log->sinks().pop_back();
  if (before)
    ::setenv("SLURM_NTASKS", saved.c_str(), 1);
  else
    ::unsetenv("SLURM_NTASKS");
}

INSTANTIATE_TEST_SUITE_P(RealCaches, MpiCacheTest, ::testing::Values("memory", "subprocess"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace quiver::mpi

int main(int argc, char** argv) {
  return quiver::testing::mpi::run_all_tests(argc, argv, MPI_THREAD_MULTIPLE);
}
