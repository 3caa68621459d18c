//===- RoutingStatsTest.cpp - moe_last_stats, reader and end to end -------===//
//
// The runtime's reader of the counters compiled code records
// (moe_rt_record_stats -> moe_last_stats: derived fields, malformed
// buffers, bad arguments), and a moe-compile'd layer with stats through
// moe_layer_run and moe_prepared_run, against counts worked out by hand
// (docs/dialect.md's capacity_drop example).
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

namespace {
constexpr int64_t kMagic = 0x4D4F4553, kVersion = 1;

/// One record of E experts and K slots (the layout of RecordRoutingStats.cpp).
std::vector<int64_t> record(int64_t layer, int64_t e, int64_t k, int64_t tokens, int64_t routed,
                            int64_t pairsBefore, int64_t pairs, int64_t shared,
                            std::vector<int64_t> flops, std::vector<int64_t> rows,
                            std::vector<int64_t> slots) {
  std::vector<int64_t> r = {10 + 2 * e + k + 1, layer, 7, e, k, tokens, routed, pairsBefore,
                            pairs, shared};
  r.insert(r.end(), flops.begin(), flops.end());
  r.insert(r.end(), rows.begin(), rows.end());
  r.insert(r.end(), slots.begin(), slots.end());
  return r;
}

void recordBuffer(std::vector<int64_t> buffer) {
  moe_rt_record_stats(int64_t(reinterpret_cast<intptr_t>(buffer.data())), int64_t(buffer.size()));
}

TEST(RoutingStatsReader, DerivesSkippedDroppedAndFlops) {
  std::vector<int64_t> buffer = {kMagic, kVersion, 2};
  // 10 tokens, 6 ran the layer; 9 pairs before the capacity op, 7 after;
  // experts of 100 and 40 FLOPs (the second a cheaper one), shared 5.
  auto a = record(0, 2, 2, 10, 6, 9, 7, 5, {100, 40}, {4, 3}, {1, 3, 2});
  auto b = record(1, 1, 1, 10, 10, -1, 10, 0, {8}, {10}, {0, 10});
  buffer.insert(buffer.end(), a.begin(), a.end());
  buffer.insert(buffer.end(), b.begin(), b.end());
  recordBuffer(buffer);
  ASSERT_EQ(moe_last_stats_count(), 2);
  moe_layer_stats s;
  ASSERT_EQ(moe_last_stats(0, &s), MOE_OK);
  EXPECT_EQ(s.layer, 0);
  EXPECT_EQ(s.line, 7);
  EXPECT_EQ(s.num_experts, 2);
  EXPECT_EQ(s.k, 2);
  EXPECT_EQ(s.tokens, 10);
  EXPECT_EQ(s.tokens_routed, 6);
  EXPECT_EQ(s.tokens_skipped, 4);
  EXPECT_EQ(s.routed_pairs, 7);
  EXPECT_EQ(s.dropped_pairs, 2);
  EXPECT_EQ(s.tokens_per_expert[0], 4);
  EXPECT_EQ(s.tokens_per_expert[1], 3);
  EXPECT_EQ(s.slots_per_token[2], 2);
  EXPECT_EQ(s.expert_flops[1], 40);
  EXPECT_EQ(s.shared_flops, 5);
  // flops = 4*100 + 3*40 + 6*5 = 550; full = 10 * (2*100 + 5) = 2050.
  EXPECT_DOUBLE_EQ(s.flops, 550.0);
  EXPECT_DOUBLE_EQ(s.flops_full, 2050.0);
  EXPECT_DOUBLE_EQ(s.flops_saved_fraction, 1.0 - 550.0 / 2050.0);
  ASSERT_EQ(moe_last_stats(1, &s), MOE_OK);
  EXPECT_EQ(s.dropped_pairs, -1); // no capacity op
  EXPECT_DOUBLE_EQ(s.flops_saved_fraction, 0.0);
}

TEST(RoutingStatsReader, BadArgumentsAreNamed) {
  recordBuffer({kMagic, kVersion, 0});
  moe_layer_stats s;
  EXPECT_EQ(moe_last_stats(0, &s), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moe_last_error()).find("layer index 0 is outside [0, 0)"),
            std::string::npos)
      << moe_last_error();
  EXPECT_EQ(moe_last_stats(-1, &s), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_last_stats(0, nullptr), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moe_last_error()).find("null output pointer"), std::string::npos);
}

