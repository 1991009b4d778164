#include "mpi_testing.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <testing/testing.hpp>
#include <thread>

namespace quiver::testing::mpi {

int run_all_tests(int argc, char** argv, int level) {
  int provided = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, level, &provided);
  int failed = 0;
  if (provided < level) {
    std::fprintf(stderr, "MPI provides thread level %d, the tests need %d\n", provided, level);
    failed = 1;
  } else {
    ::testing::InitGoogleTest(&argc, argv);
    if (world_rank() != 0) {
      // Only rank 0 prints progress; other ranks report their failures alone.
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
    }
    failed = RUN_ALL_TESTS();
    if (failed && world_rank() != 0)
      std::fprintf(stderr, "rank %d: a test failed (run with --gtest_filter to see which)\n",
                   world_rank());
  }
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any ? 1 : 0;
}

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

bool all(bool flag) {
  int mine = flag ? 1 : 0, low = 0;
  MPI_Allreduce(&mine, &low, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return low == 1;
}

long long sum(long long v) {
  long long total = 0;
  MPI_Allreduce(&v, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

void CountingCache::save(const Entry& e) {
  ++single_calls;
  MemoryCache::save(e);
}
std::optional<Entry> CountingCache::load(const Digest& d) {
  ++single_calls;
  return MemoryCache::load(d);
}
std::optional<Value> CountingCache::load_value(const Digest& d) {
  ++single_calls;
  return MemoryCache::load_value(d);
}
bool CountingCache::contains(const Digest& d) {
  ++contains_calls;
  return MemoryCache::contains(d);
}
std::vector<bool> CountingCache::contains_many(std::span<const Digest> digests) {
  ++contains_many_calls;
  const int now = ++in_progress_;
  for (int seen = max_concurrent; now > seen && !max_concurrent.compare_exchange_weak(seen, now);) {
  }
  if (const auto delay = batch_delay.load(); delay.count() > 0) std::this_thread::sleep_for(delay);
  --in_progress_;
  std::vector<bool> out;
  for (const auto& d : digests) out.push_back(MemoryCache::contains(d));
  return out;
}
std::vector<std::optional<Entry>> CountingCache::load_many(std::span<const Digest> digests) {
  ++load_many_calls;
  std::vector<std::optional<Entry>> out;
  for (const auto& d : digests) out.push_back(MemoryCache::load(d));
  return out;
}
void CountingCache::save_many(std::span<const Entry> entries) {
  ++save_many_calls;
  for (const auto& e : entries) MemoryCache::save(e);
}
int CountingCache::total() const {
  return contains_calls + contains_many_calls + load_many_calls + save_many_calls + single_calls;
}

ServerStore::ServerStore() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/quiver-mpi-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed: " + tmpl);
  dir_ = tmpl;
  std::ofstream(dir_ / "server.toml")
      << "[default]\ncache = \"store\"\n\n[store]\ntype = \"hdf5\"\n"
      << "path = \"" << (dir_ / "store").string() << "\"\nfsync = false\n";
}

ServerStore::~ServerStore() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

SshCacheOptions ServerStore::subprocess(const std::string& quiver) const {
  SshCacheOptions o;
  o.transport = Transport::subprocess;
  o.quiver = quiver.empty() ? cli_path() : quiver;
  o.config = (dir_ / "server.toml").string();
  o.connect_timeout = std::chrono::milliseconds(20000);
  o.call_timeout = std::chrono::milliseconds(60000);
  return o;
}

std::filesystem::path ServerStore::counting_wrapper(const std::filesystem::path& log) const {
  auto path = dir_ / "quiver-wrapper.sh";
  std::ofstream(path) << "#!/bin/sh\necho $$ >> '" << log.string() << "'\nexec '" << cli_path()
                      << "' \"$@\"\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

Call call_of(const std::string& tag, int rank, int i) {
  Call c("test.mpi." + tag, "1");
  c.arg("rank", rank).arg("i", i);
  return c;
}

}  // namespace quiver::testing::mpi
