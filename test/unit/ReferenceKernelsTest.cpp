//===- ReferenceKernelsTest.cpp - tests of the plain-C++ reference kernels ===//
//
// Every expected number below is worked out by hand from the documented
// semantics (MoeOps.td descriptions / Kernels.h), on tiny tensors with simple
// weights, and written either as a literal or as an obvious formula.
//
//===----------------------------------------------------------------------===//

#include "moe/Reference/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace moe::ref;

namespace {

constexpr double kTol = 1e-6;

double e1() { return std::exp(1.0); }
double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }
double silu(double v) { return v * sig(v); }
double gelu(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

Tensor i32(std::vector<int64_t> shape, std::vector<int64_t> data) {
  return Tensor::ints(DType::I32, std::move(shape), std::move(data));
}

/// A routing that a failing call must leave untouched.
Routing sentinelRouting() {
  Routing r;
  r.ids = i32({1, 1}, {77});
  r.weights = Tensor::f32({1, 1}, {7.5f});
  return r;
}

void expectSentinel(const Routing &r) {
  ASSERT_EQ(r.ids.i.size(), 1u);
  EXPECT_EQ(r.ids.i[0], 77);
  ASSERT_EQ(r.weights.f.size(), 1u);
  EXPECT_EQ(r.weights.f[0], 7.5f);
}

void expectIds(const Routing &r, std::vector<int64_t> shape,
               std::vector<int64_t> ids) {
  EXPECT_EQ(r.ids.dtype, DType::I32);
  EXPECT_EQ(r.ids.shape, shape);
  EXPECT_EQ(r.weights.dtype, DType::F32);
  EXPECT_EQ(r.weights.shape, shape);
  EXPECT_EQ(r.ids.i, ids);
}

void expectFloats(const std::vector<float> &got, const std::vector<double> &want,
                  double tol = kTol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t n = 0; n < want.size(); ++n)
    EXPECT_NEAR(got[n], want[n], tol) << "at index " << n;
}

void expectDoubles(const std::vector<double> &got,
                   const std::vector<double> &want, double tol = kTol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t n = 0; n < want.size(); ++n)
    EXPECT_NEAR(got[n], want[n], tol) << "at index " << n;
}

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

/// x = [[1, 0]] and gate rows [1, 0], [2, 0], [0, 0]: logits [1, 2, 0].
Tensor xOneToken() { return Tensor::f32({1, 2}, {1, 0}); }
Tensor gateLogits120() { return Tensor::f32({3, 2}, {1, 0, 2, 0, 0, 0}); }

} // namespace

//===----------------------------------------------------------------------===//
// activate / Tensor
//===----------------------------------------------------------------------===//

TEST(Activate, ScalarFunctionsMatchFormulas) {
  EXPECT_NEAR(activate(Activation::SiLU, 1.0), 1.0 / (1.0 + std::exp(-1.0)), 1e-12);
  EXPECT_NEAR(activate(Activation::SwiGLU, -2.0), -2.0 / (1.0 + std::exp(2.0)), 1e-12);
  EXPECT_NEAR(activate(Activation::GeLU, 1.0),
              0.5 * (1.0 + std::erf(1.0 / std::sqrt(2.0))), 1e-12);
  EXPECT_NEAR(activate(Activation::GeGLU, -1.0),
              -0.5 * (1.0 + std::erf(-1.0 / std::sqrt(2.0))), 1e-12);
  EXPECT_EQ(activate(Activation::ReLU, -1.0), 0.0);
  EXPECT_EQ(activate(Activation::ReLU, 2.5), 2.5);
  EXPECT_TRUE(isGated(Activation::SwiGLU));
  EXPECT_TRUE(isGated(Activation::GeGLU));
  EXPECT_FALSE(isGated(Activation::GeLU));
  EXPECT_FALSE(isGated(Activation::ReLU));
  EXPECT_FALSE(isGated(Activation::SiLU));
}

TEST(Tensor, FactoriesAndDescribe) {
  Tensor a = Tensor::f32({2, 3});
  EXPECT_EQ(a.numel(), 6);
  EXPECT_EQ(a.f, std::vector<float>(6, 0.0f));
  EXPECT_EQ(a.describe(), "[2, 3] f32");
  Tensor b = Tensor::ints(DType::I64, {4});
  EXPECT_EQ(b.i, std::vector<int64_t>(4, 0));
  EXPECT_EQ(b.describe(), "[4] i64");
  EXPECT_FALSE(b.isFloat());
}

//===----------------------------------------------------------------------===//
// topkRouter
//===----------------------------------------------------------------------===//

