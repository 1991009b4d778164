// The Slurm scripts of slurm/ on a real single-node Slurm (the hpc_slurm fixture), with
// quiver from the installed prefix loaded through Lmod inside the jobs.
#include <sys/stat.h>

#include <iostream>
#include <ssh/ssh_fixture.hpp>

#include "hpc.hpp"

namespace {

using namespace quiver::hpc;

const std::string kLmodInit = "/usr/share/lmod/lmod/init/bash";

class SlurmTest : public ::testing::Test {
 public:
  TempDir dir{"quiver-slurm"};
  fs::path marker = dir / "marker";

  void SetUp() override {
    if (!fs::exists(kLmodInit))
      GTEST_SKIP() << "Lmod is not installed: the jobs load quiver with it";
    ::chmod(dir.path().c_str(), 0755);
  }

  /// Submits script (with script_args) from dir with sbatch --wait and extra sbatch
  /// options, in a shell where
  /// Lmod knows the installed modulefiles but quiver is not on PATH (the job loads it).
  RunResult submit(const std::string& script, const std::string& options,
                   const std::string& script_args = {}) {
    return sh("set -e\nexport SLURM_CONF='" + (fs::path(QUIVER_HPC_SLURM) / "slurm.conf").string() +
              "' PATH=/usr/local/bin:/usr/bin:/bin\nsource " + kLmodInit + "\nmodule use '" +
              (prefix() / "share/modulefiles").string() + "'\ncd '" + dir.path().string() +
              "'\nsbatch --wait --quiet " + options + " '" +
              source_dir("slurm/" + script).string() + "' " + script_args);
  }

  int runs() const {
    std::string text = fs::exists(marker) ? read_file(marker) : "";
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  }

  /// Every job log in dir, for failure messages.
  std::string logs() const {
    std::string all;
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().extension() == ".out") all += e.path().string() + ":\n" + read_file(e.path());
    return all;
  }
};

TEST_F(SlurmTest, AResubmittedJobArraySkipsEveryFinishedPoint) {
  // The "simulation": appends to the marker, then writes its point's result.
  write_file(dir / "simulate",
             "#!/bin/sh\n# usage: simulate --params F --x X --out FILE\n"
             "echo \"$4\" >> '" +
                 marker.string() +
                 "'\n"
                 "printf 'x=%s params=%s\\n' \"$4\" \"$(cat \"$2\")\" > \"$6\"\n");
  ::chmod((dir / "simulate").c_str(), 0755);
  write_file(dir / "params.in", "steps=10\n");
  write_file(dir / "quiver.toml",
             "[default]\ncache = \"cluster\"\n[cluster]\ntype = \"hdf5\"\n"
             "path = \"" +
                 (dir / "store").string() + "\"\n");

  auto first = submit("sweep.sbatch", "--array=0-2 --export=ALL,SWEEP_POINTS='0.5 1.5 2.5'");
  ASSERT_EQ(first.status, 0) << first.out << first.err << logs();
  EXPECT_EQ(runs(), 3);
  std::vector<std::string> results;
  for (int i = 0; i < 3; ++i) {
    results.push_back(read_file(dir / "results" / ("point-" + std::to_string(i) + ".txt")));
    EXPECT_EQ(results.back().rfind("x=", 0), 0u) << results.back();
  }
  EXPECT_EQ(results[1], "x=1.5 params=steps=10\n");

  fs::remove_all(dir / "results");
  auto second = submit("sweep.sbatch", "--array=0-2 --export=ALL,SWEEP_POINTS='0.5 1.5 2.5'");
  ASSERT_EQ(second.status, 0) << second.out << second.err << logs();
  EXPECT_EQ(runs(), 3) << "no point ran again";
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(read_file(dir / "results" / ("point-" + std::to_string(i) + ".txt")), results[i]);

  // One more point: only it runs.
  auto third = submit("sweep.sbatch", "--array=0-3 --export=ALL,SWEEP_POINTS='0.5 1.5 2.5 3.5'");
  ASSERT_EQ(third.status, 0) << third.out << third.err << logs();
  EXPECT_EQ(runs(), 4);
  EXPECT_EQ(
      read_file(marker).substr(read_file(marker).rfind('\n', read_file(marker).size() - 2) + 1),
      "3.5\n");
}

/// The MPI demo built with the tests (an MPI program on quiver::mpi), or a skip.
fs::path mpi_demo() {
  return fs::path(QUIVER_BINARY_DIR) / "bin/quiver_demo";
}

/// Its summary line: "<hits> of <runs> sweep runs and the|not the parallel run served ...".
std::string summary_of(const std::string& log) {
  auto at = log.find(" sweep runs and ");
  if (at == std::string::npos) return "no summary in:\n" + log;
  auto begin = log.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  return log.substr(begin, log.find('\n', at) - begin);
}

