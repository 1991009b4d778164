// The HDF5 entry store: round trips, prefixes, the index behind query, bad entries, fsck.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <quiver/core/version.hpp>
#include <quiver/store/h5.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/index.hpp>
#include <sstream>
#include <thread>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;
using quiver::testing::TempDir;

Entry make_entry(std::string function, Value::Map args, Value result) {
  return Entry::make(Call(std::move(function), "1", std::move(args)), std::move(result));
}

Entry numbered(int i, std::string function = "f") {
  return make_entry(std::move(function), {{"i", i}}, Value(i * 10));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

template <class T>
std::string bytes_of(T v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

// Flips one bit of the first occurrence of needle in the file; fails the test when absent.
void flip_bit_in(const fs::path& path, std::string_view needle) {
  auto content = read_file(path);
  auto at = content.find(needle);
  ASSERT_NE(at, std::string::npos) << "pattern not found in " << path;
  ASSERT_EQ(content.find(needle, at + 1), std::string::npos) << "pattern not unique";
  content[at + needle.size() / 2] ^= 0x10;
  write_file(path, content);
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  if (!fs::exists(dir)) return names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<Digest> digests_of(const std::vector<EntrySummary>& summaries) {
  std::vector<Digest> out;
  for (const auto& s : summaries) out.push_back(s.digest);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Digest> sorted(std::vector<Digest> d) {
  std::sort(d.begin(), d.end());
  return d;
}

class Hdf5StoreTest : public ::testing::Test {
 protected:
  Hdf5StoreOptions options(bool checksum = true, int gzip = 0) const {
    Hdf5StoreOptions o;
    o.root = dir.path() / "cache";
    o.fsync = false;
    o.checksum = checksum;
    o.gzip = gzip;
    return o;
  }
  fs::path root() const { return dir.path() / "cache"; }

  TempDir dir{"quiver-hdf5-store"};
  Hdf5Store store{options()};
};

TEST_F(Hdf5StoreTest, ValueOfEveryKindRoundTrips) {
  auto e = make_entry("every_kind", {{"n", 1}}, testing::sample_value_of_every_kind());
  store.save(e);
  auto v = store.load_value(e.digest);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, e.result);
}

TEST_F(Hdf5StoreTest, ArgumentsOfEveryKindRoundTrip) {
  auto e = make_entry("args", testing::sample_value_of_every_kind().as_map(), Value(1));
  store.save(e);
  auto loaded = store.load(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->call, e.call);
}

TEST_F(Hdf5StoreTest, LoadReturnsTheCallAndMetadataThatWereSaved) {
  auto e = make_entry("simulate", {{"n", 3}, {"mode", "fast"}}, Value(2.5));
  e.meta.wall_time = 12.75;
  e.meta.host = "node017";
  e.meta.user = "alice";
  store.save(e);
  auto loaded = store.load(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->digest, e.digest);
  EXPECT_EQ(loaded->call, e.call);
  EXPECT_EQ(loaded->result, e.result);
  EXPECT_EQ(loaded->meta, e.meta);
}

TEST_F(Hdf5StoreTest, EntryLivesAtItsDocumentedPath) {
  auto e = numbered(1);
  store.save(e);
  auto hex = e.digest.hex();
  EXPECT_EQ(store.entry_path(e.digest), root() / hex.substr(0, 2) / (hex + ".h5"));
  EXPECT_TRUE(fs::is_regular_file(store.entry_path(e.digest)));
}

TEST_F(Hdf5StoreTest, MissingEntryIsAMiss) {
  auto e = numbered(1);
  EXPECT_FALSE(store.contains(e.digest));
  EXPECT_FALSE(store.load(e.digest));
  EXPECT_FALSE(store.load_value(e.digest));
}

TEST_F(Hdf5StoreTest, ContainsIsTrueAfterSave) {
  auto e = numbered(1);
  store.save(e);
  EXPECT_TRUE(store.contains(e.digest));
}

TEST_F(Hdf5StoreTest, SaveReplacesAnExistingEntry) {
  auto first = numbered(1);
  auto second = first;
  second.result = Value("replaced");
  store.save(first);
  store.save(second);
  EXPECT_EQ(store.load_value(first.digest), Value("replaced"));
  EXPECT_EQ(names_in(store.entry_path(first.digest).parent_path()).size(), 1u);
}

TEST_F(Hdf5StoreTest, SaveRejectsADigestThatDoesNotMatchTheCall) {
  auto e = numbered(1);
  e.digest = numbered(2).digest;
  EXPECT_THROW(store.save(e), InvalidArgument);
  EXPECT_FALSE(store.contains(e.digest));
}

TEST_F(Hdf5StoreTest, SaveWithFsyncLeavesOnlyTheEntry) {
  auto o = options();
  o.fsync = true;
  Hdf5Store synced(o);
  auto e = numbered(1);
  synced.save(e);
  EXPECT_EQ(names_in(synced.entry_path(e.digest).parent_path()),
            std::vector<std::string>{e.digest.hex() + ".h5"});
  EXPECT_EQ(synced.load_value(e.digest), e.result);
}

TEST_F(Hdf5StoreTest, EvictRemovesTheEntryAndSaysWhetherItWasThere) {
  auto e = numbered(1);
  store.save(e);
  EXPECT_TRUE(store.evict(e.digest));
  EXPECT_FALSE(store.contains(e.digest));
  EXPECT_FALSE(store.load(e.digest));
  EXPECT_FALSE(store.evict(e.digest));
}

TEST_F(Hdf5StoreTest, MapKeysNeedingEscapesRoundTrip) {
  Value::Map m;
  for (std::string key : {"", ".", "..", "/", "a/b", "%", "%2F", "%25", "100%", " spaced ",
                          "tab\there", "ünïcødé", "#"})
    m[key] = key;
  m[std::string("nul\0byte", 8)] = 1;
  auto e = make_entry("keys", {{"arg/with/slash", 1}, {".", 2}}, Value(m));
  store.save(e);
  auto loaded = store.load(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->result, e.result);
  EXPECT_EQ(loaded->call, e.call);
}

TEST_F(Hdf5StoreTest, MapKeysAreEscapedAsDocumented) {
  Value::Map m{{"a/b", 1}, {"%", 2}, {".", 3}, {"", 4}, {std::string("x\0y", 3), 5}};
  auto e = make_entry("keys", {}, Value(m));
  store.save(e);
  h5::Site site{store.entry_path(e.digest).string(), h5::Fault::corrupt_entry};
  h5::Lock lock;
  auto file = h5::open_file(site.path, site);
  for (const char* name : {"a%2Fb", "%25", "%2E", "%", "x%00y"}) {
    auto link = std::string("/result/") + name;
    EXPECT_GT(H5Lexists(file.id(), link.c_str(), H5P_DEFAULT), 0) << link;
  }
}

TEST_F(Hdf5StoreTest, StringsWithNulBytesRoundTrip) {
  auto e = make_entry("nul", {{"s", std::string("a\0b", 3)}},
                      Value::list({std::string("\0", 1), std::string("x\0", 2), ""}));
  store.save(e);
  auto loaded = store.load(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->result, e.result);
  EXPECT_EQ(loaded->call, e.call);
}

TEST_F(Hdf5StoreTest, ExpandFindsTheUniqueDigest) {
  auto a = numbered(1), b = numbered(2);
  store.save(a);
  store.save(b);
  EXPECT_EQ(store.expand(a.digest.hex().substr(0, 4)), a.digest);
  EXPECT_EQ(store.expand(a.digest.hex()), a.digest);
}

TEST_F(Hdf5StoreTest, ExpandOfAnUnknownPrefixIsNotFound) {
  store.save(numbered(1));
  std::string other = store.expand(numbered(1).digest.hex().substr(0, 4)).hex();
  other[3] = other[3] == '0' ? '1' : '0';
  EXPECT_THROW(store.expand(other.substr(0, 4)), NotFound);
}

// A second "entry" whose name shares the first `common` characters with a's digest.
Digest colliding(const Digest& a, std::size_t common) {
  auto hex = a.hex();
  hex[common] = hex[common] == 'f' ? '0' : 'f';
  return Digest::from_hex(hex);
}

TEST_F(Hdf5StoreTest, ExpandOfASharedPrefixSaysHowManyCharactersAreUnique) {
  auto a = numbered(1);
  store.save(a);
  auto b = colliding(a.digest, 6);
  fs::copy_file(store.entry_path(a.digest), store.entry_path(b));
  try {
    store.expand(a.digest.hex().substr(0, 4));
    FAIL() << "expected AmbiguousDigest";
  } catch (const AmbiguousDigest& ex) {
    EXPECT_NE(std::string(ex.what()).find("7 characters"), std::string::npos) << ex.what();
  }
  EXPECT_EQ(store.expand(a.digest.hex().substr(0, 7)), a.digest);
  EXPECT_EQ(store.expand(b.hex().substr(0, 7)), b);
}

TEST_F(Hdf5StoreTest, ShrinkIsAtLeastFourCharacters) {
  auto a = numbered(1);
  store.save(a);
  EXPECT_EQ(store.shrink(a.digest), a.digest.hex().substr(0, 4));
}

TEST_F(Hdf5StoreTest, ShrinkGrowsPastASharedPrefix) {
  auto a = numbered(1);
  store.save(a);
  fs::copy_file(store.entry_path(a.digest), store.entry_path(colliding(a.digest, 9)));
  auto prefix = store.shrink(a.digest);
  EXPECT_EQ(prefix, a.digest.hex().substr(0, 10));
  EXPECT_EQ(store.expand(prefix), a.digest);
}

TEST_F(Hdf5StoreTest, BadPrefixesAreRejectedBeforeTouchingAPath) {
  store.save(numbered(1));
  auto before = names_in(root());
  for (std::string bad : {"../../etc", "/", "", "ABCD", "abc", "abcg", "..", "ab/cd", "./ab"}) {
    EXPECT_THROW(store.expand(bad), InvalidArgument) << "'" << bad << "'";
  }
  EXPECT_EQ(names_in(root()), before);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"cache"});
}

class Hdf5StoreQueryTest : public Hdf5StoreTest {
 protected:
  Hdf5StoreQueryTest() {
    auto at = [](int minute) {
      return Clock::time_point(std::chrono::sys_days(std::chrono::year(2030) / 1 / 1)) +
             std::chrono::minutes(minute);
    };
    for (int i = 0; i < 6; ++i) {
      auto e = make_entry(i < 4 ? "simulate" : "analyse", {{"i", i}, {"mode", i % 2 ? "b" : "a"}},
                          Value(i));
      e.meta.created = at(i);
      e.meta.host = i < 3 ? "node1" : "node2";
      store.save(e);
      saved.push_back(e);
    }
  }
  std::vector<Digest> digests(std::initializer_list<int> which) const {
    std::vector<Digest> out;
    for (int i : which) out.push_back(saved[static_cast<std::size_t>(i)].digest);
    return sorted(out);
  }
  Clock::time_point created(int i) const { return saved[static_cast<std::size_t>(i)].meta.created; }

  std::vector<Entry> saved;
};

TEST_F(Hdf5StoreQueryTest, EmptyQueryFindsEveryEntryOnce) {
  EXPECT_EQ(digests_of(store.query(Query{})), digests({0, 1, 2, 3, 4, 5}));
}

TEST_F(Hdf5StoreQueryTest, QueryByFunction) {
  Query q;
  q.function = "analyse";
  EXPECT_EQ(digests_of(store.query(q)), digests({4, 5}));
}

TEST_F(Hdf5StoreQueryTest, QueryByArgumentEquality) {
  Query q;
  q.args["mode"] = "b";
  EXPECT_EQ(digests_of(store.query(q)), digests({1, 3, 5}));
  q.args["i"] = 3;
  EXPECT_EQ(digests_of(store.query(q)), digests({3}));
}

TEST_F(Hdf5StoreQueryTest, QueryByCreationTime) {
  Query q;
  q.created_after = created(2);
  q.created_before = created(4);
  EXPECT_EQ(digests_of(store.query(q)), digests({2, 3}));
}

TEST_F(Hdf5StoreQueryTest, QueryByHost) {
  Query q;
  q.host = "node1";
  EXPECT_EQ(digests_of(store.query(q)), digests({0, 1, 2}));
}

TEST_F(Hdf5StoreQueryTest, QueryHonoursTheLimit) {
  Query q;
  q.function = "simulate";
  q.limit = 3;
  auto found = store.query(q);
  EXPECT_EQ(found.size(), 3u);
  for (const auto& s : found) EXPECT_EQ(s.function, "simulate");
}

TEST_F(Hdf5StoreQueryTest, QueryStopsWhenTheSinkSaysSo) {
  int calls = 0;
  store.query(Query{}, [&](const EntrySummary&) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
}

TEST_F(Hdf5StoreQueryTest, QueryReportsTheSavedSummaryAndFileSize) {
  Query q;
  q.args["i"] = 4;
  auto found = store.query(q);
  ASSERT_EQ(found.size(), 1u);
  auto want = EntrySummary::of(saved[4]);
  want.bytes = fs::file_size(store.entry_path(saved[4].digest));
  EXPECT_EQ(found[0], want);
}

TEST_F(Hdf5StoreQueryTest, QueryAfterEvictExcludesTheEvictedEntry) {
  ASSERT_TRUE(store.evict(saved[1].digest));
  EXPECT_EQ(digests_of(store.query(Query{})), digests({0, 2, 3, 4, 5}));
}

TEST_F(Hdf5StoreQueryTest, QueryReportsTheNewestSaveOfADigest) {
  auto again = saved[0];
  again.meta.created = created(5) + std::chrono::hours(1);
  again.meta.host = "node9";
  store.save(again);
  Query q;
  q.args["i"] = 0;
  auto found = store.query(q);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].meta.host, "node9");
}

