//===- Probes.cpp - moe-bench's hardware probes ----------------------------===//

#include "Probes.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace moe::bench {

using Clock = std::chrono::steady_clock;
static double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// Runs fn(t) on `threads` threads at once; the wall-clock seconds.
template <typename Fn> static double timeOnThreads(int threads, Fn fn) {
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(fn, t);
  for (auto &th : pool)
    th.join();
  return secondsSince(start);
}

/// Best rate of `repeats` runs of `opsPerThread` operations on every thread.
template <typename Fn>
static double bestRate(int threads, int repeats, double opsPerThread, Fn fn) {
  double best = 0;
  for (int rep = 0; rep < repeats; ++rep)
    best = std::max(best, opsPerThread * threads / timeOnThreads(threads, fn) / 1e9);
  return best;
}

// 12 independent chains per loop: enough to cover the latency of FMA,
// vdpbf16ps and vpdpbusd on every x86 core we know; all stay in registers.
constexpr int kChains = 12;
constexpr int64_t kIters = 40'000'000;

__attribute__((target("avx2,fma"), noinline)) static float fmaChains256(int64_t iters, float seed) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm256_set1_ps(seed + float(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx512f"), noinline)) static float fmaChains512(int64_t iters, float seed) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm512_set1_ps(seed + float(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"), noinline)) static float bf16Chains(int64_t iters,
                                                                                 float seed) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm512_set1_ps(seed + float(i));
  // Products of 2^-10 each: acc grows by ~1e-6 per step, never denormal.
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.03125f), _mm512_set1_ps(0.03125f));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm512_dpbf16_ps(acc[i], a, a);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512vnni"), noinline)) static int int8Chains(int64_t iters,
                                                                             int seed) {
  __m512i acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm512_set1_epi32(seed + i);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  __m512i s = acc[0];
  for (int i = 1; i < kChains; ++i)
    s = _mm512_add_epi32(s, acc[i]);
  return _mm512_reduce_add_epi32(s);
}

double measureFp32PeakGflops(int threads) {
  bool avx512 = __builtin_cpu_supports("avx512f");
  std::atomic<float> sink{0};
  double flops = 2.0 * kChains * (avx512 ? 16 : 8) * double(kIters);
  return bestRate(threads, 5, flops, [&](int t) {
    float r = avx512 ? fmaChains512(kIters, float(t)) : fmaChains256(kIters, float(t));
    sink = sink + r;
  });
}

std::optional<double> measureBf16PeakGflops(int threads) {
  if (!__builtin_cpu_supports("avx512bf16"))
    return std::nullopt;
  std::atomic<float> sink{0};
  return bestRate(threads, 5, 64.0 * kChains * double(kIters),
                  [&](int t) { sink = sink + bf16Chains(kIters, float(t)); });
}

std::optional<double> measureInt8PeakGops(int threads) {
  if (!__builtin_cpu_supports("avx512vnni"))
    return std::nullopt;
  std::atomic<int> sink{0};
  return bestRate(threads, 5, 128.0 * kChains * double(kIters),
                  [&](int t) { sink += int8Chains(kIters, t); });
}

// AMX (what oneDNN uses for BF16/INT8 where present): 4 accumulator tiles
// of 16 x 16 f32/i32 fed by 2 + 2 source tiles, all 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-bf16,amx-int8"), noinline)) static int amxTiles(int64_t iters,
                                                                                     bool int8) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  alignas(64) uint8_t src[16 * 64];
  alignas(64) int32_t out[16 * 16];
  std::fill_n(src, sizeof(src), uint8_t(1));
  _tile_loadconfig(&cfg);
  _tile_zero(0), _tile_zero(1), _tile_zero(2), _tile_zero(3);
  _tile_loadd(4, src, 64), _tile_loadd(5, src, 64), _tile_loadd(6, src, 64), _tile_loadd(7, src, 64);
  if (int8)
    for (int64_t it = 0; it < iters; ++it) {
      _tile_dpbusd(0, 4, 6), _tile_dpbusd(1, 4, 7), _tile_dpbusd(2, 5, 6), _tile_dpbusd(3, 5, 7);
    }
  else
    for (int64_t it = 0; it < iters; ++it) {
      _tile_dpbf16ps(0, 4, 6), _tile_dpbf16ps(1, 4, 7), _tile_dpbf16ps(2, 5, 6), _tile_dpbf16ps(3, 5, 7);
    }
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}

/// Linux hands out AMX state only on request (once per process).
static bool amxUsable() {
  if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16") ||
      !__builtin_cpu_supports("amx-int8"))
    return false;
  const long archReqXcompPerm = 0x1023, xfeatureXtiledata = 18;
  static bool granted = syscall(SYS_arch_prctl, archReqXcompPerm, xfeatureXtiledata) == 0;
  return granted;
}

std::optional<double> measureAmxPeak(int threads, bool int8) {
  if (!amxUsable())
    return std::nullopt;
  // Per tile op: 16 x 16 outputs, 32 bf16 pairs (2 flops each) or 64 u8*s8
  // products (2 ops each).
  const int64_t iters = 2'000'000;
  double perOp = int8 ? 16.0 * 16 * 64 * 2 : 16.0 * 16 * 32 * 2;
  std::atomic<int> sink{0};
  return bestRate(threads, 3, 4 * perOp * double(iters),
                  [&](int) { sink += amxTiles(iters, int8); });
}

ComputePeaks measureComputePeaks(int threads) {
  ComputePeaks p;
  p.fp32Gflops = measureFp32PeakGflops(threads);
  p.bf16Gflops = measureBf16PeakGflops(threads);
  p.int8Gops = measureInt8PeakGops(threads);
  p.amxBf16Gflops = measureAmxPeak(threads, false);
  p.amxInt8Gops = measureAmxPeak(threads, true);
  return p;
}

__attribute__((target("avx2"), noinline)) static float streamSum256(const float *p, int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t i = 0; i + 32 <= n; i += 32)
    for (int j = 0; j < 4; ++j)
      acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(p + i + 8 * j));
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  return out[0];
}

__attribute__((target("avx512f"), noinline)) static float streamSum512(const float *p, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  for (int64_t i = 0; i + 64 <= n; i += 64)
    for (int j = 0; j < 4; ++j)
      acc[j] = _mm512_add_ps(acc[j], _mm512_load_ps(p + i + 16 * j));
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]),
                                            _mm512_add_ps(acc[2], acc[3])));
}

double measureReadGBps(int threads, int64_t bytes, int repeats) {
  // 64-byte aligned chunks of whole cache lines per thread.
  int64_t chunk = bytes / int64_t(sizeof(float)) / threads / 64 * 64;
  int64_t n = chunk * threads;
  std::unique_ptr<float, decltype(&std::free)> owner(
      static_cast<float *>(std::aligned_alloc(64, n * sizeof(float))), &std::free);
  if (!owner)
    return 0;
  float *buf = owner.get();
  // First touch on the thread that reads the chunk (NUMA placement).
  timeOnThreads(threads, [&](int t) { std::fill_n(buf + t * chunk, chunk, 1.0f); });
  bool avx512 = __builtin_cpu_supports("avx512f");
  std::atomic<float> sink{0};
  double best = 0;
  for (int rep = 0; rep < repeats; ++rep) {
    double s = timeOnThreads(threads, [&](int t) {
      const float *p = buf + t * chunk;
      sink = sink + (avx512 ? streamSum512(p, chunk) : streamSum256(p, chunk));
    });
    best = std::max(best, double(n) * sizeof(float) / s / 1e9);
  }
  return best;
}

} // namespace moe::bench