/// Submits mpi-job.sbatch with 2 ranks running the demo on a small grid; returns the
/// demo's summary line from the job log.
std::string run_mpi_job(SlurmTest& t, RunResult& r) {
  for (const auto& e : fs::directory_iterator(t.dir.path()))
    if (e.path().extension() == ".out") fs::remove(e.path());
  r = t.submit("mpi-job.sbatch", "--ntasks=2 --export=ALL,APP=" + mpi_demo().string(), "24 40");
  return summary_of(t.logs());
}

TEST_F(SlurmTest, TheMpiJobRunsThroughSrunAndASecondSubmissionIsServedFromTheCache) {
  if (!fs::exists(mpi_demo())) GTEST_SKIP() << mpi_demo() << " is not built (needs MPI)";
  write_file(dir / "quiver.toml",
             "[default]\ncache = \"cluster\"\n[cluster]\ntype = \"hdf5\"\n"
             "path = \"" +
                 (dir / "store").string() + "\"\n");
  RunResult r;
  auto first = run_mpi_job(*this, r);
  ASSERT_EQ(r.status, 0) << r.out << r.err << logs();
  EXPECT_NE(logs().find("2 ranks"), std::string::npos) << logs();
  EXPECT_EQ(first.rfind("0 of ", 0), 0u) << first;
  EXPECT_NE(first.find("not the parallel run"), std::string::npos) << first;
  auto second = run_mpi_job(*this, r);
  ASSERT_EQ(r.status, 0) << r.out << r.err << logs();
  auto runs = first.substr(first.find(" of ") + 4);
  runs = runs.substr(0, runs.find(' '));
  EXPECT_EQ(second.rfind(runs + " of " + runs + " sweep runs and the parallel run", 0), 0u)
      << second;
}

/// Connections the fixture's sshd accepted so far (one "Accepted publickey" line each).
int ssh_connections(const quiver::testing::SshFixture& f) {
  return quiver::testing::count_occurrences(fs::path(f.config).parent_path() / "sshd.log",
                                            "Accepted publickey");
}

// The end-to-end path: the job's rank 0 reaches the cluster cache through one ssh
// connection to the loopback sshd, whose login shell runs `module load quiver` (Lmod, the
// installed modulefile) before `quiver serve --stdio`.
TEST_F(SlurmTest, TheMpiJobUsesOneSshConnectionWithModuleLoadAndIsServedFromItNextTime) {
  if (!fs::exists(mpi_demo())) GTEST_SKIP() << mpi_demo() << " is not built (needs MPI)";
  const quiver::testing::SshFixture* f = nullptr;
  try {
    f = &quiver::testing::SshFixture::get();
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no loopback sshd (ctest fixture sshd): " << e.what();
  }
  quiver::testing::RemoteDir remote("slurm-mpi");
  remote.write_config();
  // As slurm/quiver.toml's [[job]]: node-local scratch private to the job, then the cluster
  // cache over ssh, which also receives every save (write_through).
  write_file(dir / "quiver.toml",
             "[default]\ncache = \"job\"\n"
             "[[job]]\ntype = \"hdf5\"\npath = \"" +
                 (dir / "scratch").string() +
                 "/quiver-${SLURM_JOB_ID}\"\nfsync = false\n"
                 "[[job]]\ntype = \"ssh\"\nhost = \"" +
                 f->host + "\"\nssh_options = [\"-F\", \"" + f->config + "\"]\nworkdir = \"" +
                 remote.path().string() + "\"\nsetup_commands = [\"module use " +
                 (prefix() / "share/modulefiles").string() +
                 "\", \"module load quiver\"]\nlogin_shell = true\nwrite_through = true\n");
  RunResult r;
  const int before = ssh_connections(*f);
  auto first = run_mpi_job(*this, r);
  ASSERT_EQ(r.status, 0) << r.out << r.err << logs();
  EXPECT_EQ(ssh_connections(*f) - before, 1) << "one ssh connection for the whole job";
  EXPECT_EQ(first.rfind("0 of ", 0), 0u) << first;
  EXPECT_TRUE(fs::exists(remote / "store")) << "the results went to the remote store";
  // The second job has a scratch layer of its own: its hits come from the cluster.
  auto second = run_mpi_job(*this, r);
  ASSERT_EQ(r.status, 0) << r.out << r.err << logs();
  EXPECT_EQ(ssh_connections(*f) - before, 2);
  auto runs = first.substr(first.find(" of ") + 4);
  runs = runs.substr(0, runs.find(' '));
  EXPECT_EQ(second.rfind(runs + " of " + runs + " sweep runs and the parallel run", 0), 0u)
      << second;
  std::cout << "first job:  " << first << "\nsecond job: " << second << '\n';
}

}  // namespace
