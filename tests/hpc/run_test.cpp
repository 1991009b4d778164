// `quiver run`: a miss runs the command and stores its outputs, a hit restores them byte
// for byte without running it, failures store nothing, and the key follows the inputs.
// Every command appends a line to a marker file, so the tests see whether it ran.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <testing/testing.hpp>

namespace fs = std::filesystem;
using quiver::testing::run_cli;
using quiver::testing::RunResult;
using quiver::testing::TempDir;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

/// Lines in the marker file: how many times the command really ran.
int runs(const fs::path& marker) {
  if (!fs::exists(marker)) return 0;
  std::string text = slurp(marker);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

class RunTest : public ::testing::Test {
 protected:
  TempDir dir{"quiver-run"};
  fs::path store = dir / "store";
  fs::path config = dir / "quiver.toml";
  fs::path marker = dir / "marker";
  fs::path in = dir / "in.dat";
  fs::path out = dir / "out.bin";
  std::vector<std::string> env;

  void SetUp() override {
    spit(config,
         "[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = \"" + store.string() + "\"\n");
    env = {"QUIVER_CONFIG=" + config.string(), "XDG_CONFIG_HOME=" + (dir / "xdg").string(),
           "XDG_CACHE_HOME=" + (dir / "xdg-cache").string()};
  }

  /// quiver run [options] --output out -- sh -c script, which appends to the marker first.
  RunResult run(const std::string& script, std::vector<std::string> options = {}) {
    std::vector<std::string> args = {"run"};
    args.insert(args.end(), options.begin(), options.end());
    for (const auto& a :
         {std::string("--output"), out.string(), std::string("--"), std::string("sh"),
          std::string("-c"), "echo ran >> '" + marker.string() + "'; " + script})
      args.push_back(a);
    return run_cli(args, env);
  }

  /// Number of entries in the cache.
  std::size_t entries() {
    auto r = run_cli({"ls", "--json"}, env);
    EXPECT_EQ(r.status, 0) << r.err;
    return static_cast<std::size_t>(std::count(r.out.begin(), r.out.end(), '\n'));
  }
};

// Every byte value, so that text conversions would show.
std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s + s;
}

TEST_F(RunTest, MissRunsTheCommandThenAHitRestoresIdenticalOutputsWithoutRunningIt) {
  spit(in, all_bytes());
  const std::string script = "cat '" + in.string() + "' > '" + out.string() + "'; echo said";
  auto first = run(script, {"--input", in.string()});
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_EQ(first.out, "said\n");  // stdout of the command passes through
  EXPECT_EQ(runs(marker), 1);
  const std::string produced = slurp(out);
  ASSERT_EQ(produced, all_bytes());
  EXPECT_EQ(entries(), 1u);

  fs::remove(out);
  auto second = run(script, {"--input", in.string()});
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(runs(marker), 1) << "a hit must not run the command";
  EXPECT_EQ(second.out, "");
  EXPECT_EQ(slurp(out), produced);

  spit(out, "overwritten by someone");  // a hit replaces a stale output as well
  ASSERT_EQ(run(script, {"--input", in.string()}).status, 0);
  EXPECT_EQ(runs(marker), 1);
  EXPECT_EQ(slurp(out), produced);
}

TEST_F(RunTest, AFailingCommandPassesItsStatusAndStderrAndStoresNothing) {
  const std::string script = "echo partial > '" + out.string() + "'; echo boom >&2; exit 3";
  auto first = run(script);
  EXPECT_EQ(first.status, 3);
  EXPECT_NE(first.err.find("boom"), std::string::npos) << first.err;
  EXPECT_EQ(entries(), 0u);
  auto second = run(script);
  EXPECT_EQ(second.status, 3);
  EXPECT_EQ(runs(marker), 2) << "nothing was stored, so the command runs again";
  EXPECT_EQ(entries(), 0u);
}

TEST_F(RunTest, ASignalEndsTheCommandWith128PlusItsNumber) {
  auto r = run("kill -TERM $$");
  EXPECT_EQ(r.status, 128 + SIGTERM);
  EXPECT_EQ(entries(), 0u);
}

TEST_F(RunTest, ACommandThatCannotBeStartedIs127) {
  auto r =
      run_cli({"run", "--output", out.string(), "--", (dir / "no-such-program").string()}, env);
  EXPECT_EQ(r.status, 127);
  EXPECT_NE(r.err.find("no-such-program"), std::string::npos) << r.err;
}

TEST_F(RunTest, ChangedInputContentsMissAndTheOldContentsHitAgain) {
  const std::string script = "tr a-z A-Z < '" + in.string() + "' > '" + out.string() + "'";
  spit(in, "alpha\n");
  ASSERT_EQ(run(script, {"--input", in.string()}).status, 0);
  EXPECT_EQ(slurp(out), "ALPHA\n");
  spit(in, "beta\n");  // same path, same command line, new contents
  ASSERT_EQ(run(script, {"--input", in.string()}).status, 0);
  EXPECT_EQ(runs(marker), 2);
  EXPECT_EQ(slurp(out), "BETA\n");
  spit(in, "alpha\n");
  ASSERT_EQ(run(script, {"--input", in.string()}).status, 0);
  EXPECT_EQ(runs(marker), 2) << "the first contents are cached";
  EXPECT_EQ(slurp(out), "ALPHA\n");
}

