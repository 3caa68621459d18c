//===- ThreadPool.cpp - the runtime's worker threads -----------------------===//
//
// Compiled layers hand their parallel loops (one iteration = one tile of one
// expert's rows, so skewed routing still spreads over every core) to
// moe_rt_parallel_for. A layer call runs several such loops back to back
// (router chunks, packing, expert items, combine), so two things decide how
// a call behaves on a shared machine:
//
//  * Nobody waits for a worker that has not started. Items are claimed one
//    at a time from a counter tagged with the loop's epoch; the caller
//    claims items too, and returns as soon as every item *claimed* has
//    finished. A worker the OS has descheduled simply claims nothing (the
//    old pool counted workers, and every loop waited a scheduler time slice
//    for a descheduled one: 8-28x slower than one thread under a CPU hog).
//
//  * Spinning only while it pays. Between loops, workers (and a caller
//    waiting for claimed items) spin for up to kSpinMicros, because a futex
//    wake-up costs tens of microseconds in a VM, as much as a decode step's
//    loop. When the machine is oversubscribed (more runnable threads than
//    CPUs, sampled from /proc/loadavg at most every kLoadSampleMicros) they
//    do not spin at all: spinning then only takes the CPU from the thread
//    that holds the work. MOE_POOL_SPIN=always|never overrides the policy.
//
// The pool serves one loop at a time. A loop posted while another runs (a
// second caller thread, or a loop inside a loop body) runs on its caller's
// thread alone: no deadlock, and never more runnable threads than the pool
// size plus the extra callers themselves.
//
//===----------------------------------------------------------------------===//

#include "CpuBudget.h"
#include "moe_runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

void futexWait(std::atomic<uint32_t> &word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

void futexWake(std::atomic<uint32_t> &word, int count) {
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&word), FUTEX_WAKE_PRIVATE, count, nullptr,
          nullptr, 0);
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// Polls `ready` with exponential back-off (1..8 pauses between polls)
/// for up to `micros`; whether it became true. The cap is low because a
/// pause is ~140 cycles on recent Intel cores: 64 of them made every loop's
/// hand-over several microseconds late, which decode calls (six loops of
/// tens of microseconds) felt.
template <typename Ready> bool spinUntil(Ready ready, int64_t micros) {
  if (micros <= 0)
    return ready();
  auto deadline = Clock::now() + std::chrono::microseconds(micros);
  int pauses = 1;
  for (int polls = 0;; ++polls) {
    if (ready())
      return true;
    for (int i = 0; i < pauses; ++i)
      cpuRelax();
    pauses = std::min(pauses * 2, 8);
    if ((polls & 15) == 15 && Clock::now() >= deadline)
      return false;
  }
}

enum class SpinPolicy { Adaptive, Always, Never };

SpinPolicy spinPolicyFromEnv() {
  const char *env = std::getenv("MOE_POOL_SPIN");
  if (env && std::strcmp(env, "always") == 0)
    return SpinPolicy::Always;
  if (env && std::strcmp(env, "never") == 0)
    return SpinPolicy::Never;
  return SpinPolicy::Adaptive;
}

/// The loop being run. `claim` packs the loop's epoch (high 32 bits) and
/// the next unclaimed item (low 32 bits). A worker reads the fields, then
/// claims with a CAS on `claim`; the caller closes the old epoch before it
/// rewrites the fields, so a CAS that succeeds proves the fields it read
/// belong to the item it claimed (all accesses are sequentially
/// consistent, which is plain loads and locked RMWs on x86).
struct Loop {
  static constexpr uint32_t kClosed = UINT32_MAX;
  std::atomic<uint64_t> claim{kClosed};
  std::atomic<moe_parallel_body> fn{nullptr};
  std::atomic<void *> ctx{nullptr};
  std::atomic<int64_t> n{0}, chunk{1};
  std::atomic<uint32_t> items{0};
  std::atomic<uint32_t> finished{0};
  std::atomic<uint32_t> callerSleeping{0};

