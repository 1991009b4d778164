// Crash torture: the server (`quiver serve --stdio`, subprocess transport) and the client are
// SIGKILLed at random moments while saves of mixed sizes are in flight. Afterwards fsck
// finds nothing corrupt, every acknowledged save loads with the right contents, any
// unacknowledged save is either absent or complete, and nothing half-written is visible
// (a killed writer leaves at most a hidden temporary file, which fsck --repair removes).
//
// Rounds per test: QUIVER_TORTURE_ROUNDS (default 150), bounded by QUIVER_TORTURE_SECONDS
// (default 45) of wall time; the random seed is QUIVER_TORTURE_SEED (default: time), printed.
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
#include <map>
#include <mutex>
#include <quiver/core/digest.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <random>
#include <set>
#include <thread>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

long env_number(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtol(v, nullptr, 10) : fallback;
}

/// The entry saved as save number i of round: sizes cycle through a scalar, a small array,
/// a 160 KB array and a 5 MB array (larger than one 4 MiB frame, so it travels in chunks).
Entry torture_entry(int round, int i) {
  Call call("torture", "1");
  call.arg("round", round).arg("i", i);
  const double seed = round * 1000.0 + i;
  switch (i % 4) {
    case 0:
      return Entry::make(std::move(call), Value(std::int64_t{round * 1000 + i}));
    case 1:
      return Entry::make(std::move(call), Value(testing::ramp(100, seed)));
    case 2:
      return Entry::make(std::move(call), Value(testing::ramp(20000, seed)));
    default:
      return Entry::make(std::move(call), Value(testing::ramp(640000, seed)));
  }
}

