// SshCache through a real OpenSSH server on 127.0.0.1 (scripts/sshd-fixture.sh): the remote
// side is an unprivileged user running `quiver serve --stdio` under sshd, exactly as on a
// cluster login node.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <quiver/core/call.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ssh/ssh_fixture.hpp"
#include "testing/testing.hpp"

namespace quiver {
namespace {

using ::testing::HasSubstr;
using testing::RemoteDir;
using testing::SshFixture;
using SteadyClock = std::chrono::steady_clock;

/// The RemoteConnectionError that fn throws (fails the test if it throws anything else).
template <class F>
RemoteConnectionError connection_error(F&& fn) {
  try {
    fn();
  } catch (const RemoteConnectionError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected RemoteConnectionError, got: " << e.what();
    return RemoteConnectionError(e.what(), "");
  }
  ADD_FAILURE() << "expected RemoteConnectionError, nothing thrown";
  return RemoteConnectionError("", "");
}

/// Polls pred every millisecond until it holds or the deadline passes; returns pred().
template <class Pred>
bool eventually(Pred pred, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto deadline = SteadyClock::now() + limit;
  while (!pred()) {
    if (SteadyClock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// Resumes (SIGCONT) and then kills (SIGKILL) a process of the remote side on scope exit, so
/// that a failing test leaves no stopped server behind; only while its command line still
/// contains `command` (the pid may have ended and been reused).
struct ReleaseOnExit {
  pid_t pid;
  std::string command;
  ~ReleaseOnExit() {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmdline;
    std::getline(in, cmdline);  // NUL-separated, no newline: the whole line
    if (cmdline.find(command) == std::string::npos) return;
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGKILL);
  }
};

Entry sample_entry(std::string function, int i = 0) {
  return Entry::make(Call(std::move(function), "1")
                         .arg("i", i)
                         .arg("kinds", testing::sample_value_of_every_kind()),
                     testing::sample_value_of_every_kind(), 0.5);
}

TEST(SshCache, EveryValueKindRoundTripsAndLandsInTheRemoteUsersStore) {
  RemoteDir dir("kinds");
  SshCache cache(SshFixture::get().options(dir.write_config()));
  const Entry e = sample_entry("ssh.kinds");

  EXPECT_FALSE(cache.contains(e.digest));
  EXPECT_FALSE(cache.load(e.digest).has_value());
  cache.save(e);
  EXPECT_TRUE(cache.contains(e.digest));

  auto loaded = cache.load(e.digest);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->digest, e.digest);
  EXPECT_EQ(loaded->call, e.call);
  EXPECT_EQ(loaded->result, e.result);
  EXPECT_EQ(loaded->meta.host, e.meta.host);
  EXPECT_EQ(cache.load_value(e.digest), std::optional<Value>(e.result));

  Query by_function;
  by_function.function = "ssh.kinds";
  auto found = cache.query(by_function);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].digest, e.digest);
  Query by_arg;
  by_arg.args["kinds"] = testing::sample_value_of_every_kind();
  EXPECT_EQ(cache.query(by_arg).size(), 1u);
  Query other;
  other.function = "ssh.other";
  EXPECT_TRUE(cache.query(other).empty());

  // The entry is an HDF5 file of the remote user's store, written by the remote user.
  const auto hex = e.digest.hex();
  const auto file = dir / "store" / hex.substr(0, 2) / (hex + ".h5");
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
  EXPECT_EQ(st.st_uid, ::getpwnam(SshFixture::get().user.c_str())->pw_uid);
  EXPECT_EQ(cache.info()["executable"], SshFixture::get().quiver);

