//===- CompiledFunctionTest.cpp - the compiled path's checks and errors ---===//
//
// Bad input to compiled code must give an error that says what is wrong and
// leave the output buffers untouched; good input must match the reference.
//
//===----------------------------------------------------------------------===//

#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Support/Random.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>
#include <cmath>
#include <limits>

using namespace moe;
using moe::DType;
using moe::Status;
using moe::Tensor;

namespace {
const char *kLayer = R"mlir(
func.func @main(%x: tensor<?x16xf32>, %gate: tensor<4x16xf32>,
                %w1: tensor<4x8x16xf32>, %w3: tensor<4x8x16xf32>,
                %w2: tensor<4x16x8xf32>) -> tensor<?x16xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x16xf32>, tensor<4x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %e = moe.ffn_experts swiglu w1(%w1 : tensor<4x8x16xf32>) w3(%w3 : tensor<4x8x16xf32>)
      w2(%w2 : tensor<4x16x8xf32>) -> !moe.experts<4, 16>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
func.func @oracle(%x: tensor<?x16xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                  %c: tensor<2x16xf32>) -> tensor<?x16xf32> {
  %zero = moe.zero_experts : !moe.experts<1, 16>
  %copy = moe.copy_experts : !moe.experts<1, 16>
  %const = moe.const_experts %c : tensor<2x16xf32> -> !moe.experts<2, 16>
  %y = moe.layer %x, %ids, %w experts(%zero, %copy, %const : !moe.experts<1, 16>,
      !moe.experts<1, 16>, !moe.experts<2, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
func.func @ffn_oracle(%x: tensor<?x16xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                      %w1: tensor<4x8x16xf32>, %w2: tensor<4x16x8xf32>) -> tensor<?x16xf32> {
  %e = moe.ffn_experts relu w1(%w1 : tensor<4x8x16xf32>) w2(%w2 : tensor<4x16x8xf32>)
      -> !moe.experts<4, 16>
  %y = moe.layer %x, %ids, %w experts(%e : !moe.experts<4, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
func.func @paths(%x: tensor<?x16xf32>, %p: tensor<?xi32>,
                 %w1: tensor<8x16xf32>, %w2: tensor<16x8xf32>) -> tensor<?x16xf32> {
  %y = moe.path_select %x, %p : tensor<?x16xf32>, tensor<?xi32> -> tensor<?x16xf32> {
  ^bb0(%a: tensor<?x16xf32>):
    %f = moe.ffn relu %a w1(%w1 : tensor<8x16xf32>) w2(%w2 : tensor<16x8xf32>)
        : tensor<?x16xf32> -> tensor<?x16xf32>
    moe.yield %f : tensor<?x16xf32>
  }, {
  ^bb0(%b: tensor<?x16xf32>):
    moe.yield %b : tensor<?x16xf32>
  }
  return %y : tensor<?x16xf32>
}
)mlir";

class CompiledFunctionTest : public ::testing::Test {
protected:
  void SetUp() override {
    mlir::DialectRegistry registry;
    moe::registerAllDialects(registry);
    ctx = std::make_unique<mlir::MLIRContext>(registry);
    module = mlir::parseSourceString<mlir::ModuleOp>(kLayer, ctx.get());
    ASSERT_TRUE(module);
  }
  std::unique_ptr<CompiledFunction> compile(const std::string &entry) {
    std::unique_ptr<CompiledFunction> fn;
    Status s = CompiledFunction::compile(*module, entry, CpuPipelineOptions(), true, fn);
    EXPECT_TRUE(s.ok()) << s.error;
    return fn;
  }
  std::vector<Tensor> layerArgs(int64_t t) {
    return {randomFloats({t, 16}, 1), randomFloats({4, 16}, 2), randomFloats({4, 8, 16}, 3),
            randomFloats({4, 8, 16}, 4), randomFloats({4, 16, 8}, 5)};
  }
  std::unique_ptr<mlir::MLIRContext> ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
};

double maxRelError(const Tensor &a, const Tensor &b) {
  double err = 0, mx = 0;
  for (size_t i = 0; i < b.f.size(); ++i) {
    err = std::max(err, double(std::fabs(a.f[i] - b.f[i])));
    mx = std::max(mx, double(std::fabs(b.f[i])));
  }
  return err / mx;
}

TEST_F(CompiledFunctionTest, MatchesReferenceAndKeepsStages) {
  auto fn = compile("main");
  ASSERT_TRUE(fn);
  std::vector<std::string> names;
  for (const Stage &s : fn->stages())
    names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"moe", "expanded", "loops", "llvm", "llvm-ir"}));
  EXPECT_NE(fn->stages()[1].text.find("moe.dispatch"), std::string::npos);
  EXPECT_NE(fn->stages()[4].text.find("define"), std::string::npos);
  for (int64_t t : {0, 1, 5, 33}) {
    std::vector<Tensor> args = layerArgs(t), got, want;
    Status s = fn->run(args, got);
    ASSERT_TRUE(s.ok()) << s.error;
    ASSERT_TRUE(ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("main"), args, want).ok());
    ASSERT_EQ(got[0].shape, want[0].shape);
    if (t > 0)
      EXPECT_LT(maxRelError(got[0], want[0]), 1e-5) << "T = " << t;
  }
}