TEST_F(Hdf5StoreQueryTest, QueryFindsEntriesSavedThroughAnotherStoreObject) {
  Hdf5Store other(options());
  auto e = numbered(100, "other");
  other.save(e);
  Query q;
  q.function = "other";
  EXPECT_EQ(digests_of(store.query(q)), std::vector<Digest>{e.digest});
}

TEST_F(Hdf5StoreQueryTest, IndexSurvivesARebuild) {
  store.rebuild_index();
  EXPECT_EQ(digests_of(store.query(Query{})), digests({0, 1, 2, 3, 4, 5}));
  auto files = names_in(root() / "index");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(files[0].starts_with("snapshot.")) << files[0];
}

TEST_F(Hdf5StoreQueryTest, RebuildRestoresADeletedIndex) {
  fs::remove_all(root() / "index");
  EXPECT_TRUE(store.query(Query{}).empty());
  std::uint64_t last_done = 0, last_total = 0;
  store.rebuild_index([&](std::uint64_t done, std::uint64_t total) {
    last_done = done;
    last_total = total;
  });
  EXPECT_EQ(last_done, 6u);
  EXPECT_EQ(last_total, 6u);
  EXPECT_EQ(digests_of(store.query(Query{})), digests({0, 1, 2, 3, 4, 5}));
}

