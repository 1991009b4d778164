// Helpers shared by quiver's tests: temporary directories, running the CLI, sample values.
#pragma once

#include <quiver/core/value.hpp>

#include <filesystem>
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

/// One Value of every kind (nested), for round-trip tests.
Value sample_value_of_every_kind();

/// A deterministic float64 array of n elements (i * 0.5 + seed).
Array ramp(std::uint64_t n, double seed = 0);

}  // namespace quiver::testing
