//===- GpuPipeline.cpp - moe -> the GPU's block/thread-mapped stage -------===//
//
// Stage order (each stage is a pass with its own lit test):
//   moe-check-supported-ops                          unsupported ops, located
//   moe-fold-trivial-experts, moe-expand-layers      moe -> moe (shared with the CPU)
//   moe-buffer-abi                                    buffer signature, status slot
//   moe-lower-skips, moe-lower-routers                the CPU's loop lowerings: their
//                                                     independent loops are marked
//                                                     moe.gpu.parallel
//   moe-gpu-map-dispatch                              device counting sort
//   moe-gpu-map-grouped-experts                       grouped-GEMM kernels
//   moe-lower-combine, moe-finalize-buffers           (shared with the CPU)
//   moe-gpu-map-loops                                 every remaining loop -> kernel
// = the mapped stage (`moe-gpu-mapped`). Then either
//   moe-gpu-to-host + the CPU's LLVM tail             `moe-gpu-host`: run it on the CPU
// or
//   moe-gpu-outline, gpu-kernel-outlining             `moe-gpu-kernels`: gpu.module + launches
//   convert-gpu-to-nvvm (bare pointers), nvvm-attach-target   `moe-to-nvvm`
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
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/Passes.h"

namespace moe {

namespace {
/// Kernels must not call libdevice (__nv_expf, __nv_erff...): it is linked
/// only when the CUDA toolkit is found at compile time, and an unresolved
/// call makes ptxas reject the PTX. exp and erf become MLIR's polynomial
/// approximations (f32 accuracy), abs, fma, floor (in the exp
/// approximation) and ceil (capacity limits) become arith ops that NVPTX selects directly.
struct ApproximateKernelMathPass
    : public mlir::PassWrapper<ApproximateKernelMathPass, mlir::OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ApproximateKernelMathPass)
  llvm::StringRef getArgument() const override { return "moe-gpu-approximate-math"; }
  void runOnOperation() override {
    mlir::RewritePatternSet patterns(&getContext());
    mlir::populateMathPolynomialApproximationPatterns(
        patterns, [](llvm::StringRef) { return true; });
    // The exp approximation's floor (of a clamped, small argument): by a
    // round trip through i32, corrected for negative non-integers.
    patterns.add(+[](mlir::math::FloorOp op, mlir::PatternRewriter &r) -> mlir::LogicalResult {
      if (!op.getType().isF32())
        return mlir::failure();
      mlir::Location loc = op.getLoc();
      mlir::Value x = op.getOperand();
      mlir::Value truncated = mlir::arith::SIToFPOp::create(
          r, loc, r.getF32Type(), mlir::arith::FPToSIOp::create(r, loc, r.getI32Type(), x));
      mlir::Value above = mlir::arith::CmpFOp::create(r, loc, mlir::arith::CmpFPredicate::OGT, truncated, x);
      mlir::Value one = mlir::arith::ConstantOp::create(r, loc, r.getF32FloatAttr(1.0f));
      mlir::Value lower = mlir::arith::SubFOp::create(r, loc, truncated, one);
      r.replaceOpWithNewOp<mlir::arith::SelectOp>(op, above, lower, truncated);
      return mlir::success();
    });
    // Capacity limits, ceil(cf * T * K / E) in f64: far inside i64's range.
    patterns.add(+[](mlir::math::CeilOp op, mlir::PatternRewriter &r) -> mlir::LogicalResult {
      mlir::Type type = op.getType();
      if (!type.isF32() && !type.isF64())
        return mlir::failure();
      mlir::Location loc = op.getLoc();
      mlir::Value x = op.getOperand();
      mlir::Value truncated = mlir::arith::SIToFPOp::create(
          r, loc, type, mlir::arith::FPToSIOp::create(r, loc, r.getI64Type(), x));
      mlir::Value below = mlir::arith::CmpFOp::create(r, loc, mlir::arith::CmpFPredicate::OLT, truncated, x);
      mlir::Value one = mlir::arith::ConstantOp::create(r, loc, r.getFloatAttr(type, 1.0));
      mlir::Value upper = mlir::arith::AddFOp::create(r, loc, truncated, one);
      r.replaceOpWithNewOp<mlir::arith::SelectOp>(op, below, upper, truncated);
      return mlir::success();
    });
    // |x| clears the sign bit; fma(a, b, c) = a * b + c, which NVPTX
    // contracts back into one fma.rn (its default fp-contract is fast).
    patterns.add(+[](mlir::math::AbsFOp op, mlir::PatternRewriter &r) -> mlir::LogicalResult {
      if (!op.getType().isF32())
        return mlir::failure();
      mlir::Location loc = op.getLoc();
      mlir::Value bits = mlir::arith::BitcastOp::create(r, loc, r.getI32Type(), op.getOperand());
      mlir::Value mask = mlir::arith::ConstantOp::create(r, loc, r.getI32IntegerAttr(0x7fffffff));
      mlir::Value cleared = mlir::arith::AndIOp::create(r, loc, bits, mask);
      r.replaceOpWithNewOp<mlir::arith::BitcastOp>(op, op.getType(), cleared);
      return mlir::success();
    });
    patterns.add(+[](mlir::math::FmaOp op, mlir::PatternRewriter &r) -> mlir::LogicalResult {
      if (isa<mlir::VectorType>(op.getType()))
        return mlir::failure();
      mlir::Value product = mlir::arith::MulFOp::create(r, op.getLoc(), op.getA(), op.getB());
      r.replaceOpWithNewOp<mlir::arith::AddFOp>(op, product, op.getC());
      return mlir::success();
    });
    if (failed(mlir::applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace

std::unique_ptr<mlir::Pass> createMoeGpuKernelMathPass() {
  return std::make_unique<ApproximateKernelMathPass>();
}

void buildMoeGpuMappedPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  using mlir::func::FuncOp;
  if (!addOptionsCheck(pm, checkOptions(options)))
    return;
  pm.addPass(mlir::moe::createMoeCheckSupportedOps({"GPU"}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeFoldTrivialExperts());
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeExpandLayers());
  pm.addPass(mlir::moe::createMoeBufferAbi());
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeLowerSkips({options.vectorWidth}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeLowerRouters({options.vectorWidth}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeGpuMapDispatch({options.blockSize}));
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeGpuMapGroupedExperts());
  pm.addNestedPass<FuncOp>(mlir::moe::createMoeLowerCombine({options.vectorWidth}));
  pm.addPass(mlir::moe::createMoeFinalizeBuffers());
  pm.addPass(mlir::moe::createMoeGpuMapLoops({options.blockSize}));
}

void buildMoeGpuHostLoopsPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  buildMoeGpuMappedPipeline(pm, options);
  // The kernels' math as the GPU computes it (see ApproximateKernelMathPass).
  pm.addNestedPass<mlir::func::FuncOp>(createMoeGpuKernelMathPass());
  pm.addPass(mlir::moe::createMoeGpuToHost());
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
}

// The composed pipelines below are these stage tails in sequence, so that
// running the tails one by one (moe::compileToPtx, which keeps every stage's
// text) gives the same PTX as the composed pipeline.
void buildMoeGpuOutlineStage(mlir::OpPassManager &pm) {
  pm.addPass(mlir::moe::createMoeGpuOutline());
  pm.addPass(mlir::createGpuKernelOutliningPass());
  pm.addPass(mlir::createCanonicalizerPass());
  pm.addPass(mlir::createCSEPass());
}

mlir::LogicalResult buildMoeGpuNvvmStage(mlir::OpPassManager &pm, const GpuPipelineOptions &options) {
  // Named textually (as the CPU tail is), so the passes must be registered.
  moe::registerAllPasses();
  pm.addNestedPass<mlir::gpu::GPUModuleOp>(createMoeGpuKernelMathPass());
  return mlir::parsePassPipeline(
      "gpu.module(convert-scf-to-cf,convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=1},"
      "canonicalize,cse,reconcile-unrealized-casts),"
      "nvvm-attach-target{chip=" + options.chip.getValue() + " O=3}",
      pm);
}

mlir::LogicalResult buildMoeGpuPtxStage(mlir::OpPassManager &pm) {
  moe::registerAllPasses();
  return mlir::parsePassPipeline("gpu-module-to-binary{format=isa}", pm);
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
