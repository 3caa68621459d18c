//===- InterpreterTest.cpp - moe::ref::interpret on small parsed modules --===//
//
// Each test parses a tiny module in the `moe` dialect syntax, runs it through
// the reference interpreter and compares with numbers worked out by hand
// from the documented semantics (T = 1..3, H = 1..2, E = 1..4).
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace moe::ref;

namespace {

constexpr double kTol = 1e-6;

double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }
double silu(double v) { return v * sig(v); }

mlir::DialectRegistry makeRegistry() {
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  return registry;
}

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

void expectFloats(const Tensor &t, const std::vector<int64_t> &shape,
                  const std::vector<double> &want, double tol = kTol) {
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.shape, shape);
  ASSERT_EQ(t.f.size(), want.size());
  for (size_t n = 0; n < want.size(); ++n)
    EXPECT_NEAR(t.f[n], want[n], tol) << "at index " << n;
}

void expectInts(const Tensor &t, DType dtype, const std::vector<int64_t> &shape,
                const std::vector<int64_t> &want) {
  EXPECT_EQ(t.dtype, dtype);
  EXPECT_EQ(t.shape, shape);
  EXPECT_EQ(t.i, want);
}

Tensor f32(std::vector<int64_t> shape, std::vector<float> data) {
  return Tensor::f32(std::move(shape), std::move(data));
}
Tensor i32(std::vector<int64_t> shape, std::vector<int64_t> data) {
  return Tensor::ints(DType::I32, std::move(shape), std::move(data));
}

/// A results vector that a failing interpret() must leave as it is.
std::vector<Tensor> sentinelResults() { return {f32({1}, {42.0f})}; }
void expectSentinel(const std::vector<Tensor> &results) {
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].shape, std::vector<int64_t>{1});
  EXPECT_EQ(results[0].f, std::vector<float>{42.0f});
}

class InterpreterTest : public ::testing::Test {
protected:
  InterpreterTest()
      : ctx(makeRegistry(), mlir::MLIRContext::Threading::DISABLED) {}

  /// Parses `src` (named test.mlir in locations) and returns @`name`.
  mlir::func::FuncOp parse(const std::string &src, llvm::StringRef name = "main") {
    std::string diags;
    mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
      diags += d.str() + "\n";
      return mlir::success();
    });
    module = mlir::parseSourceString<mlir::ModuleOp>(
        src, mlir::ParserConfig(&ctx), "test.mlir");
    EXPECT_TRUE(static_cast<bool>(module)) << "parse failed:\n" << diags;
    if (!module)
      return {};
    auto func = module->lookupSymbol<mlir::func::FuncOp>(name);
    EXPECT_TRUE(static_cast<bool>(func)) << "no function " << name.str();
    return func;
  }

  /// Runs @`name` and expects success.
  std::vector<Tensor> run(mlir::func::FuncOp func, const std::vector<Tensor> &args) {
    std::vector<Tensor> results;
    Status s = interpret(func, args, results);
    EXPECT_TRUE(s.ok()) << s.error;
    return results;
  }

  /// Runs and expects failure; the results vector must stay untouched.
  std::string runFailing(mlir::func::FuncOp func, const std::vector<Tensor> &args) {
    std::vector<Tensor> results = sentinelResults();
    Status s = interpret(func, args, results);
    EXPECT_FALSE(s.ok());
    expectSentinel(results);
    return s.error;
  }

  mlir::MLIRContext ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
};

//===----------------------------------------------------------------------===//
// Modules
//===----------------------------------------------------------------------===//

/// softmax top-1 over {copy, const [[1, 2]]}.
const char *kTopkLayer = R"mlir(
func.func @main(%x: tensor<2x2xf32>, %gate: tensor<2x2xf32>, %c: tensor<1x2xf32>)
    -> tensor<2x2xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 1}
      : tensor<2x2xf32>, tensor<2x2xf32> -> tensor<2x1xi32>, tensor<2x1xf32>
  %copy = moe.copy_experts : !moe.experts<1, 2>
  %cst = moe.const_experts %c : tensor<1x2xf32> -> !moe.experts<1, 2>
  %y = moe.layer %x, %ids, %w experts(%copy, %cst : !moe.experts<1, 2>, !moe.experts<1, 2>)
      : tensor<2x2xf32>, tensor<2x1xi32>, tensor<2x1xf32> -> tensor<2x2xf32>
  return %y : tensor<2x2xf32>
}
)mlir";

