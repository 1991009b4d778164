// The `quiver` program against a remote cache by name: a "subprocess" cache serving an HDF5
// store through `quiver serve --stdio`, and `quiver ping`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <quiver/store/hdf5_store.hpp>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

class RemoteCli : public ::testing::Test {
 protected:
  RemoteCli() {
    std::ofstream(config) << "[default]\ncache = \"remote\"\n\n[store]\ntype = \"hdf5\"\npath = \""
                          << root.string() << "\"\nfsync = false\n\n[remote]\ntype = \"subprocess\""
                          << "\nquiver = \"" << testing::cli_path() << "\"\nconfig = \""
                          << config.string() << "\"\ncache_name = \"store\"\n";
    env = {"QUIVER_CONFIG=" + config.string(), "QUIVER_LOG_LEVEL=warn"};
  }

  testing::RunResult quiver(const std::vector<std::string>& args) const {
    return testing::run_cli(args, env);
  }

  Hdf5Store direct() const {
    Hdf5StoreOptions o;
    o.root = root;
    o.fsync = false;
    return Hdf5Store(o);
  }

  testing::TempDir dir{"quiver-remote-cli"};
  fs::path root = dir / "store";
  fs::path config = dir / "quiver.toml";
  std::vector<std::string> env;
};

TEST_F(RemoteCli, EveryCommandWorksAgainstTheRemoteCache) {
  auto put = quiver({"put", "--function", "sim", "--arg", "n=3", "--result-json", "[1, 2, 3]"});
  ASSERT_EQ(put.status, 0) << put.err;
  const auto digest = put.out.substr(0, 64);
  EXPECT_TRUE(direct().contains(Digest::from_hex(digest)));

  auto get = quiver({"get", digest.substr(0, 10), "--json"});
  ASSERT_EQ(get.status, 0) << get.err;
  EXPECT_EQ(json::parse(get.out)["digest"], digest);
  EXPECT_EQ(json::parse(get.out)["call"]["function"], "sim");

  auto ls = quiver({"ls", "--json"});
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_TRUE(has(ls.out, digest)) << ls.out;

  auto show = quiver({"show", digest.substr(0, 8)});
  ASSERT_EQ(show.status, 0) << show.err;
  EXPECT_TRUE(has(show.out, "sim")) << show.out;

  auto expand = quiver({"expand", digest.substr(0, 6)});
  ASSERT_EQ(expand.status, 0) << expand.err;
  EXPECT_EQ(expand.out, digest + "\n");

  auto shrink = quiver({"shrink", digest});
  ASSERT_EQ(shrink.status, 0) << shrink.err;
  EXPECT_EQ(shrink.out, direct().shrink(Digest::from_hex(digest)) + "\n");

  auto stats = quiver({"stats", "--json"});
  ASSERT_EQ(stats.status, 0) << stats.err;
  EXPECT_EQ(json::parse(stats.out)["entries"], 1);

  auto info = quiver({"info", "--json"});
  ASSERT_EQ(info.status, 0) << info.err;
  auto i = json::parse(info.out);
  EXPECT_EQ(i["config"]["type"], "subprocess");
  EXPECT_EQ(i["info"]["cache_name"], "store");
  EXPECT_EQ(i["info"]["config"]["path"], root.string());

  auto evict = quiver({"evict", digest.substr(0, 12)});
  ASSERT_EQ(evict.status, 0) << evict.err;
  EXPECT_FALSE(direct().contains(Digest::from_hex(digest)));
  EXPECT_NE(quiver({"get", digest}).status, 0);
}

