// One server process per job, however many ranks use the cache; counted by a wrapper around
// the quiver executable that logs the pid of every server it starts.
#include <signal.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <optional>
#include <quiver/mpi/cache.hpp>
#include <string>
#include <testing/testing.hpp>
#include <vector>

#include "mpi_testing.hpp"
#include "ssh/ssh_fixture.hpp"

namespace quiver::mpi {
namespace {

using quiver::testing::mpi::all;
using quiver::testing::mpi::call_of;
using quiver::testing::mpi::ServerStore;

std::vector<long> pids_in(const std::filesystem::path& log) {
  std::vector<long> pids;
  std::ifstream in(log);
  for (long pid = 0; in >> pid;) pids.push_back(pid);
  return pids;
}

// Independent and collective use from every rank.
void use_from_every_rank(Cache& cache, const std::string& tag) {
  const int rank = cache.rank();
  for (int i = 0; i < 10; ++i) {
    const auto call = call_of(tag, rank, i);
    cache.save(call, Value(std::int64_t{i}));
    EXPECT_EQ(cache.load_value(call.digest()), Value(std::int64_t{i}));
  }
  Call shared("test.mpi." + tag + ".shared", "1");
  cache.memoize_collective(shared, [] { return Value(3.0); });
  EXPECT_TRUE(cache.memoize_collective(shared, [] { return Value(4.0); }).hit);
  std::vector<Digest> theirs{call_of(tag, (rank + 1) % cache.size(), 0).digest()};
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(cache.load_many_collective(theirs).at(0));
}

// The remote pid every rank's info() reports: the same on all ranks, else -1.
long common_remote_pid(Cache& cache) {
  auto info = cache.info();
  long pid = info.contains("pid") ? info["pid"].get<long>() : -1;
  long low = 0, high = 0;
  MPI_Allreduce(&pid, &low, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&pid, &high, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
  return low == high ? low : -1;
}

// Rank 0: exactly one server was started, it is the one that answered, and it is gone.
void expect_one_server(const std::filesystem::path& log, long answered) {
  const auto pids = pids_in(log);
  ASSERT_EQ(pids.size(), 1u) << "servers started: " << pids.size();
  EXPECT_EQ(pids[0], answered);
  EXPECT_EQ(::kill(static_cast<pid_t>(pids[0]), 0), -1);  // reaped with the cache
  EXPECT_EQ(errno, ESRCH);
}

TEST(MpiServerCount, OneServerProcessServesTheWholeJob) {
  const int rank = quiver::testing::mpi::world_rank();
  std::unique_ptr<ServerStore> store;
  std::filesystem::path log;
  if (rank == 0) {
    store = std::make_unique<ServerStore>();
    log = store->dir() / "servers.log";
  }
  SshCache::Stats stats;
  long answered = -1;
  {
    SshCache* server = nullptr;
    Cache cache(MPI_COMM_WORLD, [&]() -> std::unique_ptr<quiver::Cache> {
      auto c = std::make_unique<SshCache>(store->subprocess(store->counting_wrapper(log).string()));
      server = c.get();
      return c;
    });
    use_from_every_rank(cache, "count");
    answered = common_remote_pid(cache);
    if (rank == 0) stats = server->stats();
    EXPECT_EQ(server != nullptr, rank == 0);
  }
  if (rank == 0) {
    EXPECT_EQ(stats.connects, 1u);
    expect_one_server(log, answered);
  }
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

// The path of a real program: quiver.toml names a `type = "subprocess"` cache; only rank 0
// reads it (the other ranks are not even told where it is).
TEST(MpiServerCount, AConfiguredSubprocessCacheStartsOneServer) {
  const int rank = quiver::testing::mpi::world_rank();
  std::unique_ptr<ServerStore> store;
  std::filesystem::path log;
  OpenOptions open;
  if (rank == 0) {
    store = std::make_unique<ServerStore>();
    log = store->dir() / "servers.log";
    open.config_file = store->dir() / "quiver.toml";
    std::ofstream(*open.config_file)
        << "[default]\ncache = \"node\"\n\n[node]\ntype = \"subprocess\"\nquiver = \""
        << store->counting_wrapper(log).string() << "\"\nconfig = \""
        << (store->dir() / "server.toml").string() << "\"\n";
  }
  long answered = -1;
  {
    Cache cache(MPI_COMM_WORLD, open);
    EXPECT_EQ(cache.config()["type"], "subprocess");
    use_from_every_rank(cache, "configured");
    answered = common_remote_pid(cache);
  }
  EXPECT_GT(answered, 0);
  if (rank == 0) expect_one_server(log, answered);
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

// A hook for any configured cache (for example an ssh one to the loopback sshd): set
// QUIVER_MPI_TEST_CONFIG (a quiver.toml) and optionally QUIVER_MPI_TEST_CACHE (its name).
TEST(MpiServerCount, AnExternallyConfiguredCacheServesEveryRankThroughOneConnection) {
  const char* config = std::getenv("QUIVER_MPI_TEST_CONFIG");
  if (!config || !*config) GTEST_SKIP() << "QUIVER_MPI_TEST_CONFIG is not set";
  OpenOptions open;
  open.config_file = config;
  if (const char* name = std::getenv("QUIVER_MPI_TEST_CACHE"); name && *name)
    open.cache_name = name;
  Cache cache(MPI_COMM_WORLD, open);
  use_from_every_rank(cache, "external");
  EXPECT_GT(common_remote_pid(cache), 0);
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

// The whole path over real ssh (CTest entry mpi.server_count_ssh, which starts the loopback
// sshd): rank 0's cache is a stack of a memory layer over an ssh layer with write_through,
// as a job's quiver.toml would say; every rank is served through one ssh connection, and
// the saves reach the remote store.
TEST(MpiServerCount, EveryRankIsServedThroughOneRealSshConnection) {
  const char* state = std::getenv("QUIVER_SSH_STATE");
  if (!state || !*state) GTEST_SKIP() << "QUIVER_SSH_STATE is not set (ctest fixture sshd)";
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::unique_ptr<quiver::testing::RemoteDir> remote;
  std::optional<quiver::testing::TempDir> local;
  std::string sshd_log;
  OpenOptions open;
  int before = 0;
  if (rank == 0) {
    const auto& f = quiver::testing::SshFixture::get();
    remote = std::make_unique<quiver::testing::RemoteDir>("mpi");
    const auto remote_config = remote->write_config();
    local.emplace("quiver-mpi-ssh");
    open.config_file = local->path() / "quiver.toml";
    std::ofstream(*open.config_file)
        << "[default]\ncache = \"job\"\n[[job]]\ntype = \"memory\"\n[[job]]\ntype = \"ssh\"\n"
        << "host = \"" << f.host << "\"\nssh_options = [\"-F\", \"" << f.config << "\"]\n"
        << "quiver = \"" << f.quiver << "\"\nconfig = \"" << remote_config << "\"\n"
        << "write_through = true\n";
    sshd_log = (std::filesystem::path(f.config).parent_path() / "sshd.log").string();
    before = quiver::testing::count_occurrences(sshd_log, "Accepted publickey");
  }
  {
    Cache cache(MPI_COMM_WORLD, open);
    use_from_every_rank(cache, "ssh");
  }
  if (rank == 0) {
    EXPECT_EQ(quiver::testing::count_occurrences(sshd_log, "Accepted publickey") - before, 1)
        << "one ssh connection for " << 4 << " ranks";
    std::size_t stored = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(*remote / "store"))
      stored += e.path().extension() == ".h5";
    EXPECT_GE(stored, 10u * 4) << "every rank's saves reached the remote store";
  }
  EXPECT_TRUE(all(!::testing::Test::HasFailure()));
}

}  // namespace
}  // namespace quiver::mpi

int main(int argc, char** argv) {
  return quiver::testing::mpi::run_all_tests(argc, argv, MPI_THREAD_MULTIPLE);
}