  static uint64_t pack(uint32_t epoch, uint32_t item) { return (uint64_t(epoch) << 32) | item; }
};

class ThreadPool {
public:
  static ThreadPool &get() {
    static ThreadPool pool;
    return pool;
  }

  int size() const { return int(workers.size()) + 1; }

  void resize(int threads) {
    stop();
    start(std::max(1, threads));
  }

  void parallelFor(int64_t n, moe_parallel_body fn, void *ctx);

  moe_thread_pool_stats stats() const {
    moe_thread_pool_stats s{};
    s.threads = size();
    s.loops = loopsPosted.load();
    s.loops_inline = loopsInline.load();
    s.items_by_callers = itemsByCallers.load();
    s.items_by_workers = itemsByWorkers.load();
    s.worker_wakeups = workerWakeups.load();
    s.spinning = spinMicros() > 0;
    return s;
  }

private:
  ThreadPool() { start(moe::rt::defaultPoolThreads()); }
  ~ThreadPool() { stop(); }

  void start(int threads);
  void stop();
  void workerMain(uint32_t seen);
  uint64_t help();
  void waitForClaimedItems();
  void sampleLoad();
  int64_t spinMicros() const;

  static constexpr int64_t kSpinMicros = 200;
  static constexpr int64_t kLoadSampleMicros = 2000;
  static constexpr int64_t kMaxItems = int64_t(1) << 30;

  std::vector<std::thread> workers;
  Loop loop;
  uint32_t epoch = 0; // the last loop's; written by the caller holding `busy`
  std::atomic<bool> busy{false};
  std::atomic<uint32_t> posted{0}; // bumped per loop; workers sleep on it
  std::atomic<int> sleepers{0};
  std::atomic<bool> quit{false};
  SpinPolicy policy = SpinPolicy::Adaptive;
  std::atomic<bool> oversubscribed{false};
  Clock::time_point lastLoadSample{};
  std::atomic<uint64_t> loopsPosted{0}, loopsInline{0}, itemsByCallers{0}, itemsByWorkers{0},
      workerWakeups{0};
};

int64_t ThreadPool::spinMicros() const {
  switch (policy) {
  case SpinPolicy::Always:
    return kSpinMicros;
  case SpinPolicy::Never:
    return 0;
  case SpinPolicy::Adaptive:
    return oversubscribed.load(std::memory_order_relaxed) ? 0 : kSpinMicros;
  }
  return 0;
}

void ThreadPool::start(int threads) {
  quit.store(false);
  policy = spinPolicyFromEnv();
  oversubscribed.store(false);
  for (int t = 1; t < threads; ++t)
    workers.emplace_back([this, seen = posted.load()] { workerMain(seen); });
}

void ThreadPool::stop() {
  quit.store(true);
  posted.fetch_add(1);
  futexWake(posted, INT_MAX);
  for (std::thread &w : workers)
    w.join();
  workers.clear();
}

/// Whether other threads want our CPUs: then spinning only delays them and
/// the thread of ours that holds a claimed item. Called by the posting
/// caller, so at most one thread samples at a time.
void ThreadPool::sampleLoad() {
  if (policy != SpinPolicy::Adaptive)
    return;
  auto now = Clock::now();
  if (now - lastLoadSample < std::chrono::microseconds(kLoadSampleMicros))
    return;
  lastLoadSample = now;
  int ours = 1 + int(workers.size()) - sleepers.load();
  int others = moe::rt::otherRunnableThreads(ours);
  if (others >= 0)
    oversubscribed.store(others + size() > moe::rt::onlineCpuCount(), std::memory_order_relaxed);
}