TEST(TopkRouter, SoftmaxPicksLargestWithProbabilityWeights) {
  Routing r;
  Status s = topkRouter(xOneToken(), gateLogits120(), nullptr, Scoring::Softmax,
                        2, /*renormalize=*/false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  double sum = e1() + std::exp(2.0) + 1.0;
  expectIds(r, {1, 2}, {1, 0});
  expectFloats(r.weights.f, {std::exp(2.0) / sum, e1() / sum});
}

TEST(TopkRouter, RenormalizeDividesBySelectedSum) {
  Routing r;
  Status s = topkRouter(xOneToken(), gateLogits120(), nullptr, Scoring::Softmax,
                        2, /*renormalize=*/true, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {1, 0});
  double sum = e1() + std::exp(2.0);
  expectFloats(r.weights.f, {std::exp(2.0) / sum, e1() / sum});
}

TEST(TopkRouter, ScalingFactorMultipliesAfterRenormalize) {
  Routing r;
  Status s = topkRouter(xOneToken(), gateLogits120(), nullptr, Scoring::Softmax,
                        2, /*renormalize=*/true, 2.5f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  double sum = e1() + std::exp(2.0);
  expectFloats(r.weights.f, {2.5 * std::exp(2.0) / sum, 2.5 * e1() / sum});
  // Scaled after renormalization, the weights sum to the scaling factor.
  EXPECT_NEAR(double(r.weights.f[0]) + r.weights.f[1], 2.5, kTol);

  // Without renormalize the factor scales the raw probabilities.
  s = topkRouter(xOneToken(), gateLogits120(), nullptr, Scoring::Softmax, 1,
                 false, 2.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectFloats(r.weights.f, {2.0 * std::exp(2.0) / (e1() + std::exp(2.0) + 1.0)});
}

TEST(TopkRouter, TiesGoToLowerExpertPerToken) {
  // Token 0: logits [1, 1, 1, 0]; token 1: logits [0, 2, 0, 2].
  Tensor x = Tensor::f32({2, 2}, {1, 0, 0, 1});
  Tensor gate = Tensor::f32({4, 2}, {1, 0, 1, 2, 1, 0, 0, 2});
  Routing r;
  Status s = topkRouter(x, gate, nullptr, Scoring::Softmax, 2, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {2, 2}, {0, 1, 1, 3});
  double s0 = 3 * e1() + 1.0, s1 = 2 * std::exp(2.0) + 2.0;
  expectFloats(r.weights.f,
               {e1() / s0, e1() / s0, std::exp(2.0) / s1, std::exp(2.0) / s1});
}

TEST(TopkRouter, SelectionBiasAffectsSelectionNotWeights) {
  // Logits [0, 1, 0] -> sigmoid [0.5, sig(1), 0.5]; bias [0, 0, 1] makes the
  // biased scores [0.5, 0.73, 1.5].
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({3, 1}, {0, 1, 0});
  Tensor bias = Tensor::f32({3}, {0, 0, 1});
  Routing r;
  Status s = topkRouter(x, gate, &bias, Scoring::Sigmoid, 2, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {2, 1});
  expectFloats(r.weights.f, {0.5, sig(1.0)});

  // Renormalization uses the unbiased scores too.
  s = topkRouter(x, gate, &bias, Scoring::Sigmoid, 2, true, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectFloats(r.weights.f, {0.5 / (0.5 + sig(1.0)), sig(1.0) / (0.5 + sig(1.0))});
}

TEST(TopkRouter, SoftmaxStableForHugeLogits) {
  // Logits [1e4, 9999, -1e4]: exp(1e4) overflows unless the max is removed.
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({3, 1}, {1e4f, 9999.0f, -1e4f});
  Routing r;
  Status s = topkRouter(x, gate, nullptr, Scoring::Softmax, 3, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 3}, {0, 1, 2});
  for (float w : r.weights.f)
    EXPECT_TRUE(std::isfinite(w));
  double d = 1.0 + std::exp(-1.0);
  expectFloats(r.weights.f, {1.0 / d, std::exp(-1.0) / d, 0.0});
}

TEST(TopkRouter, SigmoidStableForVeryNegativeLogit) {
  // Logits [1e4, -1e4, 0] -> sigmoid [1, 0, 0.5]; naive exp(-(-1e4)) = inf.
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({3, 1}, {1e4f, -1e4f, 0.0f});
  Routing r;
  Status s = topkRouter(x, gate, nullptr, Scoring::Sigmoid, 3, true, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 3}, {0, 2, 1});
  for (float w : r.weights.f)
    EXPECT_TRUE(std::isfinite(w));
  expectFloats(r.weights.f, {1.0 / 1.5, 0.5 / 1.5, 0.0});

  // Every score underflows to 0: still finite weights, never NaN.
  Tensor neg = Tensor::f32({2, 1}, {-1e4f, -2e4f});
  s = topkRouter(x, neg, nullptr, Scoring::Sigmoid, 2, true, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  for (float w : r.weights.f)
    EXPECT_TRUE(std::isfinite(w));
}

TEST(TopkRouter, NaNInputFailsAndLeavesOutputUntouched) {
  Tensor x = Tensor::f32({2, 2}, {1, 0, std::numeric_limits<float>::quiet_NaN(), 0});
  Routing r = sentinelRouting();
  Status s = topkRouter(x, gateLogits120(), nullptr, Scoring::Softmax, 1, false,
                        1.0f, r);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "not finite")) << s.error;
  EXPECT_TRUE(contains(s.error, "token 1")) << s.error;
  expectSentinel(r);
}

TEST(TopkRouter, RejectsBadKAndShapes) {
  Routing r = sentinelRouting();
  Status s = topkRouter(xOneToken(), gateLogits120(), nullptr, Scoring::Softmax,
                        4, false, 1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "'k'")) << s.error;
  s = topkRouter(xOneToken(), gateLogits120(), nullptr, Scoring::Softmax, 0,
                 false, 1.0f, r);
  EXPECT_FALSE(s.ok());
  // gate H = 3 vs hidden H = 2.
  s = topkRouter(xOneToken(), Tensor::f32({2, 3}), nullptr, Scoring::Softmax, 1,
                 false, 1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "H")) << s.error;
  // bias of the wrong length.
  Tensor bias = Tensor::f32({2});
  s = topkRouter(xOneToken(), gateLogits120(), &bias, Scoring::Softmax, 1, false,
                 1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "bias")) << s.error;
  expectSentinel(r);
}

//===----------------------------------------------------------------------===//
// groupedTopkRouter
//===----------------------------------------------------------------------===//

TEST(GroupedTopkRouter, GroupScoreIsSumOfTopTwoBiasedScores) {
  // x = 0: every sigmoid score is 0.5, so the bias alone shapes the biased
  // scores: group 0 = [1.4, 0.5, 0.5], group 1 = [1.1, 1.1, 0.0].
  // Top-2 sums: 1.9 vs 2.2 -> group 1 (a max rule would pick group 0, a
  // sum-of-all rule would pick group 0 as well: 2.4 vs 2.2).
  Tensor x = Tensor::f32({1, 2}, {0, 0});
  Tensor gate = Tensor::f32({6, 2}, {1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1});
  Tensor bias = Tensor::f32({6}, {0.9f, 0, 0, 0.6f, 0.6f, -0.5f});
  Routing r;
  Status s = groupedTopkRouter(x, gate, &bias, Scoring::Sigmoid, 1, 2, 1, false,
                               1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  // Expert 0 has the best biased score overall but its group is dropped;
  // experts 3 and 4 tie inside group 1 -> 3. Weight = unbiased sigmoid(0).
  expectIds(r, {1, 1}, {3});
  expectFloats(r.weights.f, {0.5});
}

TEST(GroupedTopkRouter, SelectsOnlyInsideKeptGroupsRenormalizedAndScaled) {
  // Logits [3, 0, 2, 2]; groups {0, 1}, {2, 3}. Softmax group sums:
  // (e^3 + 1) / S > 2 e^2 / S, so group 0 is kept and top-2 = {0, 1}
  // (plain top-2 would be {0, 2}).
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({4, 1}, {3, 0, 2, 2});
  Routing r;
  Status s = groupedTopkRouter(x, gate, nullptr, Scoring::Softmax, 2, 2, 1,
                               false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  double sum = std::exp(3.0) + 1.0 + 2 * std::exp(2.0);
  expectIds(r, {1, 2}, {0, 1});
  expectFloats(r.weights.f, {std::exp(3.0) / sum, 1.0 / sum});

  s = groupedTopkRouter(x, gate, nullptr, Scoring::Softmax, 2, 2, 1, true, 2.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  double kept = std::exp(3.0) + 1.0;
  expectFloats(r.weights.f, {2.0 * std::exp(3.0) / kept, 2.0 / kept});
}

TEST(GroupedTopkRouter, BiasSelectsInsideGroupButWeightsAreUnbiased) {
  // Logits [1, 0, 0, 0] -> sigmoid [sig(1), 0.5, 0.5, 0.5]; bias
  // [0, 0.5, 0, 0] -> biased [0.73, 1.0, 0.5, 0.5]. Group {0, 1} (1.73)
  // beats {2, 3} (1.0); inside it expert 1 wins on the biased score, but its
  // weight is its unbiased 0.5.
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({4, 1}, {1, 0, 0, 0});
  Tensor bias = Tensor::f32({4}, {0, 0.5f, 0, 0});
  Routing r;
  Status s = groupedTopkRouter(x, gate, &bias, Scoring::Sigmoid, 1, 2, 1, false,
                               1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 1}, {1});
  expectFloats(r.weights.f, {0.5});
  s = groupedTopkRouter(x, gate, &bias, Scoring::Sigmoid, 2, 2, 1, true, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {1, 0});
  expectFloats(r.weights.f, {0.5 / (0.5 + sig(1.0)), sig(1.0) / (0.5 + sig(1.0))});
}

TEST(GroupedTopkRouter, TiedGroupsGoToLowerGroup) {
  // All logits equal: every group ties, group 0 wins; inside it 0 then 1.
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({4, 1}, {1, 1, 1, 1});
  Routing r;
  Status s = groupedTopkRouter(x, gate, nullptr, Scoring::Softmax, 2, 2, 1,
                               false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {0, 1});
  expectFloats(r.weights.f, {0.25, 0.25});
  // Keeping both groups, k = 3 takes 0, 1, 2.
  s = groupedTopkRouter(x, gate, nullptr, Scoring::Softmax, 3, 2, 2, false,
                        1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 3}, {0, 1, 2});
}

TEST(GroupedTopkRouter, RejectsBadGrouping) {
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({4, 1}, {1, 2, 3, 4});
  Routing r = sentinelRouting();
  Status s = groupedTopkRouter(x, gate, nullptr, Scoring::Softmax, 1, 3, 1,
                               false, 1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "num_groups")) << s.error;
  s = groupedTopkRouter(x, gate, nullptr, Scoring::Softmax, 1, 2, 3, false,
                        1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "topk_groups")) << s.error;
  // k = 3 > topk_groups * E / G = 2.
  s = groupedTopkRouter(x, gate, nullptr, Scoring::Softmax, 3, 2, 1, false,
                        1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "'k'")) << s.error;
  expectSentinel(r);
}

