// The installed tree (`cmake --install` into a temporary prefix, the hpc_prefix fixture):
// its layout, a program that runs without LD_LIBRARY_PATH, and consumer projects that find
// quiver through its CMake package and through pkg-config.
#include "hpc.hpp"

namespace {

using namespace quiver::hpc;

TEST(Install, LaysOutProgramLibraryHeadersPackageFilesManPageDocsAndModules) {
  const fs::path p = prefix();
  for (const char* f :
       {"bin/quiver", "include/quiver/quiver.hpp", "include/quiver/core/version.hpp",
        "include/quiver/store/cache.hpp", "share/man/man1/quiver.1", "share/doc/quiver/README.md",
        "share/doc/quiver/hpc.md", "share/quiver/slurm/sweep.sbatch",
        "share/quiver/slurm/mpi-job.sbatch", "share/quiver/slurm/quiver.toml"})
    EXPECT_TRUE(fs::exists(p / f)) << f;
  for (const auto& f : {"cmake/quiver/quiverConfig.cmake", "cmake/quiver/quiverConfigVersion.cmake",
                        "cmake/quiver/quiverTargets.cmake", "pkgconfig/quiver.pc"})
    EXPECT_TRUE(fs::exists(p / libdir() / f)) << f;
  EXPECT_TRUE(fs::exists(p / "share/modulefiles/quiver" / (version() + ".lua")));
  EXPECT_TRUE(fs::exists(p / "share/modulefiles/quiver" / version()));
  // The program's headers and the internal ones (they include HDF5, spdlog) stay behind.
  EXPECT_FALSE(fs::exists(p / "include/quiver/cli"));
  EXPECT_FALSE(fs::exists(p / "include/quiver/core/log.hpp"));
  EXPECT_FALSE(fs::exists(p / "include/quiver/store/h5.hpp"));
  bool mpi_lib = false;
  for (const auto& e : fs::directory_iterator(p / libdir()))
    mpi_lib |= e.path().filename().string().starts_with("libquiver_mpi.");
  EXPECT_EQ(mpi_lib, fs::exists(p / libdir() / "cmake/quiver/quiverMpiTargets.cmake"));
}

TEST(Install, TheInstalledProgramRunsWithoutLdLibraryPathThroughItsRunpath) {
  const std::string quiver = (prefix() / "bin/quiver").string();
  auto r = sh("env -u LD_LIBRARY_PATH '" + quiver + "' --version");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "quiver " + version() + "\n");
  auto elf = sh("readelf -d '" + quiver + "'");
  ASSERT_EQ(elf.status, 0) << elf.err;
  EXPECT_NE(elf.out.find("$ORIGIN/../" + libdir()), std::string::npos) << elf.out;
  EXPECT_EQ(elf.out.find(QUIVER_BINARY_DIR), std::string::npos) << "no build-tree RPATH";
  auto ldd = sh("env -u LD_LIBRARY_PATH ldd '" + quiver + "'");
  auto at = ldd.out.find("libquiver.so");
  ASSERT_NE(at, std::string::npos) << ldd.out;
  auto from = ldd.out.find("=> ", at) + 3;
  auto resolved = ldd.out.substr(from, ldd.out.find(' ', from) - from);
  EXPECT_EQ(fs::canonical(resolved).parent_path(), fs::canonical(prefix() / libdir())) << ldd.out;
}

TEST(Install, EveryInstalledHeaderCompilesWithOnlyTheInstalledTree) {
  TempDir dir("quiver-headers");
  std::string serial, mpi;  // the MPI layer's headers need mpi.h: compiled with mpicxx
  for (const auto& e : fs::recursive_directory_iterator(prefix() / "include/quiver")) {
    if (e.path().extension() != ".hpp") continue;
    auto header = fs::relative(e.path(), prefix() / "include").string();
    (header.starts_with("quiver/mpi/") ? mpi : serial) += "#include <" + header + ">\n";
  }
  // HDF5, spdlog, toml++ and OpenSSL are private dependencies of libquiver.
  auto leaks = sh("grep -rlE '#include <(hdf5|H5[A-Za-z]*\\.h|spdlog/|toml\\+\\+/|openssl/)' '" +
                  (prefix() / "include").string() + "'");
  EXPECT_EQ(leaks.out, "") << "installed headers include private dependencies";
  const std::string flags =
      " -std=c++20 -fsyntax-only -I'" + (prefix() / "include").string() + "' ";
  write_file(dir / "serial.cpp", serial);
  auto r = sh("c++" + flags + "'" + (dir / "serial.cpp").string() + "'");
  EXPECT_EQ(r.status, 0) << r.err << serial;
  if (!mpi.empty()) {
    write_file(dir / "mpi.cpp", mpi);
    auto m = sh("mpicxx" + flags + "'" + (dir / "mpi.cpp").string() + "'");
    EXPECT_EQ(m.status, 0) << m.err << mpi;
  }
}

TEST(Install, ACMakeProjectFindsThePackageBuildsAndRuns) {
  TempDir dir("quiver-consumer");
  auto built = build_cmake_consumer(dir.path(), "-DCMAKE_PREFIX_PATH='" + prefix().string() + "'");
  ASSERT_EQ(built.status, 0) << built.out << built.err;
  const bool mpi = fs::exists(prefix() / libdir() / "cmake/quiver/quiverMpiTargets.cmake");
  EXPECT_NE(built.out.find(mpi ? "quiver::mpi target present" : "quiver::mpi target absent"),
            std::string::npos)
      << built.out;
  expect_consumer_memoizes(dir / "build/consumer", dir / "store");
}

TEST(Install, ThePackageRefusesAnotherMajorVersion) {
  TempDir dir("quiver-consumer-version");
  write_file(dir / "CMakeLists.txt",
             "cmake_minimum_required(VERSION 3.20)\nproject(v LANGUAGES NONE)\n"
             "find_package(quiver 99 REQUIRED)\n");
  auto r = sh("cmake -S '" + dir.path().string() + "' -B '" + (dir / "b").string() +
              "' -DCMAKE_PREFIX_PATH='" + prefix().string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE((r.out + r.err).find("requested version \"99\""), std::string::npos) << r.out << r.err;
}

TEST(Install, APkgConfigProjectBuildsAndRunsWithoutLdLibraryPath) {
  TempDir dir("quiver-consumer-pc");
  const std::string pc = "PKG_CONFIG_PATH='" + (prefix() / libdir() / "pkgconfig").string() + "' ";
  auto version_of = sh(pc + "pkg-config --modversion quiver");
  ASSERT_EQ(version_of.status, 0) << version_of.err;
  EXPECT_EQ(version_of.out, version() + "\n");
  auto built = sh(pc + "make -f '" + source_dir("tests/hpc/consumer/pkgconfig/Makefile").string() +
                  "' OUT='" + dir.path().string() + "'");
  ASSERT_EQ(built.status, 0) << built.out << built.err;
  expect_consumer_memoizes(dir / "consumer", dir / "store");
}

}  // namespace