/// Externally given routing over {const x2, copy} plus a shared const expert.
const char *kOracle = R"mlir(
func.func @main(%x: tensor<2x2xf32>, %ids: tensor<2x2xi32>, %w: tensor<2x2xf32>,
                %c: tensor<2x2xf32>, %s: tensor<1x2xf32>) -> tensor<2x2xf32> {
  %cst = moe.const_experts %c : tensor<2x2xf32> -> !moe.experts<2, 2>
  %copy = moe.copy_experts : !moe.experts<1, 2>
  %sh = moe.const_experts %s : tensor<1x2xf32> -> !moe.experts<1, 2>
  %y = moe.layer %x, %ids, %w experts(%cst, %copy : !moe.experts<2, 2>, !moe.experts<1, 2>)
      shared(%sh : !moe.experts<1, 2>)
      : tensor<2x2xf32>, tensor<2x2xi32>, tensor<2x2xf32> -> tensor<2x2xf32>
  return %y : tensor<2x2xf32>
}
)mlir";

/// skip_block whose body is relu FFN f(x) = w2 relu(w1 x); `ATTRS` is
/// substituted by each test.
std::string skipModule(const std::string &attrs) {
  return R"mlir(
func.func @main(%x: tensor<3x2xf32>, %router: tensor<2xf32>,
                %w1: tensor<2x2xf32>, %w2: tensor<2x2xf32>) -> tensor<3x2xf32> {
  %y = moe.skip_block %x, %router {)mlir" +
         attrs + R"mlir(} : tensor<3x2xf32>, tensor<2xf32> -> tensor<3x2xf32> {
  ^bb0(%xs: tensor<?x2xf32>):
    %f = moe.ffn relu %xs w1(%w1 : tensor<2x2xf32>) w2(%w2 : tensor<2x2xf32>)
        : tensor<?x2xf32> -> tensor<?x2xf32>
    moe.yield %f : tensor<?x2xf32>
  }
  return %y : tensor<3x2xf32>
}
)mlir";
}

/// x rows [1, 0], [3, 1], [2, -1] and router [1, 0]: r = [1, 3, 2];
/// w1 = w2 = identity, so f = relu(x).
std::vector<Tensor> skipArgs() {
  return {f32({3, 2}, {1, 0, 3, 1, 2, -1}), f32({2}, {1, 0}),
          f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {1, 0, 0, 1})};
}

/// Two branches besides skip: relu identity FFN and 2x that.
const char *kPathSelect = R"mlir(
func.func @main(%x: tensor<3x2xf32>, %r: tensor<3x2xf32>, %i: tensor<2x2xf32>,
                %two: tensor<2x2xf32>) -> tensor<3x2xf32> {
  %p = moe.path_router %x, %r : tensor<3x2xf32>, tensor<3x2xf32> -> tensor<3xi32>
  %y = moe.path_select %x, %p : tensor<3x2xf32>, tensor<3xi32> -> tensor<3x2xf32> {
  ^bb0(%a: tensor<?x2xf32>):
    %f = moe.ffn relu %a w1(%i : tensor<2x2xf32>) w2(%i : tensor<2x2xf32>)
        : tensor<?x2xf32> -> tensor<?x2xf32>
    moe.yield %f : tensor<?x2xf32>
  }, {
  ^bb0(%b: tensor<?x2xf32>):
    %f = moe.ffn relu %b w1(%i : tensor<2x2xf32>) w2(%two : tensor<2x2xf32>)
        : tensor<?x2xf32> -> tensor<?x2xf32>
    moe.yield %f : tensor<?x2xf32>
  }
  return %y : tensor<3x2xf32>
}
)mlir";

/// path_select on externally given paths, one branch (f = 2 relu(x)).
const char *kPathSelectExternal = R"mlir(
func.func @main(%x: tensor<3x2xf32>, %p: tensor<3xi32>, %i: tensor<2x2xf32>,
                %two: tensor<2x2xf32>) -> tensor<3x2xf32> {
  %y = moe.path_select %x, %p : tensor<3x2xf32>, tensor<3xi32> -> tensor<3x2xf32> {
  ^bb0(%a: tensor<?x2xf32>):
    %f = moe.ffn relu %a w1(%i : tensor<2x2xf32>) w2(%two : tensor<2x2xf32>)
        : tensor<?x2xf32> -> tensor<?x2xf32>
    moe.yield %f : tensor<?x2xf32>
  }
  return %y : tensor<3x2xf32>
}
)mlir";

} // namespace

//===----------------------------------------------------------------------===//
// Routers and layers
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, TopkRouterThenLayer) {
  auto func = parse(kTopkLayer);
  ASSERT_TRUE(static_cast<bool>(func));
  // Token 0: logits [1, 0] -> copy expert, weight e/(e+1): y = w [1, 0].
  // Token 1: logits [0, 1] -> const expert, weight e/(e+1): y = w [1, 2].
  auto results = run(func, {f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {1, 0, 0, 1}),
                            f32({1, 2}, {1, 2})});
  ASSERT_EQ(results.size(), 1u);
  double w = std::exp(1.0) / (std::exp(1.0) + 1.0);
  expectFloats(results[0], {2, 2}, {w, 0.0, w, 2 * w});
}

