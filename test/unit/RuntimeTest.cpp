//===- RuntimeTest.cpp - ahead-of-time layers through the C runtime -------===//
//
// moe-compile writes a shared object; the runtime loads it, checks tensors
// against its signature, runs it and reports errors. Results must match the
// reference interpreter; errors must leave outputs untouched.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Support/Random.h"
#include "moe_runtime.h"
#include "RuntimeInternal.h"
#include "moe/Support/Tensor.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <thread>

using namespace moe;
using moe::DType;
using moe::Tensor;

namespace {
const char *kOracle = R"mlir(
func.func @oracle(%x: tensor<?x16xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                  %w1: tensor<3x8x16xf32>, %w2: tensor<3x16x8xf32>,
                  %c: tensor<1x16xf32>) -> tensor<?x16xf32> {
  %ffn = moe.ffn_experts gelu w1(%w1 : tensor<3x8x16xf32>) w2(%w2 : tensor<3x16x8xf32>)
      -> !moe.experts<3, 16>
  %zero = moe.zero_experts : !moe.experts<1, 16>
  %copy = moe.copy_experts : !moe.experts<1, 16>
  %const = moe.const_experts %c : tensor<1x16xf32> -> !moe.experts<1, 16>
  %y = moe.layer %x, %ids, %w experts(%ffn, %zero, %copy, %const : !moe.experts<3, 16>,
      !moe.experts<1, 16>, !moe.experts<1, 16>, !moe.experts<1, 16>)
      : tensor<?x16xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
)mlir";

class RuntimeTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // Per process: ctest runs the cases of this suite in parallel processes.
    std::string dir = ::testing::TempDir() + "/moe-runtime-test-" + std::to_string(getpid());
    ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
    mlirPath = dir + "/oracle.mlir";
    soPath = dir + "/oracle.so";
    FILE *f = std::fopen(mlirPath.c_str(), "w");
    ASSERT_TRUE(f);
    std::fputs(kOracle, f);
    std::fclose(f);
    std::string cmd = std::string(MOE_COMPILE_PATH) + " " + mlirPath + " --entry=oracle -o " + soPath;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  void SetUp() override {
    mlir::DialectRegistry registry;
    moe::registerAllDialects(registry);
    ctx = std::make_unique<mlir::MLIRContext>(registry);
    module = mlir::parseSourceString<mlir::ModuleOp>(kOracle, ctx.get());
    ASSERT_TRUE(module);
    ASSERT_EQ(moe_layer_open(soPath.c_str(), "oracle", &layer), MOE_OK) << moe_last_error();
  }
  void TearDown() override { moe_layer_close(layer); }

  /// Inputs for T tokens; ids cycle over all 6 experts and the unused slot.
  std::vector<Tensor> inputs(int64_t t) {
    Tensor ids = Tensor::ints(DType::I32, {t, 2});
    for (int64_t i = 0; i < 2 * t; ++i)
      ids.i[i] = (i * 5) % 7 - 1; // -1..5
    return {randomFloats({t, 16}, 1), ids, randomFloats({t, 2}, 2), randomFloats({3, 8, 16}, 3),
            randomFloats({3, 16, 8}, 4), randomFloats({1, 16}, 5)};
  }

  static std::string mlirPath, soPath;
  std::unique_ptr<mlir::MLIRContext> ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  moe_layer *layer = nullptr;
};
std::string RuntimeTest::mlirPath, RuntimeTest::soPath;

/// Runtime tensors over reference tensors (ids narrowed to int32).
struct Call {
  std::vector<std::vector<int32_t>> narrowed;
  std::vector<moe_tensor> args;
  explicit Call(std::vector<Tensor> &in) {
    narrowed.resize(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      Tensor &t = in[i];
      void *data = t.f.data();
      if (t.dtype == DType::I32) {
        narrowed[i].assign(t.i.begin(), t.i.end());
        data = narrowed[i].data();
      }
      args.push_back({data, t.dtype == DType::F32 ? MOE_F32 : MOE_I32, int32_t(t.rank()),
                      t.shape.data()});
    }
  }
};

