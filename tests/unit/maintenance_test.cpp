#include <gtest/gtest.h>

#include <quiver/store/maintenance.hpp>
#include <quiver/store/memory_cache.hpp>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using std::chrono::hours;

/// An entry of `doubles` float64 elements (8 bytes each), created `age` ago.
Entry entry(int i, std::uint64_t doubles, hours age, std::string function = "f") {
  auto e = Entry::make(Call(std::move(function), "1").arg("i", i), Value(testing::ramp(doubles)));
  e.meta.created = Clock::now() - age;
  return e;
}

TEST(Stats, CountsEntriesAndBytesPerFunction) {
  MemoryCache cache;
  cache.save(entry(1, 10, hours(1), "f"));
  cache.save(entry(2, 20, hours(1), "f"));
  cache.save(entry(3, 5, hours(1), "g"));
  auto s = stats(cache);
  EXPECT_EQ(s.entries, 3u);
  EXPECT_EQ(s.bytes, 35u * 8);
  ASSERT_EQ(s.functions.size(), 2u);
  EXPECT_EQ(s.functions["f"].entries, 2u);
  EXPECT_EQ(s.functions["f"].bytes, 30u * 8);
  EXPECT_EQ(s.functions["g"].entries, 1u);
  EXPECT_EQ(s.functions["g"].bytes, 5u * 8);
}

TEST(Stats, OfAnEmptyCacheIsZero) {
  MemoryCache cache;
  auto s = stats(cache);
  EXPECT_EQ(s.entries, 0u);
  EXPECT_EQ(s.bytes, 0u);
  EXPECT_TRUE(s.functions.empty());
}

TEST(Stats, ReportsProgressPerEntry) {
  MemoryCache cache;
  for (int i = 0; i < 4; ++i) cache.save(entry(i, 1, hours(1)));
  std::vector<std::uint64_t> done;
  stats(cache, [&](std::uint64_t d, std::uint64_t) { done.push_back(d); });
  EXPECT_EQ(done, (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

TEST(Gc, MaxBytesEvictsOldestFirstUntilItHolds) {
  MemoryCache cache;
  auto oldest = entry(1, 10, hours(30));
  auto middle = entry(2, 10, hours(20));
  auto newest = entry(3, 10, hours(10));
  for (const auto* e : {&newest, &oldest, &middle}) cache.save(*e);
  GcOptions o;
  o.max_bytes = 150;  // 240 stored: two oldest must go
  auto r = gc(cache, o);
  EXPECT_EQ(r.examined, 3u);
  EXPECT_EQ(r.evicted, 2u);
  EXPECT_EQ(r.bytes_freed, 160u);
  EXPECT_EQ(r.bytes_remaining, 80u);
  EXPECT_EQ(r.victims, (std::vector<Digest>{oldest.digest, middle.digest}));
  EXPECT_FALSE(cache.contains(oldest.digest));
  EXPECT_FALSE(cache.contains(middle.digest));
  EXPECT_TRUE(cache.contains(newest.digest));
}

TEST(Gc, MaxBytesAlreadyHoldingEvictsNothing) {
  MemoryCache cache;
  cache.save(entry(1, 10, hours(1)));
  GcOptions o;
  o.max_bytes = 80;
  auto r = gc(cache, o);
  EXPECT_EQ(r.evicted, 0u);
  EXPECT_EQ(r.bytes_remaining, 80u);
  EXPECT_EQ(cache.query(Query{}).size(), 1u);
}

TEST(Gc, OlderThanEvictsExactlyTheOldEntries) {
  MemoryCache cache;
  auto old1 = entry(1, 1, hours(50)), old2 = entry(2, 1, hours(49)), fresh = entry(3, 1, hours(1));
  for (const auto* e : {&old1, &old2, &fresh}) cache.save(*e);
  GcOptions o;
  o.older_than = hours(48);
  auto r = gc(cache, o);
  EXPECT_EQ(r.victims, (std::vector<Digest>{old1.digest, old2.digest}));
  EXPECT_TRUE(cache.contains(fresh.digest));
  EXPECT_FALSE(cache.contains(old1.digest));
}

TEST(Gc, BothOptionsApplyTogether) {
  MemoryCache cache;
  auto a = entry(1, 10, hours(50)), b = entry(2, 10, hours(20)), c = entry(3, 10, hours(10));
  for (const auto* e : {&a, &b, &c}) cache.save(*e);
  GcOptions o;
  o.older_than = hours(48);  // removes a
  o.max_bytes = 100;         // then b must go too
  auto r = gc(cache, o);
  EXPECT_EQ(r.victims, (std::vector<Digest>{a.digest, b.digest}));
  EXPECT_TRUE(cache.contains(c.digest));
}

TEST(Gc, DryRunReportsVictimsButEvictsNothing) {
  MemoryCache cache;
  auto old_entry = entry(1, 10, hours(30)), new_entry = entry(2, 10, hours(1));
  cache.save(old_entry);
  cache.save(new_entry);
  GcOptions o;
  o.max_bytes = 100;
  o.dry_run = true;
  auto r = gc(cache, o);
  EXPECT_EQ(r.victims, std::vector<Digest>{old_entry.digest});
  EXPECT_EQ(r.bytes_freed, 80u);
  EXPECT_EQ(r.bytes_remaining, 80u);
  EXPECT_TRUE(cache.contains(old_entry.digest));
  EXPECT_TRUE(cache.contains(new_entry.digest));
}

TEST(Gc, WithoutOptionsEvictsNothing) {
  MemoryCache cache;
  cache.save(entry(1, 10, hours(1000)));
  auto r = gc(cache, GcOptions{});
  EXPECT_EQ(r.examined, 1u);
  EXPECT_EQ(r.evicted, 0u);
  EXPECT_EQ(cache.query(Query{}).size(), 1u);
}

TEST(Gc, ReportsProgressOverTheVictims) {
  MemoryCache cache;
  for (int i = 0; i < 3; ++i) cache.save(entry(i, 1, hours(100 + i)));
  GcOptions o;
  o.older_than = hours(10);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;
  gc(cache, o, [&](std::uint64_t d, std::uint64_t t) { calls.emplace_back(d, t); });
  EXPECT_EQ(calls, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 3}, {2, 3}, {3, 3}}));
}

}  // namespace
}  // namespace quiver
