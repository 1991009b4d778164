// Shared by the soak tests (tests/soak/, tests/mpi/soak_test.cpp): the soak's length and the
// resource figures sampled before and after.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <ostream>
#include <quiver/core/value.hpp>
#include <sstream>
#include <string>

#include "testing/testing.hpp"

namespace quiver::testing {

/// The soak's length in seconds: $QUIVER_SOAK_SECONDS (at least 2), else default_seconds.
inline double soak_seconds(double default_seconds = 60) {
  const char* env = std::getenv("QUIVER_SOAK_SECONDS");
  if (env && *env) return std::max(2.0, std::stod(env));
  return default_seconds;
}

/// The field ("VmRSS:", "VmHWM:") of process pid's status ("self": this one) in KiB (-1 when
/// it cannot be read).
inline std::int64_t status_kib(const std::string& pid, const std::string& field) {
  std::ifstream in("/proc/" + pid + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(field.size()));
  return -1;
}

/// VmRSS of process pid ("self" for this one) in KiB (-1 when it cannot be read).
inline std::int64_t rss_kib(const std::string& pid) {
  return status_kib(pid, "VmRSS:");
}

/// Peak resident memory of pid since its last reset_peak_rss (VmHWM) in KiB.
inline std::int64_t peak_rss_kib(const std::string& pid) {
  return status_kib(pid, "VmHWM:");
}

// Sanitizers keep shadow memory for every allocation: resident memory says nothing there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QUIVER_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define QUIVER_TEST_SANITIZED 1
#endif
#endif
/// True in a sanitizer build, where resident memory figures mean nothing.
#ifdef QUIVER_TEST_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

/// Resets pid's peak resident memory to its current one (Linux >= 4.0).
inline void reset_peak_rss(const std::string& pid) {
  std::ofstream("/proc/" + pid + "/clear_refs") << "5";
}

/// Number of live processes whose parent is this process (a scan of /proc).
inline int child_process_count() {
  int n = 0;
  const auto self = std::to_string(::getpid());
  std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
  if (!proc) return -1;
  while (const dirent* e = ::readdir(proc.get())) {
    const std::string name = e->d_name;
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream in("/proc/" + name + "/stat");
    std::string stat;
    std::getline(in, stat);
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(paren + 1));
    std::string state, ppid;
    rest >> state >> ppid;
    if (ppid == self) ++n;
  }
  return n;
}

/// This process's open descriptors, threads, child processes and resident memory.
struct Resources {
  std::int64_t fds = 0;
  std::int64_t threads = 0;
  std::int64_t children = 0;
  std::int64_t rss_kib = 0;
};

inline Resources resources() {
  return {static_cast<std::int64_t>(open_fd_count()), static_cast<std::int64_t>(thread_count()),
          child_process_count(), rss_kib("self")};
}

inline std::ostream& operator<<(std::ostream& os, const Resources& r) {
  return os << "fds " << r.fds << ", threads " << r.threads << ", children " << r.children
            << ", rss " << r.rss_kib << " KiB";
}

/// A soak result of mixed sizes, by (k + g) % 5: a scalar, a string, 16 doubles, an array
/// of `medium` doubles, an array of `large` doubles. Deterministic in k and g.
inline Value mixed_value(int k, int g, std::uint64_t medium, std::uint64_t large) {
  switch ((k + g) % 5) {
    case 0:
      return Value(static_cast<std::int64_t>(k * 1000 + g));
    case 1:
      return Value("k" + std::to_string(k) + "g" + std::to_string(g));
    case 2:
      return Value(ramp(16, g));
    case 3:
      return Value(ramp(medium, g));
    default:
      return Value(ramp(large, g));
  }
}

}  // namespace quiver::testing