//===----------------------------------------------------------------------===//
// toppRouter
//===----------------------------------------------------------------------===//

namespace {
/// Logits [2, 1, 0]: p = [e^2, e, 1] / S = [0.665, 0.245, 0.090].
Tensor gate210() { return Tensor::f32({3, 1}, {2, 1, 0}); }
double pOf(int j) {
  double sum = std::exp(2.0) + e1() + 1.0;
  return std::exp(2.0 - j) / sum;
}
} // namespace

TEST(ToppRouter, TakesExpertsUntilCumulativeReachesThreshold) {
  Tensor x = Tensor::f32({1, 1}, {1});
  Routing r;
  Status s = toppRouter(x, gate210(), 0.6f, 3, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 3}, {0, -1, -1});
  expectFloats(r.weights.f, {pOf(0), 0.0, 0.0});

  s = toppRouter(x, gate210(), 0.8f, 3, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 3}, {0, 1, -1});
  expectFloats(r.weights.f, {pOf(0), pOf(1), 0.0});

  s = toppRouter(x, gate210(), 0.95f, 3, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 3}, {0, 1, 2});
  expectFloats(r.weights.f, {pOf(0), pOf(1), pOf(2)});
}

TEST(ToppRouter, CappedAtMaxK) {
  Tensor x = Tensor::f32({1, 1}, {1});
  Routing r;
  Status s = toppRouter(x, gate210(), 0.95f, 2, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {0, 1});
  expectFloats(r.weights.f, {pOf(0), pOf(1)});
  // Renormalization divides by the sum of the max_k kept experts only.
  s = toppRouter(x, gate210(), 0.95f, 2, true, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {0, 1});
  expectFloats(r.weights.f, {pOf(0) / (pOf(0) + pOf(1)), pOf(1) / (pOf(0) + pOf(1))});
  // max_k = 1 always gives exactly one expert.
  s = toppRouter(x, gate210(), 1.0f, 1, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 1}, {0});
}

TEST(ToppRouter, ReachingThresholdExactlyStopsAndTiesGoLow) {
  // p = [0.5, 0.5] exactly: threshold 0.5 is reached (>=) by the first,
  // which is expert 0 (tie to the lower id).
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({2, 1}, {0, 0});
  Routing r;
  Status s = toppRouter(x, gate, 0.5f, 2, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {0, -1});
  expectFloats(r.weights.f, {0.5, 0.0});
  // A tiny threshold still takes at least one expert.
  s = toppRouter(x, gate, 1e-6f, 2, false, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 2}, {0, -1});
}

TEST(ToppRouter, RenormalizeThenScale) {
  Tensor x = Tensor::f32({1, 1}, {1});
  Routing r;
  Status s = toppRouter(x, gate210(), 0.8f, 3, true, 2.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 3}, {0, 1, -1});
  double kept = std::exp(2.0) + e1();
  expectFloats(r.weights.f, {2.0 * std::exp(2.0) / kept, 2.0 * e1() / kept, 0.0});
}

TEST(ToppRouter, RejectsThresholdOutsideUnitInterval) {
  Tensor x = Tensor::f32({1, 1}, {1});
  Routing r = sentinelRouting();
  Status s = toppRouter(x, gate210(), 0.0f, 2, false, 1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "threshold")) << s.error;
  s = toppRouter(x, gate210(), 1.5f, 2, false, 1.0f, r);
  EXPECT_FALSE(s.ok());
  s = toppRouter(x, gate210(), 0.5f, 4, false, 1.0f, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "max_k")) << s.error;
  expectSentinel(r);
}

//===----------------------------------------------------------------------===//
// reluRouter
//===----------------------------------------------------------------------===//

TEST(ReluRouter, KeepsOnlyPositiveLogitsDescending) {
  // Logits [1, -1, 2, 0]: 0 is not positive.
  Tensor x = Tensor::f32({1, 1}, {1});
  Tensor gate = Tensor::f32({4, 1}, {1, -1, 2, 0});
  Routing r;
  Status s = reluRouter(x, gate, 4, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {1, 4}, {2, 0, -1, -1});
  expectFloats(r.weights.f, {2.0, 1.0, 0.0, 0.0});
}

TEST(ReluRouter, TruncatesToSlotsAndScales) {
  Tensor x = Tensor::f32({2, 1}, {1, -1});
  Tensor gate = Tensor::f32({4, 1}, {1, -1, 2, 0});
  Routing r;
  // Token 1 has logits [-1, 1, -2, 0]: only expert 1.
  Status s = reluRouter(x, gate, 1, 0.5f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {2, 1}, {2, 1});
  expectFloats(r.weights.f, {1.0, 0.5});
}

TEST(ReluRouter, TiesGoToLowerIdAndAllNegativeIsEmpty) {
  Tensor x = Tensor::f32({2, 1}, {1, -1});
  Tensor gate = Tensor::f32({3, 1}, {0.5f, 0.5f, 0.5f});
  Routing r;
  Status s = reluRouter(x, gate, 2, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {2, 2}, {0, 1, -1, -1});
  expectFloats(r.weights.f, {0.5, 0.5, 0.0, 0.0});
}

//===----------------------------------------------------------------------===//
// expertChoiceRouter
//===----------------------------------------------------------------------===//

namespace {
/// Tokens [1, 0], [0, 1], [0, 0]; gate = identity: logits = the tokens.
Tensor ecTokens() { return Tensor::f32({3, 2}, {1, 0, 0, 1, 0, 0}); }
Tensor ecGate() { return Tensor::f32({2, 2}, {1, 0, 0, 1}); }
} // namespace

