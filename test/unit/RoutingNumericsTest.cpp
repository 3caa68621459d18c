//===- RoutingNumericsTest.cpp - large logits and ties, both paths --------===//
//
// docs/dialect.md §2: softmax subtracts the maximum, sigmoid uses the
// two-sided form (so exp never overflows), and every ranking breaks ties
// toward the lower index. Each case is checked against hand-computed values
// for the reference interpreter and for the compiled code, and the two
// against each other.
//
// Token t's input is the one-hot row e_t, so its logits are exactly column t
// of the gate: the tests choose logits directly (±1e4, exact ties, values
// whose scores underflow or saturate).
//
//===----------------------------------------------------------------------===//

#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>
#include <cmath>
#include <vector>

using namespace moe;
using moe::DType;
using moe::Status;
using moe::Tensor;

namespace {
const char *kRouters = R"mlir(
func.func @softmax(%x: tensor<?x8xf32>, %gate: tensor<6x8xf32>)
    -> (tensor<?x6xi32>, tensor<?x6xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 6}
      : tensor<?x8xf32>, tensor<6x8xf32> -> tensor<?x6xi32>, tensor<?x6xf32>
  return %ids, %w : tensor<?x6xi32>, tensor<?x6xf32>
}
func.func @softmax_top2(%x: tensor<?x8xf32>, %gate: tensor<6x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x8xf32>, tensor<6x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
func.func @sigmoid(%x: tensor<?x8xf32>, %gate: tensor<6x8xf32>)
    -> (tensor<?x6xi32>, tensor<?x6xf32>) {
  %ids, %w = moe.topk_router sigmoid %x, %gate {k = 6}
      : tensor<?x8xf32>, tensor<6x8xf32> -> tensor<?x6xi32>, tensor<?x6xf32>
  return %ids, %w : tensor<?x6xi32>, tensor<?x6xf32>
}
func.func @sigmoid_renormalized(%x: tensor<?x8xf32>, %gate: tensor<6x8xf32>)
    -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %ids, %w = moe.topk_router sigmoid %x, %gate {k = 3, renormalize, scaling_factor = 2.5 : f32}
      : tensor<?x8xf32>, tensor<6x8xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}
func.func @sigmoid_bias(%x: tensor<?x8xf32>, %gate: tensor<6x8xf32>, %bias: tensor<6xf32>)
    -> (tensor<?x6xi32>, tensor<?x6xf32>) {
  %ids, %w = moe.topk_router sigmoid %x, %gate bias %bias {k = 6}
      : tensor<?x8xf32>, tensor<6x8xf32>, tensor<6xf32> -> tensor<?x6xi32>, tensor<?x6xf32>
  return %ids, %w : tensor<?x6xi32>, tensor<?x6xf32>
}
)mlir";

constexpr int64_t kExperts = 6, kHidden = 8;

/// One token per logit row: x = one-hot rows, gate[e][t] = logits[t][e].
std::vector<Tensor> routerArgs(const std::vector<std::vector<float>> &logits) {
  int64_t t = int64_t(logits.size());
  Tensor x = Tensor::f32({t, kHidden}), gate = Tensor::f32({kExperts, kHidden});
  for (int64_t i = 0; i < t; ++i) {
    x.f[i * kHidden + i] = 1.0f;
    for (int64_t e = 0; e < kExperts; ++e)
      gate.f[e * kHidden + i] = logits[i][e];
  }
  return {x, gate};
}

struct Expected {
  std::vector<int64_t> ids;
  std::vector<double> weights;
};

class RoutingNumericsTest : public ::testing::Test {
protected:
  void SetUp() override {
    mlir::DialectRegistry registry;
    moe::registerAllDialects(registry);
    ctx = std::make_unique<mlir::MLIRContext>(registry);
    module = mlir::parseSourceString<mlir::ModuleOp>(kRouters, ctx.get());
    ASSERT_TRUE(module);
  }