TEST_F(InterpreterTest, RouterAttributesReachTheKernel) {
  // bias, renormalize and scaling_factor; both router results returned.
  auto func = parse(R"mlir(
func.func @main(%x: tensor<1x1xf32>, %gate: tensor<3x1xf32>, %bias: tensor<3xf32>)
    -> (tensor<1x2xi32>, tensor<1x2xf32>) {
  %ids, %w = moe.topk_router sigmoid %x, %gate bias %bias
      {k = 2, renormalize, scaling_factor = 2.0 : f32}
      : tensor<1x1xf32>, tensor<3x1xf32>, tensor<3xf32> -> tensor<1x2xi32>, tensor<1x2xf32>
  return %ids, %w : tensor<1x2xi32>, tensor<1x2xf32>
}
)mlir");
  ASSERT_TRUE(static_cast<bool>(func));
  // sigmoid [0.5, sig(1), 0.5] + bias [0, 0, 1] -> select 2, then 1;
  // weights are the unbiased scores, renormalized, times 2.
  auto results = run(func, {f32({1, 1}, {1}), f32({3, 1}, {0, 1, 0}),
                            f32({3}, {0, 0, 1})});
  ASSERT_EQ(results.size(), 2u);
  expectInts(results[0], DType::I32, {1, 2}, {2, 1});
  double sum = 0.5 + sig(1.0);
  expectFloats(results[1], {1, 2}, {2 * 0.5 / sum, 2 * sig(1.0) / sum});
}

TEST_F(InterpreterTest, OtherRoutersThroughIR) {
  auto func = parse(R"mlir(
func.func @grouped(%x: tensor<1x1xf32>, %g: tensor<4x1xf32>) -> tensor<1x2xi32> {
  %ids, %w = moe.grouped_topk_router softmax %x, %g {k = 2, num_groups = 2, topk_groups = 1}
      : tensor<1x1xf32>, tensor<4x1xf32> -> tensor<1x2xi32>, tensor<1x2xf32>
  return %ids : tensor<1x2xi32>
}
func.func @topp(%x: tensor<1x1xf32>, %g: tensor<3x1xf32>) -> (tensor<1x3xi32>, tensor<1x3xf32>) {
  %ids, %w = moe.topp_router %x, %g {threshold = 0.8 : f32, max_k = 3, renormalize}
      : tensor<1x1xf32>, tensor<3x1xf32> -> tensor<1x3xi32>, tensor<1x3xf32>
  return %ids, %w : tensor<1x3xi32>, tensor<1x3xf32>
}
func.func @relu(%x: tensor<1x1xf32>, %g: tensor<3x1xf32>) -> (tensor<1x2xi32>, tensor<1x2xf32>) {
  %ids, %w = moe.relu_router %x, %g {scaling_factor = 0.5 : f32}
      : tensor<1x1xf32>, tensor<3x1xf32> -> tensor<1x2xi32>, tensor<1x2xf32>
  return %ids, %w : tensor<1x2xi32>, tensor<1x2xf32>
}
func.func @ec(%x: tensor<3x2xf32>, %g: tensor<2x2xf32>) -> (tensor<3x2xi32>, tensor<3x2xf32>) {
  %ids, %w = moe.expert_choice_router softmax %x, %g {capacity = 2}
      : tensor<3x2xf32>, tensor<2x2xf32> -> tensor<3x2xi32>, tensor<3x2xf32>
  return %ids, %w : tensor<3x2xi32>, tensor<3x2xf32>
}
)mlir",
                    "grouped");
  ASSERT_TRUE(static_cast<bool>(func));
  // Logits [3, 0, 2, 2]: group {0, 1} sums (e^3 + 1)/S > 2 e^2/S.
  auto r = run(func, {f32({1, 1}, {1}), f32({4, 1}, {3, 0, 2, 2})});
  ASSERT_EQ(r.size(), 1u);
  expectInts(r[0], DType::I32, {1, 2}, {0, 1});

  // Logits [2, 1, 0]: p0 = 0.665, p0 + p1 = 0.91 >= 0.8; renormalized.
  auto topp = module->lookupSymbol<mlir::func::FuncOp>("topp");
  r = run(topp, {f32({1, 1}, {1}), f32({3, 1}, {2, 1, 0})});
  ASSERT_EQ(r.size(), 2u);
  expectInts(r[0], DType::I32, {1, 3}, {0, 1, -1});
  double kept = std::exp(2.0) + std::exp(1.0);
  expectFloats(r[1], {1, 3}, {std::exp(2.0) / kept, std::exp(1.0) / kept, 0.0});

  // Logits [1, -1, 2], K = 2 from the result type: [2, 0], weights r / 2.
  auto relu = module->lookupSymbol<mlir::func::FuncOp>("relu");
  r = run(relu, {f32({1, 1}, {1}), f32({3, 1}, {1, -1, 2})});
  ASSERT_EQ(r.size(), 2u);
  expectInts(r[0], DType::I32, {1, 2}, {2, 0});
  expectFloats(r[1], {1, 2}, {1.0, 0.5});

  // Tokens [1, 0], [0, 1], [0, 0], gate = I, capacity 2: experts 0 and 1
  // each take their own token and token 2 (0.5 beats 1/(e+1)).
  auto ec = module->lookupSymbol<mlir::func::FuncOp>("ec");
  r = run(ec, {f32({3, 2}, {1, 0, 0, 1, 0, 0}), f32({2, 2}, {1, 0, 0, 1})});
  ASSERT_EQ(r.size(), 2u);
  expectInts(r[0], DType::I32, {3, 2}, {0, -1, 1, -1, 0, 1});
  double a = std::exp(1.0) / (std::exp(1.0) + 1.0);
  expectFloats(r[1], {3, 2}, {a, 0.0, a, 0.0, 0.5, 0.5});
}

