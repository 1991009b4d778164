// Cache::load_value_into: arrays of a loaded result land in caller memory, read there directly
// by the HDF5 store and copied there by every other cache; bad destinations are TypeErrors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/h5_entry.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>
#include <sstream>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using quiver::testing::ramp;
using quiver::testing::TempDir;
using ::testing::HasSubstr;

Entry entry_of(Value result, std::string function = "f") {
  return Entry::make(Call(std::move(function), "1", {{"n", 1}}), std::move(result));
}

// Memory filled with a pattern that no stored array holds, so that a test sees what was
// written into it.
std::vector<double> poisoned(std::size_t n) {
  return std::vector<double>(n, -7.5);
}

ArrayInto into(std::vector<double>& v) {
  return ArrayInto::of(std::span<double>(v));
}

const double* data_of(const Value& v) {
  return reinterpret_cast<const double*>(v.as_array().buffer().data());
}

// Options of a store at root whose arrays span many chunks.
Hdf5StoreOptions small_chunks(const std::filesystem::path& root, bool checksum = true,
                              int gzip = 0) {
  Hdf5StoreOptions o;
  o.root = root;
  o.fsync = false;
  o.checksum = checksum;
  o.gzip = gzip;
  o.chunk_bytes = 8192;
  return o;
}

class LoadIntoTest : public ::testing::TestWithParam<std::string> {
 protected:
  Hdf5StoreOptions store_options(const std::string& name, bool checksum = true, int gzip = 0) {
    return small_chunks(dir_ / name, checksum, gzip);
  }

  // The cache under test: an HDF5 store (with or without checksums, or with gzip), a memory
  // cache, a read-only wrapper over a store, or a stack of memory over a store.
  std::unique_ptr<Cache> open() {
    const std::string& kind = GetParam();
    if (kind == "hdf5") return std::make_unique<Hdf5Store>(store_options("s"));
    if (kind == "hdf5-unchecked") return std::make_unique<Hdf5Store>(store_options("s", false));
    if (kind == "hdf5-gzip") return std::make_unique<Hdf5Store>(store_options("s", true, 1));
    if (kind == "memory") return std::make_unique<MemoryCache>();
    if (kind == "read-only")
      return std::make_unique<ReadOnlyCache>(std::make_unique<Hdf5Store>(store_options("s")));
    std::vector<std::unique_ptr<Cache>> layers;
    layers.push_back(std::make_unique<MemoryCache>());
    layers.push_back(std::make_unique<Hdf5Store>(store_options("s")));
    return std::make_unique<CacheStack>(std::move(layers));
  }

  // Stores e where cache finds it: beneath a read-only wrapper, in a stack's lower layer (so
  // that a load places and promotes it), else in cache itself.
  void put(Cache& cache, const Entry& e) {
    if (GetParam() == "read-only")
      Hdf5Store(store_options("s")).save(e);
    else if (auto* stack = dynamic_cast<CacheStack*>(&cache))
      stack->layers()[1]->save(e);
    else
      cache.save(e);
  }

  TempDir dir_{"quiver-load-into"};
};

