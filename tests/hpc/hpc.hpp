// Helpers of the hpc tests: the installed prefix (hpc_prefix fixture), shell commands and
// the consumer projects under tests/hpc/consumer.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <quiver/core/version.hpp>
#include <sstream>
#include <string>
#include <testing/testing.hpp>

namespace quiver::hpc {

namespace fs = std::filesystem;
using quiver::testing::RunResult;
using quiver::testing::TempDir;

/// Where the hpc_prefix fixture installed quiver.
inline fs::path prefix() {
  return QUIVER_HPC_PREFIX;
}
/// The library directory relative to the prefix (GNUInstallDirs).
inline std::string libdir() {
  return QUIVER_HPC_LIBDIR;
}
inline std::string version() {
  return kVersion;
}
/// A file of the source tree.
inline fs::path source_dir(const std::string& relative) {
  return fs::path(QUIVER_SOURCE_DIR) / relative;
}

/// Runs script with bash; captures stdout and stderr.
inline RunResult sh(const std::string& script, const std::vector<std::string>& env = {}) {
  return quiver::testing::run({"bash", "-c", script}, env);
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// After preamble (shell commands, e.g. `module load quiver`), configures and builds the
/// CMake consumer project into dir/build with extra cmake_args.
inline RunResult build_cmake_consumer(const fs::path& dir, const std::string& cmake_args,
                                      const std::string& preamble = {}) {
  const std::string src = source_dir("tests/hpc/consumer/cmake").string();
  const std::string build = (dir / "build").string();
  return sh(preamble + "\ncmake -S '" + src + "' -B '" + build + "' " + cmake_args +
            " && cmake --build '" + build + "'");
}

/// Runs a built consumer twice on store without LD_LIBRARY_PATH: a miss, then a hit with
/// the same digest and result.
inline void expect_consumer_memoizes(const fs::path& exe, const fs::path& store) {
  const std::string cmd = "env -u LD_LIBRARY_PATH '" + exe.string() + "' '" + store.string() + "'";
  auto first = sh(cmd);
  ASSERT_EQ(first.status, 0) << first.err;
  auto second = sh(cmd);
  ASSERT_EQ(second.status, 0) << second.err;
  std::istringstream a(first.out), b(second.out);
  std::string name, va, vb, miss, hit, da, db, ra, rb;
  a >> name >> va >> miss >> da >> ra;
  b >> name >> vb >> hit >> db >> rb;
  EXPECT_EQ(va, version());
  EXPECT_EQ(miss, "miss") << first.out;
  EXPECT_EQ(hit, "hit") << second.out;
  EXPECT_EQ(da, db);
  EXPECT_EQ(da.size(), 64u);
  EXPECT_EQ(ra, "144");
  EXPECT_EQ(rb, "144");
}

}  // namespace quiver::hpc