class Torture : public ::testing::Test {
 protected:
  Torture() {
    std::signal(SIGPIPE, SIG_IGN);
    // Orphaned servers of killed clients become our children, so they can be reaped.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    std::ofstream(config) << "[store]\ntype = \"hdf5\"\npath = \"" << root.string() << "\"\n";
    rounds = static_cast<int>(env_number("QUIVER_TORTURE_ROUNDS", 150));
    budget = std::chrono::seconds(env_number("QUIVER_TORTURE_SECONDS", 45));
    auto seed = static_cast<unsigned>(
        env_number("QUIVER_TORTURE_SEED", static_cast<long>(::time(nullptr) % 1000000)));
    std::printf("torture seed %u (QUIVER_TORTURE_SEED), %d rounds at most\n", seed, rounds);
    rng.seed(seed);
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

  int random(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

  bool time_left() const { return SteadyClock::now() - start < budget; }

  /// Everything the torture promises, checked on the store directly.
  void verify(std::size_t min_rounds, std::size_t rounds_run) {
    EXPECT_GE(rounds_run, min_rounds) << "too few rounds ran within the time budget";
    Hdf5StoreOptions o;
    o.root = root;
    Hdf5Store store(o);
    // Every acknowledged save loads with its contents.
    for (const auto& [round, i] : acknowledged) {
      auto e = torture_entry(round, i);
      auto loaded = store.load(e.digest);
      ASSERT_TRUE(loaded) << "acknowledged save " << round << "/" << i << " is missing";
      EXPECT_EQ(loaded->result, e.result) << "acknowledged save " << round << "/" << i;
    }
    // An unacknowledged save is absent or complete.
    std::size_t complete_unacknowledged = 0;
    for (const auto& [round, i] : attempted) {
      if (acknowledged.count({round, i})) continue;
      auto e = torture_entry(round, i);
      if (auto loaded = store.load(e.digest)) {
        EXPECT_EQ(loaded->result, e.result) << "unacknowledged save " << round << "/" << i;
        ++complete_unacknowledged;
      }
    }
    // Nothing half-written is visible: every visible file is a complete entry, and the
    // only leftovers are hidden temporary files.
    std::size_t entries = 0, temps = 0;
    for (const auto& f : fs::recursive_directory_iterator(root)) {
      if (!f.is_regular_file() || f.path().parent_path().parent_path() != root ||
          !is_hex_prefix(f.path().parent_path().filename().string()))
        continue;  // index and quarantine are not entry directories
      const auto name = f.path().filename().string();
      if (name.rfind('.', 0) == 0 && name.find(".h5.tmp.") != std::string::npos) {
        ++temps;
        continue;
      }
      ASSERT_EQ(f.path().extension(), ".h5") << f.path();
      auto digest = Digest::parse(name.substr(0, name.size() - 3));
      ASSERT_TRUE(digest) << f.path();
      EXPECT_TRUE(store.load(*digest)) << "visible but unreadable: " << f.path();
      ++entries;
    }
    auto report = store.fsck(FsckOptions{});
    EXPECT_TRUE(report.corrupt.empty()) << report.corrupt.front();
    EXPECT_EQ(report.entries, entries);
    // The CLI agrees; a repair with no grace period removes the temporary leftovers.
    auto fsck =
        testing::run_cli({"fsck", "--cache", "store"}, {"QUIVER_CONFIG=" + config.string()});
    EXPECT_EQ(fsck.status, 0) << fsck.out << fsck.err;
    FsckOptions repair;
    repair.repair = true;
    repair.temp_grace = std::chrono::seconds(0);
    auto repaired = store.fsck(repair);
    EXPECT_EQ(repaired.removed_temps, temps);
    EXPECT_TRUE(store.fsck(FsckOptions{}).clean());
    std::printf(
        "%zu rounds, %zu saves attempted, %zu acknowledged (all load), %zu unacknowledged but "
        "complete, %zu entries visible, %zu hidden temporary leftovers removed by repair\n",
        rounds_run, attempted.size(), acknowledged.size(), complete_unacknowledged, entries, temps);
  }

  testing::TempDir dir{"quiver-torture"};
  fs::path root = dir / "store";
  fs::path config = dir / "quiver.toml";
  int rounds = 0;
  std::chrono::seconds budget{};
  SteadyClock::time_point start = SteadyClock::now();
  std::mt19937 rng;
  std::set<std::pair<int, int>> attempted, acknowledged;
};

TEST_F(Torture, ServerKilledAtRandomMomentsDuringSaves) {
  SshCache cache(options());
  int round = 0;
  for (; round < rounds && time_left(); ++round) {
    if (round > 0) cache.reconnect();
    const auto pid = static_cast<pid_t>(cache.info().at("pid").get<std::int64_t>());
    std::atomic<int> acks{0};
    std::mutex m;
    std::thread saver([&] {
      for (int i = 0; i < 1000; ++i) {
        {
          std::lock_guard lk(m);
          attempted.insert({round, i});
        }
        try {
          cache.save(torture_entry(round, i));
        } catch (const RemoteConnectionError&) {
          return;
        }
        {
          std::lock_guard lk(m);
          acknowledged.insert({round, i});
        }
        acks++;
      }
    });
    // Kill after a random number of acknowledged saves, a random time into the next one.
    const int after = random(0, 4);
    ASSERT_TRUE(testing::eventually([&] { return acks.load() >= after; }, 60s));
    std::this_thread::sleep_for(std::chrono::microseconds(random(0, 20000)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    saver.join();
  }
  cache.close();
  verify(20, static_cast<std::size_t>(round));
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
  for (; round < rounds && time_left(); ++round) {
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
    const int after = random(0, 4);
    int acks = 0;
    std::string pending;
    auto track = [&](const std::string& line) {
      if (line.rfind("S ", 0) == 0) server = static_cast<pid_t>(std::stol(line.substr(2)));
      if (line.rfind("A ", 0) == 0) {
        acknowledged.insert({round, std::stoi(line.substr(2))});
        ++acks;
      }
      return server > 0 && acks >= after;
    };
    ASSERT_TRUE(read_lines_until(read_end.get(), pending, track, 60s)) << "client stalled";
    for (int i = 0; i <= acks + 1; ++i) attempted.insert({round, i});
    std::this_thread::sleep_for(std::chrono::microseconds(random(0, 20000)));
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
    for (int i = 0; i <= acks + 1; ++i) attempted.insert({round, i});
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
  verify(20, static_cast<std::size_t>(round));
}

}  // namespace
}  // namespace quiver
