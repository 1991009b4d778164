// Values between ranks in chunks: a 2.5 GiB array (MPI counts are int), and small chunks
// that split every part of a message.
#include <quiver/mpi/cache.hpp>
#include <testing/testing.hpp>

#include "mpi_testing.hpp"

namespace quiver::mpi {
namespace {

using quiver::testing::mpi::all;
using quiver::testing::mpi::call_of;
using quiver::testing::mpi::CountingCache;

Opener memory() {
  return [] { return std::make_unique<CountingCache>(); };
}

std::uint64_t word(std::uint64_t i) {
  return (i + 1) * 0x9E3779B97F4A7C15ull;
}

// n bytes (a multiple of 8) of a position-dependent pattern.
Value pattern(std::uint64_t n) {
  auto buffer = Buffer::allocate(n);
  auto* w = reinterpret_cast<std::uint64_t*>(buffer.mutable_data());
  for (std::uint64_t i = 0; i < n / 8; ++i) w[i] = word(i);
  return Value(Array(DType::uint8, Shape{n}, std::move(buffer)));
}

bool is_pattern(const Value& v, std::uint64_t n) {
  const auto& a = v.as_array();
  if (a.dtype() != DType::uint8 || a.shape() != Shape{n} || a.buffer().size() != n) return false;
  const auto* w = reinterpret_cast<const std::uint64_t*>(a.buffer().data());
  for (std::uint64_t i = 0; i < n / 8; ++i)
    if (w[i] != word(i)) return false;
  return true;
}

TEST(MpiValues, AValuePast2GiBTravelsBetweenRanks) {
  constexpr std::uint64_t kBytes = 5ull << 29;  // 2.5 GiB
  Cache cache(MPI_COMM_WORLD, memory());
  const int rank = cache.rank();
  const auto call = call_of("big", 1, 0);
  if (rank == 1) cache.save(call, pattern(kBytes));  // rank 1 -> rank 0
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 2) {  // rank 0 -> rank 2
    auto v = cache.load_value(call.digest());
    ASSERT_TRUE(v);
    EXPECT_TRUE(is_pattern(*v, kBytes));
  }
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

TEST(MpiValues, SmallChunksSplitEveryPartOfAMessage) {
  Options options;
  options.chunk_bytes = 4096;
  Cache cache(MPI_COMM_WORLD, memory(), options);
  const int rank = cache.rank(), size = cache.size();
  Value::Map m;
  m["every_kind"] = quiver::testing::sample_value_of_every_kind();
  m["ramp"] = quiver::testing::ramp(10000 + 17 * rank, rank);
  m["small"] = quiver::testing::ramp(3, rank);
  m["text"] = std::string(70000, static_cast<char>('a' + rank));
  const Value value(std::move(m));
  const auto call = call_of("chunks", rank, 0);
  cache.save(call, value);
  MPI_Barrier(MPI_COMM_WORLD);
  const int next = (rank + 1) % size;
  auto theirs = cache.load(call_of("chunks", next, 0).digest());
  ASSERT_TRUE(theirs);
  EXPECT_EQ(theirs->result["ramp"], Value(quiver::testing::ramp(10000 + 17 * next, next)));
  EXPECT_EQ(theirs->result["text"], Value(std::string(70000, static_cast<char>('a' + next))));
  EXPECT_EQ(theirs->result["every_kind"], quiver::testing::sample_value_of_every_kind());

  // A hit of memoize_collective is broadcast in chunks too.
  Call shared("test.mpi.chunks.shared", "1");
  auto first =
      cache.memoize_collective(shared, [&] { return Value(quiver::testing::ramp(50000, 7)); });
  auto second = cache.memoize_collective(shared, []() -> Value { throw std::logic_error("ran"); });
  EXPECT_FALSE(first.hit);
  EXPECT_TRUE(second.hit);
  EXPECT_EQ(second.value, Value(quiver::testing::ramp(50000, 7)));
}

}  // namespace
}  // namespace quiver::mpi

int main(int argc, char** argv) {
  return quiver::testing::mpi::run_all_tests(argc, argv, MPI_THREAD_MULTIPLE);
}