TEST_P(LoadIntoTest, AnArrayResultLandsInCallerMemory) {
  auto cache = open();
  const Array stored = ramp(100'003);  // many 8 KiB chunks and a short last one
  const Entry e = entry_of(Value(stored));
  put(*cache, e);
  auto out = poisoned(stored.size());
  auto v = cache->load_value_into(e.digest, {{"", into(out)}});
  ASSERT_TRUE(v);
  EXPECT_EQ(data_of(*v), out.data()) << "the returned array borrows the caller's memory";
  EXPECT_EQ(v->as_array().shape(), stored.shape());
  EXPECT_EQ(out, stored.to_vector<double>());
}

TEST_P(LoadIntoTest, LoadIntoReturnsTheWholeEntryWithItsArraysInCallerMemory) {
  auto cache = open();
  const Array stored = ramp(20'001);
  const Entry e = entry_of(Value::map({{"T", stored}, {"name", "run"}}));
  put(*cache, e);
  auto out = poisoned(stored.size());
  auto got = cache->load_into(e.digest, {{"T", into(out)}});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->digest, e.digest);
  EXPECT_EQ(got->call, e.call);
  EXPECT_EQ(got->meta.host, e.meta.host);
  EXPECT_EQ(got->result["name"], Value("run"));
  EXPECT_EQ(data_of(got->result["T"]), out.data()) << "the entry's array borrows the memory";
  EXPECT_EQ(out, stored.to_vector<double>());
  auto miss = poisoned(stored.size());
  EXPECT_FALSE(cache->load_into(entry_of(Value(1), "absent").digest, {{"T", into(miss)}}));
  EXPECT_EQ(miss, poisoned(stored.size()));
}

TEST_P(LoadIntoTest, ArraysOfNestedMapsAndListsLandWhereTheirPathsSay) {
  auto cache = open();
  const Array t = ramp(5000, 1), p = ramp(3000, 2), item = ramp(10, 3), other = ramp(700, 4);
  Value result = Value::map({{"fields", Value::map({{"T", t}, {"p", p}})},
                             {"history", Value::list({Value(item), Value("note")})},
                             {"other", other},
                             {"iterations", 42}});
  const Entry e = entry_of(result);
  put(*cache, e);
  auto out_t = poisoned(t.size()), out_p = poisoned(p.size()), out_item = poisoned(item.size());
  auto v = cache->load_value_into(
      e.digest,
      {{"fields/T", into(out_t)}, {"fields/p", into(out_p)}, {"history/0", into(out_item)}});
  ASSERT_TRUE(v);
  EXPECT_EQ(out_t, t.to_vector<double>());
  EXPECT_EQ(out_p, p.to_vector<double>());
  EXPECT_EQ(out_item, item.to_vector<double>());
  EXPECT_EQ(data_of((*v)["fields"]["T"]), out_t.data());
  EXPECT_EQ(data_of((*v)["history"].as_list()[0]), out_item.data());
  EXPECT_EQ(*v, result) << "the rest of the result is loaded as usual";
  EXPECT_NE(data_of((*v)["other"]), nullptr);
}

TEST_P(LoadIntoTest, AMissIsNulloptAndLeavesTheMemoryAlone) {
  auto cache = open();
  put(*cache, entry_of(Value(ramp(10))));
  auto out = poisoned(10);
  EXPECT_FALSE(cache->load_value_into(entry_of(Value(1), "absent").digest, {{"", into(out)}}));
  EXPECT_EQ(out, poisoned(10));
}

TEST_P(LoadIntoTest, ADestinationThatDoesNotFitIsATypeErrorAndTheEntryStays) {
  auto cache = open();
  const Array stored = ramp(1000);
  const Entry e = entry_of(Value::map({{"T", stored}, {"name", "run"}}));
  put(*cache, e);
  auto expect_type_error = [&](const ArrayDestinations& d, const std::string& what) {
    try {
      cache->load_value_into(e.digest, d);
      ADD_FAILURE() << "no TypeError for " << what;
    } catch (const TypeError& ex) {
      EXPECT_THAT(ex.what(), HasSubstr(what));
    }
  };
  auto short_memory = poisoned(999);
  expect_type_error({{"T", into(short_memory)}}, "'T' is float64 [1000] (8000 bytes)");
  EXPECT_EQ(short_memory, poisoned(999)) << "checked before anything is written";
  std::vector<float> floats(1000);
  expect_type_error({{"T", ArrayInto::of(std::span<float>(floats))}}, "4000 bytes of float32");
  auto right = poisoned(1000);
  expect_type_error({{"T", into(right)}, {"missing", into(right)}}, "no array at 'missing'");
  expect_type_error({{"name", into(right)}}, "no array at 'name' (it is string)");
  expect_type_error({{"T/deeper", into(right)}}, "no array at 'T/deeper'");
  // Nothing stored was lost: the entry still loads, into memory that fits too.
  auto loaded = cache->load_value(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ((*loaded)["T"].as_array(), stored);
  ASSERT_TRUE(cache->load_value_into(e.digest, {{"T", into(right)}}));
  EXPECT_EQ(right, stored.to_vector<double>());
}

TEST_P(LoadIntoTest, AnEmptyArrayNeedsAnEmptyDestination) {
  auto cache = open();
  const Entry e = entry_of(Value(Array(DType::float64, Shape{0, 3})));
  put(*cache, e);
  std::vector<double> none;
  auto v = cache->load_value_into(e.digest, {{"", into(none)}});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->as_array().shape(), (Shape{0, 3}));
}

INSTANTIATE_TEST_SUITE_P(Caches, LoadIntoTest,
                         ::testing::Values("hdf5", "hdf5-unchecked", "hdf5-gzip", "memory",
                                           "read-only", "stack"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(LoadIntoStack, AHitBelowLayerZeroIsPromoted) {
  TempDir dir("quiver-load-into");
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<MemoryCache>());
  layers.push_back(std::make_unique<Hdf5Store>(small_chunks(dir / "below")));
  CacheStack stack(std::move(layers));
  const Array stored = ramp(4096);
  const Entry e = entry_of(Value(stored));
  stack.layers()[1]->save(e);
  auto out = poisoned(stored.size());
  auto v = stack.load_value_into(e.digest, {{"", into(out)}});
  ASSERT_TRUE(v);
  EXPECT_EQ(data_of(*v), out.data()) << "the lower store reads straight into the memory";
  EXPECT_EQ(out, stored.to_vector<double>());
  out.assign(out.size(), 0.0);  // the promoted copy does not borrow the caller's memory
  auto promoted = stack.layers()[0]->load_value(e.digest);
  ASSERT_TRUE(promoted);
  EXPECT_EQ(promoted->as_array(), stored);
}

class LoadIntoHdf5 : public ::testing::Test {
 protected:
  TempDir dir{"quiver-load-into"};
  Hdf5Store store{small_chunks(dir / "store")};
};

TEST_F(LoadIntoHdf5, TheStoreReadsStraightIntoTheDestination) {
  const Array stored = ramp(20001);
  const Entry e = entry_of(Value::map({{"T", stored}}));
  store.save(e);
  // The entry reader itself (before any copy could be made) returns the caller's memory.
  auto out = poisoned(stored.size());
  const ArrayDestinations d{{"T", into(out)}};
  Entry read = h5::read_entry(store.entry_path(e.digest).string(), h5::Parts::everything, &d);
  EXPECT_EQ(data_of(read.result["T"]), out.data());
  EXPECT_EQ(out, stored.to_vector<double>());
}

TEST_F(LoadIntoHdf5, ACorruptChunkIsAMiss) {
  const Array stored = ramp(20000);
  const Entry e = entry_of(Value(stored));
  store.save(e);
  // Flip a bit in the middle of the data (the ramp's bytes are unique in the file).
  const auto path = store.entry_path(e.digest);
  std::string content;
  {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    content = s.str();
  }
  const double mid = stored.as<double>()[10000];
  const auto at = content.find(std::string_view(reinterpret_cast<const char*>(&mid), sizeof mid));
  ASSERT_NE(at, std::string::npos);
  content[at + 3] ^= 0x10;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  auto out = poisoned(stored.size());
  EXPECT_FALSE(store.load_value_into(e.digest, {{"", into(out)}}));
}

}  // namespace
}  // namespace quiver