TEST(ExpertChoiceRouter, EachExpertTakesItsTopCapacityTokens) {
  // S rows: t0 [a, b], t1 [b, a], t2 [0.5, 0.5] with a = e/(e+1), b = 1/(e+1).
  double a = e1() / (e1() + 1.0);
  Routing r;
  Status s = expertChoiceRouter(ecTokens(), ecGate(), Scoring::Softmax, 1, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  // Expert 0 takes t0, expert 1 takes t1; t2 is taken by nobody.
  expectIds(r, {3, 2}, {0, -1, 1, -1, -1, -1});
  expectFloats(r.weights.f, {a, 0.0, a, 0.0, 0.0, 0.0});

  s = expertChoiceRouter(ecTokens(), ecGate(), Scoring::Softmax, 2, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  // Both experts' second pick is t2 (0.5 > b); t2 lists them ascending.
  expectIds(r, {3, 2}, {0, -1, 1, -1, 0, 1});
  expectFloats(r.weights.f, {a, 0.0, a, 0.0, 0.5, 0.5});
}

TEST(ExpertChoiceRouter, TiesGoToLowerTokenAndSlotsAscend) {
  // All tokens equal: each expert takes token 0 only.
  Tensor x = Tensor::f32({3, 1}, {1, 1, 1});
  Tensor gate = Tensor::f32({3, 1}, {2, 0, 1});
  Routing r;
  Status s = expertChoiceRouter(x, gate, Scoring::Softmax, 1, 1.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  // Token 0's slots hold experts in ascending id, not by score (2, 0, 1).
  expectIds(r, {3, 3}, {0, 1, 2, -1, -1, -1, -1, -1, -1});
  double sum = std::exp(2.0) + 1.0 + e1();
  expectFloats(r.weights.f,
               {std::exp(2.0) / sum, 1.0 / sum, e1() / sum, 0, 0, 0, 0, 0, 0});
}

TEST(ExpertChoiceRouter, CapacityAboveTokensClampsAndScales) {
  Tensor x = Tensor::f32({2, 1}, {1, -1});
  Tensor gate = Tensor::f32({2, 1}, {1, 0});
  Routing r;
  Status s = expertChoiceRouter(x, gate, Scoring::Sigmoid, 5, 2.0f, r);
  ASSERT_TRUE(s.ok()) << s.error;
  // min(5, T = 2): every expert takes every token. Sigmoid scores.
  expectIds(r, {2, 2}, {0, 1, 0, 1});
  expectFloats(r.weights.f, {2 * sig(1.0), 1.0, 2 * sig(-1.0), 1.0});
  Routing bad = sentinelRouting();
  s = expertChoiceRouter(x, gate, Scoring::Sigmoid, 0, 1.0f, bad);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "capacity")) << s.error;
  expectSentinel(bad);
}

//===----------------------------------------------------------------------===//
// hashRouter / hashExpert
//===----------------------------------------------------------------------===//

TEST(HashRouter, HashExpertIsMultiplicativeHashModE) {
  // 2654435761 = 0x9E3779B1 is 1 mod 8, so for E = 8 the expert is id mod 8.
  EXPECT_EQ(hashExpert(5, 8), 5);
  EXPECT_EQ(hashExpert(13, 8), 5);
  EXPECT_EQ(hashExpert(0, 8), 0);
  // 2654435761 mod 3 = 1 (digit sum 43).
  EXPECT_EQ(hashExpert(1, 3), 1);
  // 2 * 2654435761 = 5308871522 wraps to 1013904226 (digit sum 28 -> 1 mod 3);
  // without the 32-bit wrap it would be 5308871522 mod 3 = 2.
  EXPECT_EQ(hashExpert(2, 3), 1);
  EXPECT_EQ(hashExpert(2, 5), 1); // 1013904226 mod 5
  // uint32(-1) * 2654435761 mod 2^32 = 2^32 - 2654435761 = 1640531535.
  EXPECT_EQ(hashExpert(-1, 3), 0);
  EXPECT_EQ(hashExpert(-1, 5), 0);
  EXPECT_EQ(hashExpert(7, 1), 0);
}

TEST(HashRouter, OneSlotOfWeightOnePerToken) {
  Routing r;
  Status s = hashRouter(i32({4}, {1, 2, -1, 5}), 3, r);
  ASSERT_TRUE(s.ok()) << s.error;
  // 5 * 2654435761 = 13272178805 wraps to 387276917 (digit sum 50) -> 2 mod 3.
  expectIds(r, {4, 1}, {1, 1, 0, 2});
  expectFloats(r.weights.f, {1, 1, 1, 1});
  // i64 token ids work the same.
  s = hashRouter(Tensor::ints(DType::I64, {2}, {13, 5}), 8, r);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(r, {2, 1}, {5, 5});
}

TEST(HashRouter, RejectsFloatIdsAndNonPositiveE) {
  Routing r = sentinelRouting();
  Status s = hashRouter(Tensor::f32({2}, {1, 2}), 4, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "token_ids")) << s.error;
  s = hashRouter(i32({2}, {1, 2}), 0, r);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "num_experts")) << s.error;
  expectSentinel(r);
}

//===----------------------------------------------------------------------===//
// capacityLimit / capacityDrop
//===----------------------------------------------------------------------===//

TEST(CapacityDrop, LimitIsCeilOfFactorTimesTKOverE) {
  EXPECT_EQ(capacityLimit(1.0f, 16, 1, 8), 2);
  EXPECT_EQ(capacityLimit(1.0f, 3, 1, 2), 2);  // ceil(1.5)
  EXPECT_EQ(capacityLimit(0.5f, 3, 1, 2), 1);  // ceil(0.75)
  EXPECT_EQ(capacityLimit(2.0f, 5, 1, 4), 3);  // ceil(2.5)
  EXPECT_EQ(capacityLimit(1.25f, 4, 1, 1), 5); // exactly 5
  EXPECT_EQ(capacityLimit(0.5f, 3, 2, 2), 2);  // ceil(1.5)
}

TEST(CapacityDrop, VisitsSlotMajorAndDropsOverflow) {
  // T = 3, K = 2, E = 2, cf = 0.5: C = ceil(0.5 * 3 * 2 / 2) = 2.
  // Slot 0: t0->1, t1->0, t2->0 (expert 0 now full); slot 1: t0->0 dropped,
  // t1->1 kept (expert 1 now full), t2->1 dropped. (Token-major order would
  // keep t0's both slots and drop t2's both instead.)
  Routing in;
  in.ids = i32({3, 2}, {1, 0, 0, 1, 0, 1});
  in.weights = Tensor::f32({3, 2}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f});
  Routing out;
  Status s = capacityDrop(in, 2, 0.5f, out);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(out, {3, 2}, {1, -1, 0, 1, 0, -1});
  // Kept weights unchanged (no renormalization), dropped ones 0.
  expectFloats(out.weights.f, {0.1, 0.0, 0.3, 0.4, 0.5, 0.0});
}

TEST(CapacityDrop, UnusedSlotsStayAndDoNotConsumeCapacity) {
  // T = 4, K = 1, E = 2, cf = 0.5: C = 1.
  Routing in;
  in.ids = i32({4, 1}, {-1, 1, 1, 0});
  in.weights = Tensor::f32({4, 1}, {0.0f, 2.0f, 3.0f, 4.0f});
  Routing out;
  Status s = capacityDrop(in, 2, 0.5f, out);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(out, {4, 1}, {-1, 1, -1, 0});
  expectFloats(out.weights.f, {0.0, 2.0, 0.0, 4.0});
  // A large factor drops nothing.
  s = capacityDrop(in, 2, 4.0f, out);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(out, {4, 1}, {-1, 1, 1, 0});
  expectFloats(out.weights.f, {0.0, 2.0, 3.0, 4.0});
}

TEST(CapacityDrop, RejectsIdOutsideRangeAndBadFactor) {
  Routing in;
  in.ids = i32({2, 1}, {0, 2});
  in.weights = Tensor::f32({2, 1}, {1, 1});
  Routing out = sentinelRouting();
  Status s = capacityDrop(in, 2, 1.0f, out);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "expert id 2")) << s.error;
  EXPECT_TRUE(contains(s.error, "ids[1, 0]")) << s.error;
  in.ids.i = {0, -2};
  s = capacityDrop(in, 2, 1.0f, out);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "expert id -2")) << s.error;
  in.ids.i = {0, 1};
  s = capacityDrop(in, 2, 0.0f, out);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "capacity_factor")) << s.error;
  expectSentinel(out);
}

