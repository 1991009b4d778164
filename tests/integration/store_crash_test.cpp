// A writer killed at any moment loses at most the entry it was writing: no partial entry is
// ever visible, every completed save survives, and fsck cleans up what the writer left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <quiver/store/hdf5_store.hpp>
#include <sstream>
#include <thread>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kElements = (64u << 20) / sizeof(double);  // a 64 MiB result
constexpr int kSlots = 3;  // the writers overwrite these keys again and again
constexpr int kKills = 30;

Call slot_call(int slot) {
  return Call("crash", "1", {{"slot", slot}});
}

Hdf5StoreOptions store_options(const fs::path& root) {
  Hdf5StoreOptions o;
  o.root = root;
  o.fsync = false;  // SIGKILL keeps the page cache: fsync only matters for power loss
  return o;
}

// Saves slot entries forever, reporting "<digest> <writer> <seq>" after each save returns.
[[noreturn]] void write_forever(const fs::path& root, int writer, int report_fd) {
  try {
    Hdf5Store store(store_options(root));
    Value data = testing::ramp(kElements);
    for (int seq = 0;; ++seq) {
      int slot = seq % kSlots;
      Entry e = Entry::make(
          slot_call(slot),
          Value::map({{"slot", slot}, {"writer", writer}, {"seq", seq}, {"data", data}}));
      store.save(e);
      auto line = e.digest.hex() + " " + std::to_string(writer) + " " + std::to_string(seq) + "\n";
      if (::write(report_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        _exit(3);
    }
  } catch (...) {
    _exit(2);
  }
}

struct Completed {
  Digest digest;
  int writer, seq;
};

// Reads reports from fd until `lines` of them arrived (or the writer closed the pipe); with
// lines < 0, until the pipe is closed.
std::vector<Completed> read_reports(int fd, int lines = -1) {
  std::string text;
  char c;
  int seen = 0;
  while (lines < 0 || seen < lines) {
    auto n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text += c;
    if (c == '\n') ++seen;
  }
  std::vector<Completed> out;
  std::istringstream in(text);
  std::string hex;
  int writer, seq;
  while (in >> hex >> writer >> seq) out.push_back({Digest::from_hex(hex), writer, seq});
  return out;
}

std::vector<fs::path> files_named(const fs::path& root, std::string_view suffix_or_marker) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    auto name = e.path().filename().string();
    if (e.is_regular_file() && name.find(suffix_or_marker) != std::string::npos)
      out.push_back(e.path());
  }
  return out;
}

TEST(StoreCrashTest, KilledWritersLeaveOnlyCompleteEntries) {
  testing::TempDir dir("quiver-store-crash");
  auto root = dir.path() / "cache";
  std::vector<Completed> completed;
  for (int kill_number = 0; kill_number < kKills; ++kill_number) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      write_forever(root, kill_number, fds[1]);
    }
    ::close(fds[1]);
    // Vary the moment of death: on even rounds from "while starting" to "during the first
    // saves"; on odd rounds at different points of a save that follows 1 to 3 completed ones.
    std::vector<Completed> reports;
    if (kill_number % 2 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + 40 * kill_number));
    } else {
      reports = read_reports(fds[0], kill_number / 2 % 3 + 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(kill_number * 23 % 400));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer failed by itself: status " << status;
    auto rest = read_reports(fds[0]);
    ::close(fds[0]);
    reports.insert(reports.end(), rest.begin(), rest.end());
    completed.insert(completed.end(), reports.begin(), reports.end());
  }
  ASSERT_GE(completed.size(), static_cast<std::size_t>(kKills / 2));
  RecordProperty("completed_saves", static_cast<int>(completed.size()));

  Hdf5Store store(store_options(root));
  // No partial entry is visible: every entry file loads.
  auto entries = files_named(root, ".h5");
  std::erase_if(entries, [](const fs::path& p) { return p.filename().string()[0] == '.'; });
  EXPECT_LE(entries.size(), static_cast<std::size_t>(kSlots));
  for (const auto& path : entries) {
    auto digest = Digest::from_hex(path.stem().string());
    EXPECT_TRUE(store.load(digest)) << path;
  }

  // Every completed save survives: its slot holds that save or a later one, intact.
  std::map<Digest, std::pair<int, int>> newest;
  for (const auto& c : completed)
    newest[c.digest] = std::max(newest[c.digest], std::pair(c.writer, c.seq));
  auto data = testing::ramp(kElements);
  for (int slot = 0; slot < kSlots; ++slot) {
    auto digest = slot_call(slot).digest();
    if (!newest.count(digest)) continue;
    auto e = store.load(digest);
    ASSERT_TRUE(e) << "slot " << slot;
    const Value& r = e->result;
    EXPECT_EQ(r["slot"].as_int(), slot);
    EXPECT_GE(
        std::pair(static_cast<int>(r["writer"].as_int()), static_cast<int>(r["seq"].as_int())),
        newest[digest]);
    EXPECT_TRUE(r["data"].as_array() == data) << "slot " << slot;
  }

  // fsck removes what the killed writers left behind, then the store is clean.
  FsckOptions repair;
  repair.repair = true;
  repair.temp_grace = std::chrono::seconds(0);
  auto report = store.fsck(repair);
  EXPECT_TRUE(report.corrupt.empty());
  EXPECT_GT(report.temp_leftovers.size(), 0u) << "no kill hit a save in progress";
  EXPECT_EQ(report.removed_temps, report.temp_leftovers.size());
  RecordProperty("killed_mid_save", static_cast<int>(report.temp_leftovers.size()));
  EXPECT_TRUE(files_named(root, ".h5.tmp.").empty());
  FsckOptions check;
  check.temp_grace = std::chrono::seconds(0);
  EXPECT_TRUE(store.fsck(check).clean());
  EXPECT_EQ(store.query(Query{}).size(), entries.size());
}

}  // namespace
}  // namespace quiver
