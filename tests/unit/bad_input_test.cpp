// The bad-input catalog at the library API: path-like and non-hex prefixes given to every
// backend, a save that meets a full disk (RLIMIT_FSIZE) and a save by a user who may not
// write the store root (both in a forked child). Each asserts a clear, typed error naming
// what and where, and that the entries stored before still load. End-to-end cases (wire,
// CLI, config files, corrupt entries, a garbage-printing server) are in
// tests/integration/bad_input_test.cpp.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <quiver/core/digest.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

class BadInputApi : public ::testing::Test {
 protected:
  BadInputApi() { hdf5().save(kept); }

  Hdf5StoreOptions options() const {
    Hdf5StoreOptions o;
    o.root = root;
    o.fsync = false;
    return o;
  }
  Hdf5Store hdf5() const { return Hdf5Store(options()); }

  /// The kept entry loads with its contents, fsck is clean, and no other entry exists.
  void expect_intact() const {
    auto s = hdf5();
    auto loaded = s.load(kept.digest);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->result, kept.result);
    auto report = s.fsck(FsckOptions{});
    EXPECT_TRUE(report.clean());
    EXPECT_TRUE(report.temp_leftovers.empty());
    std::size_t files = 0;  // in the <2 hex> entry directories
    for (const auto& e : fs::recursive_directory_iterator(root))
      if (e.is_regular_file() && e.path().parent_path().parent_path() == root &&
          is_hex_prefix(e.path().parent_path().filename().string()))
        ++files;
    EXPECT_EQ(files, 1u) << "a failed save left a file beside the entries";
  }

  /// Runs fn in a forked child and returns what it wrote to its pipe (the what() of the
  /// exception it caught) and its exit status.
  static std::pair<std::string, int> in_child(const std::function<std::string()>& fn) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    Fd read_end(fds[0]), write_end(fds[1]);
    pid_t pid = fork();
    if (pid == 0) {
      read_end.reset();
      std::string out;
      int code = 0;
      try {
        out = fn();
      } catch (const std::exception& e) {
        out = std::string("unexpected exception: ") + e.what();
        code = 2;
      }
      auto n = ::write(write_end.get(), out.data(), out.size());
      _exit(n == static_cast<ssize_t>(out.size()) ? code : 3);
    }
    write_end.reset();
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(read_end.get(), buf, sizeof buf)) > 0;)
      out.append(buf, static_cast<std::size_t>(n));
    int status = 0;
    waitpid(pid, &status, 0);
    return {out, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)};
  }

  testing::TempDir dir{"quiver-bad-api"};
  fs::path root = dir / "store";
  Entry kept = Entry::make(Call("kept", "1").arg("i", 1), Value(testing::ramp(100, 1)));
  Entry big = Entry::make(Call("big", "1"), Value(testing::ramp(200000, 2)));
};

TEST_F(BadInputApi, EveryBackendRejectsPathLikeAndNonHexPrefixesNamingThem) {
  std::vector<std::pair<std::string, std::unique_ptr<Cache>>> backends;
  backends.emplace_back("hdf5", std::make_unique<Hdf5Store>(options()));
  auto memory = std::make_unique<MemoryCache>();
  memory->save(kept);
  backends.emplace_back("memory", std::move(memory));
  auto inner = std::make_unique<MemoryCache>();
  inner->save(kept);
  backends.emplace_back("read-only", std::make_unique<ReadOnlyCache>(std::move(inner)));
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<MemoryCache>());
  layers.push_back(std::make_unique<Hdf5Store>(options()));
  backends.emplace_back("stack", std::make_unique<CacheStack>(std::move(layers)));

  for (auto& [label, cache] : backends) {
    for (const std::string& bad :
         std::vector<std::string>{"", "/", "../", "..", "../../etc/passwd", "ab/../cd", "./abcd",
                                  "ABCD", "abcg", "abc", std::string("ab\0cd", 5)}) {
      try {
        cache->expand(bad);
        ADD_FAILURE() << label << " expanded '" << bad << "'";
      } catch (const InvalidArgument& e) {
        EXPECT_TRUE(has(e.message(), "prefix")) << label << ": " << e.what();
        EXPECT_FALSE(e.where().empty()) << label << ": " << e.what();
        if (!bad.empty() && bad.find('\0') == std::string::npos && bad.size() >= 4) {
          EXPECT_TRUE(has(e.message(), bad)) << label << ": " << e.what();
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << label << " '" << bad << "': " << e.what();
      }
    }
    EXPECT_EQ(cache->load(kept.digest)->result, kept.result) << label;
    EXPECT_EQ(cache->expand(kept.digest.hex().substr(0, 8)), kept.digest) << label;
  }
  EXPECT_FALSE(fs::exists(dir / "etc")) << "a prefix reached the filesystem";
  expect_intact();
}

TEST_F(BadInputApi, SaveOnAFullDiskIsAStoreErrorNamingTheFile) {
  auto [what, status] = in_child([&] {
    std::signal(SIGXFSZ, SIG_IGN);  // writes past the limit fail with EFBIG, as on a full disk
    rlimit limit{64 * 1024, 64 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return std::string("setrlimit failed");
    try {
      hdf5().save(big);
    } catch (const StoreError& e) {
      return std::string(e.what());
    }
    return std::string("no StoreError");
  });
  EXPECT_EQ(status, 0) << what;
  EXPECT_TRUE(has(what, root.string())) << what;
  EXPECT_FALSE(hdf5().contains(big.digest));
  expect_intact();
}

TEST_F(BadInputApi, SaveByAUserWhoMayNotWriteTheRootIsAStoreErrorNamingIt) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  fs::permissions(dir.path(), fs::perms::others_read | fs::perms::others_exec,
                  fs::perm_options::add);
  auto [what, status] = in_child([&] {
    if (setgid(65534) != 0 || setuid(65534) != 0) return std::string("cannot become nobody");
    auto store = hdf5();
    if (store.load(kept.digest)->result != kept.result)
      return std::string("the kept entry did not load");
    try {
      store.save(big);
    } catch (const StoreError& e) {
      return std::string(e.what());
    }
    return std::string("no StoreError");
  });
  EXPECT_EQ(status, 0) << what;
  EXPECT_TRUE(has(what, root.string())) << what;
  EXPECT_TRUE(has(what, "ermission denied")) << what;
  expect_intact();
}

}  // namespace
}  // namespace quiver
