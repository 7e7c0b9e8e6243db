#include "core/cpus.h"

#include <sched.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "core/strings.h"
#include "core/whole_file.h"

namespace stoch {
namespace {

std::optional<std::string> first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

// ceil(quota / period) for a positive quota and period; nullopt for "no limit" (max, -1) or
// anything unreadable.
std::optional<int> whole_cpus(const std::string& quota, const std::string& period) {
  try {
    const double q = std::stod(quota), p = std::stod(period);
    if (!(q > 0) || !(p > 0)) return std::nullopt;
    return std::max(1, static_cast<int>(std::ceil(q / p - 1e-9)));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The quota of one group's folder: v2's "QUOTA PERIOD" in cpu.max, or v1's pair of files.
std::optional<int> quota_in(const std::string& dir) {
  if (const auto max = first_line(dir + "/cpu.max")) {
    std::istringstream in(*max);
    std::string quota, period;
    in >> quota >> period;
    return whole_cpus(quota, period);
  }
  const auto quota = first_line(dir + "/cpu.cfs_quota_us");
  const auto period = first_line(dir + "/cpu.cfs_period_us");
  if (quota && period) return whole_cpus(*quota, *period);
  return std::nullopt;
}

std::optional<int> smaller(std::optional<int> a, std::optional<int> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

}  // namespace

std::optional<int> cgroup_cpu_quota(const std::string& proc_self_cgroup,
                                    const std::string& cgroup_root) {
  std::optional<int> limit;
  std::istringstream lines(proc_self_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // "ID:CONTROLLERS:PATH"; v2 has ID 0 and no controllers.
    const auto a = line.find(':'), b = line.find(':', a == std::string::npos ? a : a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::vector<std::string> mounts;
    if (controllers.empty()) {
      mounts = {cgroup_root, cgroup_root + "/unified"};
    } else {
      bool cpu = false;
      for (const auto& c : split(controllers, ',')) cpu |= c == "cpu";
      if (!cpu) continue;
      mounts = {cgroup_root + "/cpu", cgroup_root + "/cpu,cpuacct", cgroup_root + "/cpuacct,cpu"};
    }
    // Every group from the process's own up to the root may limit it. Inside a container the
    // path names the host's group, which the container sees as its root: the walk gets there.
    for (;;) {
      for (const auto& m : mounts) limit = smaller(limit, quota_in(m + path));
      if (path.empty() || path == "/") break;
      const auto slash = path.rfind('/');
      path = slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
    }
  }
  return limit;
}

int usable_cpus() {
  int cpus = get_nprocs();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (const auto quota = cgroup_cpu_quota(read_whole_file("/proc/self/cgroup").value_or("")))
    cpus = std::min(cpus, *quota);
  return std::max(1, cpus);
}

namespace {

// Threads of this process that are running now (state R in /proc/self/task/*/stat).
int own_running() {
  int n = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto close = stat.rfind(')');  // the name may hold spaces and parentheses
    if (close != std::string::npos && close + 2 < stat.size()) n += stat[close + 2] == 'R';
  }
  return n;
}

}  // namespace

int others_running() {
  std::vector<int> samples;
  for (int i = 0; i < 5; ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream in("/proc/stat");
    std::string key;
    long value = -1;
    while (in >> key) {
      if (key == "procs_running") {
        in >> value;
        break;
      }
      in.ignore(1 << 20, '\n');
    }
    if (value < 1) return -1;
    samples.push_back(std::max(0, static_cast<int>(value) - own_running()));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

namespace {

// `jobs` == 0: one run; otherwise a sweep's runs at a time.
std::string warning(int threads, int others, int cpus, int jobs) {
  const int processes = std::max(1, jobs);
  if (threads <= 1 || others < 0 || threads * processes + others <= cpus) return "";
  const int fits = std::min(threads, std::max(1, (cpus - others) / processes));
  return stoch::str(
      "other processes keep ", counted(others, "thread"), " busy on this machine's ",
      counted(cpus, "CPU"), ": ",
      jobs == 0 ? stoch::str("this run's ", threads, " threads")
                : stoch::str("this sweep's ", counted(jobs, "run"), " at a time of ", threads,
                             " threads each"),
      " may run slower than fewer would, as OpenMP's threads spin while they wait (1.5-3x on 2 "
      "CPUs, docs/benchmarks.md); ",
      jobs == 0 ? "set run.threads to " : "add --set run.threads=", fits);
}

}  // namespace

std::string busy_machine_warning(int threads) {
  return threads > 1 ? warning(threads, others_running(), get_nprocs(), 0) : "";
}

std::string busy_machine_sweep_warning(int threads, int jobs) {
  return threads > 1 ? warning(threads, others_running(), get_nprocs(), jobs) : "";
}

std::string oversubscription_warning(int threads, int others, int cpus) {
  return warning(threads, others, cpus, 0);
}

std::string sweep_oversubscription_warning(int threads, int jobs, int others, int cpus) {
  return warning(threads, others, cpus, std::max(1, jobs));
}

}  // namespace stoch
