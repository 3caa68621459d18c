//===- FinalizeBuffers.cpp - fold the tensor bridges, free temporaries ----===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFINALIZEBUFFERS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;

namespace {
struct FinalizeBuffersPass
    : public mlir::moe::impl::MoeFinalizeBuffersBase<FinalizeBuffersPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Shape queries on bridged tensors read the buffer's shape instead.
    SmallVector<tensor::DimOp> dims;
    module.walk([&](tensor::DimOp op) { dims.push_back(op); });
    for (tensor::DimOp op : dims) {
      OpBuilder b(op);
      Value dim = memref::DimOp::create(b, op.getLoc(), getBuffer(b, op.getLoc(), op.getSource()),
                                        op.getIndex());
      op.getResult().replaceAllUsesWith(dim);
      op.erase();
    }
    // cast<memref>(cast<tensor>(m)) -> m
    SmallVector<UnrealizedConversionCastOp> casts;
    module.walk([&](UnrealizedConversionCastOp op) { casts.push_back(op); });
    for (UnrealizedConversionCastOp op : casts) {
      if (op->getNumOperands() != 1 || !isa<MemRefType>(op.getResult(0).getType()))
        continue;
      auto inner = op.getOperand(0).getDefiningOp<UnrealizedConversionCastOp>();
      if (inner && inner->getNumOperands() == 1 &&
          inner.getOperand(0).getType() == op.getResult(0).getType())
        op.getResult(0).replaceAllUsesWith(inner.getOperand(0));
    }
    // Now-dead bridges, innermost first.
    bool changed = true;
    while (changed) {
      changed = false;
      module.walk([&](UnrealizedConversionCastOp op) {
        if (op->use_empty()) {
          op.erase();
          changed = true;
        }
      });
    }
    WalkResult left = module.walk([&](Operation *op) {
      if (isa<mlir::moe::MoeDialect>(op->getDialect()) ||
          isa<UnrealizedConversionCastOp, tensor::EmptyOp, tensor::DimOp>(op)) {
        op->emitOpError() << "was not lowered to buffers";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      return signalPassFailure();

    // Free every heap temporary before each return of its function. All
    // allocations are at function level: the skip lowering inlines regions.
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      SmallVector<memref::AllocOp> allocs;
      // Buffers in a GPU memory space (the mapped stage's shared tiles and
      // per-thread storage) live as long as their kernel, not the function.
      func.walk([&](memref::AllocOp a) {
        if (!a.getType().getMemorySpace())
          allocs.push_back(a);
      });
      for (memref::AllocOp a : allocs)
        if (a->getParentOp() != func) {
          a.emitOpError() << "temporary buffer allocated inside a loop or branch";
          return signalPassFailure();
        }
      func.walk([&](func::ReturnOp ret) {
        OpBuilder b(ret);
        for (memref::AllocOp a : allocs)
          memref::DeallocOp::create(b, ret.getLoc(), a);
      });
    }
  }
};
} // namespace