//===----------------------------------------------------------------------===//
// routerScores / capacityReroute
//===----------------------------------------------------------------------===//

TEST(RouterScores, AreTheScoresTopKRanks) {
  Tensor x = Tensor::f32({2, 2}, {1.0f, 0.0f, 0.0f, -2.0f});
  Tensor gate = Tensor::f32({3, 2}, {1.0f, 0.0f, 0.0f, 1.0f, 0.5f, 0.5f});
  Tensor scores;
  Status s = routerScores(x, gate, Scoring::Softmax, scores);
  ASSERT_TRUE(s.ok()) << s.error;
  ASSERT_EQ(scores.shape, (std::vector<int64_t>{2, 3}));
  Routing r;
  ASSERT_TRUE(topkRouter(x, gate, nullptr, Scoring::Softmax, 3, false, 1.0f, r).ok());
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t j = 0; j < 3; ++j)
      EXPECT_EQ(scores.f[t * 3 + r.ids.i[t * 3 + j]], r.weights.f[t * 3 + j]);
  Tensor sig;
  ASSERT_TRUE(routerScores(x, gate, Scoring::Sigmoid, sig).ok());
  EXPECT_NEAR(sig.f[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-7);
}

TEST(CapacityReroute, DocExample) {
  // docs/dialect.md §4.7.2: T = 4, K = 1, E = 2, cf = 0.5, so C = 1.
  Routing in;
  in.ids = i32({4, 1}, {0, 0, 0, 0});
  in.weights = Tensor::f32({4, 1}, {0.9f, 0.6f, 0.8f, 0.7f});
  Tensor scores = Tensor::f32({4, 2}, {0.9f, 0.1f, 0.6f, 0.4f, 0.8f, 0.2f, 0.7f, 0.3f});
  Routing out;
  Status s = capacityReroute(in, scores, 0.5f, out);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(out, {4, 1}, {0, -1, 1, -1});
  EXPECT_FLOAT_EQ(out.weights.f[0], 0.9f);
  EXPECT_FLOAT_EQ(out.weights.f[1], 0.0f);
  EXPECT_FLOAT_EQ(out.weights.f[2], 0.8f * (0.2f / 0.8f));
  EXPECT_FLOAT_EQ(out.weights.f[3], 0.0f);
}

TEST(CapacityReroute, KeepsTheTokensExpertsAndBreaksTiesByTokenThenSlot) {
  // T = 2, K = 2, E = 3, cf = 0.75: C = ceil(0.75 * 2 * 2 / 3) = 1. Every
  // score ties at 0.5 except expert 2's. Admission order (ties: token,
  // slot): (0,0)->0 kept, (0,1)->1 kept, (1,0)->0 dropped, (1,1)->1
  // dropped. Re-routing: (1,0) takes expert 2 (the only one with room);
  // (1,1) finds none.
  Routing in;
  in.ids = i32({2, 2}, {0, 1, 0, 1});
  in.weights = Tensor::f32({2, 2}, {0.5f, 0.5f, 1.0f, 1.0f});
  Tensor scores = Tensor::f32({2, 3}, {0.5f, 0.5f, 0.25f, 0.5f, 0.5f, 0.25f});
  Routing out;
  ASSERT_TRUE(capacityReroute(in, scores, 0.75f, out).ok());
  expectIds(out, {2, 2}, {0, 1, 2, -1});
  expectFloats(out.weights.f, {0.5, 0.5, 0.5, 0.0});
}

TEST(CapacityReroute, NeverTakesAnExpertTheTokenHolds) {
  // T = 3, K = 2, E = 3, cf = 1: C = 2. Token 2 is admitted last (lowest
  // scores) and loses expert 0; expert 2 is full, expert 1 it holds: dropped.
  Routing in;
  in.ids = i32({3, 2}, {0, 2, 0, 2, 0, 1});
  in.weights = Tensor::f32({3, 2}, {1, 1, 1, 1, 1, 1});
  Tensor scores = Tensor::f32({3, 3}, {0.9f, 0.0f, 0.8f, 0.9f, 0.0f, 0.8f, 0.3f, 0.2f, 0.1f});
  Routing out;
  ASSERT_TRUE(capacityReroute(in, scores, 1.0f, out).ok());
  expectIds(out, {3, 2}, {0, 2, 0, 2, -1, 1});
}

TEST(CapacityReroute, RejectsBadIdsScoresAndFactor) {
  Routing in;
  in.ids = i32({2, 1}, {0, 2});
  in.weights = Tensor::f32({2, 1}, {1, 1});
  Tensor scores = Tensor::f32({2, 2}, {0.5f, 0.5f, 0.5f, 0.5f});
  Routing out = sentinelRouting();
  Status s = capacityReroute(in, scores, 1.0f, out);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "expert id 2")) << s.error;
  in.ids.i = {0, 1};
  scores.f[3] = std::nanf("");
  s = capacityReroute(in, scores, 1.0f, out);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "scores[1, 1]")) << s.error;
  scores.f[3] = 0.5f;
  s = capacityReroute(in, Tensor::f32({3, 2}), 1.0f, out);
  EXPECT_FALSE(s.ok());
  s = capacityReroute(in, scores, 0.0f, out);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "capacity_factor")) << s.error;
  expectSentinel(out);
}

//===----------------------------------------------------------------------===//
// compressSlots
//===----------------------------------------------------------------------===//

TEST(CompressSlots, DocExample) {
  // docs/dialect.md §4.7.3: E = 4, compressed = [0, 0, 1, 1], keep = 1.
  Routing in;
  in.ids = i32({3, 3}, {2, 0, 3, 1, -1, 3, 0, 1, 2});
  in.weights = Tensor::f32({3, 3}, {0.5f, 0.3f, 0.2f, 0.4f, 0.0f, 0.6f, 0.3f, 0.3f, 0.4f});
  Routing out;
  Status s = compressSlots(in, {0, 0, 1, 1}, 1, out);
  ASSERT_TRUE(s.ok()) << s.error;
  expectIds(out, {3, 3}, {2, 4, 5, 4, -1, 3, 4, 4, 2});
  expectFloats(out.weights.f, {0.5, 0.3, 0.2, 0.4, 0.0, 0.6, 0.3, 0.3, 0.4});
}

TEST(CompressSlots, KeepZeroAndKeepK) {
  Routing in;
  in.ids = i32({1, 2}, {1, 0});
  in.weights = Tensor::f32({1, 2}, {0.25f, 0.75f});
  Routing out;
  ASSERT_TRUE(compressSlots(in, {1, 0}, 0, out).ok());
  expectIds(out, {1, 2}, {2, 3});
  ASSERT_TRUE(compressSlots(in, {1, 0}, 2, out).ok());
  expectIds(out, {1, 2}, {1, 0});
}

TEST(CompressSlots, RejectsIdOutsideRange) {
  Routing in;
  in.ids = i32({1, 2}, {0, 2});
  in.weights = Tensor::f32({1, 2}, {1, 1});
  Routing out = sentinelRouting();
  Status s = compressSlots(in, {0, 0}, 1, out);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "expert id 2")) << s.error;
  expectSentinel(out);
}

//===----------------------------------------------------------------------===//
// pathRouter
//===----------------------------------------------------------------------===//