  /// Runs `entry` on both paths and checks each against `want` (per token:
  /// ids exactly, weights within `relTol` plus a denormal-sized absolute
  /// slack), and the two paths against each other.
  void check(const std::string &entry, const std::vector<Tensor> &args,
             const std::vector<Expected> &want, double relTol = 1e-6) {
    std::unique_ptr<CompiledFunction> fn;
    Status s = CompiledFunction::compile(*module, entry, CpuPipelineOptions(), false, fn);
    ASSERT_TRUE(s.ok()) << s.error;
    std::vector<Tensor> compiled, reference;
    s = fn->run(args, compiled);
    ASSERT_TRUE(s.ok()) << s.error;
    s = ref::interpret(module->lookupSymbol<mlir::func::FuncOp>(entry), args, reference);
    ASSERT_TRUE(s.ok()) << s.error;
    for (const auto &[name, got] : {std::pair<const char *, std::vector<Tensor> &>{"compiled", compiled},
                                    {"reference", reference}}) {
      ASSERT_EQ(got.size(), 2u);
      int64_t k = got[0].dim(1);
      for (size_t t = 0; t < want.size(); ++t) {
        for (int64_t j = 0; j < k; ++j) {
          SCOPED_TRACE(std::string(name) + " " + entry + ": token " + std::to_string(t) +
                       ", slot " + std::to_string(j));
          EXPECT_EQ(got[0].i[t * k + j], want[t].ids[j]);
          float w = got[1].f[t * k + j];
          ASSERT_TRUE(std::isfinite(w)) << w;
          EXPECT_NEAR(w, want[t].weights[j], relTol * std::fabs(want[t].weights[j]) + 1e-44);
        }
      }
    }
    EXPECT_EQ(compiled[0].i, reference[0].i);
  }

  std::unique_ptr<mlir::MLIRContext> ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
};

/// Softmax of one token in double (the hand computation).
std::vector<double> softmax(const std::vector<double> &z) {
  double m = -INFINITY, sum = 0;
  for (double v : z)
    m = std::max(m, v);
  std::vector<double> p;
  for (double v : z)
    sum += std::exp(v - m);
  for (double v : z)
    p.push_back(std::exp(v - m) / sum);
  return p;
}

TEST_F(RoutingNumericsTest, SoftmaxOfLogitsAroundPlusMinus1e4) {
  std::vector<std::vector<float>> logits = {
      {1e4f, -1e4f, 9999.0f, 1e4f, 0.0f, -5e3f},    // ties at the top, three underflow
      {-1e4f, -1e4f, -1e4f, -1e4f, -1e4f, -1e4f},  // all equal: uniform, ids in order
      {-1e4f, 1e4f, -1e4f, 1e4f, -1e4f, 1e4f},     // alternating
      {1e4f, 9999.5f, 9999.0f, 9998.0f, -1e4f, 1e4f},
  };
  const double e1 = std::exp(-1.0), s0 = 2 + e1;
  std::vector<double> p3 = softmax({1e4, 9999.5, 9999, 9998, -1e4, 1e4});
  std::vector<Expected> want = {
      {{0, 3, 2, 1, 4, 5}, {1 / s0, 1 / s0, e1 / s0, 0, 0, 0}},
      {{0, 1, 2, 3, 4, 5}, {1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0}},
      {{1, 3, 5, 0, 2, 4}, {1 / 3.0, 1 / 3.0, 1 / 3.0, 0, 0, 0}},
      {{0, 5, 1, 2, 3, 4}, {p3[0], p3[5], p3[1], p3[2], p3[3], 0}},
  };
  check("softmax", routerArgs(logits), want);
}

TEST_F(RoutingNumericsTest, SoftmaxTopTwoRenormalizedTiesGoToTheLowerId) {
  std::vector<std::vector<float>> logits = {
      {3.0f, 5.0f, 5.0f, 5.0f, -1e4f, 1.0f},  // 1, 2, 3 tie: 1 then 2, half each
      {2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f},   // 0 and 1, half each
      {-1e4f, -1e4f, 1e4f, -1e4f, -1e4f, -1e4f},  // 2 (weight 1), then the tie of
                                                   // underflowed scores: 0 (weight 0)
  };
  std::vector<Expected> want = {
      {{1, 2}, {0.5, 0.5}},
      {{0, 1}, {0.5, 0.5}},
      {{2, 0}, {1.0, 0.0}},
  };
  check("softmax_top2", routerArgs(logits), want);
}

