//===- OneShotBufferize.cpp - upstream One-Shot Bufferize, tensor ops only --===//
//
// After the lowerings, most of a layer function is loops on buffers; the
// tensors left are the bridges of the lowered ops and the upstream tensor
// ops around the layers. One-Shot Bufferize with its default filter would
// also re-create every op it has a model for even when it touches no tensor:
// an scf.forall kernel loses its `moe.gpu.grid` attribute that way, and the
// walk over all that loop code costs compile time. So ops with no tensor
// operand or result (other than functions, whose boundaries it converts)
// are left to themselves.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotAnalysis.h"
#include "mlir/Dialect/Bufferization/Transforms/OneShotModuleBufferize.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEONESHOTBUFFERIZE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
bool touchesTensors(Operation *op) {
  auto isTensor = [](Type t) { return isa<TensorType>(t); };
  return llvm::any_of(op->getOperandTypes(), isTensor) ||
         llvm::any_of(op->getResultTypes(), isTensor);
}

/// The caller's inputs are read-only: without this, One-Shot Bufferize may
/// write an op's result into an argument's buffer (a residual add in place).
void markArgumentsReadOnly(ModuleOp module) {
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    for (BlockArgument arg : func.getArguments())
      if (isa<TensorType>(arg.getType()))
        func.setArgAttr(arg.getArgNumber(), bufferization::BufferizationDialect::kWritableAttrName,
                        BoolAttr::get(func.getContext(), false));
  }
}

struct OneShotBufferizePass
    : public mlir::moe::impl::MoeOneShotBufferizeBase<OneShotBufferizePass> {
  void runOnOperation() override {
    markArgumentsReadOnly(getOperation());
    bufferization::OneShotBufferizationOptions options;
    options.bufferizeFunctionBoundaries = true;
    // The C ABI passes dense row-major buffers.
    options.setFunctionBoundaryTypeConversion(
        bufferization::LayoutMapOption::IdentityLayoutMap);
    options.opFilter.denyOperation([](Operation *op) {
      return !isa<func::FuncOp>(op) && !touchesTensors(op);
    });
    bufferization::BufferizationState state;
    if (failed(bufferization::runOneShotModuleBufferize(getOperation(), options, state)))
      return signalPassFailure();
    bufferization::removeBufferizationAttributesInModule(getOperation());
  }
};
} // namespace
