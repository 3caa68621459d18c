//===- CpuPipeline.cpp - moe -> LLVM dialect for the host CPU -------------===//
//
// Stage order (each stage is a pass with its own lit test):
//   moe-check-supported-ops                              unsupported ops, located
//   moe-fold-trivial-experts, moe-expand-layers         moe -> moe
//   moe-buffer-abi                                       C-callable signature
//   moe-lower-skips, -routers, -dispatch,
//   -grouped-experts, -combine                           moe -> scf/memref/vector
//   moe-finalize-buffers                                 bridges folded, frees
//   upstream conversions                                 -> llvm dialect
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
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeFoldTrivialExperts());
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeExpandLayers());
  // The CPU runtime puts the failed check's token, slot and id into its
  // message; the GPU's launch description has no place for them yet.
  pm.addPass(mlir::moe::createMoeBufferAbi({/*errorDetails=*/true}));
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerSkips({options.vectorWidth}));
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerRouters({options.vectorWidth, options.parallel ? 32 : 0}));
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeLowerDispatch());
  pm.addNestedPass<mlir::func::FuncOp>(
      mlir::moe::createMoeLowerGroupedExperts(
          {options.vectorWidth, options.rowTile, options.parallel, options.blockBytes,
           options.sliceBytes, options.packMinRows, options.packTiles, options.packSliceBytes,
           options.packRowsOuter}));
  // Combine: items of 32 tokens (each writes only its own rows).
  pm.addNestedPass<mlir::func::FuncOp>(
      mlir::moe::createMoeLowerCombine({options.vectorWidth, options.parallel ? 32 : 0}));
  pm.addPass(mlir::moe::createMoeFinalizeBuffers());
  if (options.parallel)
    pm.addPass(mlir::moe::createMoeOutlineParallel());
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
}

mlir::LogicalResult buildLoopsToLlvmPipeline(mlir::OpPassManager &pm) {
  // Vector exp/erf (the FFN epilogues) first become polynomials in vector
  // registers (LLVM would scalarize them into libm calls); scalar
  // exp/fma/abs/ceil become LLVM intrinsics and scalar erf goes to libm's
  // erff. Heap temporaries go through the runtime's scratch allocator
  // (`use-generic-functions`), which reuses them across calls. The upstream
  // passes are named textually, so they must be registered.
  moe::registerAllPasses();
  return mlir::parsePassPipeline(
      "moe-approximate-vector-math,convert-math-to-llvm,convert-math-to-libm,convert-scf-to-cf,"
      "convert-vector-to-llvm,expand-strided-metadata,lower-affine,"
      "finalize-memref-to-llvm{use-generic-functions=true},convert-arith-to-llvm,convert-index-to-llvm,"
      "convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts,"
      "moe-lower-parallel-calls",
      pm);
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
  registerMoeGpuPipelines();
}

} // namespace moe
