#include <gtest/gtest.h>

#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>

#include "testing/testing.hpp"

namespace quiver {
namespace {

Entry entry(int i) {
  return Entry::make(Call("f", "1").arg("i", i), Value(testing::ramp(4, i)));
}

struct Wrapped {
  MemoryCache* inner;
  ReadOnlyCache cache;
  Wrapped() : Wrapped(std::make_unique<MemoryCache>()) {}
  explicit Wrapped(std::unique_ptr<MemoryCache> m) : inner(m.get()), cache(std::move(m)) {}
};

TEST(ReadOnlyCache, SaveIsRejectedAndTheInnerCacheIsUnchanged) {
  Wrapped w;
  auto e = entry(1);
  EXPECT_THROW(w.cache.save(e), Rejected);
  EXPECT_THROW(w.cache.save(Call("f").arg("i", 2), Value(2)), Rejected);
  EXPECT_FALSE(w.inner->contains(e.digest));
  EXPECT_TRUE(w.inner->query(Query{}).empty());
}

TEST(ReadOnlyCache, RejectionSaysTheCacheIsReadOnly) {
  Wrapped w;
  try {
    w.cache.save(entry(1));
    FAIL() << "expected Rejected";
  } catch (const Rejected& e) {
    EXPECT_EQ(e.message(), "read-only cache (read_only = true): save refused");
    EXPECT_EQ(e.where(), "memory");  // what the wrapped cache is (its path, for a store)
  }
}

TEST(ReadOnlyCache, EvictIsRejectedAndTheEntryStays) {
  Wrapped w;
  auto e = entry(1);
  w.inner->save(e);
  EXPECT_THROW(w.cache.evict(e.digest), Rejected);
  EXPECT_TRUE(w.inner->contains(e.digest));
}

TEST(ReadOnlyCache, ReadsAreForwarded) {
  Wrapped w;
  auto e = entry(1);
  w.inner->save(e);
  EXPECT_TRUE(w.cache.contains(e.digest));
  EXPECT_EQ(w.cache.load_value(e.digest), e.result);
  EXPECT_EQ(w.cache.load(e.digest)->meta, e.meta);
  EXPECT_EQ(w.cache.expand(e.digest.hex().substr(0, 8)), e.digest);
  EXPECT_EQ(w.cache.shrink(e.digest), w.inner->shrink(e.digest));
  EXPECT_EQ(w.cache.query(Query{}).size(), 1u);
  std::vector<Digest> ask{e.digest, entry(2).digest};
  EXPECT_EQ(w.cache.contains_many(ask), (std::vector<bool>{true, false}));
  auto many = w.cache.load_many(ask);
  EXPECT_TRUE(many[0]);
  EXPECT_FALSE(many[1]);
}

TEST(ReadOnlyCache, MemoizeComputesButDoesNotSave) {
  Wrapped w;
  Call call("f", "1");
  call.arg("x", 1);
  auto memo = w.cache.memoize(call, [] { return 42; });
  EXPECT_FALSE(memo.hit);
  EXPECT_EQ(memo.value, Value(42));
  EXPECT_FALSE(w.inner->contains(call.digest()));
}

TEST(ReadOnlyCache, ConfigIsTheInnerConfigMarkedReadOnly) {
  Wrapped w;
  EXPECT_TRUE(w.cache.read_only());
  EXPECT_EQ(w.cache.config(), nlohmann::json({{"type", "memory"}, {"read_only", true}}));
  auto info = w.cache.info();
  EXPECT_EQ(info["read_only"], true);
  EXPECT_EQ(info["config"]["read_only"], true);
}

/// A cache whose configuration holds secrets and whose info() shows it unredacted.
class SecretCache : public MemoryCache {
 public:
  nlohmann::json config() const override {
    return {{"type", "memory"}, {"password", "hunter2"}, {"url", "ssh://bob:pw@host/x"}};
  }
  nlohmann::json info() override { return {{"config", config()}}; }
};

TEST(ReadOnlyCache, InfoRedactsTheConfigItShows) {
  ReadOnlyCache cache(std::make_unique<SecretCache>());
  auto text = cache.info().dump();
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_EQ(text.find(":pw@"), std::string::npos) << text;
  EXPECT_EQ(cache.info()["config"]["password"], "***");
  EXPECT_EQ(cache.config()["password"], "hunter2");
}

}  // namespace
}  // namespace quiver
