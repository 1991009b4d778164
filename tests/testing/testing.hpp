// Helpers shared by quiver's tests: temporary directories, running the CLI, sample values.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <quiver/core/value.hpp>
#include <string>
#include <vector>

namespace quiver::testing {

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view tag = "quiver-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// Result of running a program to completion.
struct RunResult {
  int status = -1;  ///< exit code, or 128+signal
  std::string out;
  std::string err;
};

/// Runs argv (argv[0] resolved through PATH) with extra environment entries ("K=V"),
/// optional stdin text; captures stdout and stderr.
RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
              const std::string& input = {});
/// Runs the quiver CLI built with the tests.
RunResult run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                  const std::string& input = {});
/// Path of the quiver CLI built with the tests.
std::string cli_path();

/// Number of file descriptors this process has open (entries of /proc/self/fd).
std::size_t open_fd_count();
/// How many times needle occurs in the file at path (0 when it cannot be read).
int count_occurrences(const std::filesystem::path& path, std::string_view needle);
/// Number of threads of this process (entries of /proc/self/task).
std::size_t thread_count();
/// Polls pred (about every millisecond) until it holds or timeout passes; returns whether
/// it held. For waiting on other processes and threads without fixed sleeps.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

/// The what() of the exception fn throws, which must be an E (a gtest failure otherwise).
template <class E, class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no exception";
  return {};
}

/// One Value of every kind (nested), for round-trip tests.
Value sample_value_of_every_kind();

/// A deterministic float64 array of n elements (i * 0.5 + seed).
Array ramp(std::uint64_t n, double seed = 0);

}  // namespace quiver::testing
