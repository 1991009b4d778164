// store_ops: latency of the small operations of Hdf5Store over a store of many small
// entries, each against the bare file-system operation it cannot avoid, measured in the
// same run on the same files:
//   contains()      vs stat() of an existing entry path
//   load_value()    vs open() + read() of the whole entry file + close()
//   query()         vs listing every shard directory (readdir)
//   expand(6 chars) vs listing the one shard directory the prefix names
// The store is filled once (fsync off, to keep the setup quick); every measurement reads.
// Floor and store alternate in blocks, so drift on a shared machine hits both alike.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bench/bench.hpp>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <quiver/core/call.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/remote/process.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace qb = quiver::bench;
using quiver::Digest;
using quiver::StoreError;

namespace {

constexpr char kUsage[] =
    R"(usage: bench_store_ops [options]
Fills an Hdf5Store with small entries, then measures contains(), load_value(), query() and
expand() against the bare file-system operations underneath, and prints a markdown table.
  --entries N   entries in the store, K/M suffixes allowed (default 100000;
                env QUIVER_BENCH_ENTRIES)
  --samples N   timed calls per latency measurement (default 20000)
  --reps N      repetitions of each query; the median is reported (default 5;
                env QUIVER_BENCH_REPS)
  --dir DIR     directory to work in (default $TMPDIR or /tmp; env QUIVER_BENCH_DIR)
  --jobs N      processes filling the store (default: cores, at most 4)
  --keep        keep the filled store in DIR and reuse it on the next run with the same
                --entries (skips the setup)
  --no-header   print the table rows without the header line
  (--worker K is internal: one of the --jobs setup processes)
)";

constexpr int kFunctions = 10;       // entries are spread evenly over this many functions
constexpr double kContainsGoal = 3;  // contains() within 3x of stat()
constexpr double kQueryGoalSeconds = 1;
constexpr std::size_t kPrefixChars = 6;
constexpr std::size_t kBlock = 500;  // calls per block when alternating floor and store

quiver::Call make_call(std::uint64_t i) {
  return quiver::Call("bench.f" + std::to_string(i % kFunctions), "1")
      .arg("i", static_cast<std::int64_t>(i))
      .arg("x", static_cast<double>(i) * 0.5);
}

quiver::Value make_result(std::uint64_t i) {
  const auto x = static_cast<double>(i);
  return quiver::Value(std::vector<double>{x, 2 * x, 3 * x});
}

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using DirHandle = std::unique_ptr<DIR, DirCloser>;

/// Names in dir ending in ".h5" (readdir, no stat).
std::uint64_t count_h5_files(const fs::path& dir) {
  DirHandle d(::opendir(dir.c_str()));
  if (!d) throw StoreError(std::string("cannot list: ") + std::strerror(errno), dir.string());
  std::uint64_t n = 0;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view name(e->d_name);
    if (name.ends_with(".h5")) ++n;
  }
  return n;
}

/// Entry files under every two-hex-digit shard directory of root.
std::uint64_t count_all_entries(const fs::path& root) {
  DirHandle d(::opendir(root.c_str()));
  if (!d) throw StoreError(std::string("cannot list: ") + std::strerror(errno), root.string());
  std::uint64_t n = 0;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view name(e->d_name);
    if (name.size() == 2 && quiver::is_hex_prefix(name)) n += count_h5_files(root / name);
  }
  return n;
}