TEST_F(InterpreterTest, HashRouterWithFfnExpertsAndConstants) {
  // Weights come from arith.constant; the token ids are i64.
  // 2654435761 is odd, so with E = 2 the expert is the id's parity.
  auto func = parse(R"mlir(
func.func @main(%x: tensor<2x2xf32>, %tok: tensor<2xi64>) -> tensor<2x2xf32> {
  %w1 = arith.constant dense<[[[1.0, 1.0]], [[1.0, 0.0]]]> : tensor<2x1x2xf32>
  %w3 = arith.constant dense<[[[1.0, 0.0]], [[0.0, 2.0]]]> : tensor<2x1x2xf32>
  %w2 = arith.constant dense<[[[1.0], [1.0]], [[1.0], [-1.0]]]> : tensor<2x2x1xf32>
  %ids, %w = moe.hash_router %tok {num_experts = 2}
      : tensor<2xi64> -> tensor<2x1xi32>, tensor<2x1xf32>
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<2x1x2xf32>) w3(%w3 : tensor<2x1x2xf32>)
      w2(%w2 : tensor<2x2x1xf32>) -> !moe.experts<2, 2>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<2, 2>)
      : tensor<2x2xf32>, tensor<2x1xi32>, tensor<2x1xf32> -> tensor<2x2xf32>
  return %y : tensor<2x2xf32>
}
)mlir");
  ASSERT_TRUE(static_cast<bool>(func));
  // Both tokens x = [1, 0.5]. Token id 1 -> expert 1: w1 x = 1, w3 x = 1,
  // y = [silu(1), -silu(1)]. Token id 2 -> expert 0: w1 x = 1.5, w3 x = 1,
  // y = [silu(1.5), silu(1.5)].
  auto r = run(func, {f32({2, 2}, {1, 0.5f, 1, 0.5f}),
                      Tensor::ints(DType::I64, {2}, {1, 2})});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {2, 2}, {silu(1.0), -silu(1.0), silu(1.5), silu(1.5)});
}

