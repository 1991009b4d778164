// A rank that stalls (in memoize_collective's fn, or before it arrives at a collective or at
// the destructor) does not hang the others: they get CollectiveTimeout naming the operation
// and the step after Options::collective_timeout, the stalled rank gets it too once it
// arrives, later collective calls fail at once, independent operations keep working, and the
// destructor completes on every rank.
#include <chrono>
#include <quiver/mpi/cache.hpp>
#include <thread>

#include "mpi_testing.hpp"

namespace quiver::mpi {
namespace {

using quiver::testing::mpi::all;
using quiver::testing::mpi::call_of;
using quiver::testing::mpi::world_rank;
using quiver::testing::mpi::world_size;
using Clock = std::chrono::steady_clock;

constexpr auto kTimeout = std::chrono::milliseconds(500);
/// How long the stalled rank stalls: well past kTimeout.
constexpr auto kStall = std::chrono::milliseconds(2000);

Options short_timeout() {
  Options o;
  o.collective_timeout = kTimeout;
  return o;
}

Opener memory() {
  return [] { return std::make_unique<MemoryCache>(); };
}

/// Runs fn, expecting CollectiveTimeout; returns its message ("" when none was thrown).
template <class F>
std::string timeout_of(F&& fn) {
  try {
    fn();
  } catch (const CollectiveTimeout& e) {
    EXPECT_EQ(e.code(), ErrorCode::timeout);
    return e.message();
  }
  return "";
}

/// After a timeout: collective calls fail at once, independent ones work, on every rank.
void expect_broken_but_usable(Cache& cache, int rank) {
  const auto t0 = Clock::now();
  const auto again = timeout_of([&] { cache.contains_many_collective(std::vector<Digest>{}); });
  EXPECT_NE(again.find("not started, an earlier collective operation timed out"), std::string::npos)
      << again;
  EXPECT_LT(Clock::now() - t0, kTimeout) << "a broken collective must fail at once";
  const auto mine = call_of("after-timeout", rank, 0);
  cache.save(mine, Value(static_cast<std::int64_t>(rank)));
  EXPECT_TRUE(cache.contains(mine.digest())) << "rank " << rank;
}

TEST(MpiCollectiveTimeout, ARankStalledInFnTimesOutEveryRank) {
  const int rank = world_rank();
  const int late = world_size() - 1;
  {
    Cache cache(MPI_COMM_WORLD, memory(), short_timeout());
    const auto call = call_of("stalled-fn", 0, 0);
    const auto t0 = Clock::now();
    const auto message = timeout_of([&] {
      cache.memoize_collective(call, [&] {
        if (rank == late) std::this_thread::sleep_for(kStall);  // the stall under test
        return Value(1.0);
      });
    });
    const auto waited = Clock::now() - t0;
    ASSERT_FALSE(message.empty()) << "rank " << rank << " got no CollectiveTimeout";
    EXPECT_NE(message.find("memoize_collective on rank " + std::to_string(rank)), std::string::npos)
        << message;
    EXPECT_NE(message.find("Options::collective_timeout"), std::string::npos) << message;
    if (rank != late) {
      EXPECT_NE(message.find("every rank to finish fn"), std::string::npos) << message;
      EXPECT_GE(waited, kTimeout);
      EXPECT_LT(waited, kStall) << "rank " << rank << " waited for the stalled rank";
    }
    MPI_Barrier(MPI_COMM_WORLD);
    expect_broken_but_usable(cache, rank);
    if (rank == 0) {
      EXPECT_FALSE(cache.contains(call.digest())) << "nothing may be saved";
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }  // the destructor completes on every rank
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

TEST(MpiCollectiveTimeout, ARankThatDoesNotArriveTimesOutABatchCollective) {
  const int rank = world_rank();
  const int late = world_size() - 1;
  {
    Cache cache(MPI_COMM_WORLD, memory(), short_timeout());
    const std::vector<Digest> mine{call_of("batch", rank, 0).digest()};
    if (rank == late) std::this_thread::sleep_for(kStall);  // stalls before it arrives
    const auto message = timeout_of([&] { cache.load_many_collective(mine); });
    ASSERT_FALSE(message.empty()) << "rank " << rank << " got no CollectiveTimeout";
    EXPECT_NE(message.find("load_many_collective on rank " + std::to_string(rank)),
              std::string::npos)
        << message;
    const char* step = rank != late ? "every rank to arrive" : "rank 0's answer";
    EXPECT_NE(message.find(step), std::string::npos) << message;
    MPI_Barrier(MPI_COMM_WORLD);
    expect_broken_but_usable(cache, rank);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

TEST(MpiCollectiveTimeout, TheDestructorDoesNotWaitForeverForAStalledRank) {
  const int rank = world_rank();
  const int late = world_size() - 1;
  std::optional<Cache> cache(std::in_place, MPI_COMM_WORLD, memory(), short_timeout());
  // Every rank is in a working state; the late one stalls before destroying it.
  EXPECT_EQ(cache->contains_many_collective(std::vector<Digest>{}).size(), 0u);
  if (rank == late) std::this_thread::sleep_for(kStall);
  const auto t0 = Clock::now();
  cache.reset();  // logs the missing rank, then completes
  const auto waited = Clock::now() - t0;
  if (rank != late) {
    EXPECT_GE(waited, kTimeout) << "rank " << rank << " did not wait for the stalled rank";
    EXPECT_LT(waited, kStall) << "rank " << rank;
  }
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

TEST(MpiCollectiveTimeout, RanksThatArriveInTimeAreNotAffected) {
  const int rank = world_rank();
  Cache cache(MPI_COMM_WORLD, memory(), short_timeout());
  for (int i = 0; i < 20; ++i) {
    auto memo =
        cache.memoize_collective(call_of("in-time", 0, i % 5), [&] { return Value(i % 5 * 1.0); });
    EXPECT_EQ(memo.value, Value(i % 5 * 1.0));
    EXPECT_EQ(memo.hit, i >= 5);
    auto found =
        cache.contains_many_collective(std::vector<Digest>{call_of("in-time", 0, i % 5).digest()});
    EXPECT_EQ(found, std::vector<bool>{true}) << "rank " << rank;
  }
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

}  // namespace
}  // namespace quiver::mpi

int main(int argc, char** argv) {
  return quiver::testing::mpi::run_all_tests(argc, argv, MPI_THREAD_MULTIPLE);
}