TEST_F(Hdf5StoreQueryTest, SavesAfterARebuildGoToAFreshLog) {
  store.rebuild_index();
  auto e = numbered(100);
  store.save(e);
  auto all = digests({0, 1, 2, 3, 4, 5});
  all.push_back(e.digest);
  EXPECT_EQ(digests_of(store.query(Query{})), sorted(all));
}

TEST_F(Hdf5StoreQueryTest, InfoCountsEntries) {
  ASSERT_TRUE(store.evict(saved[0].digest));
  auto info = store.info();
  EXPECT_EQ(info["type"], "hdf5");
  EXPECT_EQ(info["root"], root().string());
  EXPECT_EQ(info["entries"], 5);
  EXPECT_EQ(info["fsync"], false);
}

TEST_F(Hdf5StoreTest, ConfigDescribesTheStore) {
  Hdf5Store s(options(false, 4));
  EXPECT_EQ(s.config(), (nlohmann::json{{"type", "hdf5"},
                                        {"path", root().string()},
                                        {"fsync", false},
                                        {"gzip", 4},
                                        {"checksum", false},
                                        {"chunk_bytes", Hdf5StoreOptions{}.chunk_bytes}}));
}

TEST_F(Hdf5StoreTest, IndexLineRoundTripsAwkwardStrings) {
  auto e = make_entry("f\tn\\x\ny", {{"a=b\t", 1}, {"", 2}}, Value(1));
  e.meta.host = "h\r\n";
  e.meta.wall_time = 0.1;
  auto s = EntrySummary::of(e);
  s.bytes = 12345;
  auto line = format_index_line(s);
  ASSERT_TRUE(line.ends_with('\n'));
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  EXPECT_EQ(parse_index_line(std::string_view(line).substr(0, line.size() - 1)), s);
}

