// Concurrent load from two ssh users against one store root: both remote users (the
// fixture's quiver-test and quiver-test2, sharing a group) run `quiver serve --stdio` on the
// same HDF5 store, and several threads of each save and load overlapping keys for a bounded
// time. Identical calls get identical results, as in a real shared cache. Afterwards the
// store is fsck-clean, every acknowledged save loads with its contents through both users,
// and the cache equals a sequential replay of the acknowledged saves.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <quiver/core/call.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/memory_cache.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "soak/soak.hpp"
#include "ssh/ssh_fixture.hpp"
#include "testing/testing.hpp"

namespace quiver {
namespace {

using testing::RemoteDir;
using testing::SshFixture;
using SteadyClock = std::chrono::steady_clock;

constexpr int kKeys = 32;
constexpr int kThreadsPerUser = 3;

Call call_of(int k) {
  return Call("soak.shared", "1").arg("k", k);
}

/// The one result of key k, whoever computes it; mixed sizes up to 1 MiB.
Value result_of(int k) {
  switch (k % 4) {
    case 0:
      return Value(static_cast<std::int64_t>(k));
    case 1:
      return Value(testing::ramp(64, k));
    case 2:
      return Value(testing::ramp(16384, k));
    default:
      return Value(testing::ramp(k % 8 == 3 ? 131072 : 4096, k));
  }
}

/// What the threads of both users record: acknowledged saves in acknowledgment order.
struct Shared {
  std::vector<std::atomic<bool>> acked = std::vector<std::atomic<bool>>(kKeys);
  std::mutex mutex;
  std::vector<std::pair<int, int>> saves;  ///< (key, user) in acknowledgment order
  std::vector<std::string> failures;
  std::atomic<std::uint64_t> loads{0}, hits{0};

  void fail(std::string what) {
    std::lock_guard lock(mutex);
    failures.push_back(std::move(what));
  }
};

/// One thread of user u: random saves and loads of the shared keys until deadline.
void work(SshCache& cache, int u, unsigned seed, Shared& shared, SteadyClock::time_point deadline) {
  std::mt19937 rng(seed);
  std::vector<Digest> digests;
  for (int k = 0; k < kKeys; ++k) digests.push_back(call_of(k).digest());
  const auto who = "user " + std::to_string(u) + ": ";
  try {
    while (SteadyClock::now() < deadline) {
      const int k = std::uniform_int_distribution<int>(0, kKeys - 1)(rng);
      const int op = std::uniform_int_distribution<int>(0, 99)(rng);
      const auto at = who + "key " + std::to_string(k) + ": ";
      const bool was_acked = shared.acked[static_cast<std::size_t>(k)].load();
      if (op < 45) {
        cache.save(Entry::make(call_of(k), result_of(k)));
        std::lock_guard lock(shared.mutex);
        shared.saves.emplace_back(k, u);
        shared.acked[static_cast<std::size_t>(k)] = true;
      } else if (op < 80) {
        auto v = cache.load_value(digests[static_cast<std::size_t>(k)]);
        shared.loads++;
        if (v) shared.hits++;
        if (!v && was_acked) shared.fail(at + "an acknowledged entry is missing");
        if (v && *v != result_of(k)) shared.fail(at + "load_value returned other contents");
      } else if (op < 95) {
        auto e = cache.load(digests[static_cast<std::size_t>(k)]);
        shared.loads++;
        if (e) shared.hits++;
        if (!e && was_acked) shared.fail(at + "an acknowledged entry is missing");
        if (e && (e->call != call_of(k) || e->result != result_of(k)))
          shared.fail(at + "load returned other contents");
      } else {
        std::vector<bool> before;
        for (const auto& a : shared.acked) before.push_back(a.load());
        auto got = cache.contains_many(digests);
        for (int j = 0; j < kKeys; ++j)
          if (before[static_cast<std::size_t>(j)] && !got.at(static_cast<std::size_t>(j)))
            shared.fail(who + "contains_many misses acknowledged key " + std::to_string(j));
      }
    }
  } catch (const std::exception& e) {
    shared.fail(who + e.what());
  }
}

/// How many distinct keys were acknowledged.
std::size_t replay_size(const Shared& shared) {
  std::set<int> keys;
  for (const auto& [k, u] : shared.saves) keys.insert(k);
  return keys.size();
}

TEST(TwoUsers, ConcurrentSavesAndLoadsOnOneStoreRootMatchASequentialReplay) {
  const auto& f = SshFixture::get();
  const double seconds = std::min(20.0, testing::soak_seconds());
  RemoteDir dir("two-users");
  // The store root: owned by the first user, group-writable by the shared group, setgid
  // so that shard and index directories either server creates keep that group.
  const auto root = dir / "store";
  std::filesystem::create_directory(root);
  const passwd* pw1 = ::getpwnam(f.user.c_str());
  const passwd* pw2 = ::getpwnam(f.user2.c_str());
  const group* gr = ::getgrnam(f.group.c_str());
  ASSERT_TRUE(pw1 && pw2 && gr) << "fixture users or group missing";
  const uid_t uid1 = pw1->pw_uid, uid2 = pw2->pw_uid;
  ASSERT_EQ(::chown(root.c_str(), uid1, gr->gr_gid), 0);
  ASSERT_EQ(::chmod(root.c_str(), 02775), 0);
  const auto config = dir.write_config();

  auto options = [&](const std::string& host) {
    auto o = f.options(config);
    o.host = host;
    o.setup_commands = {"umask 002"};  // files and directories writable by the group
    return o;
  };
  SshCache first(options(f.host)), second(options(f.host2));
  ASSERT_EQ(first.info()["pid"].is_number(), true);
  ASSERT_NE(first.info()["pid"], second.info()["pid"]);

  Shared shared;
  const auto deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                 std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreadsPerUser; ++t) {
    threads.emplace_back(work, std::ref(first), 1, 100u + static_cast<unsigned>(t),
                         std::ref(shared), deadline);
    threads.emplace_back(work, std::ref(second), 2, 200u + static_cast<unsigned>(t),
                         std::ref(shared), deadline);
  }
  for (auto& t : threads) t.join();
  for (const auto& failure : shared.failures) ADD_FAILURE() << failure;

