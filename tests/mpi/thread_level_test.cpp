// quiver::mpi::Cache when MPI was initialised with MPI_THREAD_SERIALIZED: independent use is
// refused with a message naming the level; collective use works.
#include <gmock/gmock.h>

#include <quiver/mpi/cache.hpp>

#include "mpi_testing.hpp"

namespace quiver::mpi {
namespace {

using quiver::testing::mpi::call_of;
using quiver::testing::mpi::CountingCache;

Opener memory() {
  return [] { return std::make_unique<CountingCache>(); };
}

TEST(MpiThreadLevel, IndependentUseNeedsThreadMultiple) {
  try {
    Cache cache(MPI_COMM_WORLD, memory());
    ADD_FAILURE() << "constructed without MPI_THREAD_MULTIPLE";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("needs MPI_THREAD_MULTIPLE"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("initialised with MPI_THREAD_SERIALIZED"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("Mode::collective"));
  }
}

TEST(MpiThreadLevel, CollectiveModeWorksAtAnyLevel) {
  Options options;
  options.mode = Mode::collective;
  Cache cache(MPI_COMM_WORLD, memory(), options);
  const int rank = cache.rank();
  Call call("test.mpi.serialized", "1");
  int runs = 0;
  auto fn = [&] {
    ++runs;
    return Value(42.0);
  };
  EXPECT_FALSE(cache.memoize_collective(call, fn).hit);
  auto again = cache.memoize_collective(call, fn);
  EXPECT_TRUE(again.hit);
  EXPECT_EQ(again.value, Value(42.0));
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(cache.contains_many_collective(std::vector<Digest>{call.digest()}),
            std::vector<bool>{true});

  // Single-rank operations: rank 0 only.
  if (rank == 0) {
    cache.save(call_of("serialized", 0, 0), Value(1.0));
    EXPECT_TRUE(cache.contains(call_of("serialized", 0, 0).digest()));
  } else {
    try {
      cache.contains(call.digest());
      ADD_FAILURE() << "rank " << rank << " sent a request in Mode::collective";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("Mode::collective"));
    }
  }
  auto loaded =
      cache.load_many_collective(std::vector<Digest>{call_of("serialized", 0, 0).digest()});
  ASSERT_EQ(loaded.size(), 1u);
  ASSERT_TRUE(loaded[0]);
  EXPECT_EQ(loaded[0]->result, Value(1.0));
}

}  // namespace
}  // namespace quiver::mpi

int main(int argc, char** argv) {
  return quiver::testing::mpi::run_all_tests(argc, argv, MPI_THREAD_SERIALIZED);
}
