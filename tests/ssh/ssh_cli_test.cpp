// The quiver CLI against caches of `type = "ssh"` in quiver.toml, through the private sshd
// on 127.0.0.1 (scripts/sshd-fixture.sh).
#include <fstream>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ssh/ssh_fixture.hpp"
#include "testing/testing.hpp"

namespace quiver {
namespace {

using ::testing::HasSubstr;
using testing::RemoteDir;
using testing::SshFixture;

/// A local quiver.toml with: "remote", an ssh cache serving remote_config's default store;
/// "tiered", a stack of a local hdf5 store then that ssh cache. Returns its path.
std::string write_local_config(const testing::TempDir& local, const std::string& remote_config) {
  const auto& f = SshFixture::get();
  const std::string ssh_keys = "type = \"ssh\"\nhost = \"" + f.host +
                               "\"\nssh_options = [\"-F\", \"" + f.config + "\"]\nquiver = \"" +
                               f.quiver + "\"\nconfig = \"" + remote_config +
                               "\"\nconnect_timeout = 30\ncall_timeout = 60\n";
  const auto file = local / "quiver.toml";
  std::ofstream out(file);
  out << "[default]\ncache = \"remote\"\n\n[remote]\n"
      << ssh_keys << "\n[[tiered]]\ntype = \"hdf5\"\npath = \"" << (local / "near").string()
      << "\"\n\n[[tiered]]\n"
      << ssh_keys;
  return file.string();
}

TEST(SshCli, PingThroughSshReportsRoundTripStatistics) {
  testing::TempDir local("quiver-ssh-cli");
  RemoteDir remote("cli-ping");
  const auto config = write_local_config(local, remote.write_config());
  auto r = testing::run_cli({"--config", config, "ping", "--cache", "remote", "--count", "5"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("min"));
  EXPECT_THAT(r.out, HasSubstr("median"));
  EXPECT_THAT(r.out, HasSubstr("p99"));
  EXPECT_THAT(r.out, HasSubstr("5"));
}

TEST(SshCli, PutGetInfoAndStackThroughSsh) {
  testing::TempDir local("quiver-ssh-cli");
  RemoteDir remote("cli-put");
  const auto config = write_local_config(local, remote.write_config());

  auto put = testing::run_cli({"--config", config, "put", "--cache", "remote", "--function",
                               "ssh.cli", "--arg", "n=3", "--result-json", R"({"energy": -1.25})"});
  ASSERT_EQ(put.status, 0) << put.err;
  const std::string digest = put.out.substr(0, 64);
  ASSERT_TRUE(Digest::parse(digest).has_value()) << put.out;
  const auto entry = remote / "store" / digest.substr(0, 2) / (digest + ".h5");
  EXPECT_TRUE(std::filesystem::exists(entry)) << entry;

  auto get = testing::run_cli(
      {"--config", config, "get", "--cache", "remote", digest.substr(0, 8), "--json"});
  ASSERT_EQ(get.status, 0) << get.err;
  EXPECT_EQ(nlohmann::json::parse(get.out)["result"]["energy"], -1.25);

  // The stack misses in its local layer and finds the entry through ssh.
  auto tiered =
      testing::run_cli({"--config", config, "get", "--cache", "tiered", digest, "--json"});
  ASSERT_EQ(tiered.status, 0) << tiered.err;
  EXPECT_EQ(nlohmann::json::parse(tiered.out)["digest"], digest);

  auto info = testing::run_cli({"--config", config, "info", "--cache", "remote", "--json"});
  ASSERT_EQ(info.status, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["config"]["type"], "ssh");
  EXPECT_EQ(j["info"]["executable"], SshFixture::get().quiver);
  EXPECT_EQ(j["info"]["cache_name"], "store");
}

TEST(SshCli, UnreachableHostFailsWithSshsMessage) {
  testing::TempDir local("quiver-ssh-cli");
  RemoteDir remote("cli-unreachable");
  const auto config = write_local_config(local, remote.write_config());
  {
    std::ofstream out(config, std::ios::app);
    out << "\n[closed]\ntype = \"ssh\"\nhost = \"" << SshFixture::get().host
        << "\"\nssh_options = [\"-F\", \"" << SshFixture::get().config << "\", \"-p\", \"1\"]\n";
  }
  auto r = testing::run_cli({"--config", config, "ping", "--cache", "closed", "--count", "1"});
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.err, HasSubstr("exit status 255"));
  EXPECT_THAT(r.err, HasSubstr("Connection refused"));
}

}  // namespace
}  // namespace quiver