TEST(PathRouter, ArgmaxWithTiesToLowerPath) {
  // gate rows [0, 0], [1, 0], [0, 1]; tokens [-1, -1] -> [0, -1, -1] -> 0,
  // [2, 1] -> 1, [1, 3] -> 2, [1, 1] -> [0, 1, 1] -> 1 (tie 1/2).
  Tensor x = Tensor::f32({4, 2}, {-1, -1, 2, 1, 1, 3, 1, 1});
  Tensor gate = Tensor::f32({3, 2}, {0, 0, 1, 0, 0, 1});
  Tensor paths;
  Status s = pathRouter(x, gate, paths);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(paths.dtype, DType::I32);
  EXPECT_EQ(paths.shape, std::vector<int64_t>{4});
  EXPECT_EQ(paths.i, (std::vector<int64_t>{0, 1, 2, 1}));
}

TEST(PathRouter, NaNInputFails) {
  Tensor x = Tensor::f32({1, 2}, {std::numeric_limits<float>::infinity(), 0});
  Tensor gate = Tensor::f32({2, 2}, {1, 0, 0, 1});
  Tensor paths = Tensor::ints(DType::I32, {1}, {9});
  Status s = pathRouter(x, gate, paths);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "not finite")) << s.error;
  EXPECT_EQ(paths.i, std::vector<int64_t>{9});
}

//===----------------------------------------------------------------------===//
// applyExpert
//===----------------------------------------------------------------------===//

TEST(ApplyExpert, ZeroCopyConst) {
  const float x[2] = {1.5f, -2.0f};
  std::vector<double> out;
  ExpertBank zero;
  zero.kind = ExpertBank::Kind::Zero;
  zero.count = 2;
  zero.hidden = 2;
  applyExpert(zero, 1, x, out);
  expectDoubles(out, {0.0, 0.0});

  ExpertBank copy;
  copy.kind = ExpertBank::Kind::Copy;
  copy.count = 1;
  copy.hidden = 2;
  applyExpert(copy, 0, x, out);
  expectDoubles(out, {1.5, -2.0});

  Tensor values = Tensor::f32({3, 2}, {1, 2, 3, 4, 5, 6});
  ExpertBank cst;
  cst.kind = ExpertBank::Kind::Const;
  cst.count = 3;
  cst.hidden = 2;
  cst.values = &values;
  applyExpert(cst, 1, x, out);
  expectDoubles(out, {3.0, 4.0});
  applyExpert(cst, 2, x, out);
  expectDoubles(out, {5.0, 6.0});
}

namespace {
/// Two SwiGLU-shaped experts, H = 2, I = 1.
///   expert 0: w1 = [[1, 1]], w3 = [[1, 0]], w2 = [[1], [1]]
///   expert 1: w1 = [[1, 0]], w3 = [[0, 2]], w2 = [[1], [-1]]
struct TwoExperts {
  Tensor w1 = Tensor::f32({2, 1, 2}, {1, 1, 1, 0});
  Tensor w3 = Tensor::f32({2, 1, 2}, {1, 0, 0, 2});
  Tensor w2 = Tensor::f32({2, 2, 1}, {1, 1, 1, -1});
  ExpertBank bank(Activation act, bool gated) const {
    ExpertBank b;
    b.kind = ExpertBank::Kind::Ffn;
    b.count = 2;
    b.hidden = 2;
    b.activation = act;
    b.w1 = &w1;
    b.w3 = gated ? &w3 : nullptr;
    b.w2 = &w2;
    return b;
  }
};
} // namespace

TEST(ApplyExpert, FfnSwiGLUUsesExpertSlice) {
  TwoExperts t;
  const float x[2] = {1.0f, 0.5f};
  std::vector<double> out;
  // Expert 1: w1 x = 1, w3 x = 1 -> silu(1) * 1, then w2 -> [s, -s].
  applyExpert(t.bank(Activation::SwiGLU, true), 1, x, out);
  expectDoubles(out, {silu(1.0), -silu(1.0)});
  // Expert 0: w1 x = 1.5, w3 x = 1 -> silu(1.5), w2 -> [s, s].
  applyExpert(t.bank(Activation::SwiGLU, true), 0, x, out);
  expectDoubles(out, {silu(1.5), silu(1.5)});
}

TEST(ApplyExpert, FfnGeGLU) {
  TwoExperts t;
  const float x[2] = {-1.0f, 2.0f};
  std::vector<double> out;
  // Expert 1: w1 x = -1, w3 x = 4 -> gelu(-1) * 4 -> [g, -g].
  applyExpert(t.bank(Activation::GeGLU, true), 1, x, out);
  double g = gelu(-1.0) * 4.0;
  expectDoubles(out, {g, -g});
}

TEST(ApplyExpert, FfnPlainActivationsIgnoreW3) {
  TwoExperts t;
  const float x[2] = {-2.0f, 0.5f};
  std::vector<double> out;
  // Expert 0: w1 x = -1.5.
  applyExpert(t.bank(Activation::ReLU, false), 0, x, out);
  expectDoubles(out, {0.0, 0.0});
  applyExpert(t.bank(Activation::GeLU, false), 0, x, out);
  expectDoubles(out, {gelu(-1.5), gelu(-1.5)});
  applyExpert(t.bank(Activation::SiLU, false), 0, x, out);
  expectDoubles(out, {silu(-1.5), silu(-1.5)});
  // Expert 1 on [3, 7]: w1 y = 3 -> relu 3 -> w2 -> [3, -3].
  const float y[2] = {3.0f, 7.0f};
  applyExpert(t.bank(Activation::ReLU, false), 1, y, out);
  expectDoubles(out, {3.0, -3.0});
}

TEST(ApplyExpert, LoraSwiGLUAddsScaledAdapterToEveryProjection) {
  // Base (H = 2, I = 1): w1 = [[1, 0]], w3 = [[0, 1]], w2 = [[1], [0]].
  // N = 2 experts, rank r = 1, alpha = 2 -> scale alpha / r = 2.
  // Expert 0: all adapters zero (= base FFN).
  // Expert 1: a1 = [[0, 1]], b1 = [[1]]; a3 = [[1, 0]], b3 = [[0.5]];
  //           a2 = [[1]], b2 = [[0], [1]].
  Tensor w1 = Tensor::f32({1, 2}, {1, 0});
  Tensor w3 = Tensor::f32({1, 2}, {0, 1});
  Tensor w2 = Tensor::f32({2, 1}, {1, 0});
  Tensor a1 = Tensor::f32({2, 1, 2}, {0, 0, 0, 1});
  Tensor b1 = Tensor::f32({2, 1, 1}, {0, 1});
  Tensor a3 = Tensor::f32({2, 1, 2}, {0, 0, 1, 0});
  Tensor b3 = Tensor::f32({2, 1, 1}, {0, 0.5f});
  Tensor a2 = Tensor::f32({2, 1, 1}, {0, 1});
  Tensor b2 = Tensor::f32({2, 2, 1}, {0, 0, 0, 1});
  ExpertBank b;
  b.kind = ExpertBank::Kind::Lora;
  b.count = 2;
  b.hidden = 2;
  b.activation = Activation::SwiGLU;
  b.alpha = 2.0f;
  b.w1 = &w1;
  b.w3 = &w3;
  b.w2 = &w2;
  b.a1 = &a1;
  b.b1 = &b1;
  b.a3 = &a3;
  b.b3 = &b3;
  b.a2 = &a2;
  b.b2 = &b2;
  const float x[2] = {1.0f, 2.0f};
  std::vector<double> out;
  // Expert 0: up = 1, gate = 2, mid = 2 silu(1), out = [mid, 0].
  applyExpert(b, 0, x, out);
  expectDoubles(out, {2.0 * silu(1.0), 0.0});
  // Expert 1: up = 1 + 2 * 1 * 2 = 5; gate = 2 + 2 * 0.5 * 1 = 3;
  // mid = 3 silu(5); out = [mid, 0] + 2 * [0, mid] = [mid, 2 mid].
  applyExpert(b, 1, x, out);
  double mid = 3.0 * silu(5.0);
  expectDoubles(out, {mid, 2.0 * mid}, 1e-5);
}