  EXPECT_TRUE(cache.evict(e.digest));
  EXPECT_FALSE(cache.contains(e.digest));
  EXPECT_EQ(cache.stats().connects, 1u);
}

TEST(SshCache, ValuePastTwoGiBRoundTripsAndLoadsIntoCallerMemory) {
  RemoteDir dir("big");
  auto options = SshFixture::get().options(dir.write_config());
  options.cache_name = "mem";  // no disk: the point is the transfer, not the store
  options.ssh_options.insert(options.ssh_options.end(), {"-c", "aes128-gcm@openssh.com"});
  SshCache cache(options);

  const std::uint64_t n = (std::uint64_t{2} << 30) + (3u << 20) + 5;  // not a multiple of 8
  Array a(DType::uint8, {n});
  std::byte* p = a.buffer().mutable_data();
  for (std::uint64_t i = 0; i + 8 <= n; i += 8) {
    const std::uint64_t word = i * 0x9e3779b97f4a7c15u;
    std::memcpy(p + i, &word, 8);
  }
  for (std::uint64_t i = n / 8 * 8; i < n; ++i) p[i] = std::byte{0x5a};
  const Entry e =
      Entry::make(Call("ssh.big", "1").arg("n", static_cast<std::int64_t>(n)), Value(a));

  cache.save(e);
  auto loaded = cache.load_value(e.digest);
  ASSERT_TRUE(loaded.has_value());
  const Array& b = loaded->as_array();
  EXPECT_EQ(b.shape(), a.shape());
  EXPECT_EQ(b.dtype(), DType::uint8);
  EXPECT_TRUE(b == a);
  loaded.reset();

  // Straight into the caller's memory: the array the call returns is that memory.
  std::vector<std::uint8_t> mine(n);
  auto into = cache.load_value_into(e.digest, {{"", ArrayInto::of(std::span(mine))}});
  ASSERT_TRUE(into.has_value());
  EXPECT_EQ(into->as_array().buffer().data(), reinterpret_cast<std::byte*>(mine.data()));
  EXPECT_TRUE(into->as_array() == a);
  EXPECT_EQ(cache.stats().connects, 1u);
}

TEST(SshCache, WorkdirIsTheRemoteWorkingDirectory) {
  RemoteDir dir("workdir");
  dir.write_config();
  auto options = SshFixture::get().options("quiver.toml");  // relative: found only from workdir
  options.workdir = dir.path().string();
  SshCache cache(options);
  auto info = cache.info();
  EXPECT_EQ(info["cwd"], dir.path().string());
  const Entry e = sample_entry("ssh.workdir");
  cache.save(e);
  EXPECT_TRUE(std::filesystem::exists(dir / "store"));
}

TEST(SshCache, SetupCommandsPrintingToStdoutAreSkippedAndLogged) {
  RemoteDir dir("noise");
  auto options = SshFixture::get().options(dir.write_config());
  options.setup_commands = {"echo 'Welcome to the login node'", "echo 'QUIVER-GREETING?'",
                            "printf 'a line without newline'"};
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  auto log = logger("quiver.remote.host." + SshFixture::get().host);
  const auto level = log->level();
  log->set_level(spdlog::level::info);  // the skipped bytes are logged at info
  log->sinks().push_back(sink);
  SshCache cache(options);
  const double rtt = cache.ping();
  log->sinks().pop_back();
  log->set_level(level);
  EXPECT_GT(rtt, 0);
  const Entry e = sample_entry("ssh.noise");
  cache.save(e);
  EXPECT_EQ(cache.load_value(e.digest), std::optional<Value>(e.result));

  std::string logged;
  for (const auto& line : sink->last_formatted()) logged += line;
  EXPECT_THAT(logged, HasSubstr("Welcome to the login node"));
  EXPECT_THAT(logged, HasSubstr("a line without newline"));
}

TEST(SshCache, FailingSetupCommandIsAConnectionErrorWithItsStatus) {
  auto options = SshFixture::get().options();
  options.setup_commands = {"false"};
  SshCache cache(options);
  auto e = connection_error([&] { cache.contains(Call("f").digest()); });
  EXPECT_THAT(e.message(), HasSubstr("exit status 1;"));
  EXPECT_THAT(e.message(), HasSubstr("did not start"));
  // The failure is kept: no new ssh process until reconnect().
  auto again = connection_error([&] { cache.ping(); });
  EXPECT_EQ(again.message(), e.message());
  EXPECT_EQ(cache.stats().connects, 1u);
  EXPECT_EQ(cache.pid(), -1);
}

TEST(SshCache, FailingSetupCommandCarriesItsStderr) {
  auto options = SshFixture::get().options();
  options.setup_commands = {
      "echo 'Lmod has detected the following error: quiver/9.9 is unknown' >&2", "exit 3"};
  SshCache cache(options);
  auto e = connection_error([&] { cache.ping(); });
  EXPECT_THAT(e.message(), HasSubstr("exit status 3"));
  EXPECT_THAT(e.message(), HasSubstr("quiver/9.9 is unknown"));
  EXPECT_THAT(e.message(), HasSubstr("reconnect()"));
  auto tail = cache.stderr_tail();
  ASSERT_FALSE(tail.empty());
  EXPECT_THAT(tail.back(), HasSubstr("quiver/9.9 is unknown"));
}

TEST(SshCache, ClosedPortIsSshExitStatus255WithItsMessage) {
  // A port that was free a moment ago and has no listener.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  ::close(s);

  auto options = SshFixture::get().options();
  options.ssh_options.insert(options.ssh_options.end(), {"-p", std::to_string(port)});
  SshCache cache(options);
  auto e = connection_error([&] { cache.ping(); });
  EXPECT_THAT(e.message(), HasSubstr("exit status 255"));
  EXPECT_THAT(e.message(), HasSubstr("port " + std::to_string(port) + ": Connection refused"));
}

TEST(SshCache, RemoteQuiverNotFoundNamesTheShellsComplaint) {
  auto options = SshFixture::get().options();
  options.quiver = "/nonexistent/bin/quiver";
  SshCache cache(options);
  auto e = connection_error([&] { cache.ping(); });
  EXPECT_THAT(e.message(), HasSubstr("exit status 127"));
  EXPECT_THAT(e.message(), HasSubstr("/nonexistent/bin/quiver"));
}

// 2FA clusters: one interactive login opens an OpenSSH master, and quiver's ssh rides it.
// The cache is pointed at a closed port: it can only work through the master's socket.
TEST(SshCache, RidesAnOpenControlMasterWithoutLoggingInAgain) {
  const auto& f = SshFixture::get();
  testing::TempDir local("quiver-cm");  // short: a Unix socket path has ~100 characters
  const std::string socket = (local / "cm").string();
  const std::string control = "-o ControlPath=" + socket;
  auto opened = testing::run({"sh", "-c",
                              "exec ssh -F " + f.config + " " + control +
                                  " -o ControlMaster=yes -o ControlPersist=yes " + f.host +
                                  " true </dev/null >/dev/null 2>&1"});
  ASSERT_EQ(opened.status, 0);
  auto check =
      testing::run({"ssh", "-F", f.config, "-o", "ControlPath=" + socket, "-O", "check", f.host});
  ASSERT_EQ(check.status, 0) << check.err;
  const auto at = check.err.find("pid=");
  ASSERT_NE(at, std::string::npos) << check.err;
  ReleaseOnExit master{static_cast<pid_t>(std::stol(check.err.substr(at + 4))), socket};

  auto options = SshFixture::get().options();
  options.ssh_options.insert(options.ssh_options.end(),
                             {"-p", "1", "-o", "ControlMaster=no", "-o", "ControlPath=" + socket});
  {
    SshCache cache(options);
    EXPECT_EQ(cache.info()["executable"], f.quiver);
    EXPECT_GT(cache.ping(), 0);
  }
  auto closed =
      testing::run({"ssh", "-F", f.config, "-o", "ControlPath=" + socket, "-O", "exit", f.host});
  EXPECT_EQ(closed.status, 0) << closed.err;
  SshCache without_master(options);
  auto e = connection_error([&] { without_master.ping(); });
  EXPECT_THAT(e.message(), HasSubstr("Connection refused"));
}

// Lmod from Debian's lmod package on the remote side; the fixture's modulefile quiver-test
// puts the quiver under test on PATH, so "quiver" resolves only once the module is loaded.
TEST(SshCache, LmodModuleLoadInALoginShell) {
  RemoteDir dir("lmod-login");
  auto options = SshFixture::get().options(dir.write_config());
  options.quiver = "quiver";
  options.login_shell = true;  // /etc/profile.d/lmod.sh defines `module`
  options.setup_commands = {"module use " + SshFixture::get().modulepath,
                            "module load quiver-test"};
  SshCache cache(options);
  EXPECT_EQ(cache.info()["executable"], SshFixture::get().quiver);
  const Entry e = sample_entry("ssh.lmod");
  cache.save(e);
  EXPECT_TRUE(cache.contains(e.digest));
}

TEST(SshCache, LmodInitSourcedExplicitly) {
  RemoteDir dir("lmod-source");
  auto options = SshFixture::get().options(dir.write_config());
  options.quiver = "quiver";
  options.setup_commands = {"source /usr/share/lmod/lmod/init/bash",
                            "module use " + SshFixture::get().modulepath,
                            "module load quiver-test"};
  SshCache cache(options);
  EXPECT_EQ(cache.info()["executable"], SshFixture::get().quiver);
}

TEST(SshCache, LmodUnknownModuleIsAConnectionErrorWithLmodsMessage) {
  auto options = SshFixture::get().options();
  options.quiver = "quiver";
  options.login_shell = true;
  options.setup_commands = {"module use " + SshFixture::get().modulepath,
                            "module load quiver-no-such-module"};
  SshCache cache(options);
  auto e = connection_error([&] { cache.ping(); });
  EXPECT_THAT(e.message(), HasSubstr("did not start"));
  EXPECT_THAT(e.message(), HasSubstr("module(s) are unknown"));
  EXPECT_THAT(e.message(), HasSubstr("quiver-no-such-module"));
}

/// Starts n contains() calls on threads while the remote server is stopped, so that all of
/// them are in flight; returns once they have been submitted.
struct PendingCalls {
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors;
  std::atomic<int> finished{0};

