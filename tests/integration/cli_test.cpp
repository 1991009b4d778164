// The `quiver` program end to end: each test runs the real binary against a fresh HDF5 store
// named by a temporary quiver.toml.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <quiver/core/json.hpp>
#include <quiver/core/version.hpp>
#include <quiver/store/h5.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <sstream>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using nlohmann::json;
using testing::RunResult;
namespace fs = std::filesystem;

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

/// True when err is exactly one line starting "quiver: ".
bool one_error_line(const std::string& err) {
  return err.rfind("quiver: ", 0) == 0 && err.find('\n') == err.size() - 1;
}

class CliTest : public ::testing::Test {
 protected:
  CliTest() {
    fs::create_directories(dir / "xdg-config");
    fs::create_directories(dir / "xdg-cache");
    std::ofstream(config) << "[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = \""
                          << root.string() << "\"\nfsync = false\n";
    env = {"QUIVER_CONFIG=" + config.string(), "XDG_CONFIG_HOME=" + (dir / "xdg-config").string(),
           "XDG_CACHE_HOME=" + (dir / "xdg-cache").string(), "QUIVER_LOG_LEVEL=warn"};
  }

  RunResult quiver(const std::vector<std::string>& args, const std::string& input = {}) const {
    return testing::run_cli(args, env, input);
  }