TEST_F(InterpreterTest, LoraExpertsUseAlphaOverRank) {
  // SwiGLU LoRA, H = 2, I = 1, N = 1, r = 2, alpha = 1 (scale 0.5), routed
  // by a single-expert softmax top-1 (weight 1). Base w1 = [[1, 1]],
  // w3 = [[1, 0]], w2 = [[1], [1]]; adapters: B1 A1 x = x0 + x1,
  // B3 A3 x = 2 x1, B2 A2 m = [m, -m]. For x = [1, 2]:
  // up = 3 + 0.5 * 3 = 4.5, gate = 1 + 0.5 * 4 = 3, m = 3 silu(4.5),
  // y = [m, m] + 0.5 [m, -m] = [1.5 m, 0.5 m].
  auto func = parse(R"mlir(
func.func @main(%x: tensor<1x2xf32>, %gate: tensor<1x2xf32>) -> tensor<1x2xf32> {
  %w1 = arith.constant dense<[[1.0, 1.0]]> : tensor<1x2xf32>
  %w3 = arith.constant dense<[[1.0, 0.0]]> : tensor<1x2xf32>
  %w2 = arith.constant dense<[[1.0], [1.0]]> : tensor<2x1xf32>
  %a1 = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]]]> : tensor<1x2x2xf32>
  %b1 = arith.constant dense<[[[1.0, 1.0]]]> : tensor<1x1x2xf32>
  %a3 = arith.constant dense<[[[0.0, 1.0], [0.0, 0.0]]]> : tensor<1x2x2xf32>
  %b3 = arith.constant dense<[[[2.0, 0.0]]]> : tensor<1x1x2xf32>
  %a2 = arith.constant dense<[[[1.0], [1.0]]]> : tensor<1x2x1xf32>
  %b2 = arith.constant dense<[[[1.0, 0.0], [0.0, -1.0]]]> : tensor<1x2x2xf32>
  %ids, %w = moe.topk_router softmax %x, %gate {k = 1}
      : tensor<1x2xf32>, tensor<1x2xf32> -> tensor<1x1xi32>, tensor<1x1xf32>
  %lora = moe.lora_experts swiglu
      base(w1 %w1 : tensor<1x2xf32>, w3 %w3 : tensor<1x2xf32>, w2 %w2 : tensor<2x1xf32>)
      adapters(w1 %a1, %b1 : tensor<1x2x2xf32>, tensor<1x1x2xf32>,
               w3 %a3, %b3 : tensor<1x2x2xf32>, tensor<1x1x2xf32>,
               w2 %a2, %b2 : tensor<1x2x1xf32>, tensor<1x2x2xf32>)
      {alpha = 1.0 : f32} -> !moe.experts<1, 2>
  %y = moe.layer %x, %ids, %w experts(%lora : !moe.experts<1, 2>)
      : tensor<1x2xf32>, tensor<1x1xi32>, tensor<1x1xf32> -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}
)mlir");
  ASSERT_TRUE(static_cast<bool>(func));
  auto r = run(func, {f32({1, 2}, {1, 2}), f32({1, 2}, {0.5f, -1})});
  ASSERT_EQ(r.size(), 1u);
  double m = 3.0 * silu(4.5);
  expectFloats(r[0], {1, 2}, {1.5 * m, 0.5 * m}, 1e-5);
}

// A plain-activation LoRA bank has no w3 and no w3 adapters.
// Plain ReLU LoRA, H = 2, I = 1, r = 2, alpha = 1 (scale 0.5):
// up = 3 + 0.5 * 3 = 4.5 = m; y = [m, m] + 0.5 [m, -m] = [6.75, 2.25].
TEST_F(InterpreterTest, PlainActivationLoraExperts) {
  auto func = parse(R"mlir(
func.func @main(%x: tensor<1x2xf32>, %gate: tensor<1x2xf32>) -> tensor<1x2xf32> {
  %w1 = arith.constant dense<[[1.0, 1.0]]> : tensor<1x2xf32>
  %w2 = arith.constant dense<[[1.0], [1.0]]> : tensor<2x1xf32>
  %a1 = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]]]> : tensor<1x2x2xf32>
  %b1 = arith.constant dense<[[[1.0, 1.0]]]> : tensor<1x1x2xf32>
  %a2 = arith.constant dense<[[[1.0], [1.0]]]> : tensor<1x2x1xf32>
  %b2 = arith.constant dense<[[[1.0, 0.0], [0.0, -1.0]]]> : tensor<1x2x2xf32>
  %ids, %w = moe.topk_router softmax %x, %gate {k = 1}
      : tensor<1x2xf32>, tensor<1x2xf32> -> tensor<1x1xi32>, tensor<1x1xf32>
  %lora = moe.lora_experts relu
      base(w1 %w1 : tensor<1x2xf32>, w2 %w2 : tensor<2x1xf32>)
      adapters(w1 %a1, %b1 : tensor<1x2x2xf32>, tensor<1x1x2xf32>,
               w2 %a2, %b2 : tensor<1x2x1xf32>, tensor<1x2x2xf32>)
      {alpha = 1.0 : f32} -> !moe.experts<1, 2>
  %y = moe.layer %x, %ids, %w experts(%lora : !moe.experts<1, 2>)
      : tensor<1x2xf32>, tensor<1x1xi32>, tensor<1x1xf32> -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}
)mlir");
  ASSERT_TRUE(static_cast<bool>(func));
  auto r = run(func, {f32({1, 2}, {1, 2}), f32({1, 2}, {0.5f, -1})});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {1, 2}, {6.75, 2.25}, 1e-5);
}