/// The compiled message names the first bad expert id as the reference
/// interpreter's does ("expert id ID at ids[TOKEN, SLOT] is outside [-1, E)"):
/// the same token, slot, id and E. Checked through the trivial-expert remap
/// (oracle), the FFN dispatch (ffn_oracle), and the paths of path_select.
TEST_F(CompiledFunctionTest, RunTimeIdErrorsNameTokenSlotIdAndBoundAsTheReference) {
  struct Case {
    const char *entry;
    std::vector<Tensor> args;
    std::string reference; // the reference's words for the bad value
    std::string compiled;  // the compiled code's words for it
  };
  Tensor x = randomFloats({5, 16}, 1);
  // One bad id, token 3, slot 1; E = 4 in both layers.
  Tensor ids = Tensor::ints(DType::I32, {5, 2}, {0, 1, 2, -1, 3, 0, 1, 7, -1, -1});
  Tensor w = randomFloats({5, 2}, 2);
  Tensor paths = Tensor::ints(DType::I32, {5}, {0, 1, 2, 1, 5});
  std::vector<Case> cases = {
      {"oracle", {x, ids, w, randomFloats({2, 16}, 3)},
       "expert id 7 at ids[3, 1] is outside [-1, 4)",
       "first bad id: 7 at ids[3, 1] (token 3, slot 1), E = 4"},
      {"ffn_oracle", {x, ids, w, randomFloats({4, 8, 16}, 4), randomFloats({4, 16, 8}, 5)},
       "expert id 7 at ids[3, 1] is outside [-1, 4)",
       "first bad id: 7 at ids[3, 1] (token 3, slot 1), E = 4"},
      // The reference counts the skip as a path: [0, P + 1).
      {"paths", {x, paths, randomFloats({8, 16}, 6), randomFloats({16, 8}, 7)},
       "path 5 of token 4 is outside [0, 3)", "first bad path: 5 of token 4, P = 2"},
  };
  for (const Case &c : cases) {
    std::vector<Tensor> want, got;
    Status r = ref::interpret(module->lookupSymbol<mlir::func::FuncOp>(c.entry), c.args, want);
    ASSERT_FALSE(r.ok()) << c.entry;
    EXPECT_NE(r.error.find(c.reference), std::string::npos) << r.error;
    auto fn = compile(c.entry);
    ASSERT_TRUE(fn);
    Status s = fn->run(c.args, got);
    ASSERT_FALSE(s.ok()) << c.entry;
    EXPECT_NE(s.error.find(c.compiled), std::string::npos) << s.error;
  }
}

TEST_F(CompiledFunctionTest, TrivialExpertsMatchHandComputedValues) {
  auto fn = compile("oracle");
  ASSERT_TRUE(fn);
  // Token 0: zero (w 0.5) + copy (w 2)  -> 2 x
  // Token 1: const row 1 (w 3) + unused -> 3 c[1]
  Tensor x = Tensor::f32({2, 16}), c = Tensor::f32({2, 16});
  for (int i = 0; i < 32; ++i) {
    x.f[i] = float(i) - 7.0f;
    c.f[i] = 0.25f * float(i);
  }
  Tensor ids = Tensor::ints(DType::I32, {2, 2}, {0, 1, 3, -1});
  Tensor w = Tensor::f32({2, 2}, {0.5f, 2.0f, 3.0f, 9.0f});
  std::vector<Tensor> out;
  Status s = fn->run({x, ids, w, c}, out);
  ASSERT_TRUE(s.ok()) << s.error;
  for (int j = 0; j < 16; ++j) {
    EXPECT_FLOAT_EQ(out[0].f[j], 2.0f * x.f[j]);
    EXPECT_FLOAT_EQ(out[0].f[16 + j], 3.0f * c.f[16 + j]);
  }
}

