// Module tests shared by Lmod (modules_lmod_test.cpp) and Tcl environment-modules
// (modules_tcl_test.cpp): each instantiates ModulesTest with its tool's init script. A tool
// that is not installed skips its tests with a message (the two Debian packages conflict,
// so scripts/test.sh runs the Tcl ones in a step of their own).
#pragma once

#include "hpc.hpp"

namespace quiver::hpc {

struct ModuleTool {
  std::string name;
  std::string init;  ///< the bash init script that defines `module`
};

/// Variables the modulefiles may touch, and LD_LIBRARY_PATH, which they must not.
inline const std::vector<std::string> kModuleVariables = {
    "PATH", "MANPATH", "CMAKE_PREFIX_PATH", "PKG_CONFIG_PATH", "QUIVER_ROOT", "LD_LIBRARY_PATH"};

/// Shell lines printing each of kModuleVariables as NAME=<value> or NAME unset.
inline std::string print_variables() {
  std::string s;
  for (const auto& v : kModuleVariables)
    s += "if [ -n \"${" + v + "+x}\" ]; then echo \"" + v + "=$" + v + "\"; else echo '" + v +
         " unset'; fi\n";
  return s;
}

/// Names the instantiation in test names ("Lmod") instead of dumping its bytes.
inline void PrintTo(const ModuleTool& tool, std::ostream* os) {
  *os << tool.name;
}

class ModulesTest : public ::testing::TestWithParam<ModuleTool> {
 protected:
  void SetUp() override {
    if (!fs::exists(GetParam().init))
      GTEST_SKIP() << GetParam().name << " is not installed (" << GetParam().init
                   << " is missing); scripts/test.sh runs these tests with it installed";
  }
  /// A bash preamble: the tool's init, a clean module state, `module use` of the prefix.
  std::string preamble() const {
    return "set -e\nunset LD_LIBRARY_PATH MANPATH CMAKE_PREFIX_PATH PKG_CONFIG_PATH QUIVER_ROOT "
           "MODULEPATH LOADEDMODULES _LMFILES_\nsource '" +
           GetParam().init + "'\nmodule use '" + (prefix() / "share/modulefiles").string() + "'\n";
  }
};

TEST_P(ModulesTest, LoadPutsTheInstalledQuiverOnPathAndSetsTheVariablesButNotLdLibraryPath) {
  auto r = sh(preamble() + "module load quiver\ncommand -v quiver\nquiver --version\n" +
              print_variables());
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const std::string p = prefix().string();
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, p + "/bin/quiver");
  std::getline(lines, line);
  EXPECT_EQ(line, "quiver " + version());
  EXPECT_NE(r.out.find("\nPATH=" + p + "/bin:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nMANPATH=" + p + "/share/man"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nCMAKE_PREFIX_PATH=" + p + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nPKG_CONFIG_PATH=" + p + "/" + libdir() + "/pkgconfig\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\nQUIVER_ROOT=" + p + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nLD_LIBRARY_PATH unset\n"), std::string::npos) << r.out;
}

TEST_P(ModulesTest, UnloadRestoresTheEnvironment) {
  // MANPATH unset (load adds a trailing empty entry, so that man keeps its system
  // directories) and set.
  for (const std::string manpath : {"unset MANPATH", "export MANPATH=/usr/share/man"}) {
    auto r = sh(preamble() + "export PATH=/usr/local/bin:/usr/bin:/bin\n" + manpath + "\n" +
                print_variables() + "echo ---\nmodule load quiver\n" + print_variables() +
                "echo ---\nmodule unload quiver\n" + print_variables());
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    auto before = r.out.substr(0, r.out.find("---\n"));
    auto loaded = r.out.substr(r.out.find("---\n") + 4);
    auto after = loaded.substr(loaded.find("---\n") + 4);
    loaded = loaded.substr(0, loaded.find("---\n"));
    EXPECT_NE(before, loaded) << "load changes the environment";
    EXPECT_EQ(before, after) << "unload restores it (" << manpath << ")";
  }
}

TEST_P(ModulesTest, WhatisAndHelpDescribeThePackage) {
  auto r = sh(preamble() + "module whatis quiver 2>&1\nmodule help quiver 2>&1\n");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Version: " + version()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("A shared result cache for HPC jobs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("find_package(quiver)"), std::string::npos) << r.out;
}

TEST_P(ModulesTest, AfterLoadACMakeProjectAndPkgConfigFindQuiverWithoutHints) {
  TempDir dir("quiver-module-consumer");
  auto built = build_cmake_consumer(dir.path(), "", preamble() + "module load quiver");
  ASSERT_EQ(built.status, 0) << built.out << built.err;
  expect_consumer_memoizes(dir / "build/consumer", dir / "store");
  auto pc = sh(preamble() + "module load quiver\npkg-config --variable=libdir quiver\n");
  ASSERT_EQ(pc.status, 0) << pc.err;
  EXPECT_EQ(fs::canonical(pc.out.substr(0, pc.out.size() - 1)), fs::canonical(prefix() / libdir()));
}

}  // namespace quiver::hpc