  PendingCalls(SshCache& cache, int n) : errors(static_cast<std::size_t>(n)) {
    const auto before = cache.stats().requests;
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        try {
          cache.contains(Call("ssh.pending").arg("i", i).digest());
        } catch (...) {
          errors[static_cast<std::size_t>(i)] = std::current_exception();
        }
        finished++;
      });
    EXPECT_TRUE(eventually(
        [&] { return cache.stats().requests >= before + static_cast<std::uint64_t>(n); }));
    EXPECT_EQ(finished.load(), 0) << "calls returned although the server is stopped";
  }
  ~PendingCalls() { join(); }
  void join() {
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
};

void expect_all_failed_with_connection_error(PendingCalls& calls) {
  calls.join();
  for (const auto& e : calls.errors) {
    ASSERT_TRUE(e) << "a pending call succeeded";
    try {
      std::rethrow_exception(e);
    } catch (const RemoteConnectionError& err) {
      EXPECT_THAT(err.message(), HasSubstr("reconnect()"));
    } catch (const std::exception& err) {
      ADD_FAILURE() << "expected RemoteConnectionError, got: " << err.what();
    }
  }
}

// A long call deadline: a pending call that ends with a TimeoutError instead of a
// RemoteConnectionError was not told of the death.
SshCacheOptions fault_options(const std::string& config) {
  auto options = SshFixture::get().options(config);
  options.call_timeout = std::chrono::seconds(600);
  return options;
}

