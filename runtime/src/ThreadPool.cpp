//===- ThreadPool.cpp - the runtime's worker threads -----------------------===//
//
// Compiled layers hand their parallel loops (one iteration = one tile of one
// expert's rows, so skewed routing still spreads over every core) to
// moe_rt_parallel_for. Iterations are claimed one at a time from a shared
// counter, so a few heavy experts do not leave threads idle; the calling
// thread works too. Workers sleep on a condition variable between loops (no
// spinning next to other thread pools, e.g. a BLAS baseline).
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include <algorithm>
#include <atomic>
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
      active = int(workers.size());
      ++generation;
    }
    wake.notify_all();
    run(job);
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, [&] { return active == 0; });
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
      workers.emplace_back([this, seen = generation] { loop(seen); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      quit = true;
      ++generation;
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
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [&] { return generation != seen; });
        seen = generation;
        if (quit)
          return;
        j = job;
      }
      run(j);
      std::lock_guard<std::mutex> lock(mutex);
      if (--active == 0)
        done.notify_one();
    }
  }

  std::vector<std::thread> workers;
  std::mutex mutex, loopMutex;
  std::condition_variable wake, done;
  Job job;
  std::atomic<int64_t> next{0};
  int active = 0;
  uint64_t generation = 0;
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