TEST_F(InterpreterTest, CapacityDropThroughIR) {
  auto func = parse(R"mlir(
func.func @main(%ids0: tensor<3x2xi32>, %w0: tensor<3x2xf32>)
    -> (tensor<3x2xi32>, tensor<3x2xf32>) {
  %ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 2, capacity_factor = 0.5 : f32}
      : tensor<3x2xi32>, tensor<3x2xf32> -> tensor<3x2xi32>, tensor<3x2xf32>
  return %ids, %w : tensor<3x2xi32>, tensor<3x2xf32>
}
)mlir");
  ASSERT_TRUE(static_cast<bool>(func));
  // C = ceil(0.5 * 3 * 2 / 2) = 2; slot-major visit drops t0's slot 1
  // (expert 0 full) and t2's slot 1 (expert 1 full).
  auto r = run(func, {i32({3, 2}, {1, 0, 0, 1, 0, 1}),
                      f32({3, 2}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f})});
  ASSERT_EQ(r.size(), 2u);
  expectInts(r[0], DType::I32, {3, 2}, {1, -1, 0, 1, 0, -1});
  expectFloats(r[1], {3, 2}, {0.1, 0.0, 0.3, 0.4, 0.5, 0.0});
}

TEST_F(InterpreterTest, OracleRoutingWithUnusedSlotAndSharedExpert) {
  auto func = parse(kOracle);
  ASSERT_TRUE(static_cast<bool>(func));
  // Table: 0 -> [1, 1], 1 -> [2, -2], 2 -> copy; shared [0.25, 0.5].
  // t0: ids [2, -1], w [0.5, 9]: 0.5 [2, 4] + shared = [1.25, 2.5].
  // t1: ids [1, 0], w [1, 2]: [2, -2] + 2 [1, 1] + shared = [4.25, 0.5].
  auto r = run(func, {f32({2, 2}, {2, 4, 1, 1}), i32({2, 2}, {2, -1, 1, 0}),
                      f32({2, 2}, {0.5f, 9, 1, 2}), f32({2, 2}, {1, 1, 2, -2}),
                      f32({1, 2}, {0.25f, 0.5f})});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {2, 2}, {1.25, 2.5, 4.25, 0.5});
}

TEST_F(InterpreterTest, DynamicTokenDimAcceptsAnyT) {
  auto func = parse(R"mlir(
func.func @main(%x: tensor<?x2xf32>, %w1: tensor<2x2xf32>, %w2: tensor<2x2xf32>)
    -> tensor<?x2xf32> {
  %y = moe.ffn relu %x w1(%w1 : tensor<2x2xf32>) w2(%w2 : tensor<2x2xf32>)
      : tensor<?x2xf32> -> tensor<?x2xf32>
  return %y : tensor<?x2xf32>
}
)mlir");
  ASSERT_TRUE(static_cast<bool>(func));
  // w1 = I, w2 = [[1, 1], [0, 2]]: y = [r0 + r1, 2 r1] with r = relu(x).
  Tensor w1 = f32({2, 2}, {1, 0, 0, 1}), w2 = f32({2, 2}, {1, 1, 0, 2});
  auto r = run(func, {f32({3, 2}, {1, 2, -1, 3, 4, -5}), w1, w2});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {3, 4, 3, 6, 4, 0});
  r = run(func, {f32({1, 2}, {-1, -1}), w1, w2});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {1, 2}, {0, 0});
}

//===----------------------------------------------------------------------===//
// skip_block
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, SkipBlockCapacityFractionScaledByScore) {
  auto func = parse(skipModule("capacity_fraction = 0.5 : f32, scale_by_score"));
  ASSERT_TRUE(static_cast<bool>(func));
  // r = [1, 3, 2]; ceil(0.5 * 3) = 2 -> tokens 1 and 2.
  // y1 = [3, 1] + 3 relu([3, 1]) = [12, 4]; y2 = [2, -1] + 2 [2, 0] = [6, -1].
  auto r = run(func, skipArgs());
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {1, 0, 12, 4, 6, -1});
}

TEST_F(InterpreterTest, SkipBlockCapacityFractionUnscaled) {
  auto func = parse(skipModule("capacity_fraction = 0.5 : f32"));
  ASSERT_TRUE(static_cast<bool>(func));
  // g = 1: y1 = [6, 2], y2 = [4, -1].
  auto r = run(func, skipArgs());
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {1, 0, 6, 2, 4, -1});
}

TEST_F(InterpreterTest, SkipBlockThresholdIsStrict) {
  // r = [1, 3, 2]: only r > 2, i.e. token 1, runs the body.
  auto func = parse(skipModule("threshold = 2.0 : f32"));
  ASSERT_TRUE(static_cast<bool>(func));
  auto r = run(func, skipArgs());
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {1, 0, 6, 2, 2, -1});

  auto scaled = parse(skipModule("threshold = 2.0 : f32, scale_by_score"));
  ASSERT_TRUE(static_cast<bool>(scaled));
  r = run(scaled, skipArgs());
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {1, 0, 12, 4, 2, -1});
}