TEST(SshCache, KilledSshFailsPendingCallsAndReconnectWorks) {
  RemoteDir dir("kill-ssh");
  SshCache cache(fault_options(dir.write_config()));
  const Entry e = sample_entry("ssh.kill");
  cache.save(e);
  const auto server = static_cast<pid_t>(cache.info()["pid"].get<std::int64_t>());
  const pid_t ssh = cache.pid();
  ASSERT_GT(ssh, 0);
  ReleaseOnExit release{server, "serve"};
  ASSERT_EQ(::kill(server, SIGSTOP), 0);
  {
    PendingCalls calls(cache, 4);
    ASSERT_EQ(::kill(ssh, SIGKILL), 0);
    expect_all_failed_with_connection_error(calls);
  }
  auto e2 = connection_error([&] { cache.contains(e.digest); });
  EXPECT_THAT(e2.message(), HasSubstr("signal 9"));
  cache.reconnect();
  EXPECT_NE(cache.pid(), ssh);
  EXPECT_TRUE(cache.contains(e.digest));
  EXPECT_EQ(cache.stats().connects, 2u);
  EXPECT_NE(cache.info()["pid"].get<std::int64_t>(), server);
}

TEST(SshCache, KilledRemoteServerFailsPendingCallsAndReconnectWorks) {
  RemoteDir dir("kill-server");
  SshCache cache(fault_options(dir.write_config()));
  const Entry e = sample_entry("ssh.kill-server");
  cache.save(e);
  const auto server = static_cast<pid_t>(cache.info()["pid"].get<std::int64_t>());
  ReleaseOnExit release{server, "serve"};
  ASSERT_EQ(::kill(server, SIGSTOP), 0);
  {
    PendingCalls calls(cache, 4);
    ASSERT_EQ(::kill(server, SIGKILL), 0);
    expect_all_failed_with_connection_error(calls);
  }
  cache.reconnect();
  EXPECT_TRUE(cache.contains(e.digest));
  EXPECT_NE(cache.info()["pid"].get<std::int64_t>(), server);
}

