// mpi: what sharing rank 0's connection costs, run under `mpirun -np 4`. Rank 0's real cache
// is a server subprocess (`quiver serve --stdio`) over an HDF5 store, so every call on it is
// a remote round trip, as with ssh minus the network.
//   contains, rank 1 through rank 0  vs  rank 0's direct contains (per call, goal <= 1.5x)
//   what the hop through rank 0 adds  vs  a bare MPI round trip between the same ranks
//   contains, all ranks at once      vs  one rank's sequential round trips (calls/s, >= 3x)
//   collective load_many, 1000 keys  costs one remote round trip (counted)
//   load_value_into of a large array, rank 1 through rank 0  vs  rank 0's own call (time), and
//                                     rank 1's peak resident memory during it
// Measured and floor phases alternate in blocks; ranks not measuring wait in a sleeping
// barrier so that they do not take CPU from the ranks that are.
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bench/bench.hpp>
#include <fstream>
#include <iostream>
#include <quiver/core/errors.hpp>
#include <quiver/mpi/cache.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <thread>
#include <vector>

namespace qb = quiver::bench;
using quiver::Digest;

namespace {

constexpr char kUsage[] =
    R"(usage: mpirun -np 4 bench_mpi [options]
Measures quiver::mpi::Cache over a server subprocess and prints a markdown table (rank 0).
  --calls N     contains calls per block (default 500)
  --blocks N    alternating blocks of measured and floor calls (default 6)
  --keys N      entries in the store, and keys of the collective load_many (default 1000)
  --dir DIR     directory for the store (default $TMPDIR or /tmp; env QUIVER_BENCH_DIR)
  --quiver EXE  the quiver executable that serves (default: the one built beside this)
  --config FILE open the [default] cache of this quiver.toml on rank 0 instead (for
                example an ssh cache to the loopback sshd); --cache NAME for another one
  --label TEXT  names rank 0's cache in the rows (default "server", or "configured cache"
                with --config)
  --latency-us N  latency added to each call of rank 0's cache for the second set of rows,
                as a remote across a network has (default 200)
  --spin-us N   quiver::mpi::Options::spin in microseconds (default 1000)
  --sleep-us N  quiver::mpi::Options::max_sleep in microseconds (default 1000)
  --progress-threads N  quiver::mpi::Options::progress_threads (default: the library's)
  --overlap-after-us N  quiver::mpi::Options::overlap_after in microseconds (default: the
                library's; 0: every round overlaps, as before it existed)
  --array-mib N size of the array of the load_value_into row (default 256; 0: none)
  --no-header   print the table rows without the header line
)";

constexpr double kLatencyGoal = 1.5;
constexpr double kThroughputGoal = 3.0;

int rank_of(MPI_Comm c) {
  int r = 0;
  MPI_Comm_rank(c, &r);
  return r;
}

// "N % of rounds overlapped": of rank 0's rounds, those served while another thread polled.
std::string percent_overlapped(std::uint64_t overlapped, std::uint64_t rounds) {
  char text[64];
  std::snprintf(
      text, sizeof text, "%.0f %% of rounds overlapped",
      rounds ? 100.0 * static_cast<double>(overlapped) / static_cast<double>(rounds) : 0.0);
  return text;
}

// A barrier that sleeps while it waits, so idle ranks leave the cores to the busy ones.
void idle_barrier() {
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  for (int done = 0;;) {
    MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

double max_over_ranks(double v) {
  double m = 0;
  MPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

// The samples of rank `from`, on rank 0.
qb::Samples samples_from(int from, const std::vector<double>& mine) {
  std::vector<double> got = mine;
  const int rank = rank_of(MPI_COMM_WORLD);
  if (from != 0) {
    if (rank == from) {
      MPI_Send(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, 0, 7, MPI_COMM_WORLD);
    } else if (rank == 0) {
      MPI_Status st;
      MPI_Probe(from, 7, MPI_COMM_WORLD, &st);
      int n = 0;
      MPI_Get_count(&st, MPI_DOUBLE, &n);
      got.resize(static_cast<std::size_t>(n));
      MPI_Recv(got.data(), n, MPI_DOUBLE, from, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
  }
  qb::Samples s;
  for (double v : got) s.add(v);
  return s;
}

// Rank 0's real cache with an added latency per call, as a remote across a network has (a
// sleep, so it costs no CPU). Zero: the server subprocess as it is.
class Delayed : public quiver::Cache {
 public:
  explicit Delayed(std::unique_ptr<quiver::Cache> inner) : inner_(std::move(inner)) {}
  std::atomic<long> latency_us{0};
  quiver::Cache& inner() { return *inner_; }

  void save(const quiver::Entry& e) override { wait(), inner_->save(e); }
  std::optional<quiver::Entry> load(const Digest& d) override { return wait(), inner_->load(d); }
  std::optional<quiver::Value> load_value(const Digest& d) override {
    return wait(), inner_->load_value(d);
  }
  bool contains(const Digest& d) override { return wait(), inner_->contains(d); }
  Digest expand(std::string_view p) override { return wait(), inner_->expand(p); }
  std::string shrink(const Digest& d) override { return wait(), inner_->shrink(d); }
  void query(const quiver::Query& q, const quiver::QuerySink& sink) override {
    wait(), inner_->query(q, sink);
  }
  bool evict(const Digest& d) override { return wait(), inner_->evict(d); }
  nlohmann::json config() const override { return inner_->config(); }
  nlohmann::json info() override { return wait(), inner_->info(); }
  bool read_only() const override { return inner_->read_only(); }
  std::vector<bool> contains_many(std::span<const Digest> d) override {
    return wait(), inner_->contains_many(d);
  }
  std::vector<std::optional<quiver::Entry>> load_many(std::span<const Digest> d) override {
    return wait(), inner_->load_many(d);
  }
  void save_many(std::span<const quiver::Entry> e) override { wait(), inner_->save_many(e); }

 private:
  void wait() const {
    if (const long us = latency_us.load(); us > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
  std::unique_ptr<quiver::Cache> inner_;
};

quiver::Call call_of(std::uint64_t i) {
  quiver::Call c("bench.mpi", "1");
  c.arg("i", static_cast<std::int64_t>(i));
  return c;
}

// A bare MPI round trip of a contains-sized message between rank 1 and a thread of rank 0,
// both polling as quiver's waiting threads do (probe, yield): what the hop through rank 0
// costs on this machine before quiver does anything. Rank 0's thread answers `calls`
// messages; rank 1 times each round trip into per_call.
constexpr int kBareTag = 99;
constexpr int kBareBytes = 48;  // about a contains request: header, length, digest

void bare_wait(int source, int tag, std::vector<std::byte>& into) {
  for (;;) {
    int found = 0;
    MPI_Message m;
    MPI_Status st;
    MPI_Improbe(source, tag, MPI_COMM_WORLD, &found, &m, &st);
    if (found) {
      MPI_Mrecv(into.data(), kBareBytes, MPI_BYTE, &m, MPI_STATUS_IGNORE);
      return;
    }
    sched_yield();
  }
}

std::thread bare_server(std::uint64_t calls) {
  return std::thread([calls] {
    std::vector<std::byte> buf(kBareBytes);
    for (std::uint64_t i = 0; i < calls; ++i) {
      bare_wait(1, kBareTag, buf);
      MPI_Send(buf.data(), kBareBytes, MPI_BYTE, 1, kBareTag, MPI_COMM_WORLD);
    }
  });
}

void bare_client(std::uint64_t calls, std::vector<double>& per_call) {
  std::vector<std::byte> buf(kBareBytes);
  for (std::uint64_t i = 0; i < calls; ++i) {
    const auto t0 = qb::SteadyClock::now();
    MPI_Send(buf.data(), kBareBytes, MPI_BYTE, 0, kBareTag, MPI_COMM_WORLD);
    bare_wait(0, kBareTag, buf);
    per_call.push_back(qb::seconds_since(t0));
  }
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int run(int argc, char** argv) {
  qb::Flags flags(argc, argv, kUsage);
  const auto calls = flags.size("--calls", nullptr, 500);
  const auto blocks = flags.size("--blocks", nullptr, 6);
  const auto keys = flags.size("--keys", nullptr, 1000);
  const auto latency = static_cast<long>(flags.size("--latency-us", nullptr, 200));
  const auto dir = flags.text("--dir", "QUIVER_BENCH_DIR", qb::default_work_dir());
  const auto quiver_exe = flags.text("--quiver", nullptr, QUIVER_BENCH_CLI);
  const auto config = flags.text("--config", nullptr, "");
  const auto cache_name = flags.text("--cache", nullptr, "");
  const auto label = flags.text("--label", nullptr, config.empty() ? "server" : "configured cache");
  quiver::mpi::Options options;
  options.spin = std::chrono::microseconds(flags.size("--spin-us", nullptr, 1000));
  options.max_sleep = std::chrono::microseconds(flags.size("--sleep-us", nullptr, 1000));
  options.progress_threads =
      flags.size("--progress-threads", nullptr, quiver::mpi::Options{}.progress_threads);
  options.overlap_after = std::chrono::microseconds(
      flags.size("--overlap-after-us", nullptr,
                 static_cast<std::size_t>(quiver::mpi::Options{}.overlap_after.count())));
  const auto array_mib = flags.size("--array-mib", nullptr, 256);
  const bool header = !flags.present("--no-header");
  flags.finish();

  const int rank = rank_of(MPI_COMM_WORLD);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::unique_ptr<qb::ScratchDir> scratch;
  if (rank == 0) {
    scratch = std::make_unique<qb::ScratchDir>(dir, "bench-mpi");
    std::ofstream(scratch->path() / "server.toml")
        << "[default]\ncache = \"store\"\n\n[store]\ntype = \"hdf5\"\npath = \""
        << (scratch->path() / "store").string() << "\"\nfsync = false\n";
  }
  quiver::mpi::Cache cache(
      MPI_COMM_WORLD,
      [&]() -> std::unique_ptr<quiver::Cache> {
        if (!config.empty()) {
          quiver::OpenOptions open;
          open.config_file = config;
          if (!cache_name.empty()) open.cache_name = cache_name;
          return std::make_unique<Delayed>(quiver::open(open));
        }
        quiver::SshCacheOptions o;
        o.transport = quiver::Transport::subprocess;
        o.quiver = quiver_exe;
        o.config = (scratch->path() / "server.toml").string();
        return std::make_unique<Delayed>(std::make_unique<quiver::SshCache>(o));
      },
      options);
  auto* delayed = dynamic_cast<Delayed*>(cache.local());
  // Round trips are counted when rank 0's cache is a remote one itself.
  auto* server = delayed ? dynamic_cast<quiver::SshCache*>(&delayed->inner()) : nullptr;
  if (rank == 0 && !server)
    std::cerr << "bench_mpi: rank 0's cache is not a remote cache; round trips are not counted\n";

  std::vector<Digest> digests;
  std::vector<quiver::Entry> entries;
  for (std::uint64_t i = 0; i < keys; ++i) {
    digests.push_back(call_of(i).digest());
    if (rank == 0)
      entries.push_back(quiver::Entry::make(call_of(i), quiver::Value(static_cast<double>(i))));
  }
  if (rank == 0) cache.save_many(entries);
  idle_barrier();

  auto contains_loop = [&](std::vector<double>* per_call) {
    std::uint64_t hits = 0;
    for (std::uint64_t i = 0; i < calls; ++i) {
      const auto t0 = qb::SteadyClock::now();
      hits += cache.contains(digests[(i * 7 + static_cast<std::uint64_t>(rank)) % keys]) ? 1 : 0;
      if (per_call) per_call->push_back(qb::seconds_since(t0));
    }
    if (hits != calls) throw quiver::ServerError("contains missed a stored key", "bench_mpi");
  };

  std::vector<qb::Row> rows;
  std::vector<long> added_latencies{0};
  if (latency > 0) added_latencies.push_back(latency);
  for (const long added : added_latencies) {
    if (rank == 0) delayed->latency_us = added;
    const std::string remote =
        added ? label + " + " + std::to_string(added) + " us latency" : label;
    // 1. Per-call latency: rank 1 through rank 0 against rank 0 directly.
    std::vector<double> direct, through, bare;
    const auto latency_before = cache.stats();
    for (std::uint64_t b = 0; b < blocks; ++b) {
      if (rank == 0) contains_loop(&direct);
      idle_barrier();
      if (rank == 1) contains_loop(&through);
      idle_barrier();
      std::thread answering;
      if (rank == 0) answering = bare_server(calls);
      if (rank == 1) bare_client(calls, bare);
      idle_barrier();
      if (answering.joinable()) answering.join();
    }
    const auto latency_stats = cache.stats();
    const auto direct_samples = samples_from(0, direct);
    const auto through_samples = samples_from(1, through);
    const auto bare_samples = samples_from(1, bare);

    // 2. Aggregate throughput: every rank at once (coalesced on rank 0) against rank 0 alone.
    std::vector<double> alone_rates, all_rates;
    std::uint64_t requests = 0, rounds = 0, overlapped = 0;
    for (std::uint64_t b = 0; b < std::max<std::uint64_t>(blocks / 2, 1); ++b) {
      idle_barrier();
      if (rank == 0)
        alone_rates.push_back(static_cast<double>(calls) /
                              qb::time_once([&] { contains_loop(nullptr); }));
      idle_barrier();
      const auto before = cache.stats();
      const double wall = max_over_ranks(qb::time_once([&] { contains_loop(nullptr); }));
      all_rates.push_back(static_cast<double>(calls) * size / wall);
      requests += cache.stats().requests - before.requests;
      rounds += cache.stats().rounds - before.rounds;
      overlapped += cache.stats().overlapped - before.overlapped;
    }
    if (rank == 0) {
      rows.push_back(
          qb::latency_row("mpi (" + remote + "): contains, rank 1 through rank 0 vs rank 0 direct",
                          through_samples, direct_samples, kLatencyGoal));
      rows.back().measured +=
          ", " + percent_overlapped(latency_stats.overlapped - latency_before.overlapped,
                                    latency_stats.rounds - latency_before.rounds);
      // What the hop adds to a call, against the bare MPI round trip it cannot avoid.
      const double hop = through_samples.median() - direct_samples.median();
      rows.push_back(
          {"mpi (" + remote + "): what going through rank 0 adds vs a bare MPI round trip",
           (hop < 0 ? "-" + qb::format_duration(-hop) : qb::format_duration(hop)) +
               " (median through rank 0 - median direct)",
           "median " + qb::format_duration(bare_samples.median()) +
               " (rank 1 <-> a polling thread of rank 0, " + std::to_string(kBareBytes) + " bytes)",
           qb::format_ratio(hop / bare_samples.median()), "", ""});
      const double ratio = median_of(all_rates) / median_of(alone_rates);
      char measured[160], floor[96];
      std::snprintf(measured, sizeof measured,
                    "%.0f calls/s (%d ranks, %.1f requests per batch, %s)", median_of(all_rates),
                    size,
                    rounds ? static_cast<double>(requests) / static_cast<double>(rounds) : 0.0,
                    percent_overlapped(overlapped, rounds).c_str());
      std::snprintf(floor, sizeof floor, "%.0f calls/s (rank 0 alone)", median_of(alone_rates));
      rows.push_back({"mpi (" + remote + "): contains throughput, all ranks vs one rank", measured,
                      floor, qb::format_ratio(ratio), ">= " + qb::format_ratio(kThroughputGoal),
                      ratio >= kThroughputGoal ? "yes" : "no"});
    }
  }
  if (rank == 0) delayed->latency_us = 0;

  // 3. A collective load_many of `keys` keys, each rank asking for its share.
  std::vector<Digest> share;
  for (std::uint64_t i = static_cast<std::uint64_t>(rank); i < keys;
       i += static_cast<std::uint64_t>(size))
    share.push_back(digests[i]);
  idle_barrier();
  const auto remote_before = server ? server->stats().requests : 0;
  const double collective = max_over_ranks(qb::time_once([&] {
    auto got = cache.load_many_collective(share);
    for (const auto& e : got)
      if (!e) throw quiver::ServerError("collective load_many missed a stored key", "bench_mpi");
  }));
  const auto round_trips = server ? server->stats().requests - remote_before : 0;
  double direct_many = 0;
  if (rank == 0) direct_many = qb::time_once([&] { cache.local()->load_many(digests); });
  idle_barrier();

  // 4. load_value_into of one large array: rank 1 receives it from rank 0 straight into its
  // own vector (no buffer of the cache's, no copy); rank 0's own call loads it from the real
  // cache and copies it in.
  if (array_mib > 0) {
    const std::size_t elements = array_mib << 17;  // doubles
    quiver::Call big("bench.mpi.array", "1");
    big.arg("mib", static_cast<std::int64_t>(array_mib));
    if (rank == 0)
      cache.save(big, quiver::Value(quiver::Array::from(std::vector<double>(elements, 0.5))));
    std::vector<double> into(rank <= 1 ? elements : 0);  // allocated and touched beforehand
    const quiver::ArrayDestinations where{{"", quiver::ArrayInto::of(std::span(into))}};
    std::vector<double> own, through, grew;
    for (int rep = 0; rep < 3; ++rep) {
      idle_barrier();
      if (rank == 0)
        own.push_back(qb::time_once([&] { cache.load_value_into(big.digest(), where); }));
      idle_barrier();
      if (rank == 1) {
        qb::reset_peak_rss(getpid());
        const auto before = qb::peak_rss(getpid());
        through.push_back(qb::time_once([&] { cache.load_value_into(big.digest(), where); }));
        grew.push_back(static_cast<double>(qb::peak_rss(getpid()) - before));
      }
    }
    idle_barrier();
    const auto grew_on_1 = samples_from(1, grew);
    const auto through_samples = samples_from(1, through);
    if (rank == 0) {
      qb::Samples own_samples;
      for (double t : own) own_samples.add(t);
      auto row =
          qb::latency_row("mpi (" + label + "): load_value_into of " + std::to_string(array_mib) +
                              " MiB, rank 1 through rank 0 vs rank 0 direct",
                          through_samples, own_samples);
      char peak[96];
      std::snprintf(peak, sizeof peak, ", rank 1's peak memory +%.0f MiB",
                    grew_on_1.percentile(100) / double(1u << 20));
      row.measured += peak;
      rows.push_back(std::move(row));
    }
  }

  if (rank == 0) {
    rows.push_back({"mpi (" + label + "): collective load_many, " + std::to_string(keys) +
                        " keys over " + std::to_string(size) + " ranks",
                    (server ? std::to_string(round_trips) + " remote round trip(s), " : "") +
                        qb::format_duration(collective),
                    "rank 0's own load_many: " + qb::format_duration(direct_many),
                    qb::format_ratio(collective / direct_many), "1 round trip",
                    server ? (round_trips == 1 ? "yes" : "no") : "not counted"});
    qb::print_table(std::cout, rows, header);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int status = 0;
  try {
    status = run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_mpi: " << e.what() << "\n";
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return status;
}