TEST_F(CompiledFunctionTest, BadExpertIdIsErrorAndOutputUntouched) {
  auto fn = compile("oracle");
  ASSERT_TRUE(fn);
  for (int64_t badId : {4, -2, 1000}) {
    Tensor x = randomFloats({3, 16}, 7), c = randomFloats({2, 16}, 8);
    Tensor ids = Tensor::ints(DType::I32, {3, 2}, {0, 1, 2, badId, -1, 3});
    Tensor w = Tensor::f32({3, 2}, {1, 1, 1, 1, 1, 1});
    std::vector<int32_t> ids32(ids.i.begin(), ids.i.end());
    std::vector<float> out(3 * 16, 42.0f);
    Status s = fn->runBuffers({x.f.data(), ids32.data(), w.f.data(), c.f.data()},
                              {{3, 16}, {3, 2}, {3, 2}, {2, 16}}, {out.data()}, {{3, 16}});
    ASSERT_FALSE(s.ok()) << "id " << badId;
    EXPECT_NE(s.error.find("expert id"), std::string::npos) << s.error;
    for (float v : out)
      ASSERT_EQ(v, 42.0f) << "output written despite the error";
  }
}

TEST_F(CompiledFunctionTest, NonFiniteLogitsAreErrorAndOutputUntouched) {
  auto fn = compile("main");
  ASSERT_TRUE(fn);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<Tensor> args = layerArgs(4);
    args[0].f[17] = bad;
    std::vector<Tensor> out = {Tensor::f32({1}, {123.0f})};
    Status s = fn->run(args, out);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error.find("NaN or infinite"), std::string::npos) << s.error;
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].f[0], 123.0f);
  }
}

TEST_F(CompiledFunctionTest, LargeLogitsStayFinite) {
  auto fn = compile("main");
  ASSERT_TRUE(fn);
  std::vector<Tensor> args = layerArgs(4);
  for (float &v : args[1].f)
    v *= 2e4f; // logits around +-1e4
  std::vector<Tensor> got, want;
  Status s = fn->run(args, got);
  ASSERT_TRUE(s.ok()) << s.error;
  ASSERT_TRUE(ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("main"), args, want).ok());
  for (float v : got[0].f)
    ASSERT_TRUE(std::isfinite(v));
  EXPECT_LT(maxRelError(got[0], want[0]), 1e-5);
}

TEST_F(CompiledFunctionTest, WrongShapesAndTypesAreRejectedBeforeRunning) {
  auto fn = compile("main");
  ASSERT_TRUE(fn);
  std::vector<Tensor> args = layerArgs(4), out;
  args[2] = randomFloats({4, 8, 15}, 3); // w1 with H = 15
  Status s = fn->run(args, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error.find("argument #2: expected shape [4, 8, 16] f32"), std::string::npos) << s.error;

  args = layerArgs(4);
  args[0] = Tensor::ints(DType::I32, {4, 16});
  s = fn->run(args, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error.find("argument #0: expected element type f32, got i32"), std::string::npos) << s.error;

  args = layerArgs(4);
  args.pop_back();
  s = fn->run(args, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error.find("takes 5 arguments, got 4"), std::string::npos) << s.error;
  EXPECT_TRUE(out.empty());

  // Output buffer of the wrong shape.
  args = layerArgs(4);
  std::vector<float> small(3 * 16, 1.0f);
  s = fn->runBuffers({args[0].f.data(), args[1].f.data(), args[2].f.data(), args[3].f.data(),
                      args[4].f.data()},
                     {{4, 16}, {4, 16}, {4, 8, 16}, {4, 8, 16}, {4, 16, 8}}, {small.data()},
                     {{3, 16}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error.find("result #0: output buffer has the wrong shape"), std::string::npos) << s.error;
}

TEST_F(CompiledFunctionTest, TokenCountsMustAgree) {
  auto fn = compile("oracle");
  ASSERT_TRUE(fn);
  std::vector<Tensor> out;
  Status s = fn->run({randomFloats({3, 16}, 1), Tensor::ints(DType::I32, {4, 2}),
                      randomFloats({3, 2}, 2), randomFloats({2, 16}, 3)},
                     out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error.find("argument #1 has token count 4 but an earlier argument has 3"),
            std::string::npos)
      << s.error;
}
} // namespace
