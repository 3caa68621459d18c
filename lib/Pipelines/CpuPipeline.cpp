//===- CpuPipeline.cpp - moe -> LLVM dialect for the host CPU -------------===//
//
// Stage order (each stage is a pass with its own lit test):
//   moe-check-supported-ops                              unsupported ops, located
//   moe-fold-trivial-experts, moe-expand-layers         moe -> moe
//   moe-call-slots                                       status slots
//   moe-lower-skips, -routers, -dispatch,
//   -grouped-experts, -combine                           moe -> scf/memref/vector
//   one-shot-bufferize, moe-buffer-abi                   buffers, C-callable signature
//   upstream conversions                                 -> llvm dialect
// A moe-stage-end pass closes each stage a user can look at (expanded,
// loops, llvm): the execution engine's instrumentation prints them.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"
#include "PipelineOptions.h"

#include "moe/Conversion/Passes.h"
#include "moe/InitAll.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace moe {

void buildMoeToLoopsPipeline(mlir::OpPassManager &pm, const CpuPipelineOptions &options) {
  if (!addOptionsCheck(pm, checkOptions(options)))
    return;
  pm.addPass(mlir::moe::createMoeCheckSupportedOps({"CPU"}));
  // Before the folding: the counts are against each layer's own table.
  if (options.stats)
    pm.addPass(mlir::moe::createMoeRecordRoutingStats());
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeFoldTrivialExperts());
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeExpandLayers());
  if (options.ranks > 0) {
    mlir::moe::MoeShardExpertsOptions shard;
    shard.ranks = options.ranks;
    shard.placement.assign(options.placement.begin(), options.placement.end());
    pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeShardExperts(shard));
  }
  mlir::moe::addStageEnd(pm, "expanded");
  // The CPU runtime puts the failed check's token, slot and id into its
  // message; the GPU's launch description has no place for them yet.
  pm.addPass(mlir::moe::createMoeCallSlots({/*errorDetails=*/true}));
  // Packed weights (moe-hoist-weight-packing's prepare/run entries).
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerPack());
  // Pass options are filled by name, so a new option in Passes.td cannot
  // shift the values into the wrong fields.
  const int64_t tokenChunk = options.parallel ? 32 : 0; // router/combine items of 32 tokens
  mlir::moe::MoeLowerSkipsOptions skips;
  skips.vectorWidth = options.vectorWidth;
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerSkips(skips));
  mlir::moe::MoeLowerRoutersOptions routers;
  routers.vectorWidth = options.vectorWidth;
  routers.tokenChunk = tokenChunk;
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerRouters(routers));
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerDispatch());
  mlir::moe::MoeLowerGroupedExpertsOptions experts;
  experts.vectorWidth = options.vectorWidth;
  experts.rowTile = options.rowTile;
  experts.parallel = options.parallel;
  experts.blockBytes = options.blockBytes;
  experts.sliceBytes = options.sliceBytes;
  experts.packMinRows = options.packMinRows;
  experts.packTiles = options.packTiles;
  experts.packSliceBytes = options.packSliceBytes;
  experts.packRowsOuter = options.packRowsOuter;
  experts.microKernelIsa = options.microKernelIsa;
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerGroupedExperts(experts));
  if (options.ranks > 0)
    pm.addPass(mlir::moe::createMoeLowerExchanges());
  // Combine items write only their own tokens' rows.
  mlir::moe::MoeLowerCombineOptions combine;
  combine.vectorWidth = options.vectorWidth;
  combine.tokenChunk = tokenChunk;
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerCombine(combine));
  addBufferizationStage(pm);
  if (options.parallel)
    pm.addPass(mlir::moe::createMoeOutlineParallel());
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
  mlir::moe::addStageEnd(pm, "loops");
}

mlir::LogicalResult buildLoopsToLlvmPipeline(mlir::OpPassManager &pm) {
  // Vector exp/erf (the FFN epilogues) first become polynomials in vector
  // registers (LLVM would scalarize them into libm calls); scalar
  // exp/fma/abs/ceil become LLVM intrinsics and scalar erf goes to libm's
  // erff. Heap temporaries go through the runtime's scratch allocator
  // (`use-generic-functions`), which reuses them across calls. The upstream
  // passes are named textually, so they must be registered.
  moe::registerAllPasses();
  auto parsed = mlir::parsePassPipeline(
      "moe-approximate-vector-math,convert-math-to-llvm,convert-math-to-libm,convert-scf-to-cf,"
      "convert-vector-to-llvm,expand-strided-metadata,lower-affine,"
      "finalize-memref-to-llvm{use-generic-functions=true},convert-arith-to-llvm,convert-index-to-llvm,"
      "convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts,"
      "moe-lower-parallel-calls",
      pm);
  mlir::moe::addStageEnd(pm, "llvm");
  return parsed;
}

void buildMoeToCpuPipeline(mlir::OpPassManager &pm, const CpuPipelineOptions &options) {
  buildMoeToLoopsPipeline(pm, options);
  // Cannot fail: the textual tail names only passes registered just before.
  if (failed(buildLoopsToLlvmPipeline(pm)))
    llvm::report_fatal_error("moe-to-cpu: the LLVM lowering pipeline did not parse");
}

void registerMoePipelines() {
  registerCheckedPipeline<CpuPipelineOptions>(
      "moe-to-loops", "Lower moe layers to scf/memref/vector loops on buffers",
      buildMoeToLoopsPipeline);
  registerCheckedPipeline<CpuPipelineOptions>(
      "moe-to-cpu", "Lower moe layers to the LLVM dialect for the host CPU",
      buildMoeToCpuPipeline);
  mlir::PassPipelineRegistration<>(
      "moe-bufferize",
      "One-Shot Bufferize lowered moe IR and the upstream tensor ops around it, then "
      "moe-buffer-abi (the stage both pipelines share; for tests of a single lowering)",
      addBufferizationStage);
  registerMoeGpuPipelines();
}

} // namespace moe
