#include <gtest/gtest.h>

#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>
#include <set>

#include "testing/testing.hpp"

namespace quiver {
namespace {

Entry entry(int i, std::string function = "f") {
  return Entry::make(Call(std::move(function), "1").arg("i", i), Value(testing::ramp(4, i)));
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

/// A MemoryCache that counts the batch calls it receives.
class CountingCache : public MemoryCache {
 public:
  std::vector<std::size_t> contains_many_sizes, load_many_sizes;
  std::vector<bool> contains_many(std::span<const Digest> d) override {
    contains_many_sizes.push_back(d.size());
    return MemoryCache::contains_many(d);
  }
  std::vector<std::optional<Entry>> load_many(std::span<const Digest> d) override {
    load_many_sizes.push_back(d.size());
    return MemoryCache::load_many(d);
  }
};

/// A two-layer stack of memory caches, with direct access to both layers.
struct TwoLayers {
  MemoryCache* top;
  MemoryCache* bottom;
  CacheStack stack;
  TwoLayers() : TwoLayers(std::make_unique<MemoryCache>(), std::make_unique<MemoryCache>()) {}
  TwoLayers(std::unique_ptr<MemoryCache> t, std::unique_ptr<MemoryCache> b)
      : top(t.get()), bottom(b.get()), stack(layers(std::move(t), std::move(b))) {}
  static std::vector<std::unique_ptr<Cache>> layers(std::unique_ptr<Cache> a,
                                                    std::unique_ptr<Cache> b) {
    std::vector<std::unique_ptr<Cache>> v;
    v.push_back(std::move(a));
    v.push_back(std::move(b));
    return v;
  }
};

TEST(CacheStack, EmptyStackIsRejected) {
  EXPECT_THROW(CacheStack(std::vector<std::unique_ptr<Cache>>{}), InvalidArgument);
}

TEST(CacheStack, SaveGoesToTheFirstLayerOnly) {
  TwoLayers s;
  auto e = entry(1);
  s.stack.save(e);
  EXPECT_TRUE(s.top->contains(e.digest));
  EXPECT_FALSE(s.bottom->contains(e.digest));
}

TEST(CacheStack, SaveAlsoReachesAWriteThroughLayer) {
  auto top = std::make_unique<MemoryCache>(), middle = std::make_unique<MemoryCache>(),
       bottom = std::make_unique<MemoryCache>();
  auto *t = top.get(), *m = middle.get(), *b = bottom.get();
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::move(top));
  layers.push_back(std::move(middle));
  layers.push_back(std::move(bottom));
  CacheStack stack(std::move(layers), {false, false, true});
  auto one = entry(1);
  std::vector<Entry> batch{entry(2), entry(3)};
  stack.save(one);
  stack.save_many(batch);
  for (const auto& e : {one, batch[0], batch[1]}) {
    EXPECT_TRUE(t->contains(e.digest)) << "layer 0 always takes saves";
    EXPECT_FALSE(m->contains(e.digest)) << "not write-through";
    EXPECT_TRUE(b->contains(e.digest)) << "write-through";
  }
  EXPECT_EQ(stack.config()[2]["write_through"], true);
  EXPECT_FALSE(stack.config()[1].contains("write_through"));
}

TEST(CacheStack, AFailedWriteThroughIsAnErrorOfTheSave) {
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<MemoryCache>());
  layers.push_back(std::make_unique<ReadOnlyCache>(std::make_unique<MemoryCache>()));
  auto* top = layers.front().get();
  CacheStack stack(std::move(layers), {false, true});
  try {
    stack.save(entry(1));
    ADD_FAILURE() << "the save into a read-only write-through layer succeeded";
  } catch (const Rejected& e) {  // the layer's own error type, saying what did land
    EXPECT_NE(e.message().find("the write-through to layer 2 failed (the entry is saved in "
                               "layer 1): "),
              std::string::npos)
        << e.message();
  }
  EXPECT_TRUE(top->contains(entry(1).digest));
}

TEST(CacheStack, InfoOfALayerThatFailsIsItsErrorAndTheOtherLayersStillShow) {
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<MemoryCache>());
  SshCacheOptions o;
  o.transport = Transport::subprocess;
  o.quiver = "/nonexistent/quiver";
  layers.push_back(std::make_unique<SshCache>(o));
  CacheStack stack(std::move(layers), {false, false});
  const auto info = stack.info();
  ASSERT_EQ(info.at("layers").size(), 2u);
  EXPECT_EQ(info["layers"][0].at("type"), "memory");
  EXPECT_EQ(info["layers"][1].at("type"), "subprocess");
  EXPECT_NE(info["layers"][1].at("error").get<std::string>().find("/nonexistent/quiver"),
            std::string::npos)
      << info.dump();
}

