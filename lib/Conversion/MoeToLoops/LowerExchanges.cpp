//===- LowerExchanges.cpp - moe.all_to_all(_combine) -> moe_runtime_mpi ---===//
//
// The exchanges of a sharded layer are calls into libmoe_runtime_mpi
// (runtime/include/moe_runtime_mpi.h); the compiler only declares them, so
// this library links no MPI. The forward exchange is two calls: the counts
// first (they size the received buffers: Q rows, known only at run time),
// then the rows. Buffers are passed as bare pointers (identity-layout
// memrefs: the aligned pointer is the first element). A non-zero status
// records MOE_ERR_EXCHANGE; the runtime then zeroes the counts, so Q is 0
// and the rest of the call runs on empty buffers.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe_status_codes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWEREXCHANGES
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {

/// The address of a buffer's first element (identity layout: offset 0).
Value pointerOf(OpBuilder &b, Location loc, Value buffer) {
  Value index = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
  Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), index);
  return LLVM::IntToPtrOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()), i64);
}

/// A constant module global holding `placement`, as a buffer.
Value placementBuffer(OpBuilder &b, Location loc, Operation *op, ArrayRef<int32_t> placement) {
  auto module = op->getParentOfType<ModuleOp>();
  auto type = MemRefType::get({int64_t(placement.size())}, b.getI32Type());
  auto init = DenseIntElementsAttr::get(
      RankedTensorType::get(type.getShape(), b.getI32Type()), placement);
  SymbolTable symbols(module);
  OpBuilder detached(op->getContext());
  auto global = memref::GlobalOp::create(detached, loc, "__moe_placement",
                                         detached.getStringAttr("private"), type, init,
                                         /*constant=*/true, /*alignment=*/nullptr);
  symbols.insert(global, module.getBody()->begin()); // uniques the name
  return memref::GetGlobalOp::create(b, loc, type, global.getSymName());
}

/// Calls `name(args...)` and records MOE_ERR_EXCHANGE when it fails.
void callChecked(OpBuilder &b, Location loc, Operation *op, StringRef name,
                 ValueRange args) {
  func::FuncOp fn = declareRuntimeFunction(op, name, args.getTypes(), b.getI32Type());
  Value status = func::CallOp::create(b, loc, fn, args).getResult(0);
  Value failed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, status,
                                       cI32(b, loc, MOE_OK));
  recordError(b, loc, op, failed, MOE_ERR_EXCHANGE);
}

struct LowerAllToAll : OpRewritePattern<mdl::AllToAllOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(mdl::AllToAllOp op, PatternRewriter &b) const override {
    Location loc = op.getLoc();
    int64_t n = op.getPlacement().size();
    Value hidden = getBuffer(b, loc, op.getHidden());
    Value rows = getBuffer(b, loc, op.getRows());
    Value offsets = getBuffer(b, loc, op.getOffsets());
    Value placement = placementBuffer(b, loc, op, op.getPlacement());
    Value plan = allocFor(b, loc, op.getPlan().getType(), {});
    Value recvOffsets = allocFor(b, loc, op.getRecvOffsets().getType(), {});
    callChecked(b, loc, op, "moe_mpi_dispatch_counts",
                {pointerOf(b, loc, offsets), cI64(b, loc, n), pointerOf(b, loc, placement),
                 pointerOf(b, loc, plan), pointerOf(b, loc, recvOffsets)});
    Value q = toIndex(b, loc, memref::LoadOp::create(b, loc, recvOffsets,
                                                     ValueRange{cIndex(b, loc, n)}));
    Value recvHidden = allocFor(b, loc, op.getRecvHidden().getType(), {q});
    Value recvRows = allocFor(b, loc, op.getRecvRows().getType(), {q});
    Value h = dimOf(b, loc, hidden, 1);
    callChecked(b, loc, op, "moe_mpi_dispatch_rows",
                {pointerOf(b, loc, hidden),
                 arith::IndexCastOp::create(b, loc, b.getI64Type(), h),
                 pointerOf(b, loc, rows), pointerOf(b, loc, offsets), cI64(b, loc, n),
                 pointerOf(b, loc, placement), pointerOf(b, loc, plan),
                 pointerOf(b, loc, recvHidden), pointerOf(b, loc, recvRows)});
    b.replaceOp(op, {asTensor(b, loc, recvHidden, op.getRecvHidden().getType()),
                     asTensor(b, loc, recvRows, op.getRecvRows().getType()),
                     asTensor(b, loc, recvOffsets, op.getRecvOffsets().getType()),
                     asTensor(b, loc, plan, op.getPlan().getType())});
    return success();
  }
};

struct LowerAllToAllCombine : OpRewritePattern<mdl::AllToAllCombineOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(mdl::AllToAllCombineOp op, PatternRewriter &b) const override {
    Location loc = op.getLoc();
    int64_t n = op.getPlacement().size();
    Value expertOut = getBuffer(b, loc, op.getExpertOut());
    Value recvRows = getBuffer(b, loc, op.getRecvRows());
    Value plan = getBuffer(b, loc, op.getPlan());
    Value offsets = getBuffer(b, loc, op.getOffsets());
    Value placement = placementBuffer(b, loc, op, op.getPlacement());
    // P = offsets[N]: this rank's sorted rows.
    Value p = toIndex(b, loc, memref::LoadOp::create(b, loc, offsets,
                                                     ValueRange{cIndex(b, loc, n)}));
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    SmallVector<Value> dynamic;
    if (resultType.isDynamicDim(0))
      dynamic.push_back(p);
    Value sorted = allocFor(b, loc, resultType, dynamic);
    Value h = dimOf(b, loc, expertOut, 1);
    callChecked(b, loc, op, "moe_mpi_combine_rows",
                {pointerOf(b, loc, expertOut),
                 arith::IndexCastOp::create(b, loc, b.getI64Type(), h),
                 pointerOf(b, loc, recvRows), pointerOf(b, loc, plan),
                 pointerOf(b, loc, offsets), cI64(b, loc, n), pointerOf(b, loc, placement),
                 pointerOf(b, loc, sorted)});
    b.replaceOp(op, asTensor(b, loc, sorted, resultType));
    return success();
  }
};

struct LowerExchangesPass
    : public mdl::impl::MoeLowerExchangesBase<LowerExchangesPass> {
  // The patterns add declarations and globals to the module, so the ops
  // are collected first and rewritten one by one (no walk over a block that
  // is growing).
  void runOnOperation() override {
    SmallVector<Operation *> exchanges;
    getOperation().walk([&](Operation *op) {
      if (isa<mdl::AllToAllOp, mdl::AllToAllCombineOp>(op))
        exchanges.push_back(op);
    });
    LowerAllToAll forward(&getContext());
    LowerAllToAllCombine backward(&getContext());
    PatternRewriter rewriter(&getContext());
    for (Operation *op : exchanges) {
      rewriter.setInsertionPoint(op);
      LogicalResult lowered =
          isa<mdl::AllToAllOp>(op)
              ? forward.matchAndRewrite(cast<mdl::AllToAllOp>(op), rewriter)
              : backward.matchAndRewrite(cast<mdl::AllToAllCombineOp>(op), rewriter);
      if (failed(lowered))
        return signalPassFailure();
    }
  }
};

} // namespace
