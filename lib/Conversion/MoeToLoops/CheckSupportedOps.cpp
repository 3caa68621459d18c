//===- CheckSupportedOps.cpp - reject what the pipelines cannot lower -----===//
//
// The moe lowerings take moe ops; one-shot-bufferize takes the upstream
// tensor ops around them. An op neither handles would fail late, in a pass's
// own terms, at the function. This pass runs first and names the op, at its
// own location, in the user's terms.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoeDialect.h"
#include "moe/IR/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECHECKSUPPORTEDOPS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
bool isTensorLike(Type type) {
  return isa<TensorType, mlir::moe::ExpertsType>(type);
}

/// What the pipelines handle: moe ops (the lowerings), the return, any op
/// that touches no tensor (index arithmetic; the LLVM conversions take it),
/// and upstream tensor ops one-shot-bufferize takes: elementwise arith/math
/// (through convert-elementwise-to-linalg) and ops with a bufferization
/// model (linalg, tensor, bufferization). Not calls: every function is an
/// entry point with the C ABI. Not tensor constants on the GPU: they would
/// become host globals its kernels cannot read.
bool isSupported(Operation *op, bool gpu) {
  if (isa<mlir::moe::MoeDialect>(op->getDialect()) || isa<func::ReturnOp>(op))
    return true;
  if (!llvm::any_of(op->getOperandTypes(), isTensorLike) &&
      !llvm::any_of(op->getResultTypes(), isTensorLike))
    return true;
  if (isa<CallOpInterface>(op) || (gpu && isa<arith::ConstantOp>(op)))
    return false;
  if (OpTrait::hasElementwiseMappableTraits(op))
    return true;
  return isa<bufferization::BufferizableOpInterface>(op);
}

/// The GPU kernels read FP32 weights only (the CPU's micro-kernels hold the
/// other formats; docs/quantization.md).
LogicalResult checkGpuWeightFormat(Operation *op) {
  std::optional<mlir::moe::WeightFormat> format;
  if (auto bank = dyn_cast<mlir::moe::FfnExpertsOp>(op))
    format = bank.getWeightFormat();
  else if (auto dense = dyn_cast<mlir::moe::FfnOp>(op))
    format = dense.getWeightFormat();
  if (!format || *format == mlir::moe::WeightFormat::f32)
    return success();
  mlir::emitError(op->getLoc())
      << (isa<mlir::moe::FfnOp>(op) ? "FFN" : "expert") << " weights in format "
      << mlir::moe::stringifyWeightFormat(*format)
      << " are not supported by the GPU pipeline (FP32 only); the CPU pipeline runs them";
  return failure();
}

struct CheckSupportedOpsPass
    : public mlir::moe::impl::MoeCheckSupportedOpsBase<CheckSupportedOpsPass> {
  using MoeCheckSupportedOpsBase::MoeCheckSupportedOpsBase;

  void runOnOperation() override {
    bool ok = true;
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      if (!func.isPublic()) {
        // mlir::emitError, not op->emitError: the op's generic form that the
        // latter attaches as a note is noise next to the user's own line.
        mlir::emitError(func.getLoc())
            << "function '" << func.getSymName() << "' is private: the " << pipeline
                         << " pipeline compiles public functions only (each one is an entry "
                            "point; calls between functions are not supported)";
        ok = false;
        continue;
      }
      func.walk([&](Operation *op) {
        if (pipeline == "GPU" && failed(checkGpuWeightFormat(op)))
          ok = false;
        if (op == func.getOperation() || isSupported(op, pipeline == "GPU"))
          return;
        mlir::emitError(op->getLoc())
            << "'" << op->getName() << "' on tensors is not supported by the " << pipeline
            << " pipeline (a layer function may hold moe ops, upstream tensor ops that "
               "bufferize: elementwise arith/math, linalg, tensor; func.return and ops on "
               "scalars)";
        ok = false;
      });
    }
    if (!ok)
      signalPassFailure();
  }
};
} // namespace
