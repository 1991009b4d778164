// The private sshd of the real-ssh tests: scripts/sshd-fixture.sh starts it (the CTest
// fixture "sshd") and writes a state file of KEY=VALUE lines, found through
// $QUIVER_SSH_STATE or <build>/ssh-fixture.env. The remote side is the unprivileged user
// the fixture created, running a copy of the quiver built with the tests.
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <quiver/remote/ssh_cache.hpp>
#include <random>
#include <stdexcept>
#include <string>

namespace quiver::testing {

struct SshFixture {
  std::string config;      ///< ssh_config with the host alias
  std::string host;        ///< the alias to pass to ssh
  std::string user;        ///< the remote (test) user
  std::string quiver;      ///< the quiver executable the remote user runs
  std::string remote_dir;  ///< a directory the remote user owns
  std::string modulepath;  ///< holds the Lmod modulefile quiver-test
  int port = 0;
  pid_t sshd_pid = -1;
  std::string host2;  ///< alias of a second remote user (same key), in the group `group`
  std::string user2;  ///< that second user
  std::string group;  ///< a group both remote users belong to

  /// The running fixture; throws (saying how to start it) when there is none.
  static const SshFixture& get() {
    static const SshFixture f = load();
    return f;
  }

  /// Options of an SshCache reaching the fixture with the remote config file remote_config.
  SshCacheOptions options(const std::string& remote_config = {}) const {
    SshCacheOptions o;
    o.transport = Transport::ssh;
    o.host = host;
    o.ssh_options = {"-F", config};
    o.quiver = quiver;
    o.config = remote_config;
    o.connect_timeout = std::chrono::seconds(30);
    o.call_timeout = std::chrono::seconds(120);
    return o;
  }

 private:
  static SshFixture load() {
    const char* env = std::getenv("QUIVER_SSH_STATE");
    const std::string path =
        env && *env ? env : std::string(QUIVER_BINARY_DIR) + "/ssh-fixture.env";
    std::ifstream in(path);
    if (!in)
      throw std::runtime_error("no ssh fixture state at " + path +
                               ": run these tests through ctest (fixture sshd), or start it with "
                               "scripts/sshd-fixture.sh start " +
                               path + " --quiver <build>/bin/quiver");
    std::map<std::string, std::string> kv;
    for (std::string line; std::getline(in, line);)
      if (auto eq = line.find('='); eq != std::string::npos)
        kv[line.substr(0, eq)] = line.substr(eq + 1);
    auto at = [&](const std::string& k) {
      auto it = kv.find(k);
      if (it == kv.end() || it->second.empty()) throw std::runtime_error(path + ": missing " + k);
      return it->second;
    };
    SshFixture f;
    f.config = at("QUIVER_SSH_CONFIG");
    f.host = at("QUIVER_SSH_HOST");
    f.user = at("QUIVER_SSH_USER");
    f.quiver = at("QUIVER_SSH_QUIVER");
    f.remote_dir = at("QUIVER_SSH_REMOTE_DIR");
    f.modulepath = at("QUIVER_SSH_MODULEPATH");
    f.port = std::stoi(at("QUIVER_SSH_PORT"));
    f.sshd_pid = static_cast<pid_t>(std::stol(at("QUIVER_SSH_PID")));
    f.host2 = at("QUIVER_SSH_HOST2");
    f.user2 = at("QUIVER_SSH_USER2");
    f.group = at("QUIVER_SSH_GROUP");
    return f;
  }
};

/// A fresh directory under the fixture's remote_dir, owned by the remote user (so that the
/// server can create stores in it), removed with its contents on destruction.
class RemoteDir {
 public:
  explicit RemoteDir(std::string_view tag) {
    const auto& f = SshFixture::get();
    std::random_device rd;
    path_ = std::filesystem::path(f.remote_dir) /
            (std::string(tag) + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
    const passwd* pw = ::getpwnam(f.user.c_str());
    if (!pw || ::chown(path_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
      throw std::runtime_error("cannot give " + path_.string() + " to " + f.user);
  }
  ~RemoteDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  RemoteDir(const RemoteDir&) = delete;
  RemoteDir& operator=(const RemoteDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

  /// Writes a quiver.toml (readable by the remote user) with an hdf5 cache "store" (the
  /// default) under store/ and a memory cache "mem"; returns its path.
  std::string write_config() const {
    const auto file = path_ / "quiver.toml";
    std::ofstream out(file);
    out << "[default]\ncache = \"store\"\n\n[store]\ntype = \"hdf5\"\npath = \""
        << (path_ / "store").string() << "\"\n\n[mem]\ntype = \"memory\"\n";
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace quiver::testing
