// Crash torture bookkeeping, shared by the subprocess torture (tests/integration) and the
// ssh torture (tests/ssh): the entries saved, which saves were attempted and acknowledged,
// the round budget, and the check of everything the torture promises on the store itself.
//
// Rounds per test: QUIVER_TORTURE_ROUNDS (default 150), bounded by QUIVER_TORTURE_SECONDS
// (default given by the test) of wall time; the random seed is QUIVER_TORTURE_SEED
// (default: time), printed.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <quiver/core/call.hpp>
#include <quiver/core/digest.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/store/cache.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "testing/testing.hpp"

namespace quiver::testing {

/// The number in environment variable name, or fallback when it is unset or empty.
inline long env_number(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtol(v, nullptr, 10) : fallback;
}

/// The entry saved as save number i of round: sizes cycle through a scalar, a small array,
/// a 160 KB array and a 5 MB array (larger than one 4 MiB frame, so it travels in chunks).
inline Entry torture_entry(int round, int i) {
  Call call("torture", "1");
  call.arg("round", round).arg("i", i);
  const double seed = round * 1000.0 + i;
  switch (i % 4) {
    case 0:
      return Entry::make(std::move(call), Value(std::int64_t{round * 1000 + i}));
    case 1:
      return Entry::make(std::move(call), Value(ramp(100, seed)));
    case 2:
      return Entry::make(std::move(call), Value(ramp(20000, seed)));
    default:
      return Entry::make(std::move(call), Value(ramp(640000, seed)));
  }
}

/// The saves of a torture run and its round budget.
class TortureLog {
 public:
  using Clock = std::chrono::steady_clock;

  /// Reads the round count, time budget (default_seconds unless QUIVER_TORTURE_SECONDS) and
  /// seed from the environment and prints the seed.
  explicit TortureLog(long default_seconds)
      : rounds(static_cast<int>(env_number("QUIVER_TORTURE_ROUNDS", 150))),
        budget(env_number("QUIVER_TORTURE_SECONDS", default_seconds)) {
    const auto seed = static_cast<unsigned>(
        env_number("QUIVER_TORTURE_SEED", static_cast<long>(std::time(nullptr) % 1000000)));
    std::printf("torture seed %u (QUIVER_TORTURE_SEED), %d rounds at most\n", seed, rounds);
    rng_.seed(seed);
  }

  /// A uniformly random integer in [lo, hi].
  int random(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  /// Whether another round may start.
  bool more(int round) const { return round < rounds && Clock::now() - start_ < budget; }

  /// Records that save i of round was sent (thread-safe).
  void attempt(int round, int i) {
    std::lock_guard lk(m_);
    attempted_.insert({round, i});
  }
  /// Records that save i of round was acknowledged (thread-safe).
  void acknowledge(int round, int i) {
    std::lock_guard lk(m_);
    acknowledged_.insert({round, i});
  }

  /// Saves the entries of round one after another through cache, recording each attempt
  /// and acknowledgement and counting acks, until the connection is lost (returns true) or
  /// 1000 saves are done (returns false).
  bool save_until_lost(Cache& cache, int round, std::atomic<int>& acks) {
    for (int i = 0; i < 1000; ++i) {
      attempt(round, i);
      try {
        cache.save(torture_entry(round, i));
      } catch (const RemoteConnectionError&) {
        return true;
      }
      acknowledge(round, i);
      acks++;
    }
    return false;
  }

  /// Checks the store at root after rounds_run rounds (at least min_rounds): every
  /// acknowledged save loads with its contents, an unacknowledged one is absent or complete,
  /// every visible file is a complete entry, fsck (library and `quiver fsck` with config)
  /// finds nothing corrupt, and a repair removes exactly the hidden temporary leftovers.
  void verify(const std::filesystem::path& root, const std::filesystem::path& config,
              std::size_t min_rounds, std::size_t rounds_run) {
    namespace fs = std::filesystem;
    EXPECT_GE(rounds_run, min_rounds) << "too few rounds ran within the time budget";
    Hdf5StoreOptions o;
    o.root = root;
    Hdf5Store store(o);
    for (const auto& [round, i] : acknowledged_) {
      auto e = torture_entry(round, i);
      auto loaded = store.load(e.digest);
      ASSERT_TRUE(loaded) << "acknowledged save " << round << "/" << i << " is missing";
      EXPECT_EQ(loaded->result, e.result) << "acknowledged save " << round << "/" << i;
    }
    std::size_t complete_unacknowledged = 0;
    for (const auto& [round, i] : attempted_) {
      if (acknowledged_.count({round, i})) continue;
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
    auto fsck = run_cli({"fsck", "--cache", "store"}, {"QUIVER_CONFIG=" + config.string()});
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
        rounds_run, attempted_.size(), acknowledged_.size(), complete_unacknowledged, entries,
        temps);
  }

  const int rounds;
  const std::chrono::seconds budget;

 private:
  Clock::time_point start_ = Clock::now();
  std::mt19937 rng_;
  std::mutex m_;
  std::set<std::pair<int, int>> attempted_, acknowledged_;
};

}  // namespace quiver::testing
