// quiver.toml for remote caches (type "ssh" and "subprocess"): reading every key, errors
// naming file, line and key, the command line built from the options, and the round trip
// cache -> config -> TOML -> cache with secrets redacted.
#include <gtest/gtest.h>

#include <fstream>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/remote/ssh_cache.hpp>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

class RemoteConfig : public ::testing::Test {
 protected:
  /// Writes text as quiver.toml and builds cache name from it.
  std::unique_ptr<Cache> build(const std::string& text, const std::string& name = "r") {
    std::ofstream(file) << text;
    return make_cache(resolve_config(OpenOptions{file, name}));
  }
  /// The ConfigError building name from text gives.
  std::string error(const std::string& text) {
    try {
      build(text);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ConfigError for:\n" << text;
    return {};
  }

  testing::TempDir dir{"quiver-remote-config"};
  std::filesystem::path file = dir / "quiver.toml";
};

constexpr const char* kFullSsh = R"([r]
type = "ssh"
host = "alice@login.cluster.org"
cache_name = "shared"
config = "/etc/quiver.toml"
quiver = "/opt/quiver/bin/quiver"
ssh = "/usr/bin/ssh"
ssh_options = ["-o", "ControlMaster=auto", "-p", "2222"]
setup_commands = ["module load quiver/1.0", "export OMP_NUM_THREADS=1"]
workdir = "/scratch/alice"
login_shell = true
remote_read_only = true
env = { SSH_AUTH_SOCK = "/tmp/agent.sock", API_TOKEN = "tok-123" }
connect_timeout = 12.5
call_timeout = 60
)";

TEST_F(RemoteConfig, ReadsEverySshKey) {
  auto cache = build(kFullSsh);
  auto* ssh = dynamic_cast<SshCache*>(cache.get());
  ASSERT_TRUE(ssh);
  const auto& o = ssh->options();
  EXPECT_EQ(o.transport, Transport::ssh);
  EXPECT_EQ(o.host, "alice@login.cluster.org");
  EXPECT_EQ(o.cache_name, "shared");
  EXPECT_EQ(o.config, "/etc/quiver.toml");
  EXPECT_EQ(o.quiver, "/opt/quiver/bin/quiver");
  EXPECT_EQ(o.ssh, "/usr/bin/ssh");
  EXPECT_EQ(o.ssh_options, (std::vector<std::string>{"-o", "ControlMaster=auto", "-p", "2222"}));
  EXPECT_EQ(o.setup_commands,
            (std::vector<std::string>{"module load quiver/1.0", "export OMP_NUM_THREADS=1"}));
  EXPECT_EQ(o.workdir, "/scratch/alice");
  EXPECT_TRUE(o.login_shell);
  EXPECT_TRUE(o.remote_read_only);
  EXPECT_EQ(o.env,
            (std::vector<std::string>{"API_TOKEN=tok-123", "SSH_AUTH_SOCK=/tmp/agent.sock"}));
  EXPECT_EQ(o.connect_timeout, 12500ms);
  EXPECT_EQ(o.call_timeout, 60s);
  EXPECT_EQ(ssh->pid(), -1);  // building does not connect
}

TEST_F(RemoteConfig, DefaultsOfASubprocessCache) {
  auto cache = build("[r]\ntype = \"subprocess\"\nenv = [\"A=1\", \"B=x=y\"]\n");
  auto* sub = dynamic_cast<SshCache*>(cache.get());
  ASSERT_TRUE(sub);
  const auto& o = sub->options();
  EXPECT_EQ(o.transport, Transport::subprocess);
  EXPECT_EQ(o.quiver, "quiver");
  EXPECT_TRUE(o.cache_name.empty());
  EXPECT_FALSE(o.login_shell);
  EXPECT_EQ(o.env, (std::vector<std::string>{"A=1", "B=x=y"}));
  EXPECT_EQ(o.connect_timeout, 30s);
  EXPECT_EQ(o.call_timeout, 300s);
}

TEST_F(RemoteConfig, ConfigRoundTripsThroughToml) {
  for (const auto* text :
       {kFullSsh, "[r]\ntype = \"ssh\"\nhost = \"h\"\n",
        "[r]\ntype = \"subprocess\"\nquiver = \"/x/quiver\"\nworkdir = \"/tmp\"\ncall_timeout = "
        "0.25\nenv = [\"A=1\"]\n"}) {
    auto first = build(text);
    const auto config = first->config();
    const auto toml = to_toml("r", config, Secrets::keep);
    auto second = build(toml);
    EXPECT_EQ(second->config(), config) << toml;
  }
}

