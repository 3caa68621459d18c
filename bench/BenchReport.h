//===- BenchReport.h - moe-bench's per-format table --------------------------===//
//
// The weight formats moe-bench reports on (issue 26), the bytes a case's
// routing actually reads in each format, and the per-format table: one row
// per (case, format, implementation) with time, GB/s of touched weight
// bytes, % of the adjacent bandwidth probe, % of the format's compute peak
// (prefill) and our speedup against the better same-format baseline.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_REPORT_H
#define MOE_BENCH_REPORT_H

#include "moe/Support/Quant.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moe::bench {

/// The weight formats of an expert bank are moe::WeightFormat (Quant.h:
/// f32, bf16, f16, int8 per output channel, GGUF Q8_0/Q4_0 blocks of 32).
/// Activations stay FP32 at the layer boundary.
using moe::WeightFormat;

llvm::StringRef formatName(WeightFormat format);
std::optional<WeightFormat> parseFormat(llvm::StringRef name);
/// "f32,bf16,int8" -> the formats, or an error naming the bad one.
bool parseFormatList(llvm::StringRef list, std::vector<WeightFormat> &formats,
                     std::string &error);

/// Bytes of one weight matrix of `rows` output channels and reduction
/// length `k` in `format` as Quant.h stores it, scales included (Int8: 4
/// bytes per row; Q8_0: 34 bytes per 32 weights; Q4_0: 18 bytes per 32
/// weights, k a multiple of 32 for the block formats).
double matrixBytes(WeightFormat format, int64_t rows, int64_t k);

/// The experts a call reads: distinct ids >= 0 in `ids` (at most k*T).
int64_t distinctExperts(llvm::ArrayRef<int32_t> ids, int64_t numExperts);

/// Bytes of expert weights a call actually reads in `format`: for each
/// distinct routed expert, w1 and w3 (inter x h) and w2 (h x inter); plus
/// `routerBytes` (the FP32 gate of a softmax router, 0 for oracle routing).
double touchedWeightBytes(llvm::ArrayRef<int32_t> ids, int64_t numExperts, int64_t h,
                          int64_t inter, WeightFormat format, double routerBytes = 0);

/// The machine's compute peaks, measured in the same run (bench/Probes.h).
struct ComputePeaks {
  double fp32Gflops = 0;
  std::optional<double> bf16Gflops; // vdpbf16ps; absent without avx512bf16
  std::optional<double> int8Gops;   // vpdpbusd; absent without avx512vnni
  // AMX tiles: the bf16 format's peak where present (our amx kernels);
  // INT8 tiles are only for reading oneDNN's INT8 rows.
  std::optional<double> amxBf16Gflops, amxInt8Gops;
};

/// The peak a kernel of `format` is measured against: FP32 FMAs for f32
/// and f16 (converted in registers), AMX-BF16 tiles for bf16 where the CPU
/// has them (else vdpbf16ps), vpdpbusd for the 8- and 4-bit formats
/// (activations quantized to 8 bits).
std::optional<double> formatPeak(WeightFormat format, const ComputePeaks &peaks);

/// One row of the per-format table.
struct FormatRow {
  std::string caseName;
  int64_t tokens = 0;
  bool decode = false;
  WeightFormat format = WeightFormat::F32;
  std::string impl; // "ours", "openblas", "onednn"
  double us = 0;
  double touchedBytes = 0; // weight bytes read per call, in the format
  double flops = 0;
  double probeGbps = 0;    // read-bandwidth probe taken just before the case
  std::optional<double> peak; // the format's compute peak (GFLOP/s or GOP/s)
  double maxRelErr = 0;       // against what errReference says
  std::string errReference;   // "reference" or "f32 eager"
  double prepareMs = 0, preparedBytes = 0; // weights prepared once
  // Ours only: the better same-format baseline and our speedup over it.
  std::optional<double> speedup;
  std::string bestBaseline;

  double gbps() const { return touchedBytes / (us * 1e3); }
  double gflops() const { return flops / (us * 1e3); }
};

/// Fills `speedup` and `bestBaseline` of every "ours" row of `rows` from the
/// fastest baseline row of the same case and format (none: left empty).
void compareWithBestBaseline(std::vector<FormatRow> &rows);

std::string formatTableHeader();
std::string formatTableLine(const FormatRow &row);
llvm::json::Object formatRowRecord(const FormatRow &row);

} // namespace moe::bench

#endif // MOE_BENCH_REPORT_H
