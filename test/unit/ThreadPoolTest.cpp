//===- ThreadPoolTest.cpp - the runtime's pool under load -----------------===//
//
// Every iteration of every loop runs exactly once, whatever the machine is
// doing: idle, oversubscribed by CPU hogs, with several threads posting
// loops at once, and with workers that the OS has stopped. Nothing here is
// timed; moe-bench --contention measures the speed.
//
//===----------------------------------------------------------------------===//

#include "CpuBudget.h"
#include "moe_runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <future>
#include <semaphore.h>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

struct Hits {
  std::vector<std::atomic<int>> count;
  explicit Hits(size_t n) : count(n) {}
  bool eachOnce(int64_t n) const {
    for (int64_t i = 0; i < n; ++i)
      if (count[i].load() != 1)
        return false;
    return true;
  }
};

void countBody(void *ctx, int64_t begin, int64_t end) {
  auto *hits = static_cast<Hits *>(ctx);
  for (int64_t i = begin; i < end; ++i)
    hits->count[i].fetch_add(1);
}

void nestedBody(void *ctx, int64_t begin, int64_t end) {
  // A loop started from inside a loop runs inline instead of deadlocking.
  for (int64_t i = begin; i < end; ++i)
    moe_rt_parallel_for(4, countBody, ctx);
}

/// Sets an environment variable for one scope and restores it (the unit
/// tests also run as one process under the sanitizers).
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *old = std::getenv(name))
      saved = old, hadValue = true;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { hadValue ? setenv(name, saved.c_str(), 1) : unsetenv(name); }

private:
  const char *name;
  std::string saved;
  bool hadValue = false;
};

/// Busy threads in this process, `count` of them, until destroyed.
class CpuHogs {
public:
  explicit CpuHogs(int count) {
    for (int i = 0; i < count; ++i)
      threads.emplace_back([this] {
        volatile uint64_t x = 0;
        while (!stop.load(std::memory_order_relaxed))
          x = x + 1;
      });
  }
  ~CpuHogs() {
    stop = true;
    for (auto &t : threads)
      t.join();
  }

private:
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
};

int hogCount() { return 2 * moe::rt::onlineCpuCount() + 1; }

/// Loops of many sizes from `callers` threads at once; whether every
/// iteration of every loop ran exactly once.
bool concurrentLoopsRunEachIterationOnce(int callers, int loopsPerCaller) {
  std::atomic<bool> allOnce{true};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c)
    threads.emplace_back([&, c] {
      for (int l = 0; l < loopsPerCaller; ++l) {
        int64_t n = 1 + (l * 37 + c * 11) % 300;
        Hits hits{size_t(n)};
        moe_rt_parallel_for(n, countBody, &hits);
        if (!hits.eachOnce(n))
          allOnce = false;
      }
    });
  for (auto &t : threads)
    t.join();
  return allOnce;
}

TEST(ThreadPool, EveryIterationRunsExactlyOnce) {
  for (int threads : {1, 2, 3}) {
    ASSERT_EQ(moe_set_num_threads(threads), MOE_OK);
    EXPECT_EQ(moe_get_num_threads(), threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      for (int repeat = 0; repeat < 20; ++repeat) {
        Hits hits(size_t(std::max<int64_t>(n, 1)));
        moe_rt_parallel_for(n, countBody, &hits);
        ASSERT_TRUE(hits.eachOnce(n)) << "n " << n << " threads " << threads;
      }
    }
  }
  EXPECT_EQ(moe_set_num_threads(0), MOE_ERR_INVALID_ARGUMENT);
}

TEST(ThreadPool, WorkersPastTheirSpinWindowAreWokenForTheNextLoop) {
  // Workers spin ~200 us after a loop, then sleep: loops posted back to
  // back (caught spinning) and after a pause (asleep) must both run every
  // iteration once.
  ASSERT_EQ(moe_set_num_threads(3), MOE_OK);
  for (int pauseMicros : {0, 50, 2000}) {
    for (int repeat = 0; repeat < 10; ++repeat) {
      Hits hits(64);
      moe_rt_parallel_for(64, countBody, &hits);
      ASSERT_TRUE(hits.eachOnce(64)) << "pause " << pauseMicros << " repeat " << repeat;
      std::this_thread::sleep_for(std::chrono::microseconds(pauseMicros));
    }
  }
}