TEST_F(RuntimeTest, SignatureIsExposed) {
  EXPECT_EQ(moe_layer_num_args(layer), 6);
  EXPECT_EQ(moe_layer_num_results(layer), 1);
  moe_dtype dtype;
  int32_t rank;
  const int64_t *shape;
  ASSERT_EQ(moe_layer_arg(layer, 1, &dtype, &rank, &shape), MOE_OK);
  EXPECT_EQ(dtype, MOE_I32);
  ASSERT_EQ(rank, 2);
  EXPECT_EQ(shape[0], -1);
  EXPECT_EQ(shape[1], 2);
  EXPECT_NE(moe_layer_arg(layer, 6, &dtype, &rank, &shape), MOE_OK);
}

TEST_F(RuntimeTest, MatchesReferenceForSeveralTokenCounts) {
  for (int64_t t : {1, 7, 64}) {
    std::vector<Tensor> in = inputs(t), want;
    ASSERT_TRUE(ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("oracle"), in, want).ok());
    Call call(in);
    std::vector<float> out(t * 16, 0.0f);
    int64_t outShape[2] = {t, 16};
    moe_tensor result{out.data(), MOE_F32, 2, outShape};
    ASSERT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_OK) << moe_last_error();
    double err = 0, mx = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      err = std::max(err, double(std::fabs(out[i] - want[0].f[i])));
      mx = std::max(mx, double(std::fabs(want[0].f[i])));
    }
    EXPECT_LT(err / mx, 1e-5) << "T = " << t;
  }
}

TEST_F(RuntimeTest, BadInputIsRejectedWithMessageAndOutputUntouched) {
  std::vector<Tensor> in = inputs(4);
  std::vector<float> out(4 * 16, 7.0f);
  int64_t outShape[2] = {4, 16};
  moe_tensor result{out.data(), MOE_F32, 2, outShape};
  auto untouched = [&] {
    for (float v : out)
      if (v != 7.0f)
        return false;
    return true;
  };
  {
    Call call(in);
    int64_t badShape[3] = {3, 8, 15};
    call.args[3].shape = badShape;
    EXPECT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_ERR_SHAPE);
    EXPECT_STREQ(moe_last_error(), "argument #3: expected shape [3, 8, 16] f32, got [3, 8, 15] f32");
  }
  {
    Call call(in);
    call.args[1].dtype = MOE_I64;
    EXPECT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_ERR_SHAPE);
    EXPECT_STREQ(moe_last_error(), "argument #1: expected element type i32, got i64");
  }
  {
    Call call(in);
    int64_t wrongT[2] = {5, 2};
    call.args[2].shape = wrongT;
    EXPECT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_ERR_SHAPE);
    EXPECT_NE(std::string(moe_last_error()).find("argument #2 has token count 5"), std::string::npos);
  }
  {
    Call call(in);
    EXPECT_EQ(moe_layer_run(layer, call.args.data(), 5, &result, 1), MOE_ERR_INVALID_ARGUMENT);
    call.args[0].data = nullptr;
    EXPECT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_ERR_INVALID_ARGUMENT);
    EXPECT_STREQ(moe_last_error(), "argument #0 is a null pointer");
  }
  {
    Call call(in);
    int64_t small[2] = {3, 16};
    moe_tensor bad{out.data(), MOE_F32, 2, small};
    EXPECT_EQ(moe_layer_run(layer, call.args.data(), 6, &bad, 1), MOE_ERR_SHAPE);
  }
  for (int32_t badId : {6, -2, 1 << 30}) {
    Call call(in);
    call.narrowed[1][5] = badId;
    EXPECT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_ERR_EXPERT_ID);
    EXPECT_NE(std::string(moe_last_error()).find("outside [-1, E)"), std::string::npos);
  }
  EXPECT_TRUE(untouched());
}

