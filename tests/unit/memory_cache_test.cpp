#include <gtest/gtest.h>

#include <quiver/store/memory_cache.hpp>
#include <thread>

#include "testing/testing.hpp"

namespace quiver {
namespace {

Entry entry(int i, std::string function = "f") {
  return Entry::make(Call(std::move(function), "1").arg("i", i), Value(testing::ramp(8, i)));
}

/// Two entries whose digests share at least their first 4 hex characters.
std::pair<Entry, Entry> entries_sharing_a_prefix() {
  std::map<std::string, Entry> by_prefix;
  for (int i = 0;; ++i) {
    auto e = entry(i, "collide");
    auto [it, fresh] = by_prefix.emplace(e.digest.hex().substr(0, 4), e);
    if (!fresh) return {it->second, e};
  }
}

TEST(MemoryCache, LoadReturnsTheSavedEntry) {
  MemoryCache cache;
  auto e = entry(1);
  cache.save(e);
  auto loaded = cache.load(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->digest, e.digest);
  EXPECT_EQ(loaded->call, e.call);
  EXPECT_EQ(loaded->result, e.result);
  EXPECT_EQ(loaded->meta, e.meta);
}

TEST(MemoryCache, ASavedResultViewingCallerMemoryIsKeptAsItWasSaved) {
  MemoryCache cache;
  std::vector<double> field{1.0, 2.0, 3.0}, item{4.0, 5.0};
  const auto e = Entry::make(
      Call("view", "1"),
      Value::map({{"T", Array::view(std::span<const double>(field))},
                  {"history", Value::list({Array::view(std::span<const double>(item))})}}));
  cache.save(e);
  field.assign({-1.0, -1.0, -1.0});  // the caller reuses its memory after the save
  item.assign({-1.0, -1.0});
  auto loaded = cache.load_value(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ((*loaded)["T"].as_array().to_vector<double>(), (std::vector<double>{1.0, 2.0, 3.0}));
  EXPECT_EQ((*loaded)["history"].as_list().at(0).as_array().to_vector<double>(),
            (std::vector<double>{4.0, 5.0}));
}

TEST(MemoryCache, LoadValueReturnsTheResult) {
  MemoryCache cache;
  auto e = entry(2);
  cache.save(e);
  EXPECT_EQ(cache.load_value(e.digest), e.result);
}

TEST(MemoryCache, MissIsNulloptNotAnException) {
  MemoryCache cache;
  auto e = entry(3);
  EXPECT_FALSE(cache.load(e.digest));
  EXPECT_FALSE(cache.load_value(e.digest));
  EXPECT_FALSE(cache.contains(e.digest));
}

TEST(MemoryCache, SaveReplacesTheEntry) {
  MemoryCache cache;
  auto e = entry(4);
  cache.save(e);
  e.result = Value("replaced");
  cache.save(e);
  EXPECT_EQ(cache.load_value(e.digest), Value("replaced"));
}

TEST(MemoryCache, SaveRejectsADigestThatDoesNotMatchTheCall) {
  MemoryCache cache;
  auto e = entry(5);
  e.digest = entry(6).digest;
  EXPECT_THROW(cache.save(e), InvalidArgument);
  EXPECT_FALSE(cache.contains(e.digest));
}

TEST(MemoryCache, EvictRemovesAndReportsWhetherItWasThere) {
  MemoryCache cache;
  auto e = entry(7);
  cache.save(e);
  EXPECT_TRUE(cache.evict(e.digest));
  EXPECT_FALSE(cache.contains(e.digest));
  EXPECT_FALSE(cache.evict(e.digest));
}

TEST(MemoryCache, ExpandFindsTheUniqueDigest) {
  MemoryCache cache;
  for (int i = 0; i < 20; ++i) cache.save(entry(i));
  auto e = entry(11);
  EXPECT_EQ(cache.expand(cache.shrink(e.digest)), e.digest);
  EXPECT_EQ(cache.expand(e.digest.hex()), e.digest);
}

TEST(MemoryCache, ExpandOfUnknownPrefixThrowsNotFound) {
  MemoryCache cache;
  auto e = entry(1);
  cache.save(e);
  std::string other = e.digest.hex().substr(0, 6);
  other[5] = other[5] == '0' ? '1' : '0';
  EXPECT_THROW(cache.expand(other), NotFound);
}

TEST(MemoryCache, ExpandRejectsShortOrNonHexPrefixes) {
  MemoryCache cache;
  cache.save(entry(1));
  EXPECT_THROW(cache.expand("abc"), InvalidArgument);
  EXPECT_THROW(cache.expand("ABCD"), InvalidArgument);
  EXPECT_THROW(cache.expand("../x"), InvalidArgument);
}

TEST(MemoryCache, ExpandOfSharedPrefixIsAmbiguousAndSaysHowManyCharsAreUnique) {
  MemoryCache cache;
  auto [a, b] = entries_sharing_a_prefix();
  cache.save(a);
  cache.save(b);
  auto unique = common_prefix_length(a.digest, b.digest) + 1;
  try {
    cache.expand(a.digest.hex().substr(0, 4));
    FAIL() << "expected AmbiguousDigest";
  } catch (const AmbiguousDigest& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(unique) + " characters"), std::string::npos)
        << e.what();
  }
}

TEST(MemoryCache, ShrinkIsLongEnoughToTellSharedPrefixesApart) {
  MemoryCache cache;
  auto [a, b] = entries_sharing_a_prefix();
  cache.save(a);
  cache.save(b);
  auto s = cache.shrink(a.digest);
  EXPECT_EQ(s.size(), std::max<std::size_t>(4, common_prefix_length(a.digest, b.digest) + 1));
  EXPECT_EQ(cache.expand(s), a.digest);
}

TEST(MemoryCache, QueryFiltersByFunctionAndArgument) {
  MemoryCache cache;
  for (int i = 0; i < 3; ++i) cache.save(entry(i, "f"));
  for (int i = 0; i < 2; ++i) cache.save(entry(i, "g"));
  Query by_function;
  by_function.function = "g";
  EXPECT_EQ(cache.query(by_function).size(), 2u);
  Query by_arg;
  by_arg.args["i"] = 1;
  auto hits = cache.query(by_arg);
  ASSERT_EQ(hits.size(), 2u);
  for (const auto& s : hits) EXPECT_EQ(s.arg_digests.at("i"), value_digest(Value(1)));
}

TEST(MemoryCache, QueryFiltersByCreationTime) {
  MemoryCache cache;
  auto old_entry = entry(1), new_entry = entry(2);
  old_entry.meta.created = Clock::time_point(std::chrono::hours(1000));
  new_entry.meta.created = Clock::time_point(std::chrono::hours(2000));
  cache.save(old_entry);
  cache.save(new_entry);
  Query q;
  q.created_after = Clock::time_point(std::chrono::hours(1500));
  auto hits = cache.query(q);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].digest, new_entry.digest);
}

