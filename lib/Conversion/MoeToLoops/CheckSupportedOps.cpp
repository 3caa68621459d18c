//===- CheckSupportedOps.cpp - reject what the pipelines cannot lower -----===//
//
// The lowerings replace moe ops one family at a time and bridge the tensors
// in between; an op they do not know (a residual arith.addf after a layer)
// keeps its tensors, and the failure surfaced only at the end, as a bridge
// cast "not lowered to buffers" at the function. This pass runs first and
// names the op, at its own location, in the user's terms.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoeDialect.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECHECKSUPPORTEDOPS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
bool isTensorLike(Type type) {
  return isa<TensorType, mlir::moe::ExpertsType>(type);
}

/// What the lowerings handle: moe ops, the two tensor ops the moe-level
/// rewrites create themselves (and lower), the return, and any op that
/// touches no tensor (index arithmetic; the LLVM conversions take it).
bool isSupported(Operation *op) {
  if (isa<mlir::moe::MoeDialect>(op->getDialect()))
    return true;
  if (isa<tensor::EmptyOp, tensor::DimOp, func::ReturnOp>(op))
    return true;
  // A weight read from its packed buffer (moe-hoist-weight-packing):
  // moe-lower-pack makes it a strided view.
  if (auto slice = dyn_cast<tensor::ExtractSliceOp>(op))
    return slice.hasUnitStride() && slice.getSourceType().hasStaticShape();
  return !llvm::any_of(op->getOperandTypes(), isTensorLike) &&
         !llvm::any_of(op->getResultTypes(), isTensorLike);
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
        if (op == func.getOperation() || isSupported(op))
          return;
        mlir::emitError(op->getLoc())
            << "'" << op->getName() << "' on tensors is not supported by the " << pipeline
            << " pipeline (a layer function may hold moe ops, tensor.empty, tensor.dim, "
               "func.return and ops on scalars)";
        ok = false;
      });
    }
    if (!ok)
      signalPassFailure();
  }
};
} // namespace