// The remaining malformed-call classes (the ones above: wrong static dim,
// dtype, token count, argument count, null data, result shape, bad ids):
// each is rejected with its status code and a message naming the argument
// or result, and nothing is written.
TEST_F(RuntimeTest, EveryMalformedCallClassIsRejectedAndWritesNothing) {
  std::vector<Tensor> in = inputs(4);
  std::vector<float> out(4 * 16, 7.0f);
  int64_t outShape[2] = {4, 16};
  auto untouched = [&] {
    return std::all_of(out.begin(), out.end(), [](float v) { return v == 7.0f; });
  };
  auto expectRejected = [&](std::vector<moe_tensor> args, int numArgs, moe_tensor result,
                            int numResults, int status, const std::string &message) {
    SCOPED_TRACE(message);
    EXPECT_EQ(moe_layer_run(layer, args.empty() ? nullptr : args.data(), numArgs, &result,
                            numResults),
              status);
    EXPECT_EQ(std::string(moe_last_error()), message);
    EXPECT_TRUE(untouched());
  };
  moe_tensor result{out.data(), MOE_F32, 2, outShape};
  Call call(in);
  {
    // Rank: x given as [4, 16, 1].
    std::vector<moe_tensor> args = call.args;
    int64_t rank3[3] = {4, 16, 1};
    args[0] = {args[0].data, MOE_F32, 3, rank3};
    expectRejected(args, 6, result, 1, MOE_ERR_SHAPE,
                   "argument #0: expected shape [T, 16] f32, got rank 3");
  }
  {
    // An element type the runtime does not know.
    std::vector<moe_tensor> args = call.args;
    // As a C caller would pass it: bytes, not a C++ enum conversion.
    int32_t unknown = 42;
    std::memcpy(&args[2].dtype, &unknown, sizeof unknown);
    expectRejected(args, 6, result, 1, MOE_ERR_SHAPE,
                   "argument #2: expected element type f32, got ?");
  }
  {
    // A negative dimension.
    std::vector<moe_tensor> args = call.args;
    int64_t negative[2] = {-4, 16};
    args[0].shape = negative;
    expectRejected(args, 6, result, 1, MOE_ERR_SHAPE,
                   "argument #0: expected shape [T, 16] f32, got [-4, 16] f32");
  }
  {
    // Too many arguments, and a null argument array.
    std::vector<moe_tensor> args = call.args;
    args.push_back(args[0]);
    expectRejected(args, 7, result, 1, MOE_ERR_INVALID_ARGUMENT,
                   "'oracle' takes 6 arguments, got 7");
    expectRejected({}, 6, result, 1, MOE_ERR_INVALID_ARGUMENT, "null tensor array");
  }
  {
    // Results: count, element type, rank, null data.
    expectRejected(call.args, 6, result, 0, MOE_ERR_INVALID_ARGUMENT,
                   "'oracle' returns 1 results, got 0 result buffers");
    moe_tensor i32Result{out.data(), MOE_I32, 2, outShape};
    expectRejected(call.args, 6, i32Result, 1, MOE_ERR_SHAPE,
                   "result #0: output buffer has the wrong shape: expected [4, 16] f32, got "
                   "[4, 16] i32");
    moe_tensor rank1Result{out.data(), MOE_F32, 1, outShape};
    expectRejected(call.args, 6, rank1Result, 1, MOE_ERR_SHAPE,
                   "result #0: output buffer has the wrong shape: expected [4, 16] f32, got "
                   "[4] f32");
    moe_tensor nullResult{nullptr, MOE_F32, 2, outShape};
    expectRejected(call.args, 6, nullResult, 1, MOE_ERR_INVALID_ARGUMENT,
                   "result #0 is a null pointer");
  }
  {
    // Null data in a weight (not only in x), and a null shape array.
    std::vector<moe_tensor> args = call.args;
    args[4].data = nullptr;
    expectRejected(args, 6, result, 1, MOE_ERR_INVALID_ARGUMENT, "argument #4 is a null pointer");
    args = call.args;
    args[3].shape = nullptr;
    expectRejected(args, 6, result, 1, MOE_ERR_SHAPE,
                   "argument #3: expected shape [3, 8, 16] f32, got rank 3");
  }
  // A null layer.
  EXPECT_EQ(moe_layer_run(nullptr, call.args.data(), 6, &result, 1), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_last_error(), "null layer");
  EXPECT_TRUE(untouched());
}

TEST_F(RuntimeTest, ZeroTokensMayHaveNullBuffers) {
  // T = 0: x, ids, w and the result are empty, so null data is fine; the
  // weights still need theirs.
  std::vector<Tensor> in = inputs(0);
  Call call(in);
  for (int i = 0; i < 3; ++i)
    call.args[i].data = nullptr;
  int64_t outShape[2] = {0, 16};
  moe_tensor result{nullptr, MOE_F32, 2, outShape};
  EXPECT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_OK) << moe_last_error();
  EXPECT_STREQ(moe_last_error(), "");
}

