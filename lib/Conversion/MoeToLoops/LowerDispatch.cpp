//===- LowerDispatch.cpp - moe.dispatch as a counting sort ----------------===//
//
// counts[e] over all used slots -> offsets (exclusive prefix sum) -> every
// slot scattered to cursor[e]++ in token order, so each expert's rows are a
// contiguous, token-ascending range. Shared experts (E..E+S-1) take every
// token. Ids outside [-1, E) record MOE_ERR_EXPERT_ID and are treated as
// unused, so nothing indexes out of bounds.
//
// One rewrite pattern (populateMoeLowerDispatchPatterns) over the sort's
// pieces shared with the GPU (DispatchLowering, LoweringUtils.h).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe/Conversion/MoeToLoops/Patterns.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERDISPATCH
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {
/// moe.dispatch: the counting sort of DispatchLowering with plain counter
/// updates.
struct LowerDispatch : OpRewritePattern<mdl::DispatchOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(mdl::DispatchOp op, PatternRewriter &rewriter) const override {
    rewriter.setInsertionPoint(op);
    OpBuilder &b = rewriter;
    Location loc = op.getLoc();
    DispatchLowering d(b, op);
    Value cursor = entryAlloca(op, MemRefType::get({d.total}, b.getI32Type()));
    // cursor[id]++, returning the old value (the counts, then the rows).
    auto bump = [&](OpBuilder &tb, Location tl, Value id) -> Value {
      Value j = toIndex(tb, tl, id);
      Value c = memref::LoadOp::create(tb, tl, cursor, ValueRange{j});
      memref::StoreOp::create(tb, tl, arith::AddIOp::create(tb, tl, c, cI32(tb, tl, 1)), cursor,
                              ValueRange{j});
      return c;
    };

    Value zero = cIndex(b, loc, 0);
    // 1. counts (in cursor).
    emitFor(b, loc, zero, cIndex(b, loc, d.total), [&](OpBuilder &lb, Location l, Value j) {
      memref::StoreOp::create(lb, l, cI32(lb, l, 0), cursor, ValueRange{j});
    });
    emitFor(b, loc, zero, d.t, [&](OpBuilder &lb, Location l, Value i) {
      d.forEachSlot(lb, l, i, /*check=*/true,
                    [&](OpBuilder &tb, Location tl, Value, Value id) { bump(tb, tl, id); });
    });
    // 2. exclusive prefix sum: offsets[j] = sum of counts before j; the
    //    cursor becomes each expert's next free row.
    d.emitPrefixSum(b, loc, cursor, zero);
    // 3. stable scatter: token order within each expert.
    emitFor(b, loc, zero, d.t, [&](OpBuilder &lb, Location l, Value i) {
      d.scatterToken(lb, l, i, bump);
    });
    d.replaceOp(rewriter);
    return success();
  }
};

struct LowerDispatchPass
    : public mlir::moe::impl::MoeLowerDispatchBase<LowerDispatchPass> {
  LogicalResult initialize(MLIRContext *ctx) override {
    RewritePatternSet set(ctx);
    mdl::populateMoeLowerDispatchPatterns(set);
    patterns = std::move(set);
    return success();
  }

  void runOnOperation() override {
    auto isDispatch = [](Operation *op) { return isa<mdl::DispatchOp>(op); };
    numDispatches += countOps(getOperation(), isDispatch);
    if (failed(applyLoweringPatterns(getOperation(), patterns, isDispatch)))
      signalPassFailure();
  }

  FrozenRewritePatternSet patterns;
};
} // namespace

void mlir::moe::populateMoeLowerDispatchPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerDispatch>(patterns.getContext());
}