TEST(ApplyExpert, LoraScaleIsAlphaOverRank) {
  // Plain ReLU, H = 2, I = 1, N = 1, r = 2, alpha = 1 -> scale 0.5.
  // w1 = [[1, 1]], w2 = [[1], [1]]; a1 = I2, b1 = [[1, 1]] (B A x = x0 + x1);
  // a2 = [[1], [1]], b2 = [[1, 0], [0, -1]] (B A m = [m, -m]).
  // x = [1, 2]: up = 3 + 0.5 * 3 = 4.5 = m; out = [m, m] + 0.5 [m, -m].
  Tensor w1 = Tensor::f32({1, 2}, {1, 1});
  Tensor w2 = Tensor::f32({2, 1}, {1, 1});
  Tensor a1 = Tensor::f32({1, 2, 2}, {1, 0, 0, 1});
  Tensor b1 = Tensor::f32({1, 1, 2}, {1, 1});
  Tensor a2 = Tensor::f32({1, 2, 1}, {1, 1});
  Tensor b2 = Tensor::f32({1, 2, 2}, {1, 0, 0, -1});
  ExpertBank b;
  b.kind = ExpertBank::Kind::Lora;
  b.count = 1;
  b.hidden = 2;
  b.activation = Activation::ReLU;
  b.alpha = 1.0f;
  b.w1 = &w1;
  b.w2 = &w2;
  b.a1 = &a1;
  b.b1 = &b1;
  b.a2 = &a2;
  b.b2 = &b2;
  const float x[2] = {1.0f, 2.0f};
  std::vector<double> out;
  applyExpert(b, 0, x, out);
  expectDoubles(out, {1.5 * 4.5, 0.5 * 4.5});
}

//===----------------------------------------------------------------------===//
// layer
//===----------------------------------------------------------------------===//

namespace {
ExpertBank simpleBank(ExpertBank::Kind kind, int64_t count,
                      const Tensor *values = nullptr) {
  ExpertBank b;
  b.kind = kind;
  b.count = count;
  b.hidden = 2;
  b.values = values;
  return b;
}
} // namespace

TEST(Layer, WeightedSumOverSlotsPlusSharedExperts) {
  // Table: id 0 copy, ids 1-2 const [[1, 1], [10, -10]], id 3 zero.
  // Shared: const [[0.25, 0.5]] with weight 1.
  Tensor values = Tensor::f32({2, 2}, {1, 1, 10, -10});
  Tensor sharedValues = Tensor::f32({1, 2}, {0.25f, 0.5f});
  std::vector<ExpertBank> experts = {
      simpleBank(ExpertBank::Kind::Copy, 1),
      simpleBank(ExpertBank::Kind::Const, 2, &values),
      simpleBank(ExpertBank::Kind::Zero, 1)};
  std::vector<ExpertBank> shared = {
      simpleBank(ExpertBank::Kind::Const, 1, &sharedValues)};
  Tensor x = Tensor::f32({2, 2}, {1, 2, 3, 4});
  Routing r;
  r.ids = i32({2, 2}, {0, 2, 3, -1});
  // The unused slot's weight (7) must be ignored.
  r.weights = Tensor::f32({2, 2}, {0.5f, 2.0f, 1.0f, 7.0f});
  Tensor y;
  Status s = layer(x, r, experts, shared, y);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 2}));
  // t0: 0.5 [1, 2] + 2 [10, -10] + [0.25, 0.5]; t1: 0 + [0.25, 0.5].
  expectFloats(y.f, {20.75, -18.5, 0.25, 0.5});

  // Without shared experts.
  s = layer(x, r, experts, {}, y);
  ASSERT_TRUE(s.ok()) << s.error;
  expectFloats(y.f, {20.5, -19.0, 0.0, 0.0});
}

TEST(Layer, BanksOfDifferentSizesShareOneIdTable) {
  // Bank A: 1 ReLU expert, I = 1: w1 = [[1, 0]], w2 = [[1], [1]].
  // Bank B: 2 ReLU experts, I = 2: expert 0 = identity, expert 1 = 2 * I2.
  Tensor aw1 = Tensor::f32({1, 1, 2}, {1, 0});
  Tensor aw2 = Tensor::f32({1, 2, 1}, {1, 1});
  Tensor bw1 = Tensor::f32({2, 2, 2}, {1, 0, 0, 1, 1, 0, 0, 1});
  Tensor bw2 = Tensor::f32({2, 2, 2}, {1, 0, 0, 1, 2, 0, 0, 2});
  ExpertBank a = simpleBank(ExpertBank::Kind::Ffn, 1);
  a.activation = Activation::ReLU;
  a.w1 = &aw1;
  a.w2 = &aw2;
  ExpertBank b = simpleBank(ExpertBank::Kind::Ffn, 2);
  b.activation = Activation::ReLU;
  b.w1 = &bw1;
  b.w2 = &bw2;
  Tensor x = Tensor::f32({1, 2}, {3, -1});
  Routing r;
  r.ids = i32({1, 2}, {2, 0});
  r.weights = Tensor::f32({1, 2}, {0.5f, 1.0f});
  Tensor y;
  Status s = layer(x, r, {a, b}, {}, y);
  ASSERT_TRUE(s.ok()) << s.error;
  // id 2 = bank B expert 1: 2 relu(x) = [6, 0], * 0.5 = [3, 0];
  // id 0 = bank A: relu(3) = 3 -> [3, 3].
  expectFloats(y.f, {6.0, 3.0});
}

TEST(Layer, RejectsIdOutsideTableAndLeavesOutputUntouched) {
  std::vector<ExpertBank> experts = {simpleBank(ExpertBank::Kind::Copy, 2)};
  Tensor x = Tensor::f32({2, 2}, {1, 2, 3, 4});
  Routing r;
  r.ids = i32({2, 1}, {0, 2});
  r.weights = Tensor::f32({2, 1}, {1, 1});
  Tensor y = Tensor::f32({1}, {42});
  Status s = layer(x, r, experts, {}, y);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "expert id 2")) << s.error;
  EXPECT_TRUE(contains(s.error, "[-1, 2)")) << s.error;
  EXPECT_EQ(y.f, std::vector<float>{42});

  // T of the routing must match the hidden input.
  r.ids = i32({1, 1}, {0});
  r.weights = Tensor::f32({1, 1}, {1});
  s = layer(x, r, experts, {}, y);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "T")) << s.error;
  EXPECT_EQ(y.f, std::vector<float>{42});
}

//===----------------------------------------------------------------------===//
// ffn
//===----------------------------------------------------------------------===//

