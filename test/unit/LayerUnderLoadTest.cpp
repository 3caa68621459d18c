//===- LayerUnderLoadTest.cpp - compiled layers on a busy machine ---------===//
//
// A compiled layer called from several threads at once, next to CPU hogs,
// must give the reference's result on every call (the pool serves one
// loop at a time; the other callers run their loops alone). Not timed:
// moe-bench --contention measures the speed.
//
//===----------------------------------------------------------------------===//

#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Support/Random.h"
#include "moe_runtime.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <unistd.h>

using namespace moe;
using moe::Tensor;

namespace {
// examples/mixtral.mlir's layer: router, dispatch, FFN phases and combine
// are all thread-pool loops at T = 256.
const char *kMixtral = R"mlir(
func.func @main(%x: tensor<?x64xf32>, %gate: tensor<8x64xf32>,
                %w1: tensor<8x128x64xf32>, %w3: tensor<8x128x64xf32>,
                %w2: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x64xf32>, tensor<8x64xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<8x128x64xf32>)
      w3(%w3 : tensor<8x128x64xf32>) w2(%w2 : tensor<8x64x128xf32>) -> !moe.experts<8, 64>
  %y = moe.layer %x, %ids, %w experts(%experts : !moe.experts<8, 64>)
      : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
)mlir";

double maxRelError(const std::vector<float> &got, const std::vector<float> &want) {
  double err = 0, mx = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    mx = std::max(mx, double(std::fabs(want[i])));
  }
  return err / mx;
}

TEST(LayerUnderLoad, ConcurrentCallersNextToCpuHogsMatchTheReference) {
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(kMixtral, &ctx);
  ASSERT_TRUE(module);
  std::unique_ptr<CompiledFunction> fn;
  Status st = CompiledFunction::compile(*module, "main", CpuPipelineOptions(), false, fn);
  ASSERT_TRUE(st.ok()) << st.error;

  const int64_t t = 256;
  std::vector<Tensor> args = {randomFloats({t, 64}, 1), randomFloats({8, 64}, 2),
                              randomFloats({8, 128, 64}, 3), randomFloats({8, 128, 64}, 4),
                              randomFloats({8, 64, 128}, 5)};
  std::vector<Tensor> want;
  ASSERT_TRUE(ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("main"), args, want).ok());
  std::vector<const void *> data;
  std::vector<std::vector<int64_t>> shapes;
  for (const Tensor &a : args) {
    data.push_back(a.f.data());
    shapes.push_back(a.shape);
  }

  std::atomic<bool> stopHogs{false};
  std::vector<std::thread> hogs;
  for (long i = 0; i < 2 * sysconf(_SC_NPROCESSORS_ONLN) + 1; ++i)
    hogs.emplace_back([&] {
      volatile uint64_t x = 0;
      while (!stopHogs.load(std::memory_order_relaxed))
        x = x + 1;
    });
  ASSERT_EQ(moe_set_num_threads(3), MOE_OK);
  std::atomic<int> failures{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 3; ++c)
    callers.emplace_back([&] {
      for (int call = 0; call < 15; ++call) {
        std::vector<float> out(t * 64, 42.0f);
        Status r = fn->runBuffers(data, shapes, {out.data()}, {{t, 64}});
        if (!r.ok() || maxRelError(out, want[0].f) > 1e-5)
          failures.fetch_add(1);
      }
    });
  for (auto &c : callers)
    c.join();
  stopHogs = true;
  for (auto &h : hogs)
    h.join();
  moe_set_num_threads(2);
  EXPECT_EQ(failures.load(), 0) << "calls that failed or differed from the reference";
}
} // namespace