TEST_F(RemoteConfig, SecretsAreRedactedInToml) {
  auto cache = build(kFullSsh);
  const auto toml = to_toml("r", cache->config());
  EXPECT_FALSE(has(toml, "tok-123")) << toml;
  EXPECT_TRUE(has(toml, "API_TOKEN = \"***\"")) << toml;
  EXPECT_TRUE(has(toml, "/tmp/agent.sock")) << toml;
}

TEST_F(RemoteConfig, ErrorsNameFileLineAndKey) {
  const auto where = file.string() + ":";
  auto e = error("[r]\ntype = \"ssh\"\n");
  EXPECT_TRUE(has(e, "[r] host: missing (required)")) << e;
  e = error("[r]\ntype = \"ssh\"\nhost = \"h\"\n\nssh_options = \"-v\"\n");
  EXPECT_TRUE(has(e, where + "5")) << e;
  EXPECT_TRUE(has(e, "[r] ssh_options: expected an array of strings, got string")) << e;
  e = error("[r]\ntype = \"ssh\"\nhost = \"h\"\nsetup_commands = [\"a\", 3]\n");
  EXPECT_TRUE(has(e, where + "4")) << e;
  EXPECT_TRUE(has(e, "[r] setup_commands")) << e;
  e = error("[r]\ntype = \"subprocess\"\nhost = \"h\"\n");
  EXPECT_TRUE(has(e, where + "3")) << e;
  EXPECT_TRUE(has(e, "[r] host: unknown key")) << e;
  e = error("[r]\ntype = \"subprocess\"\ncall_timeout = -1\n");
  EXPECT_TRUE(has(e, "[r] call_timeout: expected a number")) << e;
  e = error("[r]\ntype = \"subprocess\"\nconnect_timeout = \"10\"\n");
  EXPECT_TRUE(has(e, "[r] connect_timeout: expected a number")) << e;
  e = error("[r]\ntype = \"subprocess\"\nenv = [\"NOVALUE\"]\n");
  EXPECT_TRUE(has(e, "[r] env: expected \"NAME=value\"")) << e;
  e = error("[r]\ntype = \"subprocess\"\nenv = { A = 1 }\n");
  EXPECT_TRUE(has(e, "[r] env: expected a string for A")) << e;
  e = error("[r]\ntype = \"ssh\"\nhost = \"-oProxyCommand=x\"\n");
  EXPECT_TRUE(has(e, "[r] host: expected an ssh destination")) << e;
  e = error("[r]\ntype = \"subprocess\"\nlogin_shell = \"yes\"\n");
  EXPECT_TRUE(has(e, "[r] login_shell: expected a boolean")) << e;
}

TEST(RemoteCommand, QuotesArgumentsAndChainsSetupCommands) {
  SshCacheOptions o;
  o.host = "alice@login";
  o.ssh_options = {"-p", "2222"};
  o.cache_name = "my cache";
  EXPECT_EQ(remote_command(o),
            (std::vector<std::string>{"ssh", "-p", "2222", "-T", "--", "alice@login",
                                      "quiver serve --stdio --cache 'my cache'"}));
  o.workdir = "/scratch/a b";
  o.setup_commands = {"module load quiver"};
  o.remote_read_only = true;
  EXPECT_EQ(remote_command(o).back(),
            "cd '/scratch/a b' && module load quiver && exec quiver serve --stdio --cache 'my "
            "cache' --read-only");
  o.login_shell = true;
  EXPECT_EQ(remote_command(o).back(),
            "bash -lc 'cd '\\''/scratch/a b'\\'' && module load quiver && exec quiver serve "
            "--stdio --cache '\\''my cache'\\'' --read-only'");

  SshCacheOptions s;
  s.transport = Transport::subprocess;
  s.quiver = "/opt/bin/quiver";
  EXPECT_EQ(remote_command(s), (std::vector<std::string>{"/opt/bin/quiver", "serve", "--stdio"}));
  s.setup_commands = {"true"};
  EXPECT_EQ(remote_command(s), (std::vector<std::string>{
                                   "/bin/sh", "-c", "true && exec /opt/bin/quiver serve --stdio"}));
  SshCacheOptions no_host;
  EXPECT_THROW(remote_command(no_host), InvalidArgument);
}

TEST(LocalQuiver, AnExplicitPathIsKeptAndTheDefaultFallsBackBesideTheLibrary) {
  EXPECT_EQ(local_quiver_executable("/x/y/quiver"), "/x/y/quiver");
  const char* path = std::getenv("PATH");
  const std::string saved = path ? path : "";
  ::setenv("PATH", "/nonexistent", 1);
  const auto found = local_quiver_executable("quiver");
  ::setenv("PATH", saved.c_str(), 1);
  // Tests are not the quiver program; the library sits in the build tree beside bin/quiver.
  EXPECT_EQ(std::filesystem::path(found), std::filesystem::canonical(testing::cli_path()));
}

}  // namespace
}  // namespace quiver