  /// Runs `quiver put` and returns the digest it prints.
  std::string put(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"put"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = quiver(argv);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.size(), kDigestHexLength + 1) << r.out;
    return r.out.substr(0, kDigestHexLength);
  }

  json get_json(const std::string& prefix) const {
    auto r = quiver({"get", prefix, "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  }

  /// Saves entries directly into the store, with the creation times given.
  std::vector<Digest> seed(const std::vector<std::pair<Call, Clock::time_point>>& calls,
                           const Value& result = Value(Array(DType::float64, {64}))) const {
    Hdf5StoreOptions o;
    o.root = root;
    o.fsync = false;
    Hdf5Store store(o);
    std::vector<Digest> out;
    for (const auto& [call, created] : calls) {
      Entry e = Entry::make(call, result);
      e.meta.created = created;
      store.save(e);
      out.push_back(e.digest);
    }
    return out;
  }

  /// The digests listed by `quiver ls --json` with extra arguments.
  std::vector<std::string> ls_digests(std::vector<std::string> args = {}) const {
    args.insert(args.begin(), {"ls", "--json"});
    auto r = quiver(args);
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::string> out;
    for (const auto& line : lines_of(r.out)) out.push_back(json::parse(line).at("digest"));
    std::sort(out.begin(), out.end());
    return out;
  }

  testing::TempDir dir{"quiver-cli"};
  fs::path root = dir / "store";
  fs::path config = dir / "quiver.toml";
  std::vector<std::string> env;
};

std::vector<std::string> hex_sorted(const std::vector<Digest>& digests) {
  std::vector<std::string> out;
  for (const auto& d : digests) out.push_back(d.hex());
  std::sort(out.begin(), out.end());
  return out;
}

Clock::time_point utc(const char* iso) {
  std::tm tm{};
  std::istringstream(iso) >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  return Clock::from_time_t(timegm(&tm));
}

// ---- put / get ---------------------------------------------------------------------------

TEST_F(CliTest, PutWithResultJsonThenGetJsonReturnsTheSameValue) {
  json result = {
      {"energy", -1.25},
      {"name", "run"},
      {"grid", {{"$array", {{"dtype", "float32"}, {"shape", {2, 2}}, {"data", {1, 2, 3, 4}}}}}},
      {"tags", {"a", "b"}}};
  auto digest = put({"--function", "simulate", "--result-json", result.dump()});
  auto got = get_json(digest);
  EXPECT_EQ(got.at("digest"), digest);
  EXPECT_EQ(got.at("call").at("function"), "simulate");
  EXPECT_EQ(from_json(got.at("result")), from_json(result));
}

TEST_F(CliTest, PutPrintsTheDigestOfTheCallWithArgumentsParsedAsJsonLiteralsOrStrings) {
  auto digest = put({"--function", "f", "--version", "2", "--arg", "n=3", "--arg", "name=foo",
                     "--arg", "v=[1,2]", "--arg", "id=\"007\"", "--arg", "x=0.5", "--arg",
                     "flag=true", "--result-json", "null"});
  Call expected("f", "2");
  expected.arg("n", 3)
      .arg("name", "foo")
      .arg("v", Value::list({1, 2}))
      .arg("id", "007")
      .arg("x", 0.5)
      .arg("flag", true);
  EXPECT_EQ(digest, expected.digest().hex());
}

TEST_F(CliTest, GetJsonShowsTheParsedArguments) {
  auto digest = put({"--function", "f", "--arg", "n=3", "--arg", "id=\"007\"", "--arg", "name=foo",
                     "--result-json", "1"});
  auto args = get_json(digest).at("call").at("args");
  EXPECT_EQ(args.at("n"), 3);
  EXPECT_EQ(args.at("id"), "007");
  EXPECT_EQ(args.at("name"), "foo");
}

TEST_F(CliTest, PutResultJsonDashReadsStdin) {
  auto r = quiver({"put", "--function", "f", "--result-json", "-"}, "{\"x\": [1, 2, 3]}");
  ASSERT_EQ(r.status, 0) << r.err;
  auto got = get_json(r.out.substr(0, kDigestHexLength));
  EXPECT_EQ(from_json(got.at("result")), from_json(json::parse("{\"x\": [1, 2, 3]}")));
}

TEST_F(CliTest, PutRejectsAnArgWithoutEquals) {
  auto r = quiver({"put", "--function", "f", "--arg", "n", "--result-json", "1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(one_error_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, "--arg")) << r.err;
}

TEST_F(CliTest, PutRejectsTheSameArgTwice) {
  auto r = quiver({"put", "--function", "f", "--arg", "n=1", "--arg", "n=2", "--result-json", "1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "n is given more than once")) << r.err;
}

TEST_F(CliTest, PutNeedsExactlyOneResultSource) {
  EXPECT_EQ(quiver({"put", "--function", "f"}).status, 2);
  auto both = quiver({"put", "--function", "f", "--result-json", "1", "--result-file", "x.h5"});
  EXPECT_EQ(both.status, 2);
  EXPECT_TRUE(contains(both.err, "--result-file")) << both.err;
}

TEST_F(CliTest, PutWithoutFunctionIsAUsageErrorNamingTheOption) {
  auto r = quiver({"put", "--result-json", "1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(one_error_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, "--function")) << r.err;
}

TEST_F(CliTest, PutRejectsMalformedResultJson) {
  auto r = quiver({"put", "--function", "f", "--result-json", "{not json"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--result-json")) << r.err;
}

TEST_F(CliTest, PutWithResultFileStoresTheDatasetsOfAnHdf5File) {
  auto path = (dir / "result.h5").string();
  const std::vector<double> grid{1, 2, 3, 4, 5, 6};
  {
    h5::Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_TRUE(file.valid());
    const hsize_t dims[2] = {2, 3};
    h5::Handle space(H5Screate_simple(2, dims, nullptr));
    h5::Handle set(H5Dcreate2(file.id(), "grid", H5T_IEEE_F64LE, space.id(), H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_TRUE(set.valid());
    ASSERT_GE(H5Dwrite(set.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, grid.data()), 0);
  }
  auto digest = put({"--function", "f", "--result-file", path});
  auto result = from_json(get_json(digest).at("result"));
  EXPECT_EQ(result["grid"].as_array(), Array::from(grid, {2, 3}));
}

TEST_F(CliTest, GetOutputWritesAnEntryFileThatReadEntryFileReads) {
  auto digest = put({"--function", "f", "--arg", "n=3", "--result-json",
                     R"({"x": {"$array": {"dtype": "int32", "shape": [3], "data": [7, 8, 9]}}})"});
  auto out = dir / "out.h5";
  auto r = quiver({"get", digest.substr(0, 8), "--output", out.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  Entry e = read_entry_file(out);
  EXPECT_EQ(e.digest.hex(), digest);
  EXPECT_EQ(e.call, Call("f", "", {{"n", 3}}));
  EXPECT_EQ(e.result, Value::map({{"x", Array::from(std::vector<std::int32_t>{7, 8, 9})}}));
}

TEST_F(CliTest, GetPrintsAScalarResultBare) {
  auto digest = put({"--function", "f", "--result-json", "\"hello world\""});
  auto r = quiver({"get", digest});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "hello world\n");
}

TEST_F(CliTest, GetPrintsMapsAsIndentedKeysAndArraysAsBrackets) {
  auto digest = put({"--function", "f", "--result-json",
                     R"({"n": 3, "m": {"$array": {"dtype": "int64", "shape": [2, 2],
                         "data": [1, 2, 3, 4]}}})"});
  auto r = quiver({"get", digest});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "m: int64 [2, 2]\n  [[1, 2],\n   [3, 4]]\nn: 3\n");
}

TEST_F(CliTest, GetOfAMissingEntryIsExitOneWithOneLine) {
  auto r = quiver({"get", "abcd"});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(one_error_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, "abcd")) << r.err;
  EXPECT_TRUE(r.out.empty());
}

// ---- ls ------------------------------------------------------------------------------------

TEST_F(CliTest, LsFiltersByFunction) {
  auto now = Clock::now();
  auto d =
      seed({{Call("a", "", {{"i", 1}}), now}, {Call("b"), now}, {Call("a", "", {{"i", 2}}), now}});
  EXPECT_EQ(ls_digests({"--function", "a"}), hex_sorted({d[0], d[2]}));
}

TEST_F(CliTest, LsFiltersByArgumentValueParsedLikePut) {
  auto now = Clock::now();
  auto d = seed({{Call("f", "", {{"n", 3}}), now},
                 {Call("f", "", {{"n", "3"}}), now},
                 {Call("f", "", {{"n", 4}}), now}});
  EXPECT_EQ(ls_digests({"--arg", "n=3"}), hex_sorted({d[0]}));
  EXPECT_EQ(ls_digests({"--arg", "n=\"3\""}), hex_sorted({d[1]}));
}

TEST_F(CliTest, LsFiltersByHost) {
  Hdf5StoreOptions o;
  o.root = root;
  o.fsync = false;
  Hdf5Store store(o);
  Entry here = Entry::make(Call("f", "", {{"i", 1}}), Value(1));
  Entry there = Entry::make(Call("f", "", {{"i", 2}}), Value(2));
  there.meta.host = "node-elsewhere";
  store.save(here);
  store.save(there);
  EXPECT_EQ(ls_digests({"--host", "node-elsewhere"}), hex_sorted({there.digest}));
}

TEST_F(CliTest, LsSinceAndUntilTakeIsoTimes) {
  auto d = seed({{Call("f", "", {{"i", 1}}), utc("2020-01-01T00:00:00")},
                 {Call("f", "", {{"i", 2}}), utc("2021-06-01T12:00:00")},
                 {Call("f", "", {{"i", 3}}), utc("2023-01-01T00:00:00")}});
  EXPECT_EQ(ls_digests({"--since", "2021-01-01", "--until", "2022-01-01"}), hex_sorted({d[1]}));
  EXPECT_EQ(ls_digests({"--since", "2021-06-01T12:00:00Z"}), hex_sorted({d[1], d[2]}));
  EXPECT_EQ(ls_digests({"--until", "2021-06-01T14:00:00+02:00"}), hex_sorted({d[0]}));
}

TEST_F(CliTest, LsSinceTakesADurationAgo) {
  auto now = Clock::now();
  auto d = seed({{Call("f", "", {{"i", 1}}), now - std::chrono::hours(3)},
                 {Call("f", "", {{"i", 2}}), now - std::chrono::minutes(30)},
                 {Call("f", "", {{"i", 3}}), now - std::chrono::hours(24 * 4)}});
  EXPECT_EQ(ls_digests({"--since", "2h"}), hex_sorted({d[1]}));
  EXPECT_EQ(ls_digests({"--since", "3d"}), hex_sorted({d[0], d[1]}));
  EXPECT_EQ(ls_digests({"--until", "1h", "--since", "1w"}), hex_sorted({d[0], d[2]}));
}

TEST_F(CliTest, LsLimitStopsAfterNEntries) {
  auto now = Clock::now();
  seed({{Call("f", "", {{"i", 1}}), now},
        {Call("f", "", {{"i", 2}}), now},
        {Call("f", "", {{"i", 3}}), now}});
  EXPECT_EQ(ls_digests({"--limit", "2"}).size(), 2u);
}

TEST_F(CliTest, LsJsonPrintsOneParsableObjectPerEntry) {
  auto created = utc("2024-03-04T05:06:07");
  auto d = seed({{Call("sim", "1.2", {{"n", 1}}), created}});
  auto r = quiver({"ls", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  auto j = json::parse(lines[0]);
  EXPECT_EQ(j.at("digest"), d[0].hex());
  EXPECT_EQ(j.at("function"), "sim");
  EXPECT_EQ(j.at("version"), "1.2");
  EXPECT_EQ(j.at("created"), format_time(created));
  EXPECT_GT(j.at("bytes").get<std::uint64_t>(), 0u);
}

TEST_F(CliTest, LsTextShowsShortDigestCreatedFunctionAndVersion) {
  auto d = seed({{Call("sim", "1.2"), utc("2024-03-04T05:06:07")}});
  auto r = quiver({"ls"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[1].rfind(d[0].hex().substr(0, 12) + "  2024-03-04T05:06:07Z  sim ", 0), 0u)
      << lines[1];
  EXPECT_TRUE(contains(lines[1], " 1.2 ")) << lines[1];
}

TEST_F(CliTest, LsRejectsAMalformedTimeNamingTheOption) {
  auto r = quiver({"ls", "--since", "yesterday"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(one_error_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, "--since")) << r.err;
  EXPECT_EQ(quiver({"ls", "--until", "2026-02-30"}).status, 2);
}

// ---- show ----------------------------------------------------------------------------------

TEST_F(CliTest, ShowSummarisesTheResultWithDtypeAndShape) {
  auto digest = put({"--function", "sim", "--version", "3", "--arg", "n=12", "--result-json",
                     R"({"field": {"$array": {"dtype": "float32", "shape": [3, 4],
                         "data": [0,1,2,3,4,5,6,7,8,9,10,98765]}}, "label": "x"})"});
  auto r = quiver({"show", digest.substr(0, 10)});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "field: array float32 [3, 4] (48 B)")) << r.out;
  EXPECT_TRUE(contains(r.out, "n: int64 12")) << r.out;
  EXPECT_TRUE(contains(r.out, "function:   sim")) << r.out;
  EXPECT_FALSE(contains(r.out, "98765")) << "show prints the data:\n" << r.out;
}

TEST_F(CliTest, ShowJsonDescribesTheResultTree) {
  auto digest = put({"--function", "sim", "--result-json",
                     R"({"field": {"$array": {"dtype": "uint16", "shape": [2, 1, 3],
                         "data": [0,1,2,3,4,5]}}})"});
  auto r = quiver({"show", digest, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto field = json::parse(r.out).at("result").at("items").at("field");
  EXPECT_EQ(field.at("kind"), "array");
  EXPECT_EQ(field.at("dtype"), "uint16");
  EXPECT_EQ(field.at("shape"), json({2, 1, 3}));
  EXPECT_EQ(field.at("bytes"), 12);
  EXPECT_FALSE(field.contains("data"));
}

// ---- expand / shrink / evict ---------------------------------------------------------------

TEST_F(CliTest, ExpandPrintsTheFullDigestOfAPrefix) {
  auto digest = put({"--function", "f", "--result-json", "1"});
  auto r = quiver({"expand", digest.substr(0, 6)});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, digest + "\n");
}

TEST_F(CliTest, ShrinkPrintsAPrefixThatExpandsBack) {
  auto a = put({"--function", "f", "--arg", "i=1", "--result-json", "1"});
  auto b = put({"--function", "f", "--arg", "i=2", "--result-json", "1"});
  auto r = quiver({"shrink", a, b});
  ASSERT_EQ(r.status, 0) << r.err;
  auto prefixes = lines_of(r.out);
  ASSERT_EQ(prefixes.size(), 2u);
  EXPECT_GE(prefixes[0].size(), kMinPrefixLength);
  EXPECT_EQ(quiver({"expand", prefixes[0]}).out, a + "\n");
  EXPECT_EQ(quiver({"expand", prefixes[1]}).out, b + "\n");
}

TEST_F(CliTest, ShrinkRejectsAnythingButAFullDigest) {
  auto r = quiver({"shrink", "abcd"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "not a full digest")) << r.err;
}

TEST_F(CliTest, EvictRemovesTheEntriesOfEachPrefix) {
  auto a = put({"--function", "f", "--arg", "i=1", "--result-json", "1"});
  auto b = put({"--function", "f", "--arg", "i=2", "--result-json", "1"});
  auto c = put({"--function", "f", "--arg", "i=3", "--result-json", "1"});
  auto r = quiver({"evict", a.substr(0, 12), b});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "evicted " + a + "\nevicted " + b + "\n");
  EXPECT_EQ(ls_digests(), std::vector<std::string>{c});
  EXPECT_EQ(quiver({"get", a}).status, 1);
}

TEST_F(CliTest, EvictThroughAStackSaysWhenAReadOnlyLayerKeepsTheEntry) {
  auto a = put({"--function", "f", "--result-json", "1"});  // into the store at root
  const auto top = dir / "top";
  std::ofstream(config) << "[default]\ncache = \"s\"\n[[s]]\ntype = \"hdf5\"\npath = \""
                        << top.string() << "\"\nfsync = false\n[[s]]\ntype = \"hdf5\"\npath = \""
                        << root.string() << "\"\nread_only = true\n";
  ASSERT_EQ(quiver({"get", a}).status, 0);  // promoted into the top layer
  auto r = quiver({"evict", a});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "evicted " + a + " (still in a read-only layer)\n");
}

TEST_F(CliTest, EvictReportsAMissingPrefixAndStillEvictsTheOthers) {
  auto a = put({"--function", "f", "--result-json", "1"});
  std::string missing = a[0] == '0' ? "1111" : "0000";
  auto r = quiver({"evict", missing, a});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, missing)) << r.err;
  EXPECT_EQ(r.out, "evicted " + a + "\n");
}

TEST_F(CliTest, AnAmbiguousPrefixSaysHowManyCharactersAreUnique) {
  // Two calls whose digests share their first four hex characters.
  std::map<std::string, Call> by_prefix;
  std::vector<Call> pair;
  for (int i = 0; pair.empty(); ++i) {
    Call c("f", "", {{"i", i}});
    auto [it, fresh] = by_prefix.emplace(c.digest().hex().substr(0, 4), c);
    if (!fresh) pair = {it->second, c};
  }
  auto now = Clock::now();
  auto d = seed({{pair[0], now}, {pair[1], now}});
  auto prefix = d[0].hex().substr(0, 4);
  auto r = quiver({"expand", prefix});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(one_error_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, "matches 2 entries")) << r.err;
  EXPECT_TRUE(contains(r.err, "would be unique")) << r.err;
}

TEST_F(CliTest, ANonHexPrefixIsRejectedAsAUsageError) {
  for (const char* bad : {"XYZW", "ABCD", "ab/../cd", "abc"}) {
    auto r = quiver({"get", bad});
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_TRUE(one_error_line(r.err)) << r.err;
    EXPECT_TRUE(contains(r.err, "PREFIX")) << r.err;
  }
  EXPECT_FALSE(fs::exists(root)) << "a malformed prefix must be rejected before the store opens";
}

// ---- stats / fsck / gc ---------------------------------------------------------------------

TEST_F(CliTest, StatsCountsEntriesAndBytesPerFunction) {
  auto now = Clock::now();
  seed({{Call("a", "", {{"i", 1}}), now},
        {Call("a", "", {{"i", 2}}), now},
        {Call("a", "", {{"i", 3}}), now},
        {Call("b"), now}});
  std::uint64_t listed_bytes = 0;
  for (const auto& line : lines_of(quiver({"ls", "--json"}).out))
    listed_bytes += json::parse(line).at("bytes").get<std::uint64_t>();
  auto r = quiver({"stats", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j.at("entries"), 4);
  EXPECT_EQ(j.at("bytes"), listed_bytes);
  EXPECT_EQ(j.at("functions").at("a").at("entries"), 3);
  EXPECT_EQ(j.at("functions").at("b").at("entries"), 1);
}

TEST_F(CliTest, StatsTextShowsTheTotals) {
  seed({{Call("a"), Clock::now()}});
  auto r = quiver({"stats"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "entries: 1\n")) << r.out;
}

TEST_F(CliTest, FsckOfAHealthyStoreIsClean) {
  put({"--function", "f", "--result-json", "1"});
  auto r = quiver({"fsck"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "clean")) << r.out;
}

TEST_F(CliTest, FsckReportsATruncatedEntryAndRepairQuarantinesIt) {
  auto good = put({"--function", "f", "--arg", "i=1", "--result-json", "[1, 2, 3]"});
  auto bad = put({"--function", "f", "--arg", "i=2", "--result-json", "[1, 2, 3]"});
  auto bad_path = root / bad.substr(0, 2) / (bad + ".h5");
  ASSERT_TRUE(fs::exists(bad_path));
  fs::resize_file(bad_path, fs::file_size(bad_path) / 2);

  auto check = quiver({"fsck"});
  EXPECT_EQ(check.status, 3) << check.out << check.err;
  EXPECT_TRUE(contains(check.out, "corrupt: " + bad_path.string())) << check.out;
  EXPECT_TRUE(fs::exists(bad_path)) << "fsck without --repair changed the store";

  auto repair = quiver({"fsck", "--repair"});
  EXPECT_EQ(repair.status, 4) << repair.out << repair.err;
  EXPECT_FALSE(fs::exists(bad_path));
  EXPECT_TRUE(fs::exists(root / "quarantine" / (bad + ".h5")));
  EXPECT_EQ(quiver({"fsck"}).status, 0);
  EXPECT_EQ(ls_digests(), std::vector<std::string>{good});
}

TEST_F(CliTest, GetOfADamagedEntrySaysItIsDamagedInOneLineAndPointsToFsck) {
  auto bad = put({"--function", "f", "--arg", "i=2", "--result-json", "[1, 2, 3]"});
  auto bad_path = root / bad.substr(0, 2) / (bad + ".h5");
  fs::resize_file(bad_path, fs::file_size(bad_path) / 2);
  auto r = quiver({"get", bad.substr(0, 8)});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "quiver: entry " + bad + " is in the cache but cannot be read"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "quiver fsck --repair")) << r.err;
  EXPECT_FALSE(contains(r.err, "not found")) << r.err;
  // The store's warning names the file and HDF5's innermost complaint, each on one line.
  for (const auto& line : lines_of(r.err))
    EXPECT_TRUE(line.starts_with("quiver: ") || line.find("[warning]") != std::string::npos)
        << line;
  EXPECT_TRUE(contains(r.err, bad_path.string() + ": bad entry")) << r.err;
}

TEST_F(CliTest, AnUnknownLogLevelIsSaidAndWarningsStillShow) {
  auto bad = put({"--function", "f", "--result-json", "1"});
  auto bad_path = root / bad.substr(0, 2) / (bad + ".h5");
  fs::resize_file(bad_path, fs::file_size(bad_path) / 2);
  auto with = env;
  std::replace(with.begin(), with.end(), std::string("QUIVER_LOG_LEVEL=warn"),
               std::string("QUIVER_LOG_LEVEL=bogus"));
  auto r = testing::run_cli({"get", bad}, with);
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "QUIVER_LOG_LEVEL='bogus' is not a level")) << r.err;
  EXPECT_TRUE(contains(r.err, "[warning]")) << r.err;  // not silenced, as "off" would
}