TEST_F(RuntimeTest, ScratchMemoryIsReusedAcrossCalls) {
  std::vector<Tensor> in = inputs(32);
  Call call(in);
  std::vector<float> out(32 * 16);
  int64_t outShape[2] = {32, 16};
  moe_tensor result{out.data(), MOE_F32, 2, outShape};
  ASSERT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_OK);
  moe_scratch_stats first = moe_scratch_get_stats();
  EXPECT_GT(first.allocations, 0u);
  for (int r = 0; r < 3; ++r)
    ASSERT_EQ(moe_layer_run(layer, call.args.data(), 6, &result, 1), MOE_OK);
  moe_scratch_stats later = moe_scratch_get_stats();
  EXPECT_EQ(later.bytes_from_system, first.bytes_from_system) << "steady state went to malloc";
  EXPECT_EQ(later.allocations_reused - first.allocations_reused,
            later.allocations - first.allocations);
}

TEST(RuntimeOpen, MissingFileOrEntryIsAnError) {
  moe_layer *layer = reinterpret_cast<moe_layer *>(1);
  EXPECT_EQ(moe_layer_open("/nonexistent/layer.so", "main", &layer), MOE_ERR_LOAD);
  EXPECT_EQ(layer, nullptr);
  EXPECT_NE(std::string(moe_last_error()).find("cannot load '/nonexistent/layer.so'"),
            std::string::npos);
  EXPECT_EQ(moe_layer_open(nullptr, "main", &layer), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_layer_run(nullptr, nullptr, 0, nullptr, 0), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(moe_status_message(MOE_ERR_PATH_ID),
               "a path id given to moe.path_select is outside [0, P] (0 = skip)");
}
} // namespace

// The runtime keeps its own dtype names and sizes (it links nothing of
// ours); they must be MoeSupport's, the ones the compiler writes into the
// signatures and launch descriptions the runtime parses.
TEST(RuntimeDtypes, NamesAndSizesAreSupportsOnes) {
  for (int d : {MOE_F32, MOE_I32, MOE_I64, MOE_BF16, MOE_F16, MOE_I8}) {
    EXPECT_STREQ(rt::dtypeName(d), dtypeName(DType(d))) << d;
    EXPECT_EQ(rt::dtypeSize(d), dtypeSize(DType(d))) << d;
  }
}

//===----------------------------------------------------------------------===//
// Prepared layers (moe_layer_prepare / moe_prepared_run)
//===----------------------------------------------------------------------===//

namespace {
/// Max |got - want| / max |want|.
double relError(const std::vector<float> &got, const Tensor &want) {
  double err = 0, mx = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    err = std::max(err, double(std::fabs(got[i] - want.f[i])));
    mx = std::max(mx, double(std::fabs(want.f[i])));
  }
  return mx > 0 ? err / mx : err;
}
} // namespace

TEST_F(RuntimeTest, PreparedLayerMatchesReference) {
  // Weights: the static-shaped arguments w1, w2, c (#3..#5).
  ASSERT_EQ(moe_layer_num_weights(layer), 3);
  std::vector<Tensor> in = inputs(64);
  Call call(in);
  moe_prepared *prepared = nullptr;
  ASSERT_EQ(moe_layer_prepare(layer, call.args.data() + 3, 3, &prepared), MOE_OK)
      << moe_last_error();
  // w2's rows (8 floats) are padded to one 64-byte line; w1's (16) and c's
  // are not.
  EXPECT_EQ(moe_prepared_bytes(prepared), uint64_t(4 * (3 * 8 * 16 + 3 * 16 * 16 + 16)));
  EXPECT_GT(moe_prepared_seconds(prepared), 0.0);
  // The caller's weights are not referenced after preparation.
  for (size_t a = 3; a < 6; ++a)
    std::fill(in[a].f.begin(), in[a].f.end(), 1e9f);
  for (int64_t t : {1, 7, 64}) {
    std::vector<Tensor> cur = inputs(t), want;
    ASSERT_TRUE(ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("oracle"), cur, want).ok());
    Call c(cur);
    std::vector<float> out(t * 16, 0.0f);
    int64_t outShape[2] = {t, 16};
    moe_tensor result{out.data(), MOE_F32, 2, outShape};
    ASSERT_EQ(moe_prepared_run(prepared, c.args.data(), 3, &result, 1), MOE_OK) << moe_last_error();
    EXPECT_LT(relError(out, want[0]), 1e-5) << "T = " << t;
  }
  moe_prepared_free(prepared);
}

