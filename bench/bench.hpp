// Shared pieces of quiver's benchmarks: flags, timing, statistics, scratch directories, the
// raw POSIX I/O that serves as a floor, and the markdown result table. Benchmarks never
// assert on time: they print what they measured, the floor measured in the same run, the
// ratio, and whether a goal was met.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::bench {

using SteadyClock = std::chrono::steady_clock;

/// Seconds since t0 on the steady clock.
double seconds_since(SteadyClock::time_point t0) noexcept;

/// Runs fn once; returns how long it took in seconds.
template <class F>
double time_once(F&& fn) {
  const auto t0 = SteadyClock::now();
  fn();
  return seconds_since(t0);
}

/// Timings in seconds, summarised by order statistics.
class Samples {
 public:
  void add(double seconds) { values_.push_back(seconds); }
  std::size_t size() const noexcept { return values_.size(); }
  /// The median; throws InvalidArgument when empty.
  double median() const { return percentile(50); }
  /// The nearest-rank p-th percentile (0 < p <= 100); throws InvalidArgument when empty.
  double percentile(double p) const;

 private:
  std::vector<double> values_;
};

/// Parses a count with an optional K, M or G suffix (powers of 1024; "KiB" etc. accepted);
/// throws InvalidArgument naming what.
std::uint64_t parse_size(std::string_view text, std::string_view what);

/// Command-line flags of the form "--name value" or "--name", each with an optional
/// environment fallback. --help prints usage and exits; unknown flags are rejected.
class Flags {
 public:
  Flags(int argc, char** argv, std::string usage);
  /// A count as parse_size() reads it.
  std::uint64_t size(std::string_view name, const char* env, std::uint64_t fallback);
  std::string text(std::string_view name, const char* env, std::string fallback);
  /// True when the switch is present (or env is set to a non-empty value other than "0").
  bool present(std::string_view name, const char* env = nullptr);
  /// Throws InvalidArgument naming the first flag no accessor asked for.
  void finish() const;

 private:
  std::optional<std::string> value_of(std::string_view name, const char* env);

  std::vector<std::string> args_;
  std::vector<bool> used_;
};

/// $TMPDIR, or /tmp when it is unset.
std::string default_work_dir();

/// A fresh directory "<parent>/<tag>-XXXXXX", removed with its contents on destruction
/// unless keep() was called.
class ScratchDir {
 public:
  ScratchDir(const std::filesystem::path& parent, std::string_view tag);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  void keep() noexcept { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

/// Writes all of data to fd (looping over short writes); throws StoreError naming path.
void write_all(int fd, std::span<const std::byte> data, const std::filesystem::path& path);
/// Reads exactly out.size() bytes from fd; throws StoreError naming path on error or EOF.
void read_all(int fd, std::span<std::byte> out, const std::filesystem::path& path);
/// fsync()s a directory, making a rename inside it durable.
void fsync_directory(const std::filesystem::path& dir);
/// Drops the file's clean pages from the page cache (posix_fadvise DONTNEED), so the next
/// read comes from the device. Throws StoreError when the file cannot be opened.
void evict_from_page_cache(const std::filesystem::path& path);

/// One line of the result table.
struct Row {
  std::string benchmark;
  std::string measured;
  std::string floor;
  std::string ratio;
  std::string goal;
  std::string met;
};

/// "812 MiB/s".
std::string format_rate(std::uint64_t bytes, double seconds);
/// "850 ns", "2.41 us", "13.2 ms", "1.07 s".
std::string format_duration(double seconds);
/// "0.93x".
std::string format_ratio(double ratio);
/// "median 2.41 us, p99 5.02 us".
std::string format_latency(const Samples& s);

/// A throughput row: ratio = floor time / measured time (higher is better); goal, when
/// given, is the least acceptable ratio.
Row throughput_row(std::string name, std::uint64_t bytes, double measured_seconds,
                   double floor_seconds, std::optional<double> min_ratio = std::nullopt);
/// A latency row: ratio = measured median / floor median (lower is better); goal, when
/// given, is the largest acceptable ratio.
Row latency_row(std::string name, const Samples& measured, const Samples& floor,
                std::optional<double> max_ratio = std::nullopt);

/// VmHWM of pid (the peak resident memory since the last reset_peak_rss) in bytes (Linux).
std::uint64_t peak_rss(pid_t pid);
/// Resets pid's VmHWM to its current resident memory; throws StoreError when it cannot.
void reset_peak_rss(pid_t pid);

/// Prints rows as a markdown table (with the header line unless header is false).
void print_table(std::ostream& out, const std::vector<Row>& rows, bool header);

/// Runs a benchmark program's body; an exception becomes "name: what" on stderr and exit 1.
int run_main(const char* name, int (*body)(int, char**), int argc, char** argv);

}  // namespace quiver::bench