void ThreadPool::parallelFor(int64_t n, moe_parallel_body fn, void *ctx) {
  if (n <= 0)
    return;
  if (n == 1 || workers.empty() || busy.exchange(true, std::memory_order_acquire)) {
    loopsInline.fetch_add(1, std::memory_order_relaxed);
    fn(ctx, 0, n);
    return;
  }
  sampleLoad();
  // More than 2^30 iterations go in chunks: an item must fit the claim's
  // low 32 bits.
  int64_t chunk = (n + kMaxItems - 1) / kMaxItems;
  uint32_t items = uint32_t((n + chunk - 1) / chunk);
  loop.claim.store(Loop::pack(epoch, Loop::kClosed)); // late CASes on the last loop fail
  loop.fn.store(fn);
  loop.ctx.store(ctx);
  loop.n.store(n);
  loop.chunk.store(chunk);
  loop.items.store(items);
  loop.finished.store(0);
  loop.claim.store(Loop::pack(++epoch, 0));
  posted.fetch_add(1);
  loopsPosted.fetch_add(1, std::memory_order_relaxed);
  if (sleepers.load() > 0) {
    // The caller takes an item itself: wake at most one worker per other item.
    futexWake(posted, int(std::min<int64_t>(items - 1, INT_MAX)));
    workerWakeups.fetch_add(1, std::memory_order_relaxed);
  }
  itemsByCallers.fetch_add(help(), std::memory_order_relaxed);
  waitForClaimedItems();
  busy.store(false, std::memory_order_release);
}

/// Claims and runs items of the current loop until none is left; returns
/// how many it ran.
uint64_t ThreadPool::help() {
  uint64_t ran = 0;
  while (true) {
    uint64_t word = loop.claim.load();
    uint32_t item = uint32_t(word);
    if (item == Loop::kClosed)
      return ran;
    moe_parallel_body fn = loop.fn.load();
    void *ctx = loop.ctx.load();
    int64_t n = loop.n.load(), chunk = loop.chunk.load();
    uint32_t items = loop.items.load();
    if (item >= items)
      return ran;
    if (!loop.claim.compare_exchange_weak(word, word + 1))
      continue;
    int64_t begin = int64_t(item) * chunk;
    fn(ctx, begin, std::min(n, begin + chunk));
    ++ran;
    if (loop.finished.fetch_add(1) + 1 == items && loop.callerSleeping.load())
      futexWake(loop.finished, 1);
  }
}

/// Waits until every claimed item has finished (all are claimed by now:
/// the caller's own help() returned). Spins while that pays, then sleeps,
/// leaving its CPU to the thread that runs the last item.
void ThreadPool::waitForClaimedItems() {
  uint32_t items = loop.items.load();
  auto done = [&] { return loop.finished.load() == items; };
  // The full spin window: at decode a worker's last item takes tens of
  // microseconds, and a futex sleep + wake-up costs as much (QW-D idle
  // 263 -> 206 us on a 2-core Xeon with a 50 us window vs 200 us).
  if (spinUntil(done, spinMicros()))
    return;
  while (true) {
    loop.callerSleeping.store(1);
    uint32_t seen = loop.finished.load();
    if (seen == items)
      break;
    futexWait(loop.finished, seen);
  }
  loop.callerSleeping.store(0);
}

void ThreadPool::workerMain(uint32_t seen) {
  // Named so `top -H`, debuggers and the tests can tell the pool's threads.
  pthread_setname_np(pthread_self(), "moe-pool");
  while (true) {
    auto posting = [&] { return posted.load() != seen; };
    if (!spinUntil(posting, spinMicros())) {
      sleepers.fetch_add(1);
      while (!posting() && !quit.load())
        futexWait(posted, seen);
      sleepers.fetch_sub(1);
    }
    seen = posted.load();
    if (quit.load())
      return;
    itemsByWorkers.fetch_add(help(), std::memory_order_relaxed);
  }
}

} // namespace

extern "C" {
void moe_rt_parallel_for(int64_t n, moe_parallel_body fn, void *ctx) {
  ThreadPool::get().parallelFor(n, fn, ctx);
}

int moe_get_num_threads(void) { return ThreadPool::get().size(); }

int moe_set_num_threads(int threads) {
  if (threads < 1)
    return MOE_ERR_INVALID_ARGUMENT;
  ThreadPool::get().resize(threads);
  return MOE_OK;
}

moe_thread_pool_stats moe_get_thread_pool_stats(void) { return ThreadPool::get().stats(); }
}