TEST_F(CliTest, AnHdf5FileThatCannotBeOpenedIsOneLineWithTheSystemsReason) {
  auto r = quiver({"put", "--function", "f", "--result-file", (dir / "no such.h5").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "no such.h5")) << r.err;
  EXPECT_TRUE(contains(r.err, "No such file or directory")) << r.err;
}

TEST_F(CliTest, FsckJsonListsTheCorruptFiles) {
  auto bad = put({"--function", "f", "--result-json", "1"});
  auto bad_path = root / bad.substr(0, 2) / (bad + ".h5");
  fs::resize_file(bad_path, 100);
  auto r = quiver({"fsck", "--json"});
  EXPECT_EQ(r.status, 3);
  auto j = json::parse(r.out);
  EXPECT_FALSE(j.at("clean").get<bool>());
  EXPECT_EQ(j.at("stores").at(0).at("corrupt"), json({bad_path.string()}));
}

TEST_F(CliTest, FsckSaysWhenTheCacheHasNoStoreToCheck) {
  std::ofstream(config) << "[default]\ncache = \"m\"\n[m]\ntype = \"memory\"\n";
  auto r = quiver({"fsck"});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "no HDF5 store")) << r.err;
}

TEST_F(CliTest, GcMaxBytesEvictsTheOldestFirst) {
  auto now = Clock::now();
  auto d = seed({{Call("f", "", {{"i", 2}}), now - std::chrono::hours(2)},
                 {Call("f", "", {{"i", 1}}), now - std::chrono::hours(3)},
                 {Call("f", "", {{"i", 3}}), now - std::chrono::hours(1)}});
  std::map<std::string, std::uint64_t> bytes;
  for (const auto& line : lines_of(quiver({"ls", "--json"}).out)) {
    auto j = json::parse(line);
    bytes[j.at("digest")] = j.at("bytes");
  }
  ASSERT_EQ(bytes.size(), 3u);
  auto budget = bytes[d[0].hex()] + bytes[d[2].hex()];
  auto r = quiver({"gc", "--max-bytes", std::to_string(budget)});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "evicted " + d[1].hex())) << r.out;
  EXPECT_EQ(ls_digests(), hex_sorted({d[0], d[2]}));
}

