//===- BufferAbi.cpp - a C-callable buffer signature for entry functions --===//
//
// f(tensor args) -> tensor results   becomes
// f(memref args..., memref outs...) -> i32 status   (+ llvm.emit_c_interface)
//
// The body keeps using tensors through bridge casts; the lowerings replace
// them op by op. Outputs are written only when the status slot is still 0 at
// the end, which is what makes "outputs untouched on error" hold.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe_status_codes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEBUFFERABI
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;

namespace {
struct BufferAbiPass : public mlir::moe::impl::MoeBufferAbiBase<BufferAbiPass> {
  using MoeBufferAbiBase::MoeBufferAbiBase;

  void runOnOperation() override {
    // Public functions are entry points; a call to one from moe code would
    // need the status plumbed through, which is not supported.
    WalkResult calls = getOperation().walk([&](func::CallOp call) {
      auto callee = getOperation().lookupSymbol<func::FuncOp>(call.getCallee());
      if (callee && callee.isPublic() && !callee.isExternal()) {
        call.emitOpError() << "calls the entry function '" << call.getCallee()
                           << "': calls between compiled moe entry points are not supported";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (calls.wasInterrupted())
      return signalPassFailure();
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal() || !func.isPublic())
        continue;
      if (failed(convert(func)))
        return signalPassFailure();
    }
  }

  /// The error-detail slot, "nothing recorded" (code 0) at the entry.
  Value createErrorDetailSlot(OpBuilder &b, Location loc) {
    auto slotOp = memref::AllocaOp::create(
        b, loc, MemRefType::get({kErrorDetailSize}, b.getI64Type()));
    slotOp->setAttr(kErrorDetailAttr, b.getUnitAttr());
    memref::StoreOp::create(b, loc, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0)),
                            slotOp.getResult(), ValueRange{cIndex(b, loc, 0)});
    return slotOp.getResult();
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

  LogicalResult convert(func::FuncOp func) {
    MLIRContext *ctx = func.getContext();
    Block &entry = func.getBody().front();
    OpBuilder b = OpBuilder::atBlockBegin(&entry);
    Location loc = func.getLoc();

    for (Type t : llvm::concat<const Type>(func.getArgumentTypes(), func.getResultTypes()))
      if (!isa<RankedTensorType>(t))
        return func.emitOpError() << "moe-buffer-abi handles ranked tensor "
                                     "arguments and results only, got "
                                  << t;

    // Arguments: memrefs, bridged back to tensors for the unconverted body.
    for (BlockArgument arg : entry.getArguments()) {
      Type tensorType = arg.getType();
      arg.setType(bufferTypeOf(tensorType));
      Value bridged = asTensor(b, loc, arg, tensorType);
      arg.replaceAllUsesExcept(bridged, bridged.getDefiningOp());
    }
    // The status slot, zero until a check fails.
    auto slotOp = memref::AllocaOp::create(b, loc, MemRefType::get({}, b.getI32Type()));
    Value slot = slotOp.getResult();
    slotOp->setAttr(kStatusAttr, UnitAttr::get(ctx));
    memref::StoreOp::create(b, loc, cI32(b, loc, MOE_OK), slot);
    Value detail = errorDetails ? createErrorDetailSlot(b, loc) : Value();

    // Results: out-parameters written at the end when the status is 0.
    SmallVector<Value> outs;
    for (Type t : func.getResultTypes())
      outs.push_back(entry.addArgument(bufferTypeOf(t), loc));
    func.walk([&](func::ReturnOp ret) {
      OpBuilder rb(ret);
      Value status = memref::LoadOp::create(rb, ret.getLoc(), slot);
      Value ok = arith::CmpIOp::create(rb, ret.getLoc(), arith::CmpIPredicate::eq,
                                       status, cI32(rb, ret.getLoc(), MOE_OK));
      scf::IfOp::create(rb, ret.getLoc(), ok, [&](OpBuilder &tb, Location l) {
        for (auto [value, out] : llvm::zip(ret.getOperands(), outs))
          memref::CopyOp::create(tb, l, getBuffer(tb, l, value), out);
        scf::YieldOp::create(tb, l);
      });
      if (detail)
        reportErrorDetail(rb, ret.getLoc(), status, detail);
      func::ReturnOp::create(rb, ret.getLoc(), status);
      ret.erase();
    });
    func.setType(FunctionType::get(ctx, entry.getArgumentTypes(),
                                   {IntegerType::get(ctx, 32)}));
    func->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
    return success();
  }
};
} // namespace
