// Crash torture over real ssh: the ssh client process (and in every third round the remote
// server with it) is SIGKILLed at random moments while saves of mixed sizes are in flight.
// Every pending call must fail with RemoteConnectionError, the orphaned remote server must
// end by itself, and afterwards the store keeps every promise of tests/testing/torture.hpp:
// acknowledged saves load, nothing half-written is visible, fsck is clean after repair.
// Budget and seed: tests/testing/torture.hpp (30 s by default here).
#include "testing/torture.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <quiver/core/errors.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <thread>

#include "ssh/ssh_fixture.hpp"
#include "testing/testing.hpp"

namespace quiver {
namespace {

using namespace std::chrono_literals;

bool process_gone(pid_t pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

TEST(SshTorture, SshKilledAtRandomMomentsDuringSaves) {
  std::signal(SIGPIPE, SIG_IGN);
  const auto& fixture = testing::SshFixture::get();
  testing::RemoteDir dir("torture");
  const auto config = dir.write_config();
  auto options = fixture.options(config);
  options.cache_name = "store";
  options.env = {"QUIVER_LOG_LEVEL=off"};
  testing::TortureLog log{30};

  SshCache cache(options);
  int round = 0;
  std::size_t servers_killed = 0, calls_failed = 0;
  for (; log.more(round); ++round) {
    if (round > 0) cache.reconnect();
    const auto server = static_cast<pid_t>(cache.info().at("pid").get<std::int64_t>());
    const pid_t ssh = cache.pid();
    ASSERT_GT(ssh, 0);
    std::atomic<int> acks{0};
    std::atomic<bool> failed{false};
    std::thread saver([&] { failed = log.save_until_lost(cache, round, acks); });
    const int after = log.random(0, 4);
    ASSERT_TRUE(testing::eventually([&] { return acks.load() >= after; }, 60s));
    std::this_thread::sleep_for(std::chrono::microseconds(log.random(0, 20000)));
    ASSERT_EQ(::kill(ssh, SIGKILL), 0);
    if (round % 3 == 2) {
      ::kill(server, SIGKILL);
      ++servers_killed;
    }
    saver.join();
    EXPECT_TRUE(failed) << "round " << round << ": the save in flight did not fail";
    calls_failed += failed ? 1 : 0;
    // Without its ssh session the remote server reads end of input and exits.
    EXPECT_TRUE(testing::eventually([&] { return process_gone(server); }, 60s))
        << "round " << round << ": remote server " << server << " outlived its ssh process";
  }
  cache.close();
  std::printf("%zu ssh processes killed (%zu with their server), %zu in-flight saves failed\n",
              static_cast<std::size_t>(round), servers_killed, calls_failed);
  log.verify(dir / "store", config, 10, static_cast<std::size_t>(round));
}

}  // namespace
}  // namespace quiver