TEST(ThreadPool, NestedLoopsRunInline) {
  ASSERT_EQ(moe_set_num_threads(2), MOE_OK);
  Hits hits(4);
  moe_rt_parallel_for(3, nestedBody, &hits);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(hits.count[i].load(), 3);
}

TEST(ThreadPool, ConcurrentCallersUnderCpuHogsRunEveryIterationOnce) {
  // Both spin policies: "never" takes the futex paths on every loop.
  for (const char *spin : {"never", "always", "auto"}) {
    ScopedEnv env("MOE_POOL_SPIN", spin);
    ASSERT_EQ(moe_set_num_threads(3), MOE_OK);
    EXPECT_TRUE(concurrentLoopsRunEachIterationOnce(4, 150)) << "spin=" << spin << ", idle";
    CpuHogs hogs(hogCount());
    EXPECT_TRUE(concurrentLoopsRunEachIterationOnce(4, 150)) << "spin=" << spin << ", hogs";
  }
  ASSERT_EQ(moe_set_num_threads(2), MOE_OK);
}

TEST(ThreadPool, StopsSpinningWhenTheMachineIsOversubscribed) {
  ScopedEnv env("MOE_POOL_SPIN", nullptr); // the adaptive policy
  ASSERT_EQ(moe_set_num_threads(2), MOE_OK);
  CpuHogs hogs(hogCount());
  // The load is sampled at most every 2 ms by the thread posting a loop.
  bool stoppedSpinning = false;
  for (int i = 0; i < 200 && !stoppedSpinning; ++i) {
    Hits hits(16);
    moe_rt_parallel_for(16, countBody, &hits);
    ASSERT_TRUE(hits.eachOnce(16));
    stoppedSpinning = moe_get_thread_pool_stats().spinning == 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  EXPECT_TRUE(stoppedSpinning) << "with " << hogCount() << " busy threads on "
                               << moe::rt::onlineCpuCount() << " CPUs";
}

//===----------------------------------------------------------------------===//
// Workers the OS does not run: a signal handler parks each pool thread.
//===----------------------------------------------------------------------===//

sem_t parkRelease;
std::atomic<int> parked{0};

void parkHandler(int) {
  parked.fetch_add(1);
  while (sem_wait(&parkRelease) != 0) {
  }
}

/// Thread ids of the pool's workers (named "moe-pool").
std::vector<pid_t> poolWorkerTids() {
  std::vector<pid_t> tids;
  DIR *dir = opendir("/proc/self/task");
  if (!dir)
    return tids;
  while (dirent *e = readdir(dir)) {
    if (e->d_name[0] == '.')
      continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name == "moe-pool")
      tids.push_back(pid_t(std::atoi(e->d_name)));
  }
  closedir(dir);
  return tids;
}

TEST(ThreadPool, CallerNeverWaitsForAWorkerThatHasNotStarted) {
  ASSERT_EQ(moe_set_num_threads(3), MOE_OK);
  {
    Hits warm(64);
    moe_rt_parallel_for(64, countBody, &warm); // workers up and spinning
  }
  std::vector<pid_t> tids = poolWorkerTids();
  for (int wait = 0; wait < 2000 && tids.size() < 2; ++wait) { // threads name themselves
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    tids = poolWorkerTids();
  }
  ASSERT_EQ(tids.size(), 2u);
  ASSERT_EQ(sem_init(&parkRelease, 0, 0), 0);
  struct sigaction action = {}, previous = {};
  action.sa_handler = parkHandler;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &action, &previous), 0);
  parked = 0;
  for (pid_t tid : tids)
    ASSERT_EQ(syscall(SYS_tgkill, getpid(), tid, SIGUSR1), 0);
  while (parked.load() < int(tids.size()))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));

  // Every worker is parked: the loops must still finish, on the caller.
  moe_thread_pool_stats before = moe_get_thread_pool_stats();
  auto loops = std::async(std::launch::async, [] {
    bool allOnce = true;
    for (int l = 0; l < 50; ++l) {
      Hits hits(500);
      moe_rt_parallel_for(500, countBody, &hits);
      allOnce = allOnce && hits.eachOnce(500);
    }
    return allOnce;
  });
  bool finished = loops.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  moe_thread_pool_stats after = moe_get_thread_pool_stats();
  for (size_t i = 0; i < tids.size(); ++i)
    sem_post(&parkRelease);
  EXPECT_TRUE(finished) << "a loop waited for a worker that never started";
  EXPECT_TRUE(loops.get());
  EXPECT_EQ(after.items_by_workers, before.items_by_workers);
  EXPECT_EQ(after.items_by_callers - before.items_by_callers, 50u * 500u);
  sigaction(SIGUSR1, &previous, nullptr);
  // The workers come back and share loops again.
  Hits hits(1000);
  moe_rt_parallel_for(1000, countBody, &hits);
  EXPECT_TRUE(hits.eachOnce(1000));
  sem_destroy(&parkRelease);
}

