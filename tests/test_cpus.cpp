// CPUs a run may use (affinity, cgroup quotas) and the warning for a machine other processes
// keep busy.
#include <gtest/gtest.h>
#include <sys/sysinfo.h>

#include <csignal>

#include "core/cpus.h"
#include "test_util.h"

namespace stoch {
namespace {

class CgroupQuota : public ::testing::Test {
 protected:
  void SetUp() override { root_ = test::temp_dir("cgroup"); }
  void write(const std::string& path, const std::string& text) {
    test::fs::create_directories(test::fs::path(root_ + path).parent_path());
    test::write_text(root_ + path, text + "\n");
  }
  std::string root_;
};

TEST_F(CgroupQuota, V2TakesTheSmallestLimitFromTheGroupUpToTheRoot) {
  write("/a/b/cpu.max", "150000 100000");
  EXPECT_EQ(cgroup_cpu_quota("0::/a/b\n", root_), 2);  // 1.5 CPUs: 2 threads
  write("/a/cpu.max", "100000 100000");
  EXPECT_EQ(cgroup_cpu_quota("0::/a/b\n", root_), 1);
  write("/a/cpu.max", "max 100000");
  write("/a/b/cpu.max", "max 100000");
  EXPECT_EQ(cgroup_cpu_quota("0::/a/b\n", root_), std::nullopt);
  EXPECT_EQ(cgroup_cpu_quota("0::/\n", root_), std::nullopt);  // no cpu.max at all
}

TEST_F(CgroupQuota, V1ReadsTheCpuControllersQuotaAndPeriod) {
  write("/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "400000");
  write("/cpu,cpuacct/docker/x/cpu.cfs_period_us", "100000");
  write("/memory/docker/x/cpu.cfs_quota_us", "100000");  // not the cpu controller's
  write("/memory/docker/x/cpu.cfs_period_us", "100000");
  const std::string self = "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n1:name=systemd:/\n";
  EXPECT_EQ(cgroup_cpu_quota(self, root_), 4);
  write("/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "-1");
  EXPECT_EQ(cgroup_cpu_quota(self, root_), std::nullopt);
}

// Inside a container the host's path is not there: the container's own group is the mount's
// root, which the walk up reaches.
TEST_F(CgroupQuota, AContainersGroupIsFoundAtItsRoot) {
  write("/cpu/cpu.cfs_quota_us", "250000");
  write("/cpu/cpu.cfs_period_us", "100000");
  EXPECT_EQ(cgroup_cpu_quota("3:cpu:/kubepods/pod1/c2\n", root_), 3);
}

TEST(OversubscriptionWarning, OnlyWhenThreadsAndOthersOutnumberTheCpus) {
  EXPECT_EQ(oversubscription_warning(2, 0, 2), "");
  EXPECT_EQ(oversubscription_warning(1, 7, 2), "");  // one thread never waits on another
  EXPECT_EQ(oversubscription_warning(4, 3, 8), "");
  EXPECT_EQ(oversubscription_warning(2, -1, 2), "");  // unknown
  EXPECT_EQ(oversubscription_warning(4, 2, 4),
            "other processes keep 2 threads busy on this machine's 4 CPUs: this run's 4 threads "
            "may run slower than fewer would, as OpenMP's threads spin while they wait (1.5-3x "
            "on 2 CPUs, docs/benchmarks.md); set run.threads to 2");
  const std::string full = oversubscription_warning(2, 3, 2);
  EXPECT_EQ(full.substr(full.rfind(';')), "; set run.threads to 1");
  // A sweep's runs at a time count together, and the advice is per run.
  EXPECT_EQ(sweep_oversubscription_warning(4, 2, 0, 8), "");
  EXPECT_EQ(sweep_oversubscription_warning(4, 2, 2, 8),
            "other processes keep 2 threads busy on this machine's 8 CPUs: this sweep's 2 runs at "
            "a time of 4 threads each may run slower than fewer would, as OpenMP's threads spin "
            "while they wait (1.5-3x on 2 CPUs, docs/benchmarks.md); add --set run.threads=3");
  const std::string sweep_full = sweep_oversubscription_warning(2, 2, 3, 4);
  EXPECT_EQ(sweep_full.substr(sweep_full.rfind(';')), "; add --set run.threads=1");
}

// run.threads: 0 takes the CPUs the process may use, not every CPU of the host.
TEST(UsableCpus, TasksetLimitsRunThreadsZero) {
  const std::string dir = test::temp_dir("cpus");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(1));
  const auto r = test::run_command("taskset -c 0 " + std::string(STOCH_BINARY) + " train " + dir +
                                   "/c.yaml --run-dir " + dir + "/run --set run.threads=0");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("device cpu (fp32), 1 thread on"), std::string::npos) << r.output;
  EXPECT_GE(usable_cpus(), 1);
  EXPECT_LE(usable_cpus(), get_nprocs());
}

TEST(BusyMachine, ARunWithMoreThreadsThanFreeCpusIsWarned) {
  const std::string dir = test::temp_dir("cpus");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(1));
  std::vector<pid_t> busy;
  for (int i = 0; i < std::max(1, get_nprocs() - 1); ++i)
    busy.push_back(test::spawn({"sh", "-c", "while :; do :; done"}, "/dev/null"));
  const auto r =
      test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run --set run.threads=2");
  for (const pid_t p : busy) {
    ::kill(p, SIGKILL);
    test::wait_exit(p);
  }
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("warning other processes keep "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("this run's 2 threads may run slower than fewer would"),
            std::string::npos)
      << r.output;
}

// A sweep's runs log the warning where its user does not look: the sweep says it too, unless
// run.threads was chosen.
TEST(BusyMachine, ASweepWhoseRunsOutnumberTheFreeCpusIsWarned) {
  if (usable_cpus() < 2) GTEST_SKIP() << "one CPU: a sweep's runs get one thread, never warned";
  const std::string dir = test::temp_dir("cpus");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(1));
  std::vector<pid_t> busy;
  for (int i = 0; i < std::max(1, get_nprocs() - 1); ++i)
    busy.push_back(test::spawn({"sh", "-c", "while :; do :; done"}, "/dev/null"));
  const std::string sweep = "sweep " + dir + "/c.yaml --jobs 1 --out " + dir;
  const auto shared = test::run_stoch(sweep + "/a");
  const auto chosen = test::run_stoch(sweep + "/b --set run.threads=2");
  for (const pid_t p : busy) {
    ::kill(p, SIGKILL);
    test::wait_exit(p);
  }
  ASSERT_EQ(shared.code, 0) << shared.output;
  EXPECT_NE(shared.output.find("warning sweep: other processes keep "), std::string::npos)
      << shared.output;
  EXPECT_NE(shared.output.find("this sweep's 1 run at a time of "), std::string::npos)
      << shared.output;
  EXPECT_NE(shared.output.find("; add --set run.threads=1"), std::string::npos) << shared.output;
  ASSERT_EQ(chosen.code, 0) << chosen.output;
  EXPECT_EQ(chosen.output.find("warning sweep:"), std::string::npos) << chosen.output;
}

}  // namespace
}  // namespace stoch