TEST_F(InterpreterTest, SkipBlockWithNoSelectedTokenIsIdentity) {
  auto func = parse(skipModule("threshold = 100.0 : f32"));
  ASSERT_TRUE(static_cast<bool>(func));
  auto r = run(func, skipArgs());
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {1, 0, 3, 1, 2, -1});
}

TEST_F(InterpreterTest, SkipBlockCompactsInAscendingTokenOrder) {
  // r = [1, 2, 3]: the top-2 are tokens 2 then 1 by score, but the body
  // must see them as rows [token 1, token 2]. The body's expert-choice
  // router (one expert, capacity 1, equal scores) takes its row 0 only, so
  // only token 1 gets f = x: y1 = 2 x1, y2 = x2.
  auto func = parse(R"mlir(
func.func @main(%x: tensor<3x2xf32>, %router: tensor<2xf32>, %g: tensor<1x2xf32>)
    -> tensor<3x2xf32> {
  %y = moe.skip_block %x, %router {capacity_fraction = 0.5 : f32}
      : tensor<3x2xf32>, tensor<2xf32> -> tensor<3x2xf32> {
  ^bb0(%xs: tensor<?x2xf32>):
    %ids, %w = moe.expert_choice_router softmax %xs, %g {capacity = 1}
        : tensor<?x2xf32>, tensor<1x2xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
    %e = moe.copy_experts : !moe.experts<1, 2>
    %f = moe.layer %xs, %ids, %w experts(%e : !moe.experts<1, 2>)
        : tensor<?x2xf32>, tensor<?x1xi32>, tensor<?x1xf32> -> tensor<?x2xf32>
    moe.yield %f : tensor<?x2xf32>
  }
  return %y : tensor<3x2xf32>
}
)mlir");
  ASSERT_TRUE(static_cast<bool>(func));
  auto r = run(func, {f32({3, 2}, {1, 5, 2, 6, 3, 7}), f32({2}, {1, 0}),
                      f32({1, 2}, {0, 0})});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {1, 5, 4, 12, 3, 7});
}

TEST_F(InterpreterTest, SkipBlockNaNInputIsRouterError) {
  auto func = parse(skipModule("capacity_fraction = 0.5 : f32"));
  ASSERT_TRUE(static_cast<bool>(func));
  auto args = skipArgs();
  args[0].f[2] = std::numeric_limits<float>::quiet_NaN(); // token 1
  std::string err = runFailing(func, args);
  EXPECT_TRUE(contains(err, "moe.skip_block")) << err;
  EXPECT_TRUE(contains(err, "not finite")) << err;
  EXPECT_TRUE(contains(err, "token 1")) << err;
}

//===----------------------------------------------------------------------===//
// path_select
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, PathSelectRunsEachBranchOnItsTokens) {
  auto func = parse(kPathSelect);
  ASSERT_TRUE(static_cast<bool>(func));
  // Router rows [0, 0], [1, 0], [0, 1]: tokens [-1, -1] -> path 0 (skip),
  // [2, 1] -> 1, [1, 3] -> 2.
  // y0 = x0; y1 = [2, 1] + relu([2, 1]) = [4, 2]; y2 = [1, 3] + 2 [1, 3].
  auto r = run(func, {f32({3, 2}, {-1, -1, 2, 1, 1, 3}),
                      f32({3, 2}, {0, 0, 1, 0, 0, 1}), f32({2, 2}, {1, 0, 0, 1}),
                      f32({2, 2}, {2, 0, 0, 2})});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {-1, -1, 4, 2, 3, 9});
}

TEST_F(InterpreterTest, PathSelectWithGivenPaths) {
  auto func = parse(kPathSelectExternal);
  ASSERT_TRUE(static_cast<bool>(func));
  // paths [1, 0, 1]: tokens 0 and 2 get x + 2 relu(x).
  auto r = run(func, {f32({3, 2}, {1, -1, 5, 5, -2, 3}), i32({3}, {1, 0, 1}),
                      f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {2, 0, 0, 2})});
  ASSERT_EQ(r.size(), 1u);
  expectFloats(r[0], {3, 2}, {3, -1, 5, 5, -2, 9});
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST_F(InterpreterTest, PathOutOfRangeIsError) {
  auto func = parse(kPathSelectExternal);
  ASSERT_TRUE(static_cast<bool>(func));
  std::string err = runFailing(
      func, {f32({3, 2}, {1, -1, 5, 5, -2, 3}), i32({3}, {0, 2, 1}),
             f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {2, 0, 0, 2})});
  EXPECT_TRUE(contains(err, "moe.path_select")) << err;
  EXPECT_TRUE(contains(err, "path 2")) << err;
  EXPECT_TRUE(contains(err, "token 1")) << err;
  EXPECT_TRUE(contains(err, "[0, 2)")) << err;
  EXPECT_TRUE(contains(err, "test.mlir:")) << err;

  err = runFailing(func, {f32({3, 2}, {1, -1, 5, 5, -2, 3}), i32({3}, {0, 1, -1}),
                          f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {2, 0, 0, 2})});
  EXPECT_TRUE(contains(err, "path -1")) << err;
}

