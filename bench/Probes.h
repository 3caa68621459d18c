//===- Probes.h - moe-bench's hardware probes ------------------------------===//
//
// What the machine can do, measured in the run that measures the layers
// (the machines are shared; only ratios inside one run mean much): compute
// peaks of register-resident instruction loops and the read bandwidth of a
// streaming sum over a buffer much larger than the last-level cache. Each
// probe runs on `threads` threads and reports the best of a few repeats.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_PROBES_H
#define MOE_BENCH_PROBES_H

#include "BenchReport.h"

#include <cstdint>
#include <optional>

namespace moe::bench {

/// GFLOP/s of FP32 FMAs (zmm with avx512f, else ymm), 2 flops per lane.
double measureFp32PeakGflops(int threads);
/// GFLOP/s of vdpbf16ps on zmm (64 flops per instruction: 16 lanes x 2
/// bf16 products x 2); nullopt when the CPU lacks avx512bf16.
std::optional<double> measureBf16PeakGflops(int threads);
/// GOP/s of vpdpbusd on zmm (128 ops per instruction: 16 lanes x 4 u8*s8
/// products x 2); nullopt when the CPU lacks avx512vnni.
std::optional<double> measureInt8PeakGops(int threads);
/// GFLOP/s (bf16 tdpbf16ps) or GOP/s (int8 tdpbusd) of AMX tile ops, the
/// units oneDNN uses for BF16/INT8 where present (not the peaks our kernels
/// are measured against); nullopt without AMX or when Linux refuses it.
std::optional<double> measureAmxPeak(int threads, bool int8);
/// All of them.
ComputePeaks measureComputePeaks(int threads);

/// GB/s of a streaming sum over `bytes` split across `threads` threads
/// (pages touched first; AVX-512 loads when present, else AVX2), best of
/// `repeats`. The buffer lives only during the probe.
double measureReadGBps(int threads, int64_t bytes, int repeats = 3);

} // namespace moe::bench

#endif // MOE_BENCH_PROBES_H