TEST_F(RunTest, FunctionArgumentsVersionAndCommandLineArePartOfTheKey) {
  const std::string script = "echo x > '" + out.string() + "'";
  ASSERT_EQ(run(script, {"--function", "f", "--arg", "n=1"}).status, 0);
  ASSERT_EQ(run(script, {"--function", "f", "--arg", "n=2"}).status, 0);
  ASSERT_EQ(run(script, {"--function", "g", "--arg", "n=1"}).status, 0);
  ASSERT_EQ(run(script, {"--function", "f", "--arg", "n=1", "--version", "2"}).status, 0);
  ASSERT_EQ(run(script + " # other command line", {"--function", "f", "--arg", "n=1"}).status, 0);
  EXPECT_EQ(runs(marker), 5);
  ASSERT_EQ(run(script, {"--arg", "n=1", "--function", "f"}).status, 0);
  EXPECT_EQ(runs(marker), 5) << "the same call again is a hit";
  auto listed = run_cli({"ls", "--function", "f", "--arg", "n=2", "--json"}, env);
  ASSERT_EQ(listed.status, 0) << listed.err;
  EXPECT_EQ(std::count(listed.out.begin(), listed.out.end(), '\n'), 1) << listed.out;
}

TEST_F(RunTest, TheStoredEntryHoldsTheOutputsAsBytesAndTheCommandInTheCall) {
  ASSERT_EQ(run("printf 'abc' > '" + out.string() + "'", {"--function", "sweep"}).status, 0);
  auto listed = run_cli({"ls", "--json"}, env);
  ASSERT_EQ(listed.status, 0) << listed.err;
  auto digest = nlohmann::json::parse(listed.out)["digest"].get<std::string>();
  auto got = run_cli({"get", "--json", digest}, env);
  ASSERT_EQ(got.status, 0) << got.err;
  auto j = nlohmann::json::parse(got.out);
  EXPECT_EQ(j["result"]["exit_status"], 0) << got.out;
  EXPECT_EQ(j["result"]["outputs"][out.string()]["$bytes"], "YWJj") << got.out;  // base64 "abc"
  EXPECT_EQ(j["call"]["function"], "sweep");
  EXPECT_EQ(j["call"]["args"]["run.command"][0], "sh") << got.out;
  EXPECT_EQ(j["call"]["args"]["run.outputs"][0], out.string()) << got.out;
}

TEST_F(RunTest, FileModesOfOutputsAreRestored) {
  const std::string script =
      "echo '#!/bin/sh' > '" + out.string() + "'; chmod 750 '" + out.string() + "'";
  ASSERT_EQ(run(script).status, 0);
  fs::remove(out);
  ASSERT_EQ(run(script).status, 0);
  EXPECT_EQ(runs(marker), 1);
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(RunTest, AnOutputTheCommandDidNotWriteIsAnErrorAndNothingIsStored) {
  auto r = run("true");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(out.string()), std::string::npos) << r.err;
  EXPECT_EQ(entries(), 0u);
}