TEST_F(Hdf5StoreTest, QueryByFunctionOver100kEntriesReadsTheIndexNotTheEntries) {
  constexpr int n = 100000, every = 100;  // 1% of the entries are calls of "wanted"
  {
    EntryIndex index(root() / "index");
    auto snapshot = index.begin_rebuild();
    for (int i = 0; i < n; ++i) {
      Call call(i % every ? "other" : "wanted", "1", {{"i", i}, {"mode", "fast"}});
      Entry e{call.digest(), call, Value(), Metadata::now(1.5)};
      auto s = EntrySummary::of(e);
      s.bytes = 4096;
      snapshot.add(s);
      if (i % every == 0) {  // query confirms that matches exist; the others are never looked at
        auto path = store.entry_path(s.digest);
        fs::create_directories(path.parent_path());
        write_file(path, "");
      }
    }
    snapshot.commit();
  }
  Query q;
  q.function = "wanted";
  std::size_t found = 0;
  store.query(q, [&](const EntrySummary& s) {
    EXPECT_EQ(s.function, "wanted");
    return ++found, true;
  });
  EXPECT_EQ(found, static_cast<std::size_t>(n / every));
}

// Bad entries: each is a miss, fsck reports it, and fsck with repair quarantines it.
class Hdf5StoreBadEntryTest : public Hdf5StoreTest {
 protected:
  void expect_bad(const Digest& digest) {
    auto path = store.entry_path(digest);
    ASSERT_TRUE(fs::exists(path));
    EXPECT_FALSE(store.load(digest));
    EXPECT_FALSE(store.load_value(digest));
    auto report = store.fsck(FsckOptions{});
    EXPECT_EQ(report.corrupt, std::vector<std::string>{path.string()});
    EXPECT_FALSE(report.clean());
    EXPECT_TRUE(fs::exists(path)) << "fsck without repair must not move files";

    FsckOptions repair;
    repair.repair = true;
    report = store.fsck(repair);
    EXPECT_EQ(report.quarantined, 1u);
    EXPECT_TRUE(report.index_rebuilt);
    EXPECT_FALSE(fs::exists(path));
    EXPECT_EQ(names_in(root() / "quarantine"), std::vector<std::string>{path.filename().string()});
    EXPECT_TRUE(store.fsck(FsckOptions{}).clean());
    EXPECT_EQ(digests_of(store.query(Query{})), std::vector<Digest>{good.digest});
  }
  void SetUp() override { store.save(good); }
  Entry good = numbered(1);
};

