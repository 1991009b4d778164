#include "bench.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <sstream>

namespace quiver::bench {

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

std::string format_number(double x) {
  char buf[32];
  const char* fmt = x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : "%.2f";
  std::snprintf(buf, sizeof(buf), fmt, x);
  return buf;
}

}  // namespace

double seconds_since(SteadyClock::time_point t0) noexcept {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

double Samples::percentile(double p) const {
  if (values_.empty()) throw InvalidArgument("no samples", "quiver::bench::Samples");
  std::vector<double> sorted = values_;
  std::sort(sorted.begin(), sorted.end());
  const auto rank =
      static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

Flags::Flags(int argc, char** argv, std::string usage) : args_(argv + 1, argv + argc) {
  used_.assign(args_.size(), false);
  if (std::find(args_.begin(), args_.end(), "--help") != args_.end() ||
      std::find(args_.begin(), args_.end(), "-h") != args_.end()) {
    std::cout << usage;
    std::exit(0);
  }
}

std::optional<std::string> Flags::value_of(std::string_view name, const char* env) {
  for (std::size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] != name) continue;
    if (i + 1 >= args_.size()) throw InvalidArgument("flag needs a value", std::string(name));
    used_[i] = used_[i + 1] = true;
    return args_[i + 1];
  }
  if (env != nullptr) {
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return std::string(v);
  }
  return std::nullopt;
}

std::uint64_t parse_size(std::string_view text, std::string_view what) {
  const std::string s(text);
  std::size_t end = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(s, &end);
  } catch (const std::exception&) {
    throw InvalidArgument("not a number: " + s, std::string(what));
  }
  std::string suffix = s.substr(end);
  if (suffix.ends_with("iB")) suffix.resize(suffix.size() - 2);
  if (suffix.empty()) return n;
  if (suffix == "K" || suffix == "k") return n << 10;
  if (suffix == "M") return n << 20;
  if (suffix == "G") return n << 30;
  throw InvalidArgument("unknown suffix in " + s + " (use K, M or G)", std::string(what));
}

std::uint64_t Flags::size(std::string_view name, const char* env, std::uint64_t fallback) {
  const auto text = value_of(name, env);
  return text ? parse_size(*text, name) : fallback;
}

std::string Flags::text(std::string_view name, const char* env, std::string fallback) {
  auto v = value_of(name, env);
  return v ? *v : std::move(fallback);
}

bool Flags::present(std::string_view name, const char* env) {
  for (std::size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == name) {
      used_[i] = true;
      return true;
    }
  }
  if (env == nullptr) return false;
  const char* v = std::getenv(env);
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

void Flags::finish() const {
  for (std::size_t i = 0; i < args_.size(); ++i) {
    if (!used_[i]) throw InvalidArgument("unknown argument " + args_[i] + " (see --help)", "flags");
  }
}

std::string default_work_dir() {
  const char* t = std::getenv("TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/tmp";
}

ScratchDir::ScratchDir(const std::filesystem::path& parent, std::string_view tag) {
  std::filesystem::create_directories(parent);
  std::string pattern = (parent / (std::string(tag) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw StoreError("cannot create scratch directory: " + errno_text(), pattern);
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  if (keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) std::cerr << "warning: cannot remove " << path_ << ": " << ec.message() << "\n";
}

void write_all(int fd, std::span<const std::byte> data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StoreError("write failed: " + errno_text(), path.string());
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
}

void read_all(int fd, std::span<std::byte> out, const std::filesystem::path& path) {
  while (!out.empty()) {
    const ssize_t n = ::read(fd, out.data(), out.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StoreError("read failed: " + errno_text(), path.string());
    }
    if (n == 0) throw StoreError("unexpected end of file", path.string());
    out = out.subspan(static_cast<std::size_t>(n));
  }
}

void fsync_directory(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw StoreError("cannot open directory: " + errno_text(), dir.string());
  if (::fsync(fd.get()) != 0) throw StoreError("fsync failed: " + errno_text(), dir.string());
}

void evict_from_page_cache(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw StoreError("cannot open: " + errno_text(), path.string());
  // Dirty pages cannot be dropped: write them back first.
  if (::fdatasync(fd.get()) != 0)
    throw StoreError("fdatasync failed: " + errno_text(), path.string());
  if (const int rc = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED); rc != 0)
    throw StoreError(std::string("posix_fadvise failed: ") + std::strerror(rc), path.string());
}

std::string format_rate(std::uint64_t bytes, double seconds) {
  return format_number(static_cast<double>(bytes) / (1 << 20) / seconds) + " MiB/s";
}

std::string format_duration(double seconds) {
  if (seconds < 1e-6) return format_number(seconds * 1e9) + " ns";
  if (seconds < 1e-3) return format_number(seconds * 1e6) + " us";
  if (seconds < 1) return format_number(seconds * 1e3) + " ms";
  return format_number(seconds) + " s";
}

std::string format_ratio(double ratio) {
  return format_number(ratio) + "x";
}

std::string format_latency(const Samples& s) {
  return "median " + format_duration(s.median()) + ", p99 " + format_duration(s.percentile(99));
}

Row throughput_row(std::string name, std::uint64_t bytes, double measured_seconds,
                   double floor_seconds, std::optional<double> min_ratio) {
  const double ratio = floor_seconds / measured_seconds;
  Row row{std::move(name),
          format_rate(bytes, measured_seconds),
          format_rate(bytes, floor_seconds),
          format_ratio(ratio),
          "",
          ""};
  if (min_ratio) {
    row.goal = ">= " + format_ratio(*min_ratio);
    row.met = ratio >= *min_ratio ? "yes" : "no";
  }
  return row;
}

Row latency_row(std::string name, const Samples& measured, const Samples& floor,
                std::optional<double> max_ratio) {
  const double ratio = measured.median() / floor.median();
  Row row{std::move(name),
          format_latency(measured),
          format_latency(floor),
          format_ratio(ratio),
          "",
          ""};
  if (max_ratio) {
    row.goal = "<= " + format_ratio(*max_ratio);
    row.met = ratio <= *max_ratio ? "yes" : "no";
  }
  return row;
}

void print_table(std::ostream& out, const std::vector<Row>& rows, bool header) {
  if (header) {
    out << "| benchmark | measured | floor | ratio | goal | met |\n"
        << "|---|---|---|---|---|---|\n";
  }
  const auto cell = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  for (const Row& r : rows) {
    out << "| " << cell(r.benchmark) << " | " << cell(r.measured) << " | " << cell(r.floor) << " | "
        << cell(r.ratio) << " | " << cell(r.goal) << " | " << cell(r.met) << " |\n";
  }
  out.flush();
}

int run_main(const char* name, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << name << ": " << e.what() << "\n";
    return 1;
  }
}

std::uint64_t peak_rss(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  throw StoreError("no VmHWM", "/proc/" + std::to_string(pid) + "/status");
}

void reset_peak_rss(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/clear_refs";
  std::ofstream out(path);
  out << "5";
  if (!out) throw StoreError("cannot reset the peak RSS (needs Linux >= 4.0 and permission)", path);
}

}  // namespace quiver::bench
