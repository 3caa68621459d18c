//===- CpuBudget.cpp - affinity, cgroup quota, runnable threads -----------===//

#include "CpuBudget.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

namespace moe::rt {
namespace {

bool readFile(const std::string &path, std::string &text) {
  std::ifstream in(path);
  if (!in)
    return false;
  std::stringstream ss;
  ss << in.rdbuf();
  text = ss.str();
  return true;
}

/// quota / period, or 0 for "no limit" ("max", -1, malformed).
double ratio(long long quota, long long period) {
  return quota > 0 && period > 0 ? double(quota) / double(period) : 0;
}

/// A cgroup path and its ancestors: "/a/b" -> "/a/b", "/a", "".
std::vector<std::string> selfAndAncestors(std::string path) {
  std::vector<std::string> out;
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  while (true) {
    out.push_back(path);
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || path.empty())
      break;
    path.resize(slash);
  }
  return out;
}

/// Keeps the tighter of two quotas (0 = none).
double tighter(double a, double b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); }

/// cgroup v2: "<root>/<path>/cpu.max" holds "max 100000" or "150000 100000".
double v2Quota(const std::string &root, const std::string &path) {
  double best = 0;
  for (const std::string &dir : selfAndAncestors(path)) {
    std::string text;
    if (!readFile(root + dir + "/cpu.max", text))
      continue;
    long long quota = -1, period = 0;
    if (std::sscanf(text.c_str(), "%lld %lld", &quota, &period) == 2)
      best = tighter(best, ratio(quota, period));
  }
  return best;
}

/// cgroup v1: the cpu controller's cfs quota and period (-1 = no limit).
double v1Quota(const std::string &root, const std::string &controllers, const std::string &path) {
  double best = 0;
  for (const std::string &mount : {root + "/" + controllers, root + "/cpu"}) {
    for (const std::string &dir : selfAndAncestors(path)) {
      std::string quotaText, periodText;
      if (!readFile(mount + dir + "/cpu.cfs_quota_us", quotaText) ||
          !readFile(mount + dir + "/cpu.cfs_period_us", periodText))
        continue;
      best = tighter(best, ratio(std::atoll(quotaText.c_str()), std::atoll(periodText.c_str())));
    }
    if (best > 0)
      break;
  }
  return best;
}

bool hasCpuController(const std::string &controllers) {
  std::stringstream ss(controllers);
  std::string c;
  while (std::getline(ss, c, ','))
    if (c == "cpu")
      return true;
  return false;
}

} // namespace

int affinityCpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
  return onlineCpuCount();
}

int onlineCpuCount() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n > 0)
    return int(n);
  return std::max(1, int(std::thread::hardware_concurrency()));
}

double cgroupCpuQuota(const std::string &procSelfCgroup, const std::string &cgroupRoot) {
  double best = 0;
  std::stringstream lines(procSelfCgroup);
  std::string line;
  // Each line: "hierarchy-id:controllers:path"; v2 is "0::path".
  while (std::getline(lines, line)) {
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos)
      continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers.empty())
      best = tighter(best, v2Quota(cgroupRoot, path));
    else if (hasCpuController(controllers))
      best = tighter(best, v1Quota(cgroupRoot, controllers, path));
  }
  return best;
}

int defaultPoolThreads() {
  if (const char *env = std::getenv("MOE_NUM_THREADS")) {
    char *end = nullptr;
    errno = 0;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && errno == 0 && n >= 1 && n <= 4096)
      return int(n);
    std::fprintf(stderr,
                 "moe runtime: MOE_NUM_THREADS='%s' is not a thread count in [1, 4096]; "
                 "sizing the pool from the CPUs this process may use\n",
                 env);
  }
  int threads = affinityCpuCount();
  std::string cgroups;
  if (readFile("/proc/self/cgroup", cgroups)) {
    double quota = cgroupCpuQuota(cgroups, "/sys/fs/cgroup");
    if (quota > 0)
      threads = std::min(threads, int(std::ceil(quota)));
  }
  return std::max(1, threads);
}

int otherRunnableThreads(int ourRunning) {
  // "0.52 0.58 0.59 3/421 12345": the 4th field's numerator is the number
  // of runnable threads right now, the reading thread included.
  int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char buf[128];
  ssize_t got = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (got <= 0)
    return -1;
  buf[got] = '\0';
  double a, b, c;
  int runnable = 0, total = 0;
  if (std::sscanf(buf, "%lf %lf %lf %d/%d", &a, &b, &c, &runnable, &total) != 5)
    return -1;
  return std::max(0, runnable - ourRunning);
}

} // namespace moe::rt
