// How many CPUs a run may use, and whether other processes are using them now. No LibTorch here.
#pragma once

#include <optional>
#include <string>

namespace stoch {

// The CPUs this process may run on: its affinity mask (taskset, cpusets) capped by a cgroup CPU
// quota (docker --cpus, a Kubernetes limit), at least 1. What `run.threads: 0` means, and what
// sweeps and `--nproc` share out. std::thread::hardware_concurrency counts every CPU of the
// host, which in a 4-CPU container on a 64-core host starts 64 threads that fight over 4.
int usable_cpus();

// The smallest CPU quota, rounded up to whole CPUs, that cgroups put on this process, found
// from the text of /proc/self/cgroup and the cgroup file systems under `cgroup_root` (v2's
// cpu.max, v1's cpu.cfs_quota_us / cpu.cfs_period_us), walking from the process's group up to
// the root; nullopt when none limits it.
std::optional<int> cgroup_cpu_quota(const std::string& proc_self_cgroup,
                                    const std::string& cgroup_root = "/sys/fs/cgroup");

// Threads of other processes that are running or ready to run now, host-wide (/proc/stat's
// procs_running less this process's running threads, the median of five samples 10 ms apart);
// -1 when unknown.
int others_running();

// oversubscription_warning for `threads` threads, what runs elsewhere now and the host's CPUs.
std::string busy_machine_warning(int threads);

// sweep_oversubscription_warning for a sweep's `jobs` runs at a time of `threads` threads each,
// what runs elsewhere now and the host's CPUs.
std::string busy_machine_sweep_warning(int threads, int jobs);

// A warning when `threads` threads of this run and `others` running threads of other processes
// do not fit on `cpus` CPUs: OpenMP's waiting threads spin, and a run with more threads than
// the CPUs it gets runs slower than with fewer (docs/benchmarks.md); "" when they fit or
// threads is 1.
std::string oversubscription_warning(int threads, int others, int cpus);

// The same for a sweep's `jobs` runs at a time of `threads` threads each; it names the
// run.threads to add to the sweep's command.
std::string sweep_oversubscription_warning(int threads, int jobs, int others, int cpus);

}  // namespace stoch
