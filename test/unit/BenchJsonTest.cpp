//===- BenchJsonTest.cpp - moe-bench's --json lines are valid JSON --------===//
//
// The records moe-bench prints, built from made-up figures (running the
// benchmark itself takes minutes): each line parses back with the fields
// and values it was given, including the cases text formatting got wrong
// (quotes in a name, a time of zero giving inf and nan).
//
//===----------------------------------------------------------------------===//

#include "BenchJson.h"

#include "llvm/Support/JSON.h"

#include <gtest/gtest.h>

#include <limits>

using namespace moe::bench;

namespace {

/// Parses `line` (one record and its newline) back into an object.
llvm::json::Object parseLine(const std::string &line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one record per line";
  llvm::Expected<llvm::json::Value> value = llvm::json::parse(line);
  if (!value) {
    ADD_FAILURE() << "not JSON: " << llvm::toString(value.takeError()) << "\n" << line;
    return {};
  }
  llvm::json::Object *object = value->getAsObject();
  if (!object) {
    ADD_FAILURE() << "not an object: " << line;
    return {};
  }
  return std::move(*object);
}

TEST(BenchJson, MachineLine) {
  llvm::json::Object m = parseLine(jsonLine(machineRecord(8, 1234.5, 98.25, "SkylakeX")));
  EXPECT_EQ(m.getBoolean("machine"), true);
  EXPECT_EQ(m.getInteger("threads"), 8);
  EXPECT_EQ(m.getNumber("peak_gflops"), 1234.5);
  EXPECT_EQ(m.getNumber("read_gbps"), 98.25);
  EXPECT_EQ(m.getString("openblas_core"), "SkylakeX");
}

TEST(BenchJson, PrefillCaseHasNoBandwidthFields) {
  CaseFigures f;
  f.name = "MIX-P";
  f.tokens = 512;
  f.oursUs = 1500.5;
  f.baselineUs = 3001;
  f.speedup = 2.0;
  f.gflops = 410.25;
  f.pctPeak = 61.5;
  f.oursMaxRelErr = 1.5e-7;
  f.baselineMaxRelErr = 2.5e-7;
  llvm::json::Object c = parseLine(jsonLine(caseRecord(f)));
  EXPECT_EQ(c.getString("case"), "MIX-P");
  EXPECT_EQ(c.getInteger("tokens"), 512);
  EXPECT_EQ(c.getNumber("ours_us"), 1500.5);
  EXPECT_EQ(c.getNumber("baseline_us"), 3001.0);
  EXPECT_EQ(c.getNumber("speedup"), 2.0);
  EXPECT_EQ(c.getNumber("gflops"), 410.25);
  EXPECT_EQ(c.getNumber("pct_peak"), 61.5);
  EXPECT_EQ(c.getNumber("max_rel_err"), 1.5e-7);
  EXPECT_EQ(c.getNumber("baseline_max_rel_err"), 2.5e-7);
  EXPECT_EQ(c.get("gbps"), nullptr);
  EXPECT_EQ(c.get("pct_bandwidth"), nullptr);
}

TEST(BenchJson, DecodeCaseHasBandwidthFields) {
  CaseFigures f;
  f.name = "QW-D";
  f.tokens = 1;
  f.gbps = 45.5;
  f.pctBandwidth = 80.25;
  llvm::json::Object c = parseLine(jsonLine(caseRecord(f)));
  EXPECT_EQ(c.getNumber("gbps"), 45.5);
  EXPECT_EQ(c.getNumber("pct_bandwidth"), 80.25);
}

TEST(BenchJson, NonFiniteNumbersAndQuotedNamesStayValid) {
  CaseFigures f;
  f.name = "odd \"case\"\\name";
  f.oursUs = 0;
  f.speedup = std::numeric_limits<double>::infinity();
  f.gflops = std::numeric_limits<double>::quiet_NaN();
  f.pctPeak = -std::numeric_limits<double>::infinity();
  llvm::json::Object c = parseLine(jsonLine(caseRecord(f)));
  EXPECT_EQ(c.getString("case"), "odd \"case\"\\name");
  EXPECT_EQ(c.getNumber("ours_us"), 0.0);
  for (llvm::StringRef key : {"speedup", "gflops", "pct_peak"}) {
    ASSERT_NE(c.get(key), nullptr) << key.str();
    EXPECT_EQ(c.get(key)->kind(), llvm::json::Value::Null) << key.str();
  }
}

TEST(BenchJson, MachineLineExtras) {
  MachineExtras extras;
  extras.bf16PeakGflops = 600.5;
  extras.amxBf16Gflops = 4096.25;
  extras.onednn = "oneDNN 2.6.3, ISA avx512_core_amx";
  extras.openblasOverrides = "OPENBLAS_CORETYPE=Haswell";
  llvm::json::Object m = parseLine(jsonLine(machineRecord(2, 400, 20, "SkylakeX", extras)));
  EXPECT_EQ(m.getNumber("bf16_peak_gflops"), 600.5);
  ASSERT_NE(m.get("int8_peak_gops"), nullptr) << "an absent peak is null (n/a), not missing";
  EXPECT_EQ(m.get("int8_peak_gops")->kind(), llvm::json::Value::Null);
  EXPECT_EQ(m.getNumber("amx_bf16_gflops"), 4096.25);
  EXPECT_EQ(m.get("amx_int8_gops"), nullptr);
  EXPECT_EQ(m.getString("onednn"), "oneDNN 2.6.3, ISA avx512_core_amx");
  EXPECT_EQ(m.getString("openblas_reexec_without"), "OPENBLAS_CORETYPE=Haswell");
  // Without extras: no oneDNN or re-exec fields.
  llvm::json::Object plain = parseLine(jsonLine(machineRecord(2, 400, 20, "SkylakeX")));
  EXPECT_EQ(plain.get("onednn"), nullptr);
  EXPECT_EQ(plain.get("openblas_reexec_without"), nullptr);
}

TEST(BenchJson, CaseBaselinesAndPrepare) {
  CaseFigures f;
  f.name = "MIX-P";
  f.onednnUs = 900.5;
  f.bestBaseline = "onednn";
  f.probeGbps = 21.5;
  f.prepareMs = 12.5;
  f.packedBytes = 1048576;
  llvm::json::Object c = parseLine(jsonLine(caseRecord(f)));
  EXPECT_EQ(c.getNumber("onednn_us"), 900.5);
  EXPECT_EQ(c.getString("best_baseline"), "onednn");
  EXPECT_EQ(c.getNumber("probe_gbps"), 21.5);
  EXPECT_EQ(c.getNumber("prepare_ms"), 12.5);
  EXPECT_EQ(c.getNumber("packed_bytes"), 1048576.0);
}

TEST(BenchJson, CompileLine) {
  llvm::json::Object c = parseLine(jsonLine(compileRecord("MIX-P", 1.25)));
  EXPECT_EQ(c.getNumber("compile_seconds"), 1.25);
  EXPECT_EQ(c.getString("case"), "MIX-P");
}

} // namespace
