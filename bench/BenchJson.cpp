//===- BenchJson.cpp - moe-bench's --json records -------------------------===//

#include "BenchJson.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>

namespace moe::bench {

llvm::json::Value jsonNumber(double v) {
  if (!std::isfinite(v))
    return nullptr;
  return v;
}

llvm::json::Object machineRecord(int threads, double peakGflops, double readGbps,
                                 llvm::StringRef openblasCore, const MachineExtras &extras) {
  llvm::json::Object record{{"machine", true},
                            {"threads", threads},
                            {"peak_gflops", jsonNumber(peakGflops)},
                            {"read_gbps", jsonNumber(readGbps)},
                            {"openblas_core", openblasCore.str()}};
  // Absent peaks (no avx512bf16 / avx512vnni) are null: "n/a".
  record["bf16_peak_gflops"] =
      extras.bf16PeakGflops ? jsonNumber(*extras.bf16PeakGflops) : llvm::json::Value(nullptr);
  record["int8_peak_gops"] =
      extras.int8PeakGops ? jsonNumber(*extras.int8PeakGops) : llvm::json::Value(nullptr);
  if (extras.amxBf16Gflops)
    record["amx_bf16_gflops"] = jsonNumber(*extras.amxBf16Gflops);
  if (extras.amxInt8Gops)
    record["amx_int8_gops"] = jsonNumber(*extras.amxInt8Gops);
  if (!extras.onednn.empty())
    record["onednn"] = extras.onednn;
  if (!extras.openblasOverrides.empty())
    record["openblas_reexec_without"] = extras.openblasOverrides;
  return record;
}

llvm::json::Object caseRecord(const CaseFigures &f) {
  llvm::json::Object record{{"case", f.name},
                            {"tokens", f.tokens},
                            {"ours_us", jsonNumber(f.oursUs)},
                            {"baseline_us", jsonNumber(f.baselineUs)},
                            {"speedup", jsonNumber(f.speedup)},
                            {"gflops", jsonNumber(f.gflops)},
                            {"pct_peak", jsonNumber(f.pctPeak)},
                            {"max_rel_err", jsonNumber(f.oursMaxRelErr)},
                            {"baseline_max_rel_err", jsonNumber(f.baselineMaxRelErr)}};
  if (f.gbps)
    record["gbps"] = jsonNumber(*f.gbps);
  if (f.pctBandwidth)
    record["pct_bandwidth"] = jsonNumber(*f.pctBandwidth);
  if (f.onednnUs)
    record["onednn_us"] = jsonNumber(*f.onednnUs);
  if (!f.bestBaseline.empty())
    record["best_baseline"] = f.bestBaseline;
  if (f.probeGbps)
    record["probe_gbps"] = jsonNumber(*f.probeGbps);
  if (f.prepareMs)
    record["prepare_ms"] = jsonNumber(*f.prepareMs);
  if (f.packedBytes)
    record["packed_bytes"] = jsonNumber(*f.packedBytes);
  return record;
}

llvm::json::Object compileRecord(llvm::StringRef caseName, double seconds) {
  return llvm::json::Object{{"compile_seconds", jsonNumber(seconds)}, {"case", caseName.str()}};
}

std::string jsonLine(llvm::json::Object record) {
  std::string line;
  llvm::raw_string_ostream os(line);
  os << llvm::json::Value(std::move(record)) << '\n';
  return line;
}

} // namespace moe::bench
