//===- Contention.cpp - moe-bench --contention: layers on shared cores ----===//
//
// A server runs other processes; a container has a CPU quota; a laptop
// builds code. This mode measures a layer call when something else wants
// the CPUs: for each case, the median layer time
//   * idle, with the whole pool and with one thread;
//   * next to one CPU hog (a busy-looping child process pinned to one of
//     the CPUs we may use), whole pool and one thread;
//   * next to one hog per CPU we may use, whole pool and one thread.
// Targets (ratios inside this one run): with a hog on every core the pool
// takes at most 1.5x the one-thread time under the same hogs (parallelism
// must never cost much more than not using it), and with a hog on one core
// at most 2.2x the idle time. Every result is checked against the first
// idle one.
//
//===----------------------------------------------------------------------===//

#include "BenchLayers.h"
#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/Support/Random.h"
#include "moe_runtime.h"

#include "mlir/Parser/Parser.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <vector>

#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace moe;
using moe::Tensor;

namespace {
using Clock = std::chrono::steady_clock;

/// Busy-looping child processes, one pinned to each CPU given; killed when
/// this object goes (and by the kernel if moe-bench dies first).
class CpuHogs {
public:
  explicit CpuHogs(const std::vector<int> &cpus) {
    for (int cpu : cpus) {
      pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        sched_setaffinity(0, sizeof(one), &one);
        volatile uint64_t x = 0;
        while (true)
          x = x + 1;
      }
      if (pid > 0)
        pids.push_back(pid);
    }
    usleep(50000); // let the scheduler place them
  }
  ~CpuHogs() {
    for (pid_t pid : pids)
      kill(pid, SIGKILL);
    for (pid_t pid : pids)
      waitpid(pid, nullptr, 0);
  }

private:
  std::vector<pid_t> pids;
};

std::vector<int> allowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set))
        cpus.push_back(c);
  return cpus;
}

/// A compiled case with its inputs and output buffer.
struct PreparedCase {
  Shape shape;
  std::unique_ptr<CompiledFunction> fn;
  std::vector<Tensor> args;
  std::vector<const void *> argData;
  std::vector<std::vector<int64_t>> argShapes;
  std::vector<float> out, firstOut;

  bool run() {
    Status st = fn->runBuffers(argData, argShapes, {out.data()}, {{shape.t, shape.h}});
    if (!st.ok())
      llvm::errs() << shape.name << ": " << st.error << "\n";
    return st.ok();
  }
  /// Largest |out - firstOut| relative to max |firstOut|.
  double driftFromFirst() const {
    double err = 0, mx = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      err = std::max(err, double(std::fabs(out[i] - firstOut[i])));
      mx = std::max(mx, double(std::fabs(firstOut[i])));
    }
    return mx > 0 ? err / mx : err;
  }
};

bool prepare(mlir::MLIRContext &ctx, const Shape &s, const std::string &pipelineOptions,
             PreparedCase &c) {
  c.shape = s;
  auto module = mlir::parseSourceString<mlir::ModuleOp>(layerText(s), &ctx);
  auto options = CpuPipelineOptions::createFromString(pipelineOptions);
  if (!module || !options)
    return false;
  Status st = CompiledFunction::compile(*module, "main", *options, false, c.fn);
  if (!st.ok()) {
    llvm::errs() << s.name << ": " << st.error << "\n";
    return false;
  }
  c.args = {randomFloats({s.t, s.h}, 1), randomFloats({s.e, s.h}, 2),
            randomFloats({s.e, s.inter, s.h}, 3), randomFloats({s.e, s.inter, s.h}, 4),
            randomFloats({s.e, s.h, s.inter}, 5)};
  for (const Tensor &a : c.args) {
    c.argData.push_back(a.f.data());
    c.argShapes.push_back(a.shape);
  }
  c.out.assign(s.t * s.h, 0.f);
  if (!c.run())
    return false;
  c.firstOut = c.out;
  return true;
}

