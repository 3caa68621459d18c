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
                                 llvm::StringRef openblasCore) {
  return llvm::json::Object{{"machine", true},
                            {"threads", threads},
                            {"peak_gflops", jsonNumber(peakGflops)},
                            {"read_gbps", jsonNumber(readGbps)},
                            {"openblas_core", openblasCore.str()}};
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