/// The floor of load_value(): open, read the whole file, close.
std::size_t read_whole_file(const std::string& path, std::vector<std::byte>& buf) {
  quiver::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw StoreError(std::string("cannot open: ") + std::strerror(errno), path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    throw StoreError(std::string("fstat failed: ") + std::strerror(errno), path);
  buf.resize(static_cast<std::size_t>(st.st_size));
  qb::read_all(fd.get(), buf, path);
  return buf.size();
}

/// Saves entries k, k + jobs, k + 2 jobs, ... below n into the store at root (fsync off).
void populate_stripe(const fs::path& root, std::uint64_t n, std::uint64_t k, std::uint64_t jobs) {
  quiver::Hdf5StoreOptions options;
  options.root = root;
  options.fsync = false;
  quiver::Hdf5Store store(options);
  for (std::uint64_t i = k; i < n; i += jobs)
    store.save(quiver::Entry::make(make_call(i), make_result(i)));
}

/// Fills the store at root with entries [0, n) from `jobs` processes writing at once (this
/// program re-run with --worker), as several writers sharing a root do; returns seconds.
double populate(const fs::path& root, std::uint64_t n, std::uint64_t jobs) {
  std::cerr << "  setup: saving " << n << " entries from " << jobs
            << (jobs == 1 ? " process\n" : " processes\n");
  const auto t0 = qb::SteadyClock::now();
  if (jobs == 1) {
    populate_stripe(root, n, 0, 1);
    return qb::seconds_since(t0);
  }
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<quiver::Process> workers;
  for (std::uint64_t k = 0; k < jobs; ++k) {
    workers.push_back(
        quiver::Process::spawn({self, "--worker", std::to_string(k), "--jobs", std::to_string(jobs),
                                "--entries", std::to_string(n), "--dir", root.string()}));
    workers.back().stdin_fd().reset();
  }
  // Drain the workers' stderr while they run (a full pipe would stall them), keeping the
  // tail of each for the error message.
  std::vector<std::string> tails(jobs);
  std::vector<pollfd> fds(jobs);
  for (std::uint64_t k = 0; k < jobs; ++k) fds[k] = {workers[k].stderr_fd().get(), POLLIN, 0};
  for (std::uint64_t open = jobs; open > 0;) {
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR)
      throw StoreError(std::string("poll failed: ") + std::strerror(errno), root.string());
    for (std::uint64_t k = 0; k < jobs; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(fds[k].fd, buf, sizeof(buf));
      if (got > 0) {
        tails[k].append(buf, static_cast<std::size_t>(got));
        if (tails[k].size() > 4096) tails[k].erase(0, tails[k].size() - 4096);
      } else if (got == 0 || errno != EINTR) {
        fds[k].fd = -1;  // end of file: the worker has exited
        --open;
      }
    }
  }
  for (std::uint64_t k = 0; k < jobs; ++k) {
    std::optional<quiver::ExitStatus> status;
    while (!(status = workers[k].wait_for(std::chrono::seconds(1)))) {
    }
    if (status->code != 0)
      throw StoreError("setup process " + std::to_string(k) + " ended with " + status->describe() +
                           ": " + tails[k],
                       root.string());
  }
  const double s = qb::seconds_since(t0);
  std::cerr << "  setup: " << n << " entries in " << qb::format_duration(s) << "\n";
  return s;
}

/// Times fn(k) for each k of picks, appending each call's duration to out.
template <class F>
void time_each(const std::vector<std::size_t>& picks, std::size_t begin, std::size_t end,
               qb::Samples& out, F&& fn) {
  for (std::size_t k = begin; k < end; ++k) {
    const auto t0 = qb::SteadyClock::now();
    fn(picks[k]);
    out.add(qb::seconds_since(t0));
  }
}