TEST(CacheStack, WriteThroughFlagsMustMatchTheLayers) {
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<MemoryCache>());
  EXPECT_THROW(CacheStack(std::move(layers), {false, true}), InvalidArgument);
}

TEST(CacheStack, LoadReadsThroughToADeeperLayer) {
  TwoLayers s;
  auto e = entry(1);
  s.bottom->save(e);
  auto loaded = s.stack.load(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->result, e.result);
}

TEST(CacheStack, LoadCopiesADeeperHitIntoTheFirstLayerWithItsMetadata) {
  TwoLayers s;
  auto e = entry(1);
  e.meta.created = Clock::time_point(std::chrono::hours(1000));
  e.meta.host = "elsewhere";
  s.bottom->save(e);
  s.stack.load(e.digest);
  auto promoted = s.top->load(e.digest);
  ASSERT_TRUE(promoted);
  EXPECT_EQ(promoted->meta, e.meta);
  EXPECT_EQ(promoted->call, e.call);
  EXPECT_EQ(promoted->result, e.result);
}

TEST(CacheStack, LoadValueCopiesADeeperHitIntoTheFirstLayerWithItsMetadata) {
  TwoLayers s;
  auto e = entry(2);
  e.meta.host = "elsewhere";
  s.bottom->save(e);
  EXPECT_EQ(s.stack.load_value(e.digest), e.result);
  auto promoted = s.top->load(e.digest);
  ASSERT_TRUE(promoted);
  EXPECT_EQ(promoted->meta, e.meta);
}

TEST(CacheStack, ReadOnlyFirstLayerIsNotPromotedInto) {
  auto top = std::make_unique<MemoryCache>();
  auto bottom = std::make_unique<MemoryCache>();
  auto* top_raw = top.get();
  auto e = entry(3);
  bottom->save(e);
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<ReadOnlyCache>(std::move(top)));
  layers.push_back(std::move(bottom));
  CacheStack stack(std::move(layers));
  EXPECT_TRUE(stack.read_only());
  EXPECT_EQ(stack.load_value(e.digest), e.result);
  EXPECT_TRUE(stack.load(e.digest));
  EXPECT_FALSE(top_raw->contains(e.digest));
}

TEST(CacheStack, MissInEveryLayerIsNullopt) {
  TwoLayers s;
  EXPECT_FALSE(s.stack.load(entry(1).digest));
  EXPECT_FALSE(s.stack.load_value(entry(1).digest));
}

TEST(CacheStack, ContainsIsTrueWhenAnyLayerHasTheEntry) {
  TwoLayers s;
  auto e = entry(1);
  EXPECT_FALSE(s.stack.contains(e.digest));
  s.bottom->save(e);
  EXPECT_TRUE(s.stack.contains(e.digest));
}

TEST(CacheStack, EvictRemovesFromEveryLayer) {
  TwoLayers s;
  auto e = entry(1);
  s.top->save(e);
  s.bottom->save(e);
  EXPECT_TRUE(s.stack.evict(e.digest));
  EXPECT_FALSE(s.top->contains(e.digest));
  EXPECT_FALSE(s.bottom->contains(e.digest));
  EXPECT_FALSE(s.stack.evict(e.digest));
}

