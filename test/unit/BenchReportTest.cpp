//===- BenchReportTest.cpp - moe-bench's per-format figures -----------------===//
//
// The bytes a routing touches in each weight format, worked out by hand for
// small cases; the pairing of our rows with the better same-format
// baseline; the per-format JSON records.
//
//===----------------------------------------------------------------------===//

#include "BenchReport.h"
#include "BenchJson.h"

#include "llvm/Support/JSON.h"

#include <gtest/gtest.h>

using namespace moe::bench;

namespace {

TEST(BenchReport, MatrixBytesPerFormat) {
  // 4 output channels of K = 64.
  EXPECT_EQ(matrixBytes(WeightFormat::F32, 4, 64), 4.0 * 64 * 4);
  EXPECT_EQ(matrixBytes(WeightFormat::BF16, 4, 64), 2.0 * 64 * 4);
  EXPECT_EQ(matrixBytes(WeightFormat::F16, 4, 64), 2.0 * 64 * 4);
  EXPECT_EQ(matrixBytes(WeightFormat::Int8, 4, 64), 64.0 * 4 + 4 * 4); // + f32 scale per row
  EXPECT_EQ(matrixBytes(WeightFormat::Q8_0, 4, 64), 4 * 2 * 34.0);    // 2 blocks per row
  EXPECT_EQ(matrixBytes(WeightFormat::Q4_0, 4, 64), 4 * 2 * 18.0);
}

TEST(BenchReport, TouchedBytesCountDistinctExpertsOnce) {
  // T = 3 tokens, k = 2, E = 8: experts 1, 5, 6 (5 routed twice).
  std::vector<int32_t> ids = {5, 1, 5, 6, 6, 1};
  EXPECT_EQ(distinctExperts(ids, 8), 3);
  int64_t h = 64, inter = 32;
  // Per expert: w1, w3 (32 x 64) and w2 (64 x 32), f32: 3 * 2048 * 4 bytes.
  EXPECT_EQ(touchedWeightBytes(ids, 8, h, inter, WeightFormat::F32), 3 * 3 * 2048 * 4.0);
  // The FP32 router gate (E x h) added once.
  EXPECT_EQ(touchedWeightBytes(ids, 8, h, inter, WeightFormat::F32, 8 * 64 * 4.0),
            3 * 3 * 2048 * 4.0 + 2048);
  // Q4_0: w1/w3 rows of 64 (2 blocks), w2 rows of 32 (1 block).
  double q4PerExpert = 2 * (32 * 2 * 18.0) + 64 * 18.0;
  EXPECT_EQ(touchedWeightBytes(ids, 8, h, inter, WeightFormat::Q4_0), 3 * q4PerExpert);
  // Int8: scales are per output channel: 32 + 32 + 64 rows.
  EXPECT_EQ(touchedWeightBytes(ids, 8, h, inter, WeightFormat::Int8), 3 * (3 * 2048 + 128 * 4.0));
  // Ids outside [0, E) (none routed, or bad input) touch nothing.
  EXPECT_EQ(distinctExperts(std::vector<int32_t>{-1, 8, 2}, 8), 1);
}

TEST(BenchReport, FormatNamesRoundTripAndBadNamesAreNamed) {
  std::vector<WeightFormat> formats;
  std::string error;
  ASSERT_TRUE(parseFormatList("f32, bf16,q4_0,bf16", formats, error)) << error;
  ASSERT_EQ(formats.size(), 3u) << "duplicates dropped";
  EXPECT_EQ(formatName(formats[2]), "q4_0");
  EXPECT_FALSE(parseFormatList("f32,q5_k", formats, error));
  EXPECT_NE(error.find("'q5_k'"), std::string::npos) << error;
  ASSERT_TRUE(parseFormatList("", formats, error));
  EXPECT_TRUE(formats.empty());
}

TEST(BenchReport, FormatPeaks) {
  ComputePeaks p;
  p.fp32Gflops = 400;
  p.int8Gops = 1600;
  EXPECT_EQ(formatPeak(WeightFormat::F16, p), 400.0);
  EXPECT_EQ(formatPeak(WeightFormat::BF16, p), std::nullopt) << "no avx512bf16: n/a";
  EXPECT_EQ(formatPeak(WeightFormat::Q4_0, p), 1600.0);
  p.bf16Gflops = 200;
  EXPECT_EQ(formatPeak(WeightFormat::BF16, p), 200.0);
  p.amxBf16Gflops = 6000;
  p.amxInt8Gops = 12000;
  EXPECT_EQ(formatPeak(WeightFormat::BF16, p), 6000.0) << "bf16 layers run on AMX tiles";
  EXPECT_EQ(formatPeak(WeightFormat::Q4_0, p), 1600.0) << "8/4-bit layers do not (yet)";
}

FormatRow row(const char *caseName, WeightFormat f, const char *impl, double us) {
  FormatRow r;
  r.caseName = caseName;
  r.format = f;
  r.impl = impl;
  r.us = us;
  r.touchedBytes = 2e6;
  r.flops = 4e6;
  r.probeGbps = 20;
  return r;
}

TEST(BenchReport, SpeedupAgainstTheBetterSameFormatBaseline) {
  std::vector<FormatRow> rows = {
      row("A", WeightFormat::F32, "ours", 100), row("A", WeightFormat::F32, "openblas", 150),
      row("A", WeightFormat::F32, "onednn", 120), row("A", WeightFormat::BF16, "onednn", 60),
      row("A", WeightFormat::BF16, "ours", 50),   row("A", WeightFormat::Q4_0, "ours", 30),
      row("B", WeightFormat::F32, "ours", 10),    row("B", WeightFormat::F32, "openblas", 5)};
  compareWithBestBaseline(rows);
  EXPECT_DOUBLE_EQ(*rows[0].speedup, 1.2);
  EXPECT_EQ(rows[0].bestBaseline, "onednn");
  EXPECT_DOUBLE_EQ(*rows[4].speedup, 1.2);
  EXPECT_FALSE(rows[5].speedup) << "no q4_0 baseline";
  EXPECT_DOUBLE_EQ(*rows[6].speedup, 0.5) << "cases are not mixed";
  EXPECT_FALSE(rows[1].speedup) << "baselines get no speedup";
}

TEST(BenchReport, RowRecordAndTableLine) {
  FormatRow r = row("QW-D", WeightFormat::Q8_0, "ours", 100);
  r.decode = true;
  r.peak = 1000;
  r.speedup = 2.5;
  r.bestBaseline = "onednn";
  llvm::Expected<llvm::json::Value> v = llvm::json::parse(jsonLine(formatRowRecord(r)));
  ASSERT_TRUE(bool(v)) << llvm::toString(v.takeError());
  const llvm::json::Object &o = *v->getAsObject();
  EXPECT_EQ(o.getString("format"), "q8_0");
  EXPECT_EQ(o.getNumber("gbps"), 20.0); // 2e6 bytes in 100 us
  EXPECT_EQ(o.getNumber("pct_bandwidth"), 100.0);
  EXPECT_EQ(o.getNumber("gflops"), 40.0);
  EXPECT_EQ(o.get("pct_format_peak"), nullptr) << "decode: bandwidth-bound, no % of peak";
  EXPECT_EQ(o.getNumber("speedup_vs_best"), 2.5);
  r.decode = false;
  v = llvm::json::parse(jsonLine(formatRowRecord(r)));
  ASSERT_TRUE(bool(v));
  EXPECT_EQ(v->getAsObject()->getNumber("pct_format_peak"), 4.0);
  std::string line = formatTableLine(r);
  EXPECT_NE(line.find("q8_0"), std::string::npos) << line;
  EXPECT_NE(line.find("2.50x onednn"), std::string::npos) << line;
}

} // namespace