  std::size_t saves_of[3] = {0, 0, 0};
  for (const auto& [k, u] : shared.saves) saves_of[u]++;
  std::cout << "two users: " << seconds << " s, " << 2 * kThreadsPerUser << " threads, "
            << shared.saves.size() << " acknowledged saves (" << saves_of[1] << " by " << f.user
            << ", " << saves_of[2] << " by " << f.user2 << "), " << shared.loads << " loads ("
            << shared.hits << " hits)\n";
  RecordProperty("acknowledged_saves", static_cast<int>(shared.saves.size()));
  RecordProperty("loads", static_cast<int>(shared.loads.load()));
  ASSERT_GT(saves_of[1], 0u);
  ASSERT_GT(saves_of[2], 0u);

  // fsck as the first user, on the host that holds the store.
  auto fsck =
      testing::run({"ssh", "-F", f.config, f.host, f.quiver, "--config", config, "fsck", "--json"});
  EXPECT_EQ(fsck.status, 0) << fsck.out << fsck.err;
  const auto report = nlohmann::json::parse(fsck.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << fsck.out;
  EXPECT_EQ(report.value("clean", false), true) << fsck.out;
  ASSERT_EQ(report.value("stores", nlohmann::json::array()).size(), 1u) << fsck.out;
  const auto& store = report["stores"][0];
  EXPECT_EQ(store["corrupt"].size(), 0u) << fsck.out;
  EXPECT_EQ(store["temp_leftovers"].size(), 0u) << fsck.out;
  EXPECT_EQ(store["ok"], store["entries"]) << fsck.out;
  EXPECT_EQ(store["entries"].get<std::size_t>(), replay_size(shared)) << fsck.out;

  // The sequential replay of the acknowledged saves.
  MemoryCache replay;
  for (const auto& [k, u] : shared.saves) replay.save(Entry::make(call_of(k), result_of(k)));
  Query all;
  all.function = "soak.shared";
  std::set<Digest> replayed, found1, found2;
  for (const auto& s : replay.query(all)) replayed.insert(s.digest);
  for (const auto& s : first.query(all)) found1.insert(s.digest);
  for (const auto& s : second.query(all)) found2.insert(s.digest);
  EXPECT_EQ(found1, replayed);
  EXPECT_EQ(found2, replayed);
  for (int k = 0; k < kKeys; ++k) {
    const auto d = call_of(k).digest();
    const auto want = replay.load_value(d);
    EXPECT_EQ(first.load_value(d), want) << "key " << k << " through " << f.user;
    EXPECT_EQ(second.load_value(d), want) << "key " << k << " through " << f.user2;
  }

  // Both users' servers wrote entry files of the one store.
  std::set<uid_t> owners;
  for (const auto& shard : std::filesystem::directory_iterator(root))
    if (shard.is_directory() && shard.path().filename().string().size() == 2)
      for (const auto& file : std::filesystem::directory_iterator(shard.path())) {
        struct stat st {};
        if (file.path().extension() == ".h5" && ::stat(file.path().c_str(), &st) == 0)
          owners.insert(st.st_uid);
      }
  EXPECT_TRUE(owners.contains(uid1) && owners.contains(uid2))
      << "entry files should be owned by both " << f.user << " and " << f.user2;
}

}  // namespace
}  // namespace quiver