TEST(MemoryCache, QueryReportsPayloadBytes) {
  MemoryCache cache;
  auto e = entry(1);
  cache.save(e);
  auto hits = cache.query(Query{});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].bytes, e.result.payload_bytes());
  EXPECT_EQ(hits[0].bytes, 8u * sizeof(double));
}

TEST(MemoryCache, QueryHonoursLimit) {
  MemoryCache cache;
  for (int i = 0; i < 10; ++i) cache.save(entry(i));
  Query q;
  q.limit = 3;
  EXPECT_EQ(cache.query(q).size(), 3u);
}

TEST(MemoryCache, QueryStopsWhenTheSinkReturnsFalse) {
  MemoryCache cache;
  for (int i = 0; i < 10; ++i) cache.save(entry(i));
  int calls = 0;
  cache.query(Query{}, [&](const EntrySummary&) { return ++calls < 4; });
  EXPECT_EQ(calls, 4);
}

TEST(MemoryCache, QuerySinkMayEvictFromTheSameCache) {
  MemoryCache cache;
  for (int i = 0; i < 5; ++i) cache.save(entry(i));
  cache.query(Query{}, [&](const EntrySummary& s) { return cache.evict(s.digest); });
  EXPECT_TRUE(cache.query(Query{}).empty());
}

TEST(MemoryCache, ConcurrentSavesAreAllKept) {
  MemoryCache cache;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) cache.save(entry(t * 1000 + i));
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(cache.query(Query{}).size(), 200u);
}

TEST(MemoryCache, ConfigNamesTheTypeAndInfoCountsEntries) {
  MemoryCache cache;
  cache.save(entry(1));
  cache.save(entry(2));
  EXPECT_EQ(cache.config(), nlohmann::json({{"type", "memory"}}));
  auto info = cache.info();
  EXPECT_EQ(info["entries"], 2);
  EXPECT_EQ(info["bytes"], 2 * 8 * sizeof(double));
  EXPECT_FALSE(cache.read_only());
}

}  // namespace
}  // namespace quiver