TEST_F(RemoteCli, PingPrintsRoundTripStatistics) {
  auto r = quiver({"ping", "--count", "5"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(has(r.out, "PING remote (subprocess ")) << r.out;
  EXPECT_TRUE(has(r.out, "seq=5 time=")) << r.out;
  EXPECT_FALSE(has(r.out, "seq=6")) << r.out;
  EXPECT_TRUE(has(r.out, "--- remote: 5 round trips ---")) << r.out;
  EXPECT_TRUE(has(r.out, "rtt min/median/mean/p99/max = ")) << r.out;

  auto j = quiver({"--cache", "remote", "ping", "-c", "3", "--json"});
  ASSERT_EQ(j.status, 0) << j.err;
  auto doc = json::parse(j.out);
  EXPECT_EQ(doc["count"], 3);
  const auto& rtt = doc["rtt_ms"];
  EXPECT_GT(rtt["min"].get<double>(), 0.0);
  EXPECT_LE(rtt["min"].get<double>(), rtt["median"].get<double>());
  EXPECT_LE(rtt["median"].get<double>(), rtt["p99"].get<double>());
  EXPECT_LE(rtt["p99"].get<double>(), rtt["max"].get<double>());
  EXPECT_LE(rtt["mean"].get<double>(), rtt["max"].get<double>());
}

TEST_F(RemoteCli, ASubprocessCacheThatWouldServeItselfIsRefusedByTheServerItStarts) {
  // No config or cache_name: the server searches as the client did ($QUIVER_CONFIG), finds
  // this file, and its default is this very cache, which would start another server.
  std::ofstream(config)
      << "[default]\ncache = \"loop\"\n\n[loop]\ntype = \"subprocess\"\nquiver = \""
      << testing::cli_path() << "\"\nconnect_timeout = 60\n";
  auto r = quiver({"ping", "-c", "1"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "started the quiver server that is reading it now")) << r.err;
  EXPECT_TRUE(has(r.err, config.string() + ":5: [loop] type")) << r.err;
  // Said for a command line: no library call to make, no empty stream to describe.
  EXPECT_TRUE(has(r.err, "run the command again to open a new connection")) << r.err;
  EXPECT_FALSE(has(r.err, "reconnect()")) << r.err;
  EXPECT_FALSE(has(r.err, "stream ended")) << r.err;
  // With the server's config named, the same table works.
  std::ofstream(config, std::ios::app) << "config = \"" << config.string()
                                       << "\"\ncache_name = \"store\"\n\n[store]\ntype = "
                                          "\"hdf5\"\npath = \""
                                       << root.string() << "\"\n";
  auto ok = quiver({"ping", "-c", "1"});
  EXPECT_EQ(ok.status, 0) << ok.err;
}

TEST_F(RemoteCli, AStackWhoseRemoteLayerIsDownStillServesItsLocalLayerAndSaysWhatFailed) {
  std::ofstream(config) << "[default]\ncache = \"job\"\n\n[[job]]\ntype = \"hdf5\"\npath = \""
                        << root.string()
                        << "\"\nfsync = false\n\n[[job]]\ntype = \"subprocess\"\nquiver = \""
                        << (dir / "no-such-quiver").string() << "\"\nwrite_through = true\n";
  // info: the config and the local layer's info, the remote layer's error in its place.
  auto info = quiver({"info"});
  EXPECT_EQ(info.status, 1) << info.err;
  EXPECT_TRUE(has(info.out, "[[job]]")) << info.out;
  EXPECT_TRUE(has(info.out, "  layers:\n    1: {")) << info.out;
  EXPECT_TRUE(has(info.out, "    2: {\"error\":")) << info.out;
  EXPECT_TRUE(has(info.err, "quiver: layer 2: ")) << info.err;
  EXPECT_TRUE(has(info.err, "no-such-quiver")) << info.err;
  EXPECT_TRUE(has(info.err, "run the command again to open a new connection")) << info.err;

  // put: saved in the local layer, and the failed write-through says so.
  auto put = quiver({"put", "--function", "sim", "--result-json", "1"});
  EXPECT_EQ(put.status, 1);
  EXPECT_TRUE(has(put.err, "the write-through to layer 2 failed (the entry is saved in layer 1)"))
      << put.err;
  const auto saved = direct().query(Query{});
  ASSERT_EQ(saved.size(), 1u);

  // get by full digest: served by the local layer without asking the remote one.
  const auto digest = saved[0].digest.hex();
  auto get = quiver({"get", digest, "--json"});
  EXPECT_EQ(get.status, 0) << get.err;
  EXPECT_EQ(json::parse(get.out)["digest"], digest);
}

TEST_F(RemoteCli, PingOfALocalCacheIsAClearError) {
  auto r = quiver({"--cache", "store", "ping"});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r.err, "'store' has no remote layer")) << r.err;
  EXPECT_EQ(quiver({"ping", "--count", "0"}).status, 2);
}

TEST_F(RemoteCli, SecretsStayOutOfOutputAndDebugLogs) {
  std::ofstream(config, std::ios::app)
      << "\n[proxy]\ntype = \"subprocess\"\nquiver = \"" << testing::cli_path() << "\"\nconfig = \""
      << config.string() << "\"\ncache_name = \"store\"\nenv = { API_TOKEN = \"tok-s3cr3t-42\" }\n"
      << "\n[outer]\ntype = \"subprocess\"\nquiver = \"" << testing::cli_path() << "\"\nconfig = \""
      << config.string() << "\"\ncache_name = \"proxy\"\n";
  auto debug = env;
  debug.push_back("QUIVER_LOG_LEVEL=debug");
  for (const auto& cache : {"proxy", "outer"}) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"--cache", cache, "info"},
          std::vector<std::string>{"--cache", cache, "info", "--json"},
          std::vector<std::string>{"-vv", "--cache", cache, "ls"}}) {
      auto r = testing::run_cli(args, debug);
      ASSERT_EQ(r.status, 0) << r.err;
      EXPECT_FALSE(has(r.out, "tok-s3cr3t-42")) << r.out;
      EXPECT_FALSE(has(r.err, "tok-s3cr3t-42")) << r.err;
      EXPECT_TRUE(has(r.err, "debug")) << "no debug log to check:\n" << r.err;
    }
  }
  auto info = testing::run_cli({"--cache", "outer", "info", "--json"}, env);
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_EQ(json::parse(info.out)["info"]["config"]["env"]["API_TOKEN"], "***") << info.out;
}

}  // namespace
}  // namespace quiver