TEST(CacheStack, EvictSkipsReadOnlyLayers) {
  auto bottom = std::make_unique<MemoryCache>();
  auto* bottom_raw = bottom.get();
  auto e = entry(1);
  bottom->save(e);
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<MemoryCache>());
  layers.push_back(std::make_unique<ReadOnlyCache>(std::move(bottom)));
  CacheStack stack(std::move(layers));
  EXPECT_FALSE(stack.evict(e.digest));
  EXPECT_TRUE(bottom_raw->contains(e.digest));
}

TEST(CacheStack, EvictWithNoWritableLayerIsRejected) {
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<ReadOnlyCache>(std::make_unique<MemoryCache>()));
  CacheStack stack(std::move(layers));
  EXPECT_THROW(stack.evict(entry(1).digest), Rejected);
}

TEST(CacheStack, QueryMergesLayersWithoutDuplicates) {
  TwoLayers s;
  for (int i = 0; i < 3; ++i) s.top->save(entry(i));
  for (int i = 1; i < 5; ++i) s.bottom->save(entry(i));
  auto hits = s.stack.query(Query{});
  std::set<Digest> digests;
  for (const auto& h : hits) digests.insert(h.digest);
  EXPECT_EQ(hits.size(), 5u);
  EXPECT_EQ(digests.size(), 5u);
}

TEST(CacheStack, QueryPrefersTheFirstLayersSummary) {
  TwoLayers s;
  auto e = entry(1);
  s.bottom->save(e);
  e.meta.host = "top-host";
  s.top->save(e);
  auto hits = s.stack.query(Query{});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].meta.host, "top-host");
}

TEST(CacheStack, QueryLimitCountsAcrossLayers) {
  TwoLayers s;
  for (int i = 0; i < 2; ++i) s.top->save(entry(i));
  for (int i = 0; i < 6; ++i) s.bottom->save(entry(i));
  Query q;
  q.limit = 4;
  auto hits = s.stack.query(q);
  std::set<Digest> digests;
  for (const auto& h : hits) digests.insert(h.digest);
  EXPECT_EQ(hits.size(), 4u);
  EXPECT_EQ(digests.size(), 4u);
}

TEST(CacheStack, QueryAppliesFiltersInEveryLayer) {
  TwoLayers s;
  s.top->save(entry(1, "f"));
  s.top->save(entry(2, "g"));
  s.bottom->save(entry(3, "g"));
  s.bottom->save(entry(4, "h"));
  Query q;
  q.function = "g";
  EXPECT_EQ(s.stack.query(q).size(), 2u);
}

TEST(CacheStack, ExpandFindsAnEntryOfAnyLayer) {
  TwoLayers s;
  auto e = entry(1);
  s.bottom->save(e);
  s.top->save(entry(2));
  EXPECT_EQ(s.stack.expand(e.digest.hex().substr(0, 10)), e.digest);
}

TEST(CacheStack, ExpandOfTheSameEntryInTwoLayersIsNotAmbiguous) {
  TwoLayers s;
  auto e = entry(1);
  s.top->save(e);
  s.bottom->save(e);
  EXPECT_EQ(s.stack.expand(e.digest.hex().substr(0, 4)), e.digest);
}

TEST(CacheStack, ExpandWithNoMatchInAnyLayerThrowsNotFound) {
  TwoLayers s;
  auto e = entry(1);
  s.top->save(entry(2));
  s.bottom->save(entry(3));
  EXPECT_THROW(s.stack.expand(e.digest.hex().substr(0, 12)), NotFound);
}

