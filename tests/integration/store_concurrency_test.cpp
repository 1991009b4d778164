// Several processes write one store at once, without locks, while another rebuilds its
// index: afterwards every entry is intact, query lists each exactly once, fsck is clean.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <quiver/store/hdf5_store.hpp>
#include <set>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;

constexpr int kWriters = 4;
constexpr int kPerWriter = 12;

Hdf5StoreOptions store_options(const fs::path& root) {
  Hdf5StoreOptions o;
  o.root = root;
  o.fsync = true;
  return o;
}

// Every writer saves these with identical contents, racing to rename over each other.
Entry shared_entry(int k) {
  return Entry::make(Call("shared", "1", {{"k", k}}), Value(testing::ramp(1000 + 100 * k, k)));
}

// Only writer w saves these.
Entry own_entry(int w, int k) {
  return Entry::make(Call("own", "1", {{"writer", w}, {"k", k}}),
                     Value::map({{"writer", w}, {"data", testing::ramp(500 + k, w * 1000 + k)}}));
}

// Runs body in a child process once the parent closes the write end of the go pipe; the
// child exits 0 on success.
pid_t spawn(const int (&go)[2], const std::function<void()>& body) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::close(go[1]);
  char c;
  while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
  }
  try {
    body();
    _exit(0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child %d: %s\n", ::getpid(), e.what());
    _exit(1);
  }
}

TEST(StoreConcurrencyTest, ParallelWritersAndARebuildLoseNothing) {
  testing::TempDir dir("quiver-store-concurrency");
  auto root = dir.path() / "cache";
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    children.push_back(spawn(go, [&, w] {
      Hdf5Store store(store_options(root));
      for (int k = 0; k < kPerWriter; ++k) {
        store.save(own_entry(w, k));
        store.save(shared_entry((k + w * 3) % kPerWriter));  // writers start at different keys
      }
    }));
  }
  children.push_back(spawn(go, [&] {
    Hdf5Store store(store_options(root));
    for (int i = 0; i < 10; ++i) store.rebuild_index();
  }));
  ::close(go[0]);
  ::close(go[1]);  // start everyone at once
  for (pid_t pid : children) {
    ASSERT_GT(pid, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }

  Hdf5Store store(store_options(root));
  std::map<Digest, Entry> expected;
  for (int k = 0; k < kPerWriter; ++k) {
    auto e = shared_entry(k);
    expected.emplace(e.digest, e);
    for (int w = 0; w < kWriters; ++w) {
      auto o = own_entry(w, k);
      expected.emplace(o.digest, o);
    }
  }
  for (const auto& [digest, e] : expected) {
    auto loaded = store.load(digest);
    ASSERT_TRUE(loaded) << digest.hex();
    EXPECT_EQ(loaded->call, e.call);
    EXPECT_EQ(loaded->result, e.result);
  }

  std::multiset<Digest> listed;
  store.query(Query{}, [&](const EntrySummary& s) {
    listed.insert(s.digest);
    return true;
  });
  for (const auto& [digest, e] : expected) EXPECT_EQ(listed.count(digest), 1u) << digest.hex();
  EXPECT_EQ(listed.size(), expected.size());

  FsckOptions check;
  check.temp_grace = std::chrono::seconds(0);
  auto report = store.fsck(check);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.ok, expected.size());
}

}  // namespace
}  // namespace quiver
