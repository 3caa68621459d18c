//===- BenchReport.cpp - moe-bench's per-format table ------------------------===//

#include "BenchReport.h"
#include "BenchJson.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <map>

namespace moe::bench {

llvm::StringRef formatName(WeightFormat format) { return weightFormatName(format); }

std::optional<WeightFormat> parseFormat(llvm::StringRef name) {
  WeightFormat f;
  if (!parseWeightFormat(name.trim().str(), f))
    return std::nullopt;
  return f;
}

bool parseFormatList(llvm::StringRef list, std::vector<WeightFormat> &formats,
                     std::string &error) {
  formats.clear();
  llvm::SmallVector<llvm::StringRef> names;
  list.split(names, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef n : names) {
    std::optional<WeightFormat> f = parseFormat(n);
    if (!f) {
      error = "unknown weight format '" + n.trim().str() + "' (f32, bf16, f16, int8, q8_0, q4_0)";
      return false;
    }
    if (!llvm::is_contained(formats, *f))
      formats.push_back(*f);
  }
  return true;
}

double matrixBytes(WeightFormat format, int64_t rows, int64_t k) {
  double rowBytes = double(storedRowElements(format, k)) * double(dtypeSize(storageDType(format)));
  return double(rows) * (rowBytes + (hasRowScales(format) ? 4.0 : 0.0));
}

int64_t distinctExperts(llvm::ArrayRef<int32_t> ids, int64_t numExperts) {
  std::vector<bool> used(numExperts, false);
  for (int32_t e : ids)
    if (e >= 0 && e < numExperts)
      used[e] = true;
  return std::count(used.begin(), used.end(), true);
}

double touchedWeightBytes(llvm::ArrayRef<int32_t> ids, int64_t numExperts, int64_t h,
                          int64_t inter, WeightFormat format, double routerBytes) {
  double perExpert = 2 * matrixBytes(format, inter, h) + matrixBytes(format, h, inter);
  return double(distinctExperts(ids, numExperts)) * perExpert + routerBytes;
}

std::optional<double> formatPeak(WeightFormat format, const ComputePeaks &peaks) {
  switch (format) {
  case WeightFormat::F32:
  case WeightFormat::F16:
    return peaks.fp32Gflops;
  case WeightFormat::BF16:
    // Our bf16 layers run on AMX tiles wherever the probe could use them
    // (the compiler picks the amx micro-kernels on such CPUs).
    return peaks.amxBf16Gflops ? peaks.amxBf16Gflops : peaks.bf16Gflops;
  case WeightFormat::Int8:
  case WeightFormat::Q8_0:
  case WeightFormat::Q4_0:
    return peaks.int8Gops;
  }
  return std::nullopt;
}

void compareWithBestBaseline(std::vector<FormatRow> &rows) {
  std::map<std::pair<std::string, WeightFormat>, const FormatRow *> best;
  for (const FormatRow &r : rows) {
    if (r.impl == "ours" || !(r.us > 0))
      continue;
    auto &b = best[{r.caseName, r.format}];
    if (!b || r.us < b->us)
      b = &r;
  }
  for (FormatRow &r : rows) {
    if (r.impl != "ours")
      continue;
    auto it = best.find({r.caseName, r.format});
    if (it == best.end() || !(r.us > 0))
      continue;
    r.speedup = it->second->us / r.us;
    r.bestBaseline = it->second->impl;
  }
}

std::string formatTableHeader() {
  return "case          T  format impl          time_us    GB/s   %bw  GOP/s  %peak  "
         "speedup(vs)        err        prepare\n";
}

std::string formatTableLine(const FormatRow &r) {
  std::string line;
  llvm::raw_string_ostream os(line);
  os << llvm::format("%-11s %4lld  %-6s %-9s %11.1f %7.1f %5.1f", r.caseName.c_str(),
                     (long long)r.tokens, formatName(r.format).str().c_str(), r.impl.c_str(), r.us,
                     r.gbps(), 100 * r.gbps() / r.probeGbps);
  os << llvm::format(" %6.1f", r.gflops());
  if (!r.decode && r.peak)
    os << llvm::format(" %6.1f", 100 * r.gflops() / *r.peak);
  else
    os << "      -";
  if (r.speedup)
    os << llvm::format("  %5.2fx %-9s", *r.speedup, r.bestBaseline.c_str());
  else
    os << "  -               ";
  os << llvm::format(" %.1e/%s", r.maxRelErr, r.errReference == "reference" ? "ref" : "f32");
  if (r.preparedBytes > 0)
    os << llvm::format("  %.0f ms, %.1f MiB", r.prepareMs, r.preparedBytes / (1 << 20));
  os << "\n";
  return line;
}

llvm::json::Object formatRowRecord(const FormatRow &r) {
  llvm::json::Object o{{"format_case", r.caseName},
                       {"tokens", r.tokens},
                       {"format", formatName(r.format).str()},
                       {"impl", r.impl},
                       {"us", jsonNumber(r.us)},
                       {"touched_bytes", jsonNumber(r.touchedBytes)},
                       {"gbps", jsonNumber(r.gbps())},
                       {"probe_gbps", jsonNumber(r.probeGbps)},
                       {"pct_bandwidth", jsonNumber(100 * r.gbps() / r.probeGbps)},
                       {"gflops", jsonNumber(r.gflops())},
                       {"max_rel_err", jsonNumber(r.maxRelErr)},
                       {"err_against", r.errReference}};
  if (r.peak) {
    o["format_peak"] = jsonNumber(*r.peak);
    if (!r.decode)
      o["pct_format_peak"] = jsonNumber(100 * r.gflops() / *r.peak);
  }
  if (r.preparedBytes > 0) {
    o["prepare_ms"] = jsonNumber(r.prepareMs);
    o["prepared_bytes"] = jsonNumber(r.preparedBytes);
  }
  if (r.speedup) {
    o["speedup_vs_best"] = jsonNumber(*r.speedup);
    o["best_baseline"] = r.bestBaseline;
  }
  return o;
}

} // namespace moe::bench