TEST_F(RoutingNumericsTest, SigmoidOfLogitsAroundPlusMinus1e4) {
  auto sigmoid = [](double v) { return v >= 0 ? 1 / (1 + std::exp(-v)) : std::exp(v) / (1 + std::exp(v)); };
  std::vector<std::vector<float>> logits = {
      // exp(1e4) overflows the one-sided form; sigmoid(-90) and (-95) are
      // f32 denormals that still rank (-90 above -95 above -1e4).
      {1e4f, -1e4f, -90.0f, -95.0f, 0.0f, 1e4f},
      {1e4f, 1e4f, 1e4f, 1e4f, 1e4f, 1e4f},        // all 1: ids in order
      {-1e4f, -1e4f, -1e4f, -1e4f, -1e4f, -1e4f},  // all 0: ids in order
      {2.0f, -3.0f, 0.5f, 2.0f, -1e4f, 1e4f},
  };
  std::vector<Expected> want = {
      {{0, 5, 4, 2, 3, 1}, {1, 1, 0.5, double(float(sigmoid(-90))), double(float(sigmoid(-95))), 0}},
      {{0, 1, 2, 3, 4, 5}, {1, 1, 1, 1, 1, 1}},
      {{0, 1, 2, 3, 4, 5}, {0, 0, 0, 0, 0, 0}},
      {{5, 0, 3, 2, 1, 4}, {1, sigmoid(2), sigmoid(2), sigmoid(0.5), sigmoid(-3), 0}},
  };
  // Denormal weights hold few significant bits.
  check("sigmoid", routerArgs(logits), want, 1e-5);
}

TEST_F(RoutingNumericsTest, SigmoidBiasedKeysTieToTheLowerIdWithUnbiasedWeights) {
  // All logits 0: every score is 0.5; the keys 0.5 + bias tie in threes.
  std::vector<Tensor> args = routerArgs({{0, 0, 0, 0, 0, 0}, {1e4f, -1e4f, 0, 0, 1e4f, -1e4f}});
  args.push_back(Tensor::f32({kExperts}, {0.0f, 0.25f, 0.25f, -0.5f, 0.25f, 0.0f}));
  std::vector<Expected> want = {
      // keys 0.5, 0.75, 0.75, 0, 0.75, 0.5
      {{1, 2, 4, 0, 5, 3}, {0.5, 0.5, 0.5, 0.5, 0.5, 0.5}},
      // scores 1, 0, .5, .5, 1, 0 -> keys 1, .25, .75, 0, 1.25, 0
      {{4, 0, 2, 1, 3, 5}, {1, 1, 0.5, 0, 0.5, 0}},
  };
  check("sigmoid_bias", args, want);
}
} // namespace

namespace {
TEST_F(RoutingNumericsTest, SigmoidRenormalizesDenormalScores) {
  // Scores that underflowed to denormals still renormalize to their ratios
  // (the compiled code once multiplied by 2.5 / sum, which overflows to
  // +inf for a denormal sum; found by moe-fuzz-runtime).
  auto sigmoid32 = [](double v) { return double(float(std::exp(v) / (1 + std::exp(v)))); };
  std::vector<std::vector<float>> logits = {
      {-95.0f, -1e4f, -93.75f, -95.0f, -120.0f, -758.0f},
      {-88.5f, -90.0f, -1e4f, -1e4f, -1e4f, -1e4f},
  };
  double a = sigmoid32(-93.75), b = sigmoid32(-95), c = sigmoid32(-88.5), d = sigmoid32(-90);
  double s0 = a + 2 * b, s1 = c + d;
  std::vector<Expected> want = {
      {{2, 0, 3}, {2.5 * a / s0, 2.5 * b / s0, 2.5 * b / s0}},
      // The third slot's score is 0: it keeps weight 0.
      {{0, 1, 2}, {2.5 * c / s1, 2.5 * d / s1, 0}},
  };
  // The ratios of denormals hold fewer significant bits.
  check("sigmoid_renormalized", routerArgs(logits), want, 1e-3);
}
} // namespace