TEST(Ffn, DenseSwiGLUOnEveryToken) {
  // H = 2, I = 1: w1 = [[1, 0]], w3 = [[0, 1]], w2 = [[2], [-1]].
  Tensor w1 = Tensor::f32({1, 2}, {1, 0});
  Tensor w3 = Tensor::f32({1, 2}, {0, 1});
  Tensor w2 = Tensor::f32({2, 1}, {2, -1});
  Tensor x = Tensor::f32({2, 2}, {1, 2, -1, 0.5f});
  Tensor y;
  Status s = ffn(x, Activation::SwiGLU, w1, &w3, w2, y);
  ASSERT_TRUE(s.ok()) << s.error;
  double m0 = silu(1.0) * 2.0, m1 = silu(-1.0) * 0.5;
  expectFloats(y.f, {2 * m0, -m0, 2 * m1, -m1});
}

TEST(Ffn, DensePlainGeLU) {
  // H = 2, I = 2: w1 = [[1, 0], [0, 1]], w2 = [[1, 1], [0, 1]].
  Tensor w1 = Tensor::f32({2, 2}, {1, 0, 0, 1});
  Tensor w2 = Tensor::f32({2, 2}, {1, 1, 0, 1});
  Tensor x = Tensor::f32({1, 2}, {1, -0.5f});
  Tensor y;
  Status s = ffn(x, Activation::GeLU, w1, nullptr, w2, y);
  ASSERT_TRUE(s.ok()) << s.error;
  expectFloats(y.f, {gelu(1.0) + gelu(-0.5), gelu(-0.5)});
}

//===----------------------------------------------------------------------===//
// skipSelect / gatherRows / addRows / groupByPath
//===----------------------------------------------------------------------===//

TEST(SkipSelect, CapacityFractionTakesTopTokensInAscendingOrder) {
  // r = [1, 3, 2]; ceil(0.5 * 3) = 2 best are tokens 1 and 2.
  Tensor x = Tensor::f32({3, 2}, {1, 5, 3, 5, 2, 5});
  Tensor router = Tensor::f32({2}, {1, 0});
  std::vector<int64_t> sel;
  std::vector<float> scores;
  Status s = skipSelect(x, router, 0.5f, std::nullopt, sel, scores);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(sel, (std::vector<int64_t>{1, 2}));
  expectFloats(scores, {1, 3, 2});
  // r = [1, 2, 3]: the best two are 2 and 1, returned ascending.
  x = Tensor::f32({3, 2}, {1, 0, 2, 0, 3, 0});
  s = skipSelect(x, router, 0.5f, std::nullopt, sel, scores);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(sel, (std::vector<int64_t>{1, 2}));
  // Fraction 1 takes every token.
  s = skipSelect(x, router, 1.0f, std::nullopt, sel, scores);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(sel, (std::vector<int64_t>{0, 1, 2}));
}

TEST(SkipSelect, TiesGoToLowerToken) {
  Tensor x = Tensor::f32({3, 2}, {1, 1, 2, 0, 0, 2});
  Tensor router = Tensor::f32({2}, {0.5f, 0.5f}); // r = [1, 1, 1]
  std::vector<int64_t> sel;
  std::vector<float> scores;
  Status s = skipSelect(x, router, 0.25f, std::nullopt, sel, scores); // ceil(0.75)
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(sel, (std::vector<int64_t>{0}));
  s = skipSelect(x, router, 0.5f, std::nullopt, sel, scores); // ceil(1.5)
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(sel, (std::vector<int64_t>{0, 1}));
}

TEST(SkipSelect, ThresholdIsStrictlyGreater) {
  // r = [0.5, 0.25, 1].
  Tensor x = Tensor::f32({3, 1}, {0.5f, 0.25f, 1.0f});
  Tensor router = Tensor::f32({1}, {1});
  std::vector<int64_t> sel;
  std::vector<float> scores;
  Status s = skipSelect(x, router, std::nullopt, 0.5f, sel, scores);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(sel, (std::vector<int64_t>{2}));
  s = skipSelect(x, router, std::nullopt, 0.2f, sel, scores);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(sel, (std::vector<int64_t>{0, 1, 2}));
  s = skipSelect(x, router, std::nullopt, 5.0f, sel, scores);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_TRUE(sel.empty());
}

TEST(SkipSelect, RejectsBothOrNeitherModeAndNaN) {
  Tensor x = Tensor::f32({2, 1}, {1, 2});
  Tensor router = Tensor::f32({1}, {1});
  std::vector<int64_t> sel = {99};
  std::vector<float> scores = {9.0f};
  Status s = skipSelect(x, router, 0.5f, 0.5f, sel, scores);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "exactly one")) << s.error;
  s = skipSelect(x, router, std::nullopt, std::nullopt, sel, scores);
  EXPECT_FALSE(s.ok());
  Tensor bad = Tensor::f32({2, 1}, {1, std::numeric_limits<float>::quiet_NaN()});
  s = skipSelect(bad, router, 0.5f, std::nullopt, sel, scores);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "token 1")) << s.error;
  EXPECT_TRUE(contains(s.error, "not finite")) << s.error;
  EXPECT_EQ(sel, std::vector<int64_t>{99});
  EXPECT_EQ(scores, std::vector<float>{9.0f});
}

TEST(SkipRows, GatherRowsInGivenOrder) {
  Tensor x = Tensor::f32({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor g = gatherRows(x, {2, 0});
  EXPECT_EQ(g.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(g.f, (std::vector<float>{5, 6, 1, 2}));
  Tensor none = gatherRows(x, {});
  EXPECT_EQ(none.shape, (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(none.f.empty());
}

TEST(SkipRows, AddRowsScalesIntoSelectedRows) {
  Tensor y = Tensor::f32({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor f = Tensor::f32({2, 2}, {1, 1, 10, 20});
  Status s = addRows(y, {0, 2}, f, {2.0f, 0.5f});
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(y.f, (std::vector<float>{3, 4, 3, 4, 10, 16}));
  // Empty scale = 1.
  s = addRows(y, {1}, Tensor::f32({1, 2}, {-3, 1}), {});
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(y.f, (std::vector<float>{3, 4, 0, 5, 10, 16}));
  // A branch output of the wrong shape fails and changes nothing.
  s = addRows(y, {0, 1}, Tensor::f32({1, 2}, {1, 1}), {});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "[1, 2] f32")) << s.error;
  EXPECT_EQ(y.f, (std::vector<float>{3, 4, 0, 5, 10, 16}));
}

TEST(SkipRows, GroupByPathAscendingPerPath) {
  Tensor paths = i32({5}, {2, 0, 1, 2, 0});
  std::vector<std::vector<int64_t>> groups;
  Status s = groupByPath(paths, 3, groups);
  ASSERT_TRUE(s.ok()) << s.error;
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0], (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(groups[1], (std::vector<int64_t>{2}));
  EXPECT_EQ(groups[2], (std::vector<int64_t>{0, 3}));
  // A path with no token gives an empty group.
  s = groupByPath(i32({2}, {0, 0}), 2, groups);
  ASSERT_TRUE(s.ok()) << s.error;
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_TRUE(groups[1].empty());
}

TEST(SkipRows, GroupByPathRejectsOutOfRangeAndFloat) {
  std::vector<std::vector<int64_t>> groups = {{99}};
  Status s = groupByPath(i32({3}, {0, 3, 1}), 3, groups);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "path 3")) << s.error;
  EXPECT_TRUE(contains(s.error, "token 1")) << s.error;
  s = groupByPath(i32({2}, {0, -1}), 3, groups);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error, "path -1")) << s.error;
  s = groupByPath(Tensor::f32({1}, {0}), 3, groups);
  EXPECT_FALSE(s.ok());
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0], std::vector<int64_t>{99});
}