TEST_F(Hdf5StoreBadEntryTest, TruncatedFile) {
  auto e = make_entry("big", {}, testing::ramp(20000));
  store.save(e);
  auto path = store.entry_path(e.digest);
  fs::resize_file(path, fs::file_size(path) / 2);
  expect_bad(e.digest);
}

TEST_F(Hdf5StoreBadEntryTest, BitFlipInArrayData) {
  auto e = make_entry("big", {}, testing::ramp(20000));
  store.save(e);
  flip_bit_in(store.entry_path(e.digest), bytes_of(1234.5) + bytes_of(1235.0));
  expect_bad(e.digest);
}

TEST_F(Hdf5StoreBadEntryTest, BitFlipInAScalarResult) {
  auto e = make_entry("scalar", {}, Value(std::int64_t{0x0123456789abcdefLL}));
  store.save(e);
  flip_bit_in(store.entry_path(e.digest), bytes_of(std::int64_t{0x0123456789abcdefLL}));
  expect_bad(e.digest);
}

TEST_F(Hdf5StoreBadEntryTest, BitFlipInAnUnchecksummedArgument) {
  Hdf5Store plain(options(/*checksum=*/false));
  auto e = make_entry("arg", {{"x", testing::ramp(20000, 0.25)}}, Value(1));
  plain.save(e);
  flip_bit_in(store.entry_path(e.digest), bytes_of(1234.75) + bytes_of(1235.25));
  expect_bad(e.digest);
}