TEST_F(RunTest, AnOutputLeftFromAnEarlierRunThatTheCommandDidNotRewriteIsAnError) {
  spit(out, "stale from an earlier job\n");
  auto r = run("true");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(runs(marker), 1);
  EXPECT_NE(r.err.find(out.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("existed before"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not rewritten"), std::string::npos) << r.err;
  EXPECT_EQ(entries(), 0u);
  EXPECT_EQ(slurp(out), "stale from an earlier job\n") << "quiver leaves it alone";
}

TEST_F(RunTest, AnExistingOutputTheCommandRewritesIsStoredEvenWithTheSameBytes) {
  // The old modification time makes the rewrite visible whatever the timestamp granularity.
  const auto old_time = fs::file_time_type::clock::now() - std::chrono::hours(24);
  spit(out, "same\n");
  fs::last_write_time(out, old_time);
  ASSERT_EQ(run("printf 'same\\n' > '" + out.string() + "'").status, 0);
  EXPECT_EQ(entries(), 1u);
  // Replaced by a rename (a new inode) with the same size and an old modification time.
  const fs::path b = dir / "b.dat", b_new = dir / "b.new";
  spit(b, "old\n");
  spit(b_new, "new\n");
  fs::last_write_time(b, old_time);
  fs::last_write_time(b_new, old_time);
  auto r = run("mv '" + b_new.string() + "' '" + b.string() + "'; echo y > '" + out.string() + "'",
               {"--output", b.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(entries(), 2u);
}

TEST_F(RunTest, AHitCreatesTheMissingDirectoriesOfItsOutputs) {
  const fs::path sub = dir / "job" / "out", x = sub / "x0.5.dat";
  const std::string script = "mkdir -p '" + sub.string() + "' && echo data > '" + x.string() +
                             "' && echo main > '" + out.string() + "'";
  ASSERT_EQ(run(script, {"--output", x.string()}).status, 0);
  fs::remove_all(dir / "job");  // a fresh job directory, as on another node
  fs::remove(out);
  auto hit = run(script, {"--output", x.string()});
  ASSERT_EQ(hit.status, 0) << hit.err;
  EXPECT_EQ(runs(marker), 1) << "a hit must not run the command";
  EXPECT_EQ(slurp(x), "data\n");
  EXPECT_EQ(slurp(out), "main\n");
}

TEST_F(RunTest, AHitThatCannotWriteAnOutputRestoresNoneAndNamesThatOutput) {
  const fs::path a = dir / "a.dat", fresh = dir / "fresh", c = fresh / "c.dat",
                 blocked = dir / "blocked", b = blocked / "b.dat";
  const std::string script = "mkdir -p '" + fresh.string() + "' '" + blocked.string() +
                             "' && for f in '" + a.string() + "' '" + c.string() + "' '" +
                             b.string() + "' '" + out.string() + "'; do echo $f > $f; done";
  const std::vector<std::string> outputs = {"--output", a.string(), "--output",
                                            c.string(), "--output", b.string()};
  ASSERT_EQ(run(script, outputs).status, 0);
  for (const auto& p : {a, out}) fs::remove(p);
  fs::remove_all(fresh);
  fs::remove_all(blocked);
  spit(blocked, "a file where b's directory was\n");
  auto hit = run(script, outputs);
  EXPECT_EQ(hit.status, 1);
  EXPECT_EQ(runs(marker), 1);
  EXPECT_NE(hit.err.find(b.string()), std::string::npos) << hit.err;
  EXPECT_EQ(hit.err.find(".quiver-"), std::string::npos) << "not the temporary file: " << hit.err;
  EXPECT_FALSE(fs::exists(a)) << "restored although a later output failed";
  EXPECT_FALSE(fs::exists(fresh)) << "the directory created for it is removed again";
  EXPECT_FALSE(fs::exists(out));
  for (const auto& entry : fs::recursive_directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename().string().find(".quiver-"), std::string::npos)
        << "temporary file left: " << entry.path();
}

TEST_F(RunTest, AMissingInputIsAnErrorBeforeTheCommandRuns) {
  auto r = run("echo x > '" + out.string() + "'", {"--input", (dir / "absent").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("absent"), std::string::npos) << r.err;
  EXPECT_EQ(runs(marker), 0);
}

TEST_F(RunTest, BadCommandLinesAreUsageErrors) {
  EXPECT_EQ(run_cli({"run", "--", "true"}, env).status, 2);  // no --output
  auto reserved = run("true", {"--arg", "run.command=x"});
  EXPECT_EQ(reserved.status, 2);
  EXPECT_NE(reserved.err.find("reserved"), std::string::npos) << reserved.err;
  EXPECT_EQ(run_cli({"run", "--output", out.string()}, env).status, 2);  // no command
  EXPECT_EQ(runs(marker), 0);
}

TEST_F(RunTest, AHitIsReadThroughTheLayersOfAStack) {
  const std::string script = "echo layered > '" + out.string() + "'";
  ASSERT_EQ(run(script).status, 0);  // stored in "store"
  fs::remove(out);
  spit(config, "[default]\ncache = \"s\"\n[[s]]\ntype = \"hdf5\"\npath = \"" +
                   (dir / "scratch").string() + "\"\n[[s]]\ntype = \"hdf5\"\npath = \"" +
                   store.string() + "\"\nread_only = true\n");
  ASSERT_EQ(run(script).status, 0);
  EXPECT_EQ(runs(marker), 1);
  EXPECT_EQ(slurp(out), "layered\n");
}

TEST_F(RunTest, ARemoteCacheServesHitsOfAnotherProcess) {
  // A "subprocess" cache talks the wire protocol to `quiver serve --stdio`, as over ssh.
  spit(dir / "server.toml",
       "[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = \"" + store.string() + "\"\n");
  spit(config, "[default]\ncache = \"r\"\n[r]\ntype = \"subprocess\"\nquiver = \"" +
                   quiver::testing::cli_path() + "\"\nconfig = \"" +
                   (dir / "server.toml").string() + "\"\n");
  const std::string script = "echo remote > '" + out.string() + "'";
  ASSERT_EQ(run(script).status, 0);
  fs::remove(out);
  auto hit = run(script);
  ASSERT_EQ(hit.status, 0) << hit.err;
  EXPECT_EQ(runs(marker), 1);
  EXPECT_EQ(slurp(out), "remote\n");
  EXPECT_TRUE(fs::exists(store)) << "the server stored the entry";
}

TEST_F(RunTest, AReadOnlyCacheRunsTheCommandAndStoresNothing) {
  fs::create_directories(store);  // a read-only store opens an existing root only
  spit(config, "[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = \"" + store.string() +
                   "\"\nread_only = true\n");
  const std::string script = "echo x > '" + out.string() + "'";
  ASSERT_EQ(run(script).status, 0);
  ASSERT_EQ(run(script).status, 0);
  EXPECT_EQ(runs(marker), 2);
  EXPECT_EQ(slurp(out), "x\n");
}

}  // namespace