TEST(CacheStack, ExpandOfDifferentDigestsInDifferentLayersIsAmbiguous) {
  TwoLayers s;
  auto [a, b] = entries_sharing_a_prefix();
  s.top->save(a);
  s.bottom->save(b);
  auto unique = common_prefix_length(a.digest, b.digest) + 1;
  try {
    s.stack.expand(a.digest.hex().substr(0, 4));
    FAIL() << "expected AmbiguousDigest";
  } catch (const AmbiguousDigest& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(unique) + " characters"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(s.stack.expand(a.digest.hex().substr(0, unique)), a.digest);
}

TEST(CacheStack, ShrinkIsUniqueAcrossAllLayers) {
  TwoLayers s;
  auto [a, b] = entries_sharing_a_prefix();
  s.top->save(a);
  s.bottom->save(b);
  auto shrunk = s.stack.shrink(a.digest);
  EXPECT_EQ(shrunk.size(), common_prefix_length(a.digest, b.digest) + 1);
  EXPECT_EQ(s.stack.expand(shrunk), a.digest);
}

TEST(CacheStack, ContainsManyAsksDeeperLayersOnlyForTheMisses) {
  auto top = std::make_unique<CountingCache>();
  auto bottom = std::make_unique<CountingCache>();
  auto *t = top.get(), *b = bottom.get();
  TwoLayers s(std::move(top), std::move(bottom));
  t->save(entry(1));
  b->save(entry(2));
  std::vector<Digest> ask{entry(1).digest, entry(2).digest, entry(3).digest};
  EXPECT_EQ(s.stack.contains_many(ask), (std::vector<bool>{true, true, false}));
  EXPECT_EQ(t->contains_many_sizes, std::vector<std::size_t>{3});
  EXPECT_EQ(b->contains_many_sizes, std::vector<std::size_t>{2});
}

TEST(CacheStack, LoadManyReadsThroughInOneBatchPerLayerAndPromotes) {
  auto top = std::make_unique<CountingCache>();
  auto bottom = std::make_unique<CountingCache>();
  auto *t = top.get(), *b = bottom.get();
  TwoLayers s(std::move(top), std::move(bottom));
  auto e1 = entry(1), e2 = entry(2);
  t->save(e1);
  b->save(e2);
  std::vector<Digest> ask{e1.digest, e2.digest, entry(3).digest};
  auto got = s.stack.load_many(ask);
  ASSERT_EQ(got.size(), 3u);
  ASSERT_TRUE(got[0] && got[1]);
  EXPECT_EQ(got[0]->result, e1.result);
  EXPECT_EQ(got[1]->result, e2.result);
  EXPECT_FALSE(got[2]);
  EXPECT_EQ(t->load_many_sizes, std::vector<std::size_t>{3});
  EXPECT_EQ(b->load_many_sizes, std::vector<std::size_t>{2});
  auto promoted = t->load(e2.digest);
  ASSERT_TRUE(promoted);
  EXPECT_EQ(promoted->meta, e2.meta);
}

TEST(CacheStack, InfoAndConfigListTheLayersInOrder) {
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<MemoryCache>());
  layers.push_back(std::make_unique<ReadOnlyCache>(std::make_unique<MemoryCache>()));
  CacheStack stack(std::move(layers));
  auto config = stack.config();
  ASSERT_TRUE(config.is_array());
  ASSERT_EQ(config.size(), 2u);
  EXPECT_EQ(config[0], nlohmann::json({{"type", "memory"}}));
  EXPECT_EQ(config[1], nlohmann::json({{"type", "memory"}, {"read_only", true}}));
  auto info = stack.info();
  EXPECT_EQ(info["type"], "stack");
  ASSERT_EQ(info["layers"].size(), 2u);
  EXPECT_EQ(info["layers"][0]["read_only"], false);
  EXPECT_EQ(info["layers"][1]["read_only"], true);
}

TEST(CacheStack, MemoizeHitsInADeeperLayer) {
  TwoLayers s;
  Call call("square", "1");
  call.arg("x", 7);
  s.bottom->save(call, Value(49));
  int computed = 0;
  auto memo = s.stack.memoize(call, [&] {
    ++computed;
    return 49;
  });
  EXPECT_TRUE(memo.hit);
  EXPECT_EQ(computed, 0);
  EXPECT_TRUE(s.top->contains(call.digest()));
}

}  // namespace
}  // namespace quiver