TEST_F(CliTest, GcOlderThanEvictsEntriesBeyondTheAge) {
  auto now = Clock::now();
  auto d = seed({{Call("f", "", {{"i", 1}}), now - std::chrono::hours(50)},
                 {Call("f", "", {{"i", 2}}), now - std::chrono::hours(1)}});
  auto r = quiver({"gc", "--older-than", "2d"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ls_digests(), hex_sorted({d[1]}));
}

TEST_F(CliTest, GcDryRunEvictsNothing) {
  auto now = Clock::now();
  auto d = seed({{Call("f", "", {{"i", 1}}), now}, {Call("f", "", {{"i", 2}}), now}});
  auto r = quiver({"gc", "--max-bytes", "0", "--dry-run", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j.at("victims").size(), 2u);
  EXPECT_EQ(ls_digests(), hex_sorted(d));
}

TEST_F(CliTest, GcMaxBytesTakesBinarySuffixes) {
  auto d = seed({{Call("f"), Clock::now()}});
  auto r = quiver({"gc", "--max-bytes", "1G"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ls_digests(), hex_sorted(d));
  auto bad = quiver({"gc", "--max-bytes", "1X"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(contains(bad.err, "--max-bytes")) << bad.err;
}

TEST_F(CliTest, GcWithoutACriterionIsAUsageError) {
  auto r = quiver({"gc"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(one_error_line(r.err)) << r.err;
}

// ---- info ----------------------------------------------------------------------------------

TEST_F(CliTest, InfoJsonShowsTheConfigFileCacheAndVersions) {
  auto r = quiver({"info", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j.at("config_file"), config.string());
  EXPECT_EQ(j.at("cache"), "t");
  EXPECT_EQ(j.at("config").at("type"), "hdf5");
  EXPECT_EQ(j.at("config").at("path"), root.string());
  EXPECT_EQ(j.at("versions").at("quiver"), kVersion);
  EXPECT_EQ(j.at("versions").at("key_format"), kKeyFormatVersion);
  EXPECT_EQ(j.at("versions").at("entry_format"), kEntryFormatVersion);
  EXPECT_TRUE(j.at("versions").at("hdf5").is_string());
}

TEST_F(CliTest, InfoWithoutAConfigNamesTheEmbeddedDefault) {
  testing::TempDir elsewhere("quiver-cli-cwd");  // no quiver.toml here or above
  auto r = testing::run({"/usr/bin/env", "-u", "QUIVER_CONFIG", "-C", elsewhere.path().string(),
                         testing::cli_path(), "info", "--json"},
                        {env[1], env[2], env[3]});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_TRUE(j.at("embedded_default").get<bool>()) << r.out;
  EXPECT_TRUE(j.at("config_file").is_null()) << r.out;
  EXPECT_EQ(j.at("config").at("path"), (dir / "xdg-cache" / "quiver").string()) << r.out;
}

TEST_F(CliTest, InfoSaysWhenAConfigFileWithoutADefaultLeavesTheEmbeddedDefault) {
  std::ofstream(config) << "[only]\ntype = \"memory\"\n";
  auto r = quiver({"info"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out,
                       "cache:       default (the embedded default: the config file "
                       "chooses no cache in [default])\n"))
      << r.out;
}

TEST_F(CliTest, CacheOptionSelectsAnotherCacheOfTheConfig) {
  std::ofstream(config, std::ios::app) << "[other]\ntype = \"memory\"\n";
  auto r = quiver({"--cache", "other", "info", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("config").at("type"), "memory");
  auto after = quiver({"info", "--json", "--cache", "other"});
  EXPECT_EQ(json::parse(after.out).at("cache"), "other");
}

// ---- serve ---------------------------------------------------------------------------------

TEST_F(CliTest, ServeStdioGreetsAndExitsCleanlyAtEndOfInput) {
  auto r = quiver({"serve", "--stdio"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 4), "QVRW") << "the greeting frame's magic";
}

TEST_F(CliTest, ServeWithoutStdioIsAUsageError) {
  auto r = quiver({"serve"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--stdio")) << r.err;
}

// ---- usage ---------------------------------------------------------------------------------

TEST_F(CliTest, HelpOfEveryCommandExitsZeroAndListsItsOptions) {
  const std::map<std::string, std::vector<std::string>> options = {
      {"put", {"--function", "--version", "--arg", "--result-file", "--result-json"}},
      {"get", {"PREFIX", "--output", "--json"}},
      {"ls", {"--function", "--arg", "--since", "--until", "--limit", "--json"}},
      {"show", {"PREFIX", "--json"}},
      {"expand", {"PREFIX"}},
      {"shrink", {"DIGEST..."}},
      {"evict", {"PREFIX..."}},
      {"stats", {"--json"}},
      {"fsck", {"--repair", "--json"}},
      {"gc", {"--max-bytes", "--older-than", "--dry-run"}},
      {"info", {"--json"}},
      {"serve", {"--stdio", "--read-only"}},
  };
  for (const auto& [command, names] : options) {
    auto r = quiver({command, "--help"});
    EXPECT_EQ(r.status, 0) << command << ": " << r.err;
    for (const auto& name : names) EXPECT_TRUE(contains(r.out, name)) << command << ": " << name;
    for (const char* global : {"--config", "--cache", "--verbose"})
      EXPECT_TRUE(contains(r.out, global)) << command << ": " << global;
  }
}

TEST_F(CliTest, UsageLinesPutTheOptionsBeforeTheOperands) {
  // `run` takes everything after -- as the command: its options can only come first.
  for (const auto& [command, usage] :
       {std::pair{"run", "usage: quiver run [options] -- COMMAND [ARG...]\n"},
        std::pair{"get", "usage: quiver get [options] PREFIX\n"},
        std::pair{"ls", "usage: quiver ls [options]\n"}}) {
    auto r = quiver({command, "--help"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.substr(0, r.out.find('\n') + 1), usage);
  }
}

TEST_F(CliTest, TopLevelHelpListsEveryCommand) {
  auto r = quiver({"--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* command : {"put", "get", "ls", "show", "expand", "shrink", "evict", "stats",
                              "fsck", "gc", "info", "serve"})
    EXPECT_TRUE(contains(r.out, std::string("\n  ") + command + " ")) << command;
}

TEST_F(CliTest, AnUnknownCommandIsExitTwoWithOneLine) {
  auto r = quiver({"frobnicate"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(one_error_line(r.err)) << r.err;
  EXPECT_TRUE(contains(r.err, "frobnicate")) << r.err;
}

TEST_F(CliTest, AnUnknownOptionIsExitTwoNamingIt) {
  for (std::vector<std::string> args : {std::vector<std::string>{"ls", "--frobnicate"},
                                        std::vector<std::string>{"--frobnicate", "ls"}}) {
    auto r = quiver(args);
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(one_error_line(r.err)) << r.err;
    EXPECT_TRUE(contains(r.err, "--frobnicate")) << r.err;
  }
}

TEST_F(CliTest, AMissingOperandIsExitTwo) {
  auto r = quiver({"get"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "PREFIX")) << r.err;
  EXPECT_EQ(quiver({"expand", "abcd", "abce"}).status, 2);
  EXPECT_EQ(quiver({}).status, 2);
}

TEST_F(CliTest, VersionPrintsTheQuiverVersion) {
  auto r = quiver({"--version"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, std::string("quiver ") + kVersion + "\n");
}

TEST_F(CliTest, VerboseLogsToStderrOnly) {
  auto digest = put({"--function", "f", "--result-json", "1"});
  auto quiet = quiver({"get", digest});
  auto loud = quiver({"-vv", "get", digest});
  EXPECT_EQ(loud.status, 0) << loud.err;
  EXPECT_EQ(loud.out, quiet.out);
  EXPECT_TRUE(contains(loud.err, "[debug]")) << loud.err;
}

}  // namespace
}  // namespace quiver
