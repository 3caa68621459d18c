//===- GpuPipeline.cpp - moe -> the GPU's block/thread-mapped stage -------===//
//
// Stage order (each stage is a pass with its own lit test):
//   moe-check-supported-ops                          unsupported ops, located
//   moe-fold-trivial-experts, moe-expand-layers      moe -> moe (shared with the CPU)
//   moe-call-slots                                    status slot
//   moe-lower-skips, moe-lower-routers                the CPU's loop lowerings: their
//                                                     independent loops are marked
//                                                     moe.gpu.parallel
//   moe-gpu-map-dispatch                              device counting sort
//   moe-gpu-map-grouped-experts                       grouped-GEMM kernels
//   moe-lower-combine                                 (shared with the CPU)
//   one-shot-bufferize, moe-buffer-abi                (shared with the CPU)
//   moe-gpu-map-loops                                 every remaining loop -> kernel
// = the mapped stage (`moe-gpu-mapped`). Then either
//   moe-gpu-approximate-math, moe-gpu-to-host         `moe-gpu-host`: run it on the CPU
//     + the CPU's LLVM tail
// or
//   moe-gpu-outline, gpu-kernel-outlining             `moe-gpu-kernels`: gpu.module + launches
//   moe-gpu-approximate-math (in the gpu.module),     `moe-to-nvvm`
//     convert-gpu-to-nvvm (bare pointers), nvvm-attach-target
//   gpu-module-to-binary{format=isa}                  `moe-to-ptx`: PTX from LLVM's NVPTX backend
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"
#include "PipelineOptions.h"

#include "moe/Conversion/Passes.h"
#include "moe/InitAll.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace moe {

void buildMoeGpuMappedPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  using mlir::func::FuncOp;
  if (!addOptionsCheck(pm, checkOptions(options)))
    return;
  pm.addPass(mlir::moe::createMoeCheckSupportedOps({"GPU"}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeFoldTrivialExperts());
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeExpandLayers());
  mlir::moe::addStageEnd(pm, "expanded");
  pm.addPass(mlir::moe::createMoeCallSlots());
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeLowerSkips({options.vectorWidth}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeLowerRouters({options.vectorWidth}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeGpuMapDispatch({options.blockSize}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeGpuMapGroupedExperts());
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeLowerCombine({options.vectorWidth}));
  addBufferizationStage(pm);
  pm.addPass(mlir::moe::createMoeGpuMapLoops({options.blockSize}));
  mlir::moe::addStageEnd(pm, "mapped");
}

void buildMoeGpuHostLoopsPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  buildMoeGpuMappedPipeline(pm, options);
  // The kernels' math as the GPU computes it (moe-gpu-approximate-math).
  pm.addNestedPass<mlir::func::FuncOp>(mlir::moe::createMoeGpuApproximateMath());
  pm.addPass(mlir::moe::createMoeGpuToHost());
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
  mlir::moe::addStageEnd(pm, "loops");
}

// The composed pipelines below are these stage tails in sequence, so that
// running the tails one by one (moe::compileToPtx, which keeps every stage's
// text) gives the same PTX as the composed pipeline.
void buildMoeGpuOutlineStage(mlir::OpPassManager &pm) {
  pm.addPass(mlir::moe::createMoeGpuOutline());
  pm.addPass(mlir::createGpuKernelOutliningPass());
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
  mlir::moe::addStageEnd(pm, "kernels");
}

mlir::LogicalResult buildMoeGpuNvvmStage(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  // Named textually (as the CPU tail is), so the passes must be registered.
  moe::registerAllPasses();
  pm.addNestedPass<mlir::gpu::GPUModuleOp>(mlir::moe::createMoeGpuApproximateMath());
  auto parsed = mlir::parsePassPipeline(
      "gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=1},"
      "canonicalize,cse,reconcile-unrealized-casts),"
      "nvvm-attach-target{chip=" + options.chip.getValue() + " O=3}",
      pm);
  mlir::moe::addStageEnd(pm, "nvvm");
  return parsed;
}

mlir::LogicalResult buildMoeGpuPtxStage(mlir::OpPassManager &pm) {
  moe::registerAllPasses();
  auto parsed = mlir::parsePassPipeline("gpu-module-to-binary{format=isa}", pm);
  mlir::moe::addStageEnd(pm, "ptx");
  return parsed;
}

void buildMoeGpuKernelsPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  buildMoeGpuMappedPipeline(pm, options);
  buildMoeGpuOutlineStage(pm);
}

mlir::LogicalResult buildMoeToNvvmPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  buildMoeGpuKernelsPipeline(pm, options);
  return buildMoeGpuNvvmStage(pm, options);
}

mlir::LogicalResult buildMoeToPtxPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  if (failed(buildMoeToNvvmPipeline(pm, options)))
    return mlir::failure();
  return buildMoeGpuPtxStage(pm);
}

static void buildMoeGpuHostPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  buildMoeGpuHostLoopsPipeline(pm, options);
  if (failed(buildLoopsToLlvmPipeline(pm)))
    llvm::report_fatal_error("moe-gpu-host: the LLVM lowering pipeline did not parse");
}

void registerMoeGpuPipelines() {
  registerCheckedPipeline<GpuPipelineOptions>(
      "moe-gpu-mapped",
      "Lower moe layers to the GPU's block/thread-mapped stage (scf.forall kernels)",
      buildMoeGpuMappedPipeline);
  registerCheckedPipeline<GpuPipelineOptions>(
      "moe-gpu-host-loops", "The GPU mapped stage as host loops on buffers",
      buildMoeGpuHostLoopsPipeline);
  registerCheckedPipeline<GpuPipelineOptions>(
      "moe-gpu-host",
      "Lower moe layers through the GPU mapped stage to the LLVM dialect for the host CPU",
      buildMoeGpuHostPipeline);
  registerCheckedPipeline<GpuPipelineOptions>(
      "moe-gpu-kernels", "Outline the GPU mapped stage into a gpu.module of kernels",
      buildMoeGpuKernelsPipeline);
  registerCheckedPipeline<GpuPipelineOptions>(
      "moe-to-nvvm", "Lower moe layers to GPU kernels in the NVVM dialect (NVPTX target attached)",
      [](mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
        if (failed(buildMoeToNvvmPipeline(pm, options)))
          llvm::report_fatal_error("moe-to-nvvm: the NVVM lowering pipeline did not parse");
      });
  registerCheckedPipeline<GpuPipelineOptions>(
      "moe-to-ptx", "Lower moe layers to PTX (gpu.binary) through LLVM's NVPTX backend",
      [](mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
        if (failed(buildMoeToPtxPipeline(pm, options)))
          llvm::report_fatal_error("moe-to-ptx: the PTX pipeline did not parse");
      });
}

} // namespace moe