TEST(SshCache, EightThreadsShareOneSshConnection) {
  RemoteDir dir("threads");
  SshCache cache(SshFixture::get().options(dir.write_config()));
  constexpr int kThreads = 8, kCalls = 40;
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const Entry e =
            Entry::make(Call("ssh.threads").arg("t", t).arg("i", i), Value(t * 1000 + i));
        if (i % 2 == 0) cache.save(e);
        const bool has = cache.contains(e.digest);
        auto v = cache.load_value(e.digest);
        if (has != (i % 2 == 0) || v.has_value() != has || (v && !(*v == e.result))) wrong++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cache.stats().connects, 1u);
  EXPECT_GT(cache.stats().max_in_flight, 1u);
  Query q;
  q.function = "ssh.threads";
  EXPECT_EQ(cache.query(q).size(), static_cast<std::size_t>(kThreads * kCalls / 2));
}

TEST(SshCache, AsyncCallsShareOneSshConnectionAndFailWithIt) {
  RemoteDir dir("async");
  SshCache cache(fault_options(dir.write_config()));
  std::vector<Entry> saved;
  for (int i = 0; i < 40; ++i)
    saved.push_back(Entry::make(Call("ssh.async").arg("i", i * 5), Value(i)));
  cache.save_many(saved);
  constexpr int kCalls = 400;  // every fifth present, below 200
  std::vector<std::future<bool>> found;
  for (int i = 0; i < kCalls; ++i)
    found.push_back(
        cache.contains_async(Entry::make(Call("ssh.async").arg("i", i), Value(0)).digest));
  int wrong = 0;
  for (int i = 0; i < kCalls; ++i)
    if (found[static_cast<std::size_t>(i)].get() != (i % 5 == 0 && i < 200)) ++wrong;
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(cache.stats().max_in_flight, 10u);
  EXPECT_EQ(cache.stats().connects, 1u);

  const auto server = static_cast<pid_t>(cache.info()["pid"].get<std::int64_t>());
  ReleaseOnExit release{server, "serve"};
  ASSERT_EQ(::kill(server, SIGSTOP), 0);  // hold the calls in flight
  std::vector<std::future<bool>> held;
  for (int i = 0; i < 8; ++i) held.push_back(cache.contains_async(saved[0].digest));
  ASSERT_EQ(::kill(cache.pid(), SIGKILL), 0);
  for (auto& f : held) {
    auto e = connection_error([&] { f.get(); });
    EXPECT_THAT(e.message(), HasSubstr("signal 9"));
  }
}

}  // namespace
}  // namespace quiver