//===----------------------------------------------------------------------===//
// Sizing the pool.
//===----------------------------------------------------------------------===//

class CgroupTree {
public:
  CgroupTree() {
    root = ::testing::TempDir() + "/moe-cgroup-" + std::to_string(getpid()) + "-" +
           std::to_string(counter++);
  }
  ~CgroupTree() { std::system(("rm -rf '" + root + "'").c_str()); }
  void write(const std::string &relPath, const std::string &text) {
    std::string path = root + "/" + relPath;
    std::system(("mkdir -p '" + path.substr(0, path.rfind('/')) + "'").c_str());
    std::ofstream(path) << text;
  }
  std::string root;
  static inline int counter = 0;
};

TEST(CpuBudget, CgroupV2QuotaIsTheTightestOverTheAncestors) {
  CgroupTree t;
  t.write("cpu.max", "max 100000\n");
  t.write("pod/cpu.max", "300000 100000\n");
  t.write("pod/app/cpu.max", "150000 100000\n");
  EXPECT_DOUBLE_EQ(moe::rt::cgroupCpuQuota("0::/pod/app\n", t.root), 1.5);
  EXPECT_DOUBLE_EQ(moe::rt::cgroupCpuQuota("0::/pod\n", t.root), 3.0);
  EXPECT_DOUBLE_EQ(moe::rt::cgroupCpuQuota("0::/\n", t.root), 0.0); // "max": no quota
  EXPECT_DOUBLE_EQ(moe::rt::cgroupCpuQuota("0::/elsewhere\n", t.root), 0.0);
}

TEST(CpuBudget, CgroupV1QuotaFromTheCpuController) {
  CgroupTree t;
  t.write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
  t.write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  t.write("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  t.write("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  std::string self = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n";
  EXPECT_DOUBLE_EQ(moe::rt::cgroupCpuQuota(self, t.root), 0.5);
  EXPECT_DOUBLE_EQ(moe::rt::cgroupCpuQuota("4:cpu,cpuacct:/\n", t.root), 0.0);
  EXPECT_DOUBLE_EQ(moe::rt::cgroupCpuQuota("garbage\n", t.root), 0.0);
}

TEST(CpuBudget, PoolSizeFromTheEnvironmentOrTheCpusWeMayUse) {
  {
    ScopedEnv env("MOE_NUM_THREADS", "3");
    EXPECT_EQ(moe::rt::defaultPoolThreads(), 3);
  }
  int fromMachine;
  {
    ScopedEnv env("MOE_NUM_THREADS", nullptr);
    fromMachine = moe::rt::defaultPoolThreads();
  }
  EXPECT_GE(fromMachine, 1);
  EXPECT_LE(fromMachine, moe::rt::affinityCpuCount());
  for (const char *bad : {"0", "-2", "abc", "4x", ""}) {
    ScopedEnv env("MOE_NUM_THREADS", bad);
    testing::internal::CaptureStderr();
    EXPECT_EQ(moe::rt::defaultPoolThreads(), fromMachine) << "MOE_NUM_THREADS=" << bad;
    std::string warning = testing::internal::GetCapturedStderr();
    EXPECT_NE(warning.find("MOE_NUM_THREADS"), std::string::npos) << warning;
  }
}

TEST(CpuBudget, AffinityMaskBoundsThePool) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE && first < 0; ++c)
    if (CPU_ISSET(c, &saved))
      first = c;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  int count = moe::rt::affinityCpuCount();
  int threads;
  {
    ScopedEnv env("MOE_NUM_THREADS", nullptr);
    threads = moe::rt::defaultPoolThreads();
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  EXPECT_EQ(count, 1);
  EXPECT_EQ(threads, 1);
}

} // namespace