TEST_F(Hdf5StoreBadEntryTest, TextFileNamedLikeAnEntry) {
  auto e = numbered(2);
  fs::create_directories(store.entry_path(e.digest).parent_path());
  write_file(store.entry_path(e.digest), "this is not HDF5\n");
  expect_bad(e.digest);
}

TEST_F(Hdf5StoreBadEntryTest, Hdf5FileWithoutOurAttributes) {
  auto e = numbered(2);
  auto path = store.entry_path(e.digest);
  fs::create_directories(path.parent_path());
  {
    h5::Site site{path.string(), h5::Fault::store_error};
    h5::Lock lock;
    auto file = h5::create_file(site.path, site);
    auto group = h5::own(H5Gcreate2(file.id(), "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "H5Gcreate2", site);
  }
  expect_bad(e.digest);
}

TEST_F(Hdf5StoreBadEntryTest, DigestAttributeDoesNotMatchTheName) {
  auto e = numbered(2);
  fs::create_directories(store.entry_path(e.digest).parent_path());
  fs::copy_file(store.entry_path(good.digest), store.entry_path(e.digest));
  expect_bad(e.digest);
}

TEST_F(Hdf5StoreBadEntryTest, EntryInTheWrongDirectory) {
  auto e = numbered(2);
  store.save(e);
  auto hex = e.digest.hex();
  auto wrong = root() / (hex[0] == '0' ? "11" : "00");
  fs::create_directories(wrong);
  fs::rename(store.entry_path(e.digest), wrong / (hex + ".h5"));
  auto report = store.fsck(FsckOptions{});
  EXPECT_EQ(report.corrupt, std::vector<std::string>{(wrong / (hex + ".h5")).string()});
}

TEST_F(Hdf5StoreTest, FsckOfAGoodStoreIsClean) {
  for (int i = 0; i < 5; ++i) store.save(numbered(i));
  std::vector<std::uint64_t> seen;
  auto report = store.fsck(FsckOptions{}, [&](std::uint64_t done, std::uint64_t total) {
    EXPECT_EQ(total, 5u);
    seen.push_back(done);
  });
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.entries, 5u);
  EXPECT_EQ(report.ok, 5u);
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
}

TEST_F(Hdf5StoreTest, FsckRemovesStaleTemporaryFilesOnlyWithRepair) {
  auto e = numbered(1);
  store.save(e);
  auto dir_path = store.entry_path(e.digest).parent_path();
  auto stale = dir_path / ("." + e.digest.hex() + ".h5.tmp.otherhost.123.1");
  write_file(stale, "partial");
  FsckOptions check;
  check.temp_grace = std::chrono::seconds(0);
  auto report = store.fsck(check);
  EXPECT_EQ(report.temp_leftovers, std::vector<std::string>{stale.string()});
  EXPECT_TRUE(fs::exists(stale));
  check.repair = true;
  report = store.fsck(check);
  EXPECT_EQ(report.removed_temps, 1u);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(store.fsck(FsckOptions{}).clean());
}

TEST_F(Hdf5StoreTest, FsckLeavesYoungTemporaryFilesAlone) {
  auto e = numbered(1);
  store.save(e);
  auto young =
      store.entry_path(e.digest).parent_path() / ("." + e.digest.hex() + ".h5.tmp.otherhost.123.1");
  write_file(young, "being written");
  FsckOptions repair;
  repair.repair = true;
  auto report = store.fsck(repair);
  EXPECT_TRUE(report.clean());
  EXPECT_TRUE(fs::exists(young));
}

TEST_F(Hdf5StoreTest, LargeArraysAreChunkedWithChecksumAndGzip) {
  Hdf5Store packed(options(true, 6));
  auto e = make_entry("big", {}, testing::ramp(1 << 20));
  packed.save(e);
  EXPECT_LT(fs::file_size(packed.entry_path(e.digest)), (8u << 20) / 2) << "gzip had no effect";
  h5::Site site{packed.entry_path(e.digest).string(), h5::Fault::corrupt_entry};
  h5::Lock lock;
  auto file = h5::open_file(site.path, site);
  auto ds = h5::own(H5Dopen2(file.id(), "/result", H5P_DEFAULT), "H5Dopen2", site);
  auto dcpl = h5::own(H5Dget_create_plist(ds.id()), "H5Dget_create_plist", site);
  EXPECT_EQ(H5Pget_layout(dcpl.id()), H5D_CHUNKED);
  hsize_t chunk = 0;
  H5Pget_chunk(dcpl.id(), 1, &chunk);
  EXPECT_EQ(chunk * sizeof(double), packed.options().chunk_bytes);
  EXPECT_GT(H5Pget_filter_by_id2(dcpl.id(), H5Z_FILTER_FLETCHER32, nullptr, nullptr, nullptr, 0,
                                 nullptr, nullptr),
            -1);
  EXPECT_GT(H5Pget_filter_by_id2(dcpl.id(), H5Z_FILTER_DEFLATE, nullptr, nullptr, nullptr, 0,
                                 nullptr, nullptr),
            -1);
}

TEST_F(Hdf5StoreTest, ArraysOfEveryShapeRoundTrip) {
  Value::Map m;
  m["zero_rows"] = Array(DType::float64, Shape{0});
  m["zero_inner"] = Array(DType::uint16, Shape{5, 0, 2});
  m["rank0"] = Array::from(std::vector<std::int64_t>{-7}, Shape{});
  m["rank4"] = Array::from(std::vector<std::int8_t>(2 * 3 * 4 * 5, 3), Shape{2, 3, 4, 5});
  Array wide(DType::complex128, Shape{3, 70000});  // rows larger than a chunk (below)
  auto w = wide.as_mutable<std::complex<double>>();
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = {static_cast<double>(i), -0.5};
  m["wide"] = wide;
  auto o = options();
  o.chunk_bytes = 64 << 10;
  Hdf5Store small_chunks(o);
  auto e = make_entry("shapes", {}, Value(m));
  small_chunks.save(e);
  EXPECT_EQ(small_chunks.load_value(e.digest), e.result);
}

// With the default fletcher32 chunks (the direct chunk path), past 2^31 bytes and elements.
TEST_F(Hdf5StoreTest, ArrayPast2GiBRoundTrips) {
  Hdf5Store fast(options());
  const std::uint64_t n = (std::uint64_t{1} << 31) + (std::uint64_t{200} << 20);  // 2.2 GiB
  const Shape shape{n / 4096, 4096};  // moved in slabs of whole rows
  Array big(DType::uint8, shape);
  auto data = big.as_mutable<std::uint8_t>();
  for (std::uint64_t i = 0; i < n; ++i)
    data[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
  auto e = make_entry("huge", {}, Value(big));
  fast.save(e);
  auto loaded = fast.load_value(e.digest);
  ASSERT_TRUE(loaded);
  const Array& back = loaded->as_array();
  ASSERT_EQ(back.shape(), shape);
  ASSERT_EQ(back.nbytes(), n);
  auto got = back.as<std::uint8_t>();
  for (std::uint64_t i = 0; i < n; i += 999983)
    ASSERT_EQ(got[i], static_cast<std::uint8_t>((i * 2654435761u) >> 13)) << i;
  EXPECT_EQ(got[n - 1], data[n - 1]);
  EXPECT_TRUE(back == big);
}

TEST_F(Hdf5StoreTest, ConcurrentThreadsShareOneStore) {
  constexpr int threads = 4, per_thread = 10;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto e = make_entry("threads", {{"t", t}, {"i", i}}, testing::ramp(5000, t * 100 + i));
        store.save(e);
        auto back = store.load_value(e.digest);
        EXPECT_TRUE(back && *back == e.result);
      }
    });
  }
  for (auto& th : pool) th.join();
  Query q;
  q.function = "threads";
  EXPECT_EQ(store.query(q).size(), static_cast<std::size_t>(threads * per_thread));
}

