//===- CpuBudget.h - how many CPUs this process may really use ------------===//
//
// The thread pool is sized from what the process may use, not from the
// machine's core count: a container with a CPU quota of 1.5 on a 64-core
// host that starts 64 threads runs them in bursts and stalls each parallel
// loop for the rest of every quota period. Not part of the C ABI; the
// parsing takes its inputs as arguments so tests can give it fake cgroup
// trees.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_RUNTIME_CPU_BUDGET_H
#define MOE_RUNTIME_CPU_BUDGET_H

#include <string>

namespace moe::rt {

/// CPUs in this thread's affinity mask (sched_getaffinity); the online CPU
/// count where that is unavailable.
int affinityCpuCount();

/// The tightest CPU quota (quota / period, e.g. 1.5) over the cgroups of
/// `procSelfCgroup` (the text of /proc/self/cgroup) and their ancestors,
/// read under `cgroupRoot` (normally /sys/fs/cgroup): cgroup v2's cpu.max
/// and v1's cpu.cfs_quota_us / cpu.cfs_period_us. 0 when no quota is set.
double cgroupCpuQuota(const std::string &procSelfCgroup, const std::string &cgroupRoot);

/// The pool size when the caller does not choose one: MOE_NUM_THREADS when
/// it is set to a valid count (a warning on stderr otherwise), else the
/// affinity count capped by the ceiling of the cgroup quota; at least 1.
int defaultPoolThreads();

/// Other threads (not ours) that want a CPU right now, from the runnable
/// count in /proc/loadavg minus `ourRunning` (our threads that are running
/// or spinning); -1 when it cannot be read.
int otherRunnableThreads(int ourRunning);

/// CPUs online on the machine (what /proc/loadavg's runnable count shares).
int onlineCpuCount();

} // namespace moe::rt

#endif // MOE_RUNTIME_CPU_BUDGET_H
