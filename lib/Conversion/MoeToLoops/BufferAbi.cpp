//===- BufferAbi.cpp - the call slots and the C-callable buffer signature --===//
//
// Two passes bracket the lowerings and one-shot-bufferize:
//
//   moe-call-slots   (tensor IR, before the lowerings)
//     the status slot (and, for the CPU, the error-detail slot) at the
//     entry of every public function: the lowerings' run-time checks record
//     into them.
//   moe-buffer-abi   (after one-shot-bufferize)
//     f(memref args) -> memref results   becomes
//     f(memref args..., memref outs...) -> i32 status   (+ llvm.emit_c_interface)
//     Outputs are written only when the status slot is still 0 at the end,
//     which is what makes "outputs untouched on error" hold. Every heap
//     temporary of the function is freed before each return: the results
//     have been copied out, so nothing allocated in the call outlives it.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe_status_codes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECALLSLOTS
#define GEN_PASS_DEF_MOEBUFFERABI
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;

namespace {
/// The functions that get the ABI: public ones with a body.
SmallVector<func::FuncOp> entryFunctions(ModuleOp module) {
  SmallVector<func::FuncOp> entries;
  for (auto func : module.getOps<func::FuncOp>())
    if (!func.isExternal() && func.isPublic())
      entries.push_back(func);
  return entries;
}

/// Public functions are entry points; a call to one from moe code would
/// need the status plumbed through, which is not supported.
LogicalResult rejectCallsBetweenEntries(ModuleOp module) {
  WalkResult calls = module.walk([&](func::CallOp call) {
    auto callee = module.lookupSymbol<func::FuncOp>(call.getCallee());
    if (callee && callee.isPublic() && !callee.isExternal()) {
      call.emitOpError() << "calls the entry function '" << call.getCallee()
                         << "': calls between compiled moe entry points are not supported";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(calls.wasInterrupted());
}

/// The status slot, MOE_OK until a check fails.
Value createStatusSlot(OpBuilder &b, Location loc) {
  auto slot = memref::AllocaOp::create(b, loc, MemRefType::get({}, b.getI32Type()));
  slot->setAttr(kStatusAttr, b.getUnitAttr());
  memref::StoreOp::create(b, loc, cI32(b, loc, MOE_OK), slot.getResult());
  return slot.getResult();
}

struct CallSlotsPass : public mlir::moe::impl::MoeCallSlotsBase<CallSlotsPass> {
  using MoeCallSlotsBase::MoeCallSlotsBase;

  void runOnOperation() override {
    if (failed(rejectCallsBetweenEntries(getOperation())))
      return signalPassFailure();
    for (func::FuncOp func : entryFunctions(getOperation())) {
      // The ABI passes buffers: every argument and result must have one.
      for (Type t : llvm::concat<const Type>(func.getArgumentTypes(), func.getResultTypes()))
        if (!isa<RankedTensorType>(t)) {
          func.emitOpError() << "the moe buffer ABI handles ranked tensor "
                                "arguments and results only, got "
                             << t;
          return signalPassFailure();
        }
      if (statusSlot(func))
        continue;
      OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
      createStatusSlot(b, func.getLoc());
      if (errorDetails)
        createErrorDetailSlot(b, func.getLoc());
    }
  }

  /// The error-detail slot, "nothing recorded" (code 0) at the entry.
  static void createErrorDetailSlot(OpBuilder &b, Location loc) {
    auto slot = memref::AllocaOp::create(
        b, loc, MemRefType::get({kErrorDetailSize}, b.getI64Type()));
    slot->setAttr(kErrorDetailAttr, b.getUnitAttr());
    memref::StoreOp::create(b, loc, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0)),
                            slot.getResult(), ValueRange{cIndex(b, loc, 0)});
  }
};

struct BufferAbiPass : public mlir::moe::impl::MoeBufferAbiBase<BufferAbiPass> {
  void runOnOperation() override {
    if (failed(rejectCallsBetweenEntries(getOperation())))
      return signalPassFailure();
    for (func::FuncOp func : entryFunctions(getOperation()))
      if (failed(convert(func)))
        return signalPassFailure();
  }

  /// On failure, hands the recorded detail to the runtime. The call is made
  /// here, on the caller's thread (the checks may run on the pool's), so
  /// the runtime can keep it with that thread's error message.
  void reportErrorDetail(OpBuilder &b, Location loc, Value status, Value detail) {
    ModuleOp module = getOperation();
    SmallVector<Type> params(kErrorDetailSize, b.getI64Type());
    if (!module.lookupSymbol<func::FuncOp>(kErrorDetailFn)) {
      OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
      auto decl = func::FuncOp::create(mb, loc, kErrorDetailFn,
                                       FunctionType::get(b.getContext(), params, {}));
      decl.setPrivate();
    }
    Value failed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, status,
                                         cI32(b, loc, MOE_OK));
    scf::IfOp::create(b, loc, failed, [&](OpBuilder &tb, Location l) {
      SmallVector<Value> values;
      for (int64_t i = 0; i < kErrorDetailSize; ++i)
        values.push_back(memref::LoadOp::create(tb, l, detail, ValueRange{cIndex(tb, l, i)}));
      func::CallOp::create(tb, l, kErrorDetailFn, TypeRange{}, values);
      scf::YieldOp::create(tb, l);
    });
  }

  /// The heap buffers the function allocates (GPU memory-space buffers, the
  /// mapped stage's shared tiles and per-thread storage, live as long as
  /// their kernel, not the function). Fails on one allocated inside a loop
  /// or branch: freeing it at the returns would free it once per function
  /// call but allocate it once per iteration.
  FailureOr<SmallVector<memref::AllocOp>> heapTemporaries(func::FuncOp func) {
    SmallVector<memref::AllocOp> allocs;
    WalkResult nested = func.walk([&](memref::AllocOp a) {
      if (a.getType().getMemorySpace())
        return WalkResult::advance();
      if (a->getParentOp() != func) {
        a.emitOpError() << "temporary buffer allocated inside a loop or branch";
        return WalkResult::interrupt();
      }
      allocs.push_back(a);
      return WalkResult::advance();
    });
    if (nested.wasInterrupted())
      return failure();
    return allocs;
  }

  /// The status slot made by moe-call-slots, or a new one (MOE_OK) when the
  /// function has none (then no check records into it).
  Value getOrCreateStatusSlot(func::FuncOp func) {
    if (Value slot = statusSlot(func))
      return slot;
    OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
    return createStatusSlot(b, func.getLoc());
  }

  LogicalResult convert(func::FuncOp func) {
    MLIRContext *ctx = func.getContext();
    Block &entry = func.getBody().front();
    for (Type t : llvm::concat<const Type>(func.getArgumentTypes(), func.getResultTypes()))
      if (!isa<MemRefType>(t))
        return func.emitOpError() << "moe-buffer-abi runs after bufferization: expected "
                                     "memref arguments and results, got "
                                  << t;
    FailureOr<SmallVector<memref::AllocOp>> temporaries = heapTemporaries(func);
    if (failed(temporaries))
      return failure();
    Value slot = getOrCreateStatusSlot(func);
    Value detail = errorDetailSlot(func);

    // Results: out-parameters written at the end when the status is 0.
    SmallVector<Value> outs;
    for (Type t : func.getResultTypes()) {
      auto type = cast<MemRefType>(t);
      outs.push_back(entry.addArgument(MemRefType::get(type.getShape(), type.getElementType()),
                                       func.getLoc()));
    }
    func.walk([&](func::ReturnOp ret) {
      OpBuilder rb(ret);
      Location loc = ret.getLoc();
      Value status = memref::LoadOp::create(rb, loc, slot);
      Value ok = arith::CmpIOp::create(rb, loc, arith::CmpIPredicate::eq, status,
                                       cI32(rb, loc, MOE_OK));
      scf::IfOp::create(rb, loc, ok, [&](OpBuilder &tb, Location l) {
        for (auto [value, out] : llvm::zip(ret.getOperands(), outs))
          memref::CopyOp::create(tb, l, value, out);
        scf::YieldOp::create(tb, l);
      });
      if (detail)
        reportErrorDetail(rb, loc, status, detail);
      for (memref::AllocOp a : *temporaries)
        memref::DeallocOp::create(rb, loc, a);
      func::ReturnOp::create(rb, loc, status);
      ret.erase();
    });
    func.setType(FunctionType::get(ctx, entry.getArgumentTypes(),
                                   {IntegerType::get(ctx, 32)}));
    func->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
    return success();
  }
};
} // namespace