TEST_F(Hdf5StoreTest, EntryFileRoundTrips) {
  auto e = make_entry("standalone", {{"x", 1.5}}, testing::sample_value_of_every_kind());
  auto path = dir.path() / "out.h5";
  write_entry_file(path, e);
  auto back = read_entry_file(path);
  EXPECT_EQ(back.digest, e.digest);
  EXPECT_EQ(back.call, e.call);
  EXPECT_EQ(back.result, e.result);
  EXPECT_EQ(back.meta, e.meta);
  EXPECT_EQ(read_value_file(path), e.result);
}

TEST_F(Hdf5StoreTest, ReadEntryFileRejectsAForeignFile) {
  auto path = dir.path() / "text.h5";
  write_file(path, "not hdf5");
  EXPECT_THROW(read_entry_file(path), CorruptEntry);
}

TEST_F(Hdf5StoreTest, ValueFileReadsPlainGroupsAndDatasets) {
  auto path = dir.path() / "plain.h5";
  std::vector<double> grid{1, 2, 3, 4, 5, 6};
  std::vector<std::int32_t> counts{7, 8, 9};
  {
    h5::Site site{path.string(), h5::Fault::store_error};
    h5::Lock lock;
    auto file = h5::create_file(site.path, site);
    auto group = h5::own(H5Gcreate2(file.id(), "fields", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "H5Gcreate2", site);
    hsize_t dims[2] = {2, 3};
    auto space = h5::own(H5Screate_simple(2, dims, nullptr), "H5Screate_simple", site);
    auto ds = h5::own(H5Dcreate2(group.id(), "grid", H5T_IEEE_F64BE, space.id(), H5P_DEFAULT,
                                 H5P_DEFAULT, H5P_DEFAULT),
                      "H5Dcreate2", site);
    H5Dwrite(ds.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, grid.data());
    hsize_t n = 3;
    auto space1 = h5::own(H5Screate_simple(1, &n, nullptr), "H5Screate_simple", site);
    auto ds1 = h5::own(H5Dcreate2(file.id(), "counts", H5T_STD_I32LE, space1.id(), H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT),
                       "H5Dcreate2", site);
    H5Dwrite(ds1.id(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, counts.data());
    auto type = h5::string_type("a label", site);
    auto scalar = h5::own(H5Screate(H5S_SCALAR), "H5Screate", site);
    auto ds2 = h5::own(H5Dcreate2(file.id(), "label", type.id(), scalar.id(), H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT),
                       "H5Dcreate2", site);
    h5::write_string(ds2.id(), h5::Holder::dataset, "a label", type.id(), site);
    auto ds3 = h5::own(H5Dcreate2(file.id(), "temperature", H5T_IEEE_F32LE, scalar.id(),
                                  H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       "H5Dcreate2", site);
    float t = 21.5f;
    H5Dwrite(ds3.id(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &t);
  }
  auto v = read_value_file(path);
  EXPECT_EQ(v["fields"]["grid"], Value(Array::from(grid, {2, 3})));
  EXPECT_EQ(v["counts"], Value(Array::from(counts)));
  EXPECT_EQ(v["label"], Value("a label"));
  EXPECT_EQ(v["temperature"], Value(Array::from(std::vector<float>{21.5f}, Shape{})));
  EXPECT_EQ(v.as_map().size(), 4u);
}

TEST_F(Hdf5StoreTest, ValueFileRejectsAMissingFile) {
  EXPECT_THROW(read_value_file(dir.path() / "absent.h5"), InvalidArgument);
}

TEST_F(Hdf5StoreTest, RootThatCannotBeCreatedThrowsStoreError) {
  write_file(dir.path() / "file", "x");
  Hdf5StoreOptions o;
  o.root = dir.path() / "file" / "cache";
  EXPECT_THROW(Hdf5Store{o}, StoreError);
}

}  // namespace
}  // namespace quiver