TEST(RoutingStatsReader, MalformedBuffersRecordNothing) {
  auto r = record(0, 1, 1, 2, 2, -1, 2, 0, {8}, {2}, {0, 2});
  std::vector<int64_t> good = {kMagic, kVersion, 1};
  good.insert(good.end(), r.begin(), r.end());
  recordBuffer(good);
  EXPECT_EQ(moe_last_stats_count(), 1);
  auto badMagic = good;
  badMagic[0] = 1;
  recordBuffer(badMagic);
  EXPECT_EQ(moe_last_stats_count(), 0);
  auto badLength = good;
  badLength[3] = 99; // the record's length disagrees with E and K
  recordBuffer(badLength);
  EXPECT_EQ(moe_last_stats_count(), 0);
  auto truncated = good;
  truncated.pop_back();
  recordBuffer(truncated);
  EXPECT_EQ(moe_last_stats_count(), 0);
  moe_rt_record_stats(0, 5);
  EXPECT_EQ(moe_last_stats_count(), 0);
}

/// A moe-compile'd layer with stats=true: capacity_drop over oracle ids
/// into 3 SwiGLU experts + 1 zero expert (test/Tools/Inputs/stats_capacity.mlir).
class CompiledStatsTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string dir = ::testing::TempDir() + "/moe-stats-test-" + std::to_string(getpid());
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
    soPath = dir + "/stats.so";
    std::string cmd = std::string(MOE_COMPILE_PATH) + " " + MOE_STATS_LAYER_PATH +
                      " --pipeline-options=stats=true -o " + soPath;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  void SetUp() override {
    ASSERT_EQ(moe_layer_open(soPath.c_str(), "main", &layer), MOE_OK) << moe_last_error();
  }
  void TearDown() override { moe_layer_close(layer); }

  static std::string soPath;
  moe_layer *layer = nullptr;
};
std::string CompiledStatsTest::soPath;

TEST_F(CompiledStatsTest, CountsOfTheCapacityExample) {
  const int64_t T = 4;
  std::vector<float> x(T * 8, 0.1f), w(T * 2, 0.5f), w1(3 * 4 * 8, 0.01f), w3(w1), w2(3 * 8 * 4, 0.02f),
      y(T * 8, 0.0f);
  std::vector<int32_t> ids = {0, 1, 0, 2, 0, 1, 1, 0};
  int64_t sx[] = {T, 8}, sk[] = {T, 2}, s1[] = {3, 4, 8}, s2[] = {3, 8, 4};
  moe_tensor args[] = {{x.data(), MOE_F32, 2, sx},  {ids.data(), MOE_I32, 2, sk},
                       {w.data(), MOE_F32, 2, sk},  {w1.data(), MOE_F32, 3, s1},
                       {w3.data(), MOE_F32, 3, s1}, {w2.data(), MOE_F32, 3, s2}};
  moe_tensor out = {y.data(), MOE_F32, 2, sx};
  ASSERT_EQ(moe_layer_run(layer, args, 6, &out, 1), MOE_OK) << moe_last_error();
  ASSERT_EQ(moe_last_stats_count(), 1);
  moe_layer_stats s;
  ASSERT_EQ(moe_last_stats(0, &s), MOE_OK);
  EXPECT_EQ(s.routed_pairs, 5);
  EXPECT_EQ(s.dropped_pairs, 3);
  EXPECT_EQ(std::vector<int64_t>(s.tokens_per_expert, s.tokens_per_expert + 4),
            (std::vector<int64_t>{2, 2, 1, 0}));
  EXPECT_EQ(std::vector<int64_t>(s.slots_per_token, s.slots_per_token + 3),
            (std::vector<int64_t>{1, 1, 2}));
  EXPECT_DOUBLE_EQ(s.flops_saved_fraction, 0.375);

  // The prepared form records the same.
  moe_prepared *prepared = nullptr;
  ASSERT_EQ(moe_layer_prepare(layer, args + 3, 3, &prepared), MOE_OK) << moe_last_error();
  EXPECT_EQ(moe_last_stats_count(), 0); // preparing runs no layer
  ASSERT_EQ(moe_prepared_run(prepared, args, 3, &out, 1), MOE_OK) << moe_last_error();
  ASSERT_EQ(moe_last_stats_count(), 1);
  ASSERT_EQ(moe_last_stats(0, &s), MOE_OK);
  EXPECT_EQ(s.dropped_pairs, 3);

  // A failed call (an id outside [-1, 4)) leaves no statistics.
  ids[5] = 7;
  EXPECT_EQ(moe_prepared_run(prepared, args, 3, &out, 1), MOE_ERR_EXPERT_ID);
  EXPECT_EQ(moe_last_stats_count(), 0);
  moe_prepared_free(prepared);
}
} // namespace
