// The server behind rank 0 is killed while every rank uses the cache: every rank gets a
// typed error, nothing hangs, and the collective destructor completes.
#include <signal.h>

#include <chrono>
#include <quiver/mpi/cache.hpp>

#include "mpi_testing.hpp"

namespace quiver::mpi {
namespace {

using quiver::testing::mpi::all;
using quiver::testing::mpi::call_of;
using quiver::testing::mpi::ServerStore;
using Clock = std::chrono::steady_clock;

TEST(MpiFailure, AKilledServerReachesEveryRankAsAnError) {
  const int rank = quiver::testing::mpi::world_rank();
  std::unique_ptr<ServerStore> store;
  if (rank == 0) store = std::make_unique<ServerStore>();
  SshCache* server = nullptr;
  {
    Cache cache(MPI_COMM_WORLD, quiver::testing::mpi::served_by(store.get(), server));
    const auto mine = call_of("failure", rank, 0);
    cache.save(mine, Value(1.0));
    ASSERT_TRUE(all(cache.contains(mine.digest())));

    const auto deadline = Clock::now() + std::chrono::seconds(60);
    std::optional<ErrorCode> error;
    if (rank == 0) {
      // Kill the server once the other ranks are busy sending requests.
      const auto before = cache.stats().requests;
      while (cache.stats().requests < before + 30 && Clock::now() < deadline)
        std::this_thread::yield();
      ASSERT_GT(server->pid(), 0);
      ASSERT_EQ(::kill(server->pid(), SIGKILL), 0);
    }
    // Every rank (rank 0 too, directly) keeps calling until the error arrives.
    for (int i = 0; !error && Clock::now() < deadline; ++i) {
      try {
        cache.contains(call_of("failure", rank, i).digest());
      } catch (const Error& e) {
        error = e.code();
      }
    }
    ASSERT_TRUE(error) << "rank " << rank << " got no error within 60 s";
    EXPECT_EQ(*error, ErrorCode::remote_connection) << "rank " << rank;
    MPI_Barrier(MPI_COMM_WORLD);

    // Collective operations report it on every rank as well.
    EXPECT_THROW(
        cache.memoize_collective(call_of("failure-collective", 0, 0), [] { return Value(1.0); }),
        RemoteConnectionError);
    EXPECT_THROW(cache.load_many_collective(std::vector<Digest>{mine.digest()}),
                 RemoteConnectionError);
  }  // the collective destructor completes
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

TEST(MpiFailure, AHungServerTimesOutOnEveryRank) {
  const int rank = quiver::testing::mpi::world_rank();
  std::unique_ptr<ServerStore> store;
  if (rank == 0) store = std::make_unique<ServerStore>();
  SshCache* server = nullptr;
  {
    Cache cache(MPI_COMM_WORLD, [&]() -> std::unique_ptr<quiver::Cache> {
      auto o = store->subprocess();
      o.call_timeout = std::chrono::milliseconds(1500);
      auto c = std::make_unique<SshCache>(o);
      server = c.get();
      return c;
    });
    const auto mine = call_of("hung", rank, 0);
    cache.save(mine, Value(1.0));
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
      ASSERT_EQ(::kill(server->pid(), SIGSTOP), 0);  // alive, but answers nothing
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = Clock::now();
    std::optional<ErrorCode> error;
    try {
      cache.contains(mine.digest());
    } catch (const Error& e) {
      error = e.code();
    }
    ASSERT_TRUE(error) << "rank " << rank << " got an answer from a stopped server";
    EXPECT_EQ(*error, ErrorCode::timeout) << "rank " << rank;
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(30));
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) ::kill(server->pid(), SIGCONT);
  }  // the collective destructor completes
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

}  // namespace
}  // namespace quiver::mpi

int main(int argc, char** argv) {
  return quiver::testing::mpi::run_all_tests(argc, argv, MPI_THREAD_MULTIPLE);
}