/// Median microseconds of the case with `threads` pool threads: at least
/// 5 runs and about `seconds` of them, after two warm-up runs.
double medianMicros(PreparedCase &c, int threads, double seconds, bool &ok) {
  moe_set_num_threads(threads);
  std::vector<double> times;
  for (int i = 0; i < 2; ++i)
    ok = ok && c.run();
  auto start = Clock::now();
  while (ok && (times.size() < 5 ||
                std::chrono::duration<double>(Clock::now() - start).count() < seconds) &&
         times.size() < 2000) {
    auto t0 = Clock::now();
    ok = c.run();
    times.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (c.driftFromFirst() > 1e-5) {
      llvm::errs() << c.shape.name << ": result under load differs from the idle one\n";
      ok = false;
    }
  }
  std::sort(times.begin(), times.end());
  return times.empty() ? 0 : times[times.size() / 2];
}

struct Row {
  double idleAll, idleOne, hogOneAll, hogOneOne, hogEveryAll, hogEveryOne;
};

} // namespace

int runContentionBench(mlir::MLIRContext &ctx, const std::string &pipelineOptions) {
  const int poolThreads = moe_get_num_threads();
  std::vector<int> cpus = allowedCpus();
  std::vector<Shape> shapes = {
      {"mixtral.mlir", 8, 2, 64, 128, 512, false}, // examples/mixtral.mlir's layer
      {"MIX-P", 8, 2, 1024, 3584, 512, false},
      {"DS-D", 64, 6, 1024, 256, 8, false},
      {"QW-D", 128, 8, 512, 192, 1, false},
  };
  llvm::outs() << llvm::format("moe-bench --contention: pool of %d threads on %zu CPUs; a hog is "
                               "a busy process pinned to one CPU\n\n",
                               poolThreads, cpus.size());
  llvm::outs() << "case             idle_us  idle_1t_us |  hog1_us hog1_1t_us  hog1/idle | "
                  "hogN_us hogN_1t_us  hogN/1t | targets\n";
  bool ok = true, targetsMet = true;
  for (const Shape &s : shapes) {
    PreparedCase c;
    if (!prepare(ctx, s, pipelineOptions, c)) {
      ok = false;
      continue;
    }
    double secs = s.decode() ? 0.5 : 1.0;
    Row r;
    r.idleAll = medianMicros(c, poolThreads, secs, ok);
    r.idleOne = medianMicros(c, 1, secs, ok);
    {
      CpuHogs hog({cpus.back()});
      r.hogOneAll = medianMicros(c, poolThreads, secs, ok);
      r.hogOneOne = medianMicros(c, 1, secs, ok);
    }
    {
      CpuHogs hogs(cpus);
      r.hogEveryAll = medianMicros(c, poolThreads, secs, ok);
      r.hogEveryOne = medianMicros(c, 1, secs, ok);
    }
    double hogOneRatio = r.hogOneAll / r.idleAll, hogEveryRatio = r.hogEveryAll / r.hogEveryOne;
    bool met = hogOneRatio <= 2.2 && hogEveryRatio <= 1.5;
    targetsMet = targetsMet && met;
    llvm::outs() << llvm::format("%-14s %9.1f %11.1f | %8.1f %10.1f %10.2f | %7.1f %10.1f %8.2f | %s\n",
                                 s.name.c_str(), r.idleAll, r.idleOne, r.hogOneAll, r.hogOneOne,
                                 hogOneRatio, r.hogEveryAll, r.hogEveryOne, hogEveryRatio,
                                 met ? "met" : "MISSED");
  }
  moe_set_num_threads(poolThreads);
  moe_thread_pool_stats st = moe_get_thread_pool_stats();
  llvm::outs() << llvm::format(
      "\ntargets: hog1/idle <= 2.2, hogN/1t <= 1.5: %s\npool: %llu loops shared (%llu items by "
      "callers, %llu by workers), %llu run inline, %llu needed a wake-up\n",
      targetsMet ? "all met" : "not all met", (unsigned long long)st.loops,
      (unsigned long long)st.items_by_callers, (unsigned long long)st.items_by_workers,
      (unsigned long long)st.loops_inline, (unsigned long long)st.worker_wakeups);
  return ok ? 0 : 1;
}