TEST_F(InterpreterTest, ExpertIdOutOfRangeInGivenRoutingIsError) {
  auto func = parse(kOracle);
  ASSERT_TRUE(static_cast<bool>(func));
  // The table holds 3 experts: id 3 is out of range.
  std::string err = runFailing(
      func, {f32({2, 2}, {2, 4, 1, 1}), i32({2, 2}, {2, -1, 3, 0}),
             f32({2, 2}, {0.5f, 9, 1, 2}), f32({2, 2}, {1, 1, 2, -2}),
             f32({1, 2}, {0.25f, 0.5f})});
  EXPECT_TRUE(contains(err, "moe.layer")) << err;
  EXPECT_TRUE(contains(err, "expert id 3")) << err;
  EXPECT_TRUE(contains(err, "[-1, 3)")) << err;

  err = runFailing(func, {f32({2, 2}, {2, 4, 1, 1}), i32({2, 2}, {2, -2, 1, 0}),
                          f32({2, 2}, {0.5f, 9, 1, 2}), f32({2, 2}, {1, 1, 2, -2}),
                          f32({1, 2}, {0.25f, 0.5f})});
  EXPECT_TRUE(contains(err, "expert id -2")) << err;
}

TEST_F(InterpreterTest, NaNHiddenIsRouterError) {
  auto func = parse(kTopkLayer);
  ASSERT_TRUE(static_cast<bool>(func));
  std::string err = runFailing(
      func, {f32({2, 2}, {1, 0, std::numeric_limits<float>::quiet_NaN(), 1}),
             f32({2, 2}, {1, 0, 0, 1}), f32({1, 2}, {1, 2})});
  EXPECT_TRUE(contains(err, "moe.topk_router")) << err;
  EXPECT_TRUE(contains(err, "not finite")) << err;
  EXPECT_TRUE(contains(err, "token 1")) << err;
  EXPECT_TRUE(contains(err, "test.mlir:")) << err;
}

TEST_F(InterpreterTest, WrongArgumentShapeIsError) {
  auto func = parse(kTopkLayer);
  ASSERT_TRUE(static_cast<bool>(func));
  std::string err = runFailing(func, {f32({3, 2}, {1, 0, 0, 1, 1, 1}),
                                      f32({2, 2}, {1, 0, 0, 1}), f32({1, 2}, {1, 2})});
  EXPECT_TRUE(contains(err, "argument #0")) << err;
  EXPECT_TRUE(contains(err, "tensor<2x2xf32>")) << err;
  EXPECT_TRUE(contains(err, "[3, 2] f32")) << err;

  // Wrong rank.
  err = runFailing(func, {f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {1, 0, 0, 1}),
                          f32({2}, {1, 2})});
  EXPECT_TRUE(contains(err, "argument #2")) << err;
  EXPECT_TRUE(contains(err, "[2] f32")) << err;
}

TEST_F(InterpreterTest, WrongArgumentDtypeIsError) {
  auto func = parse(kOracle);
  ASSERT_TRUE(static_cast<bool>(func));
  std::vector<Tensor> args = {f32({2, 2}, {2, 4, 1, 1}),
                              Tensor::ints(DType::I64, {2, 2}, {2, -1, 1, 0}),
                              f32({2, 2}, {0.5f, 9, 1, 2}), f32({2, 2}, {1, 1, 2, -2}),
                              f32({1, 2}, {0.25f, 0.5f})};
  std::string err = runFailing(func, args);
  EXPECT_TRUE(contains(err, "argument #1")) << err;
  EXPECT_TRUE(contains(err, "tensor<2x2xi32>")) << err;
  EXPECT_TRUE(contains(err, "i64")) << err;

  // Float data where ids are expected.
  args[1] = f32({2, 2}, {2, -1, 1, 0});
  err = runFailing(func, args);
  EXPECT_TRUE(contains(err, "argument #1")) << err;
  EXPECT_TRUE(contains(err, "[2, 2] f32")) << err;
}

TEST_F(InterpreterTest, WrongArgumentCountIsError) {
  auto func = parse(kTopkLayer);
  ASSERT_TRUE(static_cast<bool>(func));
  std::string err =
      runFailing(func, {f32({2, 2}, {1, 0, 0, 1}), f32({2, 2}, {1, 0, 0, 1})});
  EXPECT_TRUE(contains(err, "takes 3 arguments, got 2")) << err;
}