int run(int argc, char** argv) {
  qb::Flags flags(argc, argv, kUsage);
  const std::uint64_t entries = flags.size("--entries", "QUIVER_BENCH_ENTRIES", 100000);
  const std::uint64_t samples = flags.size("--samples", nullptr, 20000);
  const std::uint64_t reps = flags.size("--reps", "QUIVER_BENCH_REPS", 5);
  const fs::path dir = flags.text("--dir", "QUIVER_BENCH_DIR", qb::default_work_dir());
  const bool keep = flags.present("--keep");
  const bool header = !flags.present("--no-header");
  const std::uint64_t jobs = flags.size(
      "--jobs", nullptr, std::clamp<std::uint64_t>(std::thread::hardware_concurrency(), 1, 4));
  const std::string worker = flags.text("--worker", nullptr, "");
  flags.finish();
  if (!worker.empty()) {  // one setup process started by populate()
    populate_stripe(dir, entries, qb::parse_size(worker, "--worker"), jobs);
    return 0;
  }
  if (entries < 2 * kFunctions || samples == 0 || reps == 0 || jobs == 0)
    throw quiver::InvalidArgument("--entries must be >= 20; --samples, --reps, --jobs positive",
                                  "bench_store_ops");

  // The store: a scratch directory, or with --keep a named one reused across runs.
  std::optional<qb::ScratchDir> scratch;
  fs::path root;
  fs::path done_marker;
  if (keep) {
    root = dir / ("quiver-bench-ops-" + std::to_string(entries));
    done_marker = dir / ("quiver-bench-ops-" + std::to_string(entries) + ".complete");
  } else {
    scratch.emplace(dir, "quiver-bench-ops");
    root = scratch->path() / "store";
  }
  std::vector<qb::Row> rows;
  {
    const bool reuse = keep && fs::exists(done_marker);
    if (keep && !reuse) fs::remove_all(root);
    std::cerr << "store_ops: " << entries << " entries in " << root << (reuse ? " (reused)" : "")
              << "\n";
    if (!reuse) {
      const double s = populate(root, entries, jobs);
      rows.push_back({"setup: " + std::to_string(entries) +
                          " small entries saved (fsync=false) by " + std::to_string(jobs) +
                          " processes at once",
                      qb::format_duration(s) + ", " +
                          qb::format_duration(s / static_cast<double>(entries)) + " per entry",
                      "", "", "", ""});
      if (keep) std::ofstream(done_marker) << entries << "\n";
    }
  }

  quiver::Hdf5StoreOptions options;
  options.root = root;
  quiver::Hdf5Store store(options);

  // Which entries the latency measurements touch: a fixed pseudo-random sample.
  std::mt19937_64 rng(42);
  std::vector<Digest> digests(entries);
  for (std::uint64_t i = 0; i < entries; ++i) digests[i] = make_call(i).digest();
  std::vector<std::size_t> picks(samples);
  std::uniform_int_distribution<std::size_t> pick(0, entries - 1);
  for (auto& p : picks) p = pick(rng);
  std::vector<std::string> paths(entries);
  for (std::size_t p : picks) paths[p] = store.entry_path(digests[p]).string();
  // Digests never stored: one set for contains(), another for the stat() reference, so
  // that each is looked up for the first time (no cached negative directory entry).
  std::vector<Digest> missing(samples);
  std::vector<std::string> missing_paths(samples);
  for (std::uint64_t k = 0; k < samples; ++k) {
    missing[k] = make_call(entries + k).digest();
    missing_paths[k] = store.entry_path(make_call(entries + samples + k).digest()).string();
  }
  std::vector<std::size_t> order(samples);
  for (std::size_t k = 0; k < samples; ++k) order[k] = k;

  // contains(): existing and missing digests, against stat() of an existing entry path.
  {
    qb::Samples stat_s, stat_missing_s, hit_s, miss_s;
    std::uint64_t wrong = 0;
    for (std::size_t b = 0; b < samples; b += kBlock) {
      const std::size_t e = std::min<std::size_t>(b + kBlock, samples);
      time_each(picks, b, e, stat_s, [&](std::size_t p) {
        struct stat st {};
        if (::stat(paths[p].c_str(), &st) != 0) ++wrong;
      });
      time_each(picks, b, e, hit_s, [&](std::size_t p) {
        if (!store.contains(digests[p])) ++wrong;
      });
      time_each(order, b, e, miss_s, [&](std::size_t k) {
        if (store.contains(missing[k])) ++wrong;
      });
      time_each(order, b, e, stat_missing_s, [&](std::size_t k) {
        struct stat st {};
        if (::stat(missing_paths[k].c_str(), &st) == 0) ++wrong;
      });
    }
    if (wrong != 0)
      throw StoreError(std::to_string(wrong) + " contains()/stat() answers were wrong",
                       root.string());
    rows.push_back(qb::latency_row("contains(), existing entry (vs stat() of its path)", hit_s,
                                   stat_s, kContainsGoal));
    rows.push_back(qb::latency_row("contains(), missing entry (vs stat() of an existing path)",
                                   miss_s, stat_s, kContainsGoal));
    rows.push_back(
        qb::latency_row("reference: stat() of a missing path (vs stat() of an existing path)",
                        stat_missing_s, stat_s));
  }

  // load_value() of a small entry, against reading the whole entry file.
  {
    const std::size_t n = std::max<std::size_t>(1, samples / 10);
    qb::Samples read_s, load_s;
    std::vector<std::byte> buf;
    std::uint64_t file_bytes = 0;
    std::uint64_t wrong = 0;
    for (std::size_t b = 0; b < n; b += kBlock / 5) {
      const std::size_t e = std::min<std::size_t>(b + kBlock / 5, n);
      time_each(picks, b, e, read_s,
                [&](std::size_t p) { file_bytes = read_whole_file(paths[p], buf); });
      for (std::size_t k = b; k < e; ++k) {
        std::optional<quiver::Value> v;
        const auto t0 = qb::SteadyClock::now();
        v = store.load_value(digests[picks[k]]);
        load_s.add(qb::seconds_since(t0));
        if (!v || !(*v == make_result(picks[k]))) ++wrong;
      }
    }
    if (wrong != 0)
      throw StoreError(std::to_string(wrong) + " load_value() results were wrong", root.string());
    rows.push_back(qb::latency_row("load_value(), small entry (vs open+read+close of its " +
                                       std::to_string(file_bytes) + "-byte file)",
                                   load_s, read_s));
  }

  // query() over all entries, against listing every shard directory.
  {
    const std::uint64_t per_function = entries / kFunctions + (entries % kFunctions > 3 ? 1 : 0);
    const std::uint64_t wanted_i = entries / 2 + 3;
    qb::Samples list_s, by_function_s, by_arg_s;
    for (std::uint64_t r = 0; r < reps; ++r) {
      std::uint64_t listed = 0;
      list_s.add(qb::time_once([&] { listed = count_all_entries(root); }));
      if (listed != entries)
        throw StoreError(
            "found " + std::to_string(listed) + " entry files, expected " + std::to_string(entries),
            root.string());

      quiver::Query by_function;
      by_function.function = "bench.f3";
      std::uint64_t matched = 0;
      by_function_s.add(qb::time_once([&] {
        store.query(by_function, [&](const quiver::EntrySummary&) { return ++matched, true; });
      }));
      if (matched != per_function)
        throw StoreError("query by function matched " + std::to_string(matched) + ", expected " +
                             std::to_string(per_function),
                         root.string());

      quiver::Query by_arg;
      by_arg.args.emplace("i", static_cast<std::int64_t>(wanted_i));
      std::vector<Digest> found;
      by_arg_s.add(qb::time_once([&] {
        store.query(by_arg, [&](const quiver::EntrySummary& s) {
          found.push_back(s.digest);
          return true;
        });
      }));
      if (found.size() != 1 || found[0] != digests[wanted_i])
        throw StoreError("query by argument found " + std::to_string(found.size()) +
                             " entries, expected the one with i=" + std::to_string(wanted_i),
                         root.string());
    }
    const auto query_row = [&](std::string name, const qb::Samples& s) {
      const double t = s.median();
      return qb::Row{std::move(name),
                     "median " + qb::format_duration(t) + " (" + std::to_string(reps) + " runs)",
                     "median " + qb::format_duration(list_s.median()),
                     qb::format_ratio(t / list_s.median()),
                     "< " + qb::format_duration(kQueryGoalSeconds),
                     t < kQueryGoalSeconds ? "yes" : "no"};
    };
    rows.push_back(query_row("query(function=...) over " + std::to_string(entries) + " (" +
                                 std::to_string(per_function) + " match; vs readdir of all shards)",
                             by_function_s));
    qb::Row arg_row = query_row("query(args i=...) over " + std::to_string(entries) +
                                    " (1 match; vs readdir of all shards)",
                                by_arg_s);
    arg_row.goal = arg_row.met = "";
    rows.push_back(std::move(arg_row));
  }

  // expand() of a 6-character prefix that is unique, against listing its shard directory.
  {
    std::map<std::string, int> prefix_count;
    for (const Digest& d : digests) ++prefix_count[d.hex().substr(0, kPrefixChars)];
    std::vector<std::size_t> unique_picks;
    for (std::size_t p : picks) {
      if (prefix_count[digests[p].hex().substr(0, kPrefixChars)] == 1) unique_picks.push_back(p);
      if (unique_picks.size() == std::max<std::size_t>(1, samples / 10)) break;
    }
    std::vector<std::string> prefixes(entries);
    std::vector<fs::path> shards(entries);
    for (std::size_t p : unique_picks) {
      prefixes[p] = digests[p].hex().substr(0, kPrefixChars);
      shards[p] = fs::path(paths[p]).parent_path();
    }
    qb::Samples list_s, expand_s;
    std::uint64_t wrong = 0;
    for (std::size_t b = 0; b < unique_picks.size(); b += kBlock / 5) {
      const std::size_t e = std::min<std::size_t>(b + kBlock / 5, unique_picks.size());
      time_each(unique_picks, b, e, list_s,
                [&](std::size_t p) { wrong += count_h5_files(shards[p]) == 0 ? 1 : 0; });
      time_each(unique_picks, b, e, expand_s,
                [&](std::size_t p) { wrong += store.expand(prefixes[p]) == digests[p] ? 0 : 1; });
    }
    if (wrong != 0)
      throw StoreError(std::to_string(wrong) + " expand() results were wrong", root.string());
    rows.push_back(qb::latency_row("expand(), unique 6-char prefix (vs readdir of its shard)",
                                   expand_s, list_s));
  }

  qb::print_table(std::cout, rows, header);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::bench::run_main("bench_store_ops", run, argc, argv);
}
