//===- BenchJson.h - moe-bench's --json records ---------------------------===//
//
// Every line `moe-bench --json` prints is one of these objects, built with
// llvm::json so that it is valid JSON whatever the strings and numbers hold.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_JSON_H
#define MOE_BENCH_JSON_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>

namespace moe::bench {

/// The figures of one case, as printed in its table row. baselineUs is
/// the OpenBLAS loop; speedup is against the better FP32 baseline
/// (bestBaseline: "openblas" or "onednn").
struct CaseFigures {
  std::string name;
  int64_t tokens = 0;
  double oursUs = 0, baselineUs = 0, speedup = 0, gflops = 0, pctPeak = 0;
  // Decode cases only (bound by the weights they read).
  std::optional<double> gbps, pctBandwidth;
  double oursMaxRelErr = 0, baselineMaxRelErr = 0;
  std::optional<double> onednnUs;   // the oneDNN FP32 loop, when built
  std::string bestBaseline;         // empty in records made before it
  std::optional<double> probeGbps;  // the read probe taken just before the case
  std::optional<double> prepareMs, packedBytes; // our prepared layer
};

/// Machine figures beyond the FP32 peak and the bandwidth.
struct MachineExtras {
  std::optional<double> bf16PeakGflops, int8PeakGops, amxBf16Gflops, amxInt8Gops;
  std::string onednn;             // "oneDNN 2.6.3, ISA ..." or "" when not built
  std::string openblasOverrides;  // the variables the baseline child ran without
};

/// A measured number; a value that is not finite (a zero or failed time)
/// has no JSON number and becomes null.
llvm::json::Value jsonNumber(double v);

/// The first line: the machine's threads, FMA peak, read bandwidth and
/// the core OpenBLAS picked.
llvm::json::Object machineRecord(int threads, double peakGflops, double readGbps,
                                 llvm::StringRef openblasCore, const MachineExtras &extras = {});
/// One line per case.
llvm::json::Object caseRecord(const CaseFigures &figures);
/// The compile time of the full pipeline on one case.
llvm::json::Object compileRecord(llvm::StringRef caseName, double seconds);

/// `record` printed on one line, ending in '\n'.
std::string jsonLine(llvm::json::Object record);

} // namespace moe::bench

#endif // MOE_BENCH_JSON_H