TEST_F(RuntimeTest, PreparedLayerChecksWeightsOnceAndActivationsPerCall) {
  std::vector<Tensor> in = inputs(4);
  Call call(in);
  moe_prepared *prepared = reinterpret_cast<moe_prepared *>(1);
  // A weight of the wrong shape: named, nothing prepared.
  moe_tensor bad[3] = {call.args[3], call.args[4], call.args[5]};
  int64_t wrong[3] = {3, 8, 15};
  bad[0].shape = wrong;
  EXPECT_EQ(moe_layer_prepare(layer, bad, 3, &prepared), MOE_ERR_SHAPE);
  EXPECT_EQ(prepared, nullptr);
  EXPECT_NE(std::string(moe_last_error()).find("argument #0: expected shape [3, 8, 16] f32"),
            std::string::npos)
      << moe_last_error();
  EXPECT_EQ(moe_layer_prepare(layer, call.args.data() + 3, 2, &prepared), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_layer_prepare(nullptr, call.args.data() + 3, 3, &prepared),
            MOE_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(moe_layer_prepare(layer, call.args.data() + 3, 3, &prepared), MOE_OK)
      << moe_last_error();
  // Activations: checked on every run; outputs untouched on error.
  std::vector<float> out(4 * 16, 7.0f);
  int64_t outShape[2] = {4, 16};
  moe_tensor result{out.data(), MOE_F32, 2, outShape};
  moe_tensor acts[3] = {call.args[0], call.args[1], call.args[2]};
  int64_t badT[2] = {5, 2};
  acts[1].shape = badT;
  EXPECT_EQ(moe_prepared_run(prepared, acts, 3, &result, 1), MOE_ERR_SHAPE);
  EXPECT_NE(std::string(moe_last_error()).find("argument #1 has token count 5"), std::string::npos)
      << moe_last_error();
  EXPECT_EQ(moe_prepared_run(prepared, call.args.data(), 6, &result, 1), MOE_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(moe_prepared_run(nullptr, call.args.data(), 3, &result, 1), MOE_ERR_INVALID_ARGUMENT);
  // A bad expert id is a run-time error of the compiled code, as unprepared.
  in[1].i[0] = 9;
  Call badIds(in);
  EXPECT_EQ(moe_prepared_run(prepared, badIds.args.data(), 3, &result, 1), MOE_ERR_EXPERT_ID);
  for (float v : out)
    ASSERT_EQ(v, 7.0f);
  moe_prepared_free(prepared);
  moe_prepared_free(nullptr);
  EXPECT_EQ(moe_prepared_bytes(nullptr), 0u);
}

TEST_F(RuntimeTest, ConcurrentRunsOnOnePreparedLayer) {
  std::vector<Tensor> weightsIn = inputs(1);
  Call w(weightsIn);
  moe_prepared *prepared = nullptr;
  ASSERT_EQ(moe_layer_prepare(layer, w.args.data() + 3, 3, &prepared), MOE_OK) << moe_last_error();
  // Each thread its own token count and inputs, checked against the
  // reference computed up front (the interpreter is not run concurrently).
  const int threads = 4, calls = 25;
  std::vector<std::vector<Tensor>> in(threads), want(threads);
  for (int k = 0; k < threads; ++k) {
    in[k] = inputs(1 + 19 * k);
    ASSERT_TRUE(
        ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("oracle"), in[k], want[k]).ok());
  }
  std::vector<double> worst(threads, 0.0);
  std::vector<int> failures(threads, 0);
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k)
    pool.emplace_back([&, k] {
      Call c(in[k]);
      int64_t t = in[k][0].shape[0];
      int64_t outShape[2] = {t, 16};
      for (int r = 0; r < calls; ++r) {
        std::vector<float> out(t * 16, 0.0f);
        moe_tensor result{out.data(), MOE_F32, 2, outShape};
        if (moe_prepared_run(prepared, c.args.data(), 3, &result, 1) != MOE_OK)
          ++failures[k];
        else
          worst[k] = std::max(worst[k], relError(out, want[k][0]));
      }
    });
  for (std::thread &th : pool)
    th.join();
  for (int k = 0; k < threads; ++k) {
    EXPECT_EQ(failures[k], 0) << "thread " << k;
    EXPECT_LT(worst[k], 1e-5) << "thread " << k;
  }
  moe_prepared_free(prepared);
}
