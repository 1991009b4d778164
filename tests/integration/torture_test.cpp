// Crash torture: the server (`quiver serve --stdio`, subprocess transport) and the client are
// SIGKILLed at random moments while saves of mixed sizes are in flight. Afterwards fsck
// finds nothing corrupt, every acknowledged save loads with the right contents, any
// unacknowledged save is either absent or complete, and nothing half-written is visible
// (a killed writer leaves at most a hidden temporary file, which fsck --repair removes).
// Budget and seed: tests/testing/torture.hpp (45 s per test by default).
#include "testing/torture.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <thread>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using testing::torture_entry;

class Torture : public ::testing::Test {
 protected:
  Torture() {
    std::signal(SIGPIPE, SIG_IGN);
    // Orphaned servers of killed clients become our children, so they can be reaped.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    std::ofstream(config) << "[store]\ntype = \"hdf5\"\npath = \"" << root.string() << "\"\n";
  }
  ~Torture() override { prctl(PR_SET_CHILD_SUBREAPER, 0); }

  SshCacheOptions options() const {
    SshCacheOptions o;
    o.transport = Transport::subprocess;
    o.quiver = testing::cli_path();
    o.config = config.string();
    o.cache_name = "store";
    o.env = {"QUIVER_LOG_LEVEL=off"};
    o.connect_timeout = 30s;
    o.call_timeout = 60s;
    return o;
  }

  testing::TempDir dir{"quiver-torture"};
  fs::path root = dir / "store";
  fs::path config = dir / "quiver.toml";
  testing::TortureLog log{45};
};

TEST_F(Torture, ServerKilledAtRandomMomentsDuringSaves) {
  SshCache cache(options());
  int round = 0;
  for (; log.more(round); ++round) {
    if (round > 0) cache.reconnect();
    const auto pid = static_cast<pid_t>(cache.info().at("pid").get<std::int64_t>());
    std::atomic<int> acks{0};
    std::thread saver([&] { log.save_until_lost(cache, round, acks); });
    // Kill after a random number of acknowledged saves, a random time into the next one.
    const int after = log.random(0, 4);
    ASSERT_TRUE(testing::eventually([&] { return acks.load() >= after; }, 60s));
    std::this_thread::sleep_for(std::chrono::microseconds(log.random(0, 20000)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    saver.join();
  }
  cache.close();
  log.verify(root, config, 20, static_cast<std::size_t>(round));
}

/// A client process: saves entries of round through a subprocess cache, writing "S <pid>"
/// (the server's pid) and then "A <i>" after each acknowledged save i to fd. Never returns.
[[noreturn]] void client_process(const SshCacheOptions& options, int round, int fd) {
  auto say = [fd](const std::string& line) {
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(3);
  };
  try {
    SshCache cache(options);
    say("S " + std::to_string(cache.info().at("pid").get<std::int64_t>()) + "\n");
    for (int i = 0; i < 1000; ++i) {
      cache.save(torture_entry(round, i));
      say("A " + std::to_string(i) + "\n");
    }
  } catch (const std::exception&) {
    _exit(2);
  }
  _exit(0);
}

/// Reads lines from fd until pred(line) holds or the stream ends; false at the end.
bool read_lines_until(int fd, std::string& pending,
                      const std::function<bool(const std::string&)>& pred,
                      std::chrono::milliseconds limit) {
  const auto deadline = SteadyClock::now() + limit;
  for (;;) {
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      auto line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (pred(line)) return true;
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[256];
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    pending.append(buf, static_cast<std::size_t>(n));
  }
}

TEST_F(Torture, ClientKilledAtRandomMomentsDuringSaves) {
  const auto o = options();
  int round = 0;
  std::size_t servers_killed = 0;
  for (; log.more(round); ++round) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    Fd read_end(fds[0]), write_end(fds[1]);
    const pid_t client = fork();
    ASSERT_GE(client, 0);
    if (client == 0) {
      read_end.reset();
      client_process(o, round, write_end.get());
    }
    write_end.reset();
    pid_t server = -1;
    const int after = log.random(0, 4);
    int acks = 0;
    std::string pending;
    auto track = [&](const std::string& line) {
      if (line.rfind("S ", 0) == 0) server = static_cast<pid_t>(std::stol(line.substr(2)));
      if (line.rfind("A ", 0) == 0) {
        log.acknowledge(round, std::stoi(line.substr(2)));
        ++acks;
      }
      return server > 0 && acks >= after;
    };
    ASSERT_TRUE(read_lines_until(read_end.get(), pending, track, 60s)) << "client stalled";
    for (int i = 0; i <= acks + 1; ++i) log.attempt(round, i);
    std::this_thread::sleep_for(std::chrono::microseconds(log.random(0, 20000)));
    ASSERT_EQ(::kill(client, SIGKILL), 0);
    // Every third round the server dies with its client.
    if (round % 3 == 2) {
      ::kill(server, SIGKILL);
      ++servers_killed;
    }
    int status = 0;
    ASSERT_EQ(waitpid(client, &status, 0), client);
    // The acks written before the kill, to the end of the stream.
    read_lines_until(
        read_end.get(), pending,
        [&](const std::string& line) {
          track(line);
          return false;
        },
        10s);
    for (int i = 0; i <= acks + 1; ++i) log.attempt(round, i);
    // The orphaned server (our child, as subreaper) ends by itself at end of input.
    int server_status = 0;
    ASSERT_TRUE(testing::eventually(
        [&] { return waitpid(server, &server_status, WNOHANG) == server; }, 60s))
        << "the server of a killed client did not exit";
    if (round % 3 != 2) {
      EXPECT_TRUE(WIFEXITED(server_status)) << "server ended by signal " << WTERMSIG(server_status);
    }
  }
  std::printf("%zu servers killed together with their client\n", servers_killed);
  log.verify(root, config, 20, static_cast<std::size_t>(round));
}

}  // namespace
}  // namespace quiver
