//===- ThreadPool.cpp - the runtime's worker threads -----------------------===//
//
// Compiled layers hand their parallel loops (one iteration = one tile of one
// expert's rows, so skewed routing still spreads over every core) to
// moe_rt_parallel_for. Iterations are claimed one at a time from a shared
// counter, so a few heavy experts do not leave threads idle; the calling
// thread works too. After a loop, workers (and a caller waiting for them)
// spin for kSpinMicros before sleeping on a condition variable: one layer
// call runs several parallel loops back to back (router, both FFN phases,
// combine), and a condition-variable wake-up costs tens of microseconds in a
// VM, as much as a whole decode step's loop (QW-D 423 -> 240 us on a 2-core
// Xeon). Past that window they sleep, so they do not spin next to other
// thread pools (e.g. a BLAS baseline) between layer calls.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace {

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

  void parallelFor(int64_t n, moe_parallel_body fn, void *ctx) {
    if (n <= 0)
      return;
    // A loop started from inside a worker (or while another loop runs) runs
    // inline: the pool serves one loop at a time.
    std::unique_lock<std::mutex> busy(loopMutex, std::try_to_lock);
    if (!busy.owns_lock() || workers.empty() || n == 1 || insideWorker) {
      fn(ctx, 0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      job = {fn, ctx, n};
      next.store(0);
      active.store(int(workers.size()));
      generation.fetch_add(1);
    }
    wake.notify_all();
    run(job);
    if (spinUntil([&] { return active.load(std::memory_order_acquire) == 0; }))
      return;
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, [&] { return active.load() == 0; });
  }

private:
  struct Job {
    moe_parallel_body fn = nullptr;
    void *ctx = nullptr;
    int64_t n = 0;
  };

  ThreadPool() {
    int threads = int(std::thread::hardware_concurrency());
    if (const char *env = std::getenv("MOE_NUM_THREADS"))
      threads = std::atoi(env);
    start(std::max(1, threads));
  }
  ~ThreadPool() { stop(); }

  void start(int threads) {
    std::lock_guard<std::mutex> lock(mutex);
    quit = false;
    // Each worker starts from the current generation, read here under the
    // lock: a loop posted before the thread first runs must still wake it.
    for (int t = 1; t < threads; ++t)
      workers.emplace_back([this, seen = generation.load()] { loop(seen); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      quit = true;
      generation.fetch_add(1);
    }
    wake.notify_all();
    for (std::thread &w : workers)
      w.join();
    workers.clear();
  }

  void run(const Job &j) {
    for (int64_t i = next.fetch_add(1); i < j.n; i = next.fetch_add(1))
      j.fn(j.ctx, i, i + 1);
  }

  void loop(uint64_t seen) {
    insideWorker = true;
    while (true) {
      Job j;
      spinUntil([&] { return generation.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return generation.load() != seen; });
        seen = generation.load();
        if (quit)
          return;
        j = job;
      }
      run(j);
      // Under the lock, so a caller that gave up spinning and waits on
      // `done` cannot miss the last decrement.
      std::lock_guard<std::mutex> lock(mutex);
      if (active.fetch_sub(1) == 1)
        done.notify_one();
    }
  }

  /// Polls `ready` for up to kSpinMicros; whether it became true.
  template <typename Ready> static bool spinUntil(Ready ready) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    while (true) {
      for (int i = 0; i < 64; ++i) {
        if (ready())
          return true;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
    }
  }

  static constexpr int64_t kSpinMicros = 200;

  std::vector<std::thread> workers;
  std::mutex mutex, loopMutex;
  std::condition_variable wake, done;
  Job job;
  std::atomic<int64_t> next{0};
  // Written under `mutex`; atomic so the spinning readers need no lock.
  std::atomic<int> active{0};
  std::atomic<uint64_t> generation{0};
  bool quit = false;
  static thread_local bool insideWorker;
};

thread_local bool ThreadPool::insideWorker = false;
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
}
