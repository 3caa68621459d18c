//===- MapDispatch.cpp - moe.dispatch as a device counting sort -----------===//
//
// Four kernels, none needing the host between them:
//   zero     one block clears the per-expert counters;
//   count    one thread per token, atomic increments of its experts' counters;
//   prefix   one thread turns the E+S counts into the exclusive prefix sum
//            (offsets) and resets the counters to each expert's first row
//            (E+S is at most a few hundred: a serial scan is cheaper than a
//            block scan's barriers at this size);
//   scatter  one thread per token claims a row per used slot with an atomic
//            fetch-add on its expert's cursor.
// With concurrent threads the order of tokens within an expert is the order
// the atomics happen in, not token order: every row is computed and combined
// independently, so the layer's result does not depend on it (host execution
// is sequential and gives token order). Ids outside [-1, E) record
// MOE_ERR_EXPERT_ID and count as unused, as on the CPU.
//
// One rewrite pattern (populateMoeGpuMapDispatchPatterns).
//
//===----------------------------------------------------------------------===//

#include "GpuMapping.h"
#include "moe/Conversion/MoeToGpu/Patterns.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUMAPDISPATCH
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
using namespace mlir::moe::gpumap;
namespace mdl = mlir::moe;

namespace {

/// moe.dispatch: the counting sort of DispatchLowering as four kernels with
/// atomic counter updates.
struct MapDispatch : OpRewritePattern<mdl::DispatchOp> {
  MapDispatch(MLIRContext *ctx, int64_t blockSize)
      : OpRewritePattern(ctx), blockSize(blockSize) {}

  /// One thread per token: `body(builder, loc, token)` for tokens < t.
  void perToken(OpBuilder &b, Location loc, StringRef name, Value t,
                function_ref<void(OpBuilder &, Location, Value)> body) const {
    int64_t bs = blockSize;
    buildKernel(b, loc, name, ValueRange{ceilDiv(b, loc, t, bs)}, {ceilDivGrid(t, bs)},
                [&](OpBuilder &kb, Location l, ValueRange blk) {
                  Value bx = blk[0];
                  buildThreads(kb, l, bs, [&](OpBuilder &tb, Location tl, Value tid) {
                    Value i = arith::AddIOp::create(
                        tb, tl, arith::MulIOp::create(tb, tl, bx, cIndex(tb, tl, bs)), tid);
                    Value in = arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::ult, i, t);
                    scf::IfOp::create(tb, tl, in, [&](OpBuilder &ib, Location il) {
                      body(ib, il, i);
                      scf::YieldOp::create(ib, il);
                    });
                  });
                });
  }

  LogicalResult matchAndRewrite(mdl::DispatchOp op, PatternRewriter &rewriter) const override {
    rewriter.setInsertionPoint(op);
    OpBuilder &b = rewriter;
    Location loc = op.getLoc();
    DispatchLowering d(b, op);
    int64_t total = d.total;
    int64_t bs = blockSize;
    // Device scratch (freed by moe-buffer-abi): per-expert counters,
    // then cursors.
    Value cursor = memref::AllocOp::create(b, loc, MemRefType::get({total}, b.getI32Type()),
                                           ValueRange{}, b.getI64IntegerAttr(64));
    // Atomic cursor[id]++, returning the old value (the counts, then the rows).
    auto bump = [&](OpBuilder &ub, Location ul, Value id) -> Value {
      return memref::AtomicRMWOp::create(ub, ul, arith::AtomicRMWKind::addi, cI32(ub, ul, 1),
                                         cursor, ValueRange{toIndex(ub, ul, id)});
    };

    // zero: one block strides over the counters.
    buildKernel(b, loc, "dispatch_zero", ValueRange{cIndex(b, loc, 1)}, {GridExpr{0, 1, 1, 1, 0}},
                [&](OpBuilder &kb, Location l, ValueRange) {
                  buildThreads(kb, l, bs, [&](OpBuilder &tb, Location tl, Value tid) {
                    emitStrided(tb, tl, tid, cIndex(tb, tl, total), cIndex(tb, tl, bs),
                                [&](OpBuilder &lb, Location ll, Value j) {
                                  memref::StoreOp::create(lb, ll, cI32(lb, ll, 0), cursor, ValueRange{j});
                                });
                  });
                });
    // count
    perToken(b, loc, "dispatch_count", d.t, [&](OpBuilder &tb, Location l, Value i) {
      d.forEachSlot(tb, l, i, /*check=*/true,
                    [&](OpBuilder &ub, Location ul, Value, Value id) { bump(ub, ul, id); });
    });
    // prefix: a single thread scans the counts.
    buildKernel(b, loc, "dispatch_prefix", ValueRange{cIndex(b, loc, 1)}, {GridExpr{0, 1, 1, 1, 0}},
                [&](OpBuilder &kb, Location l, ValueRange) {
                  buildThreads(kb, l, 1, [&](OpBuilder &tb, Location tl, Value) {
                    d.emitPrefixSum(tb, tl, cursor, cIndex(tb, tl, 0));
                  });
                });
    // scatter
    perToken(b, loc, "dispatch_scatter", d.t, [&](OpBuilder &tb, Location l, Value i) {
      d.scatterToken(tb, l, i, bump);
    });
    d.replaceOp(rewriter);
    return success();
  }

  int64_t blockSize;
};

struct MapDispatchPass : public mlir::moe::impl::MoeGpuMapDispatchBase<MapDispatchPass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *ctx) override {
    mdl::MoeGpuMapDispatchOptions options;
    options.blockSize = blockSize;
    RewritePatternSet set(ctx);
    mdl::populateMoeGpuMapDispatchPatterns(set, options);
    patterns = std::move(set);
    return success();
  }

  void runOnOperation() override {
    if (failed(applyLoweringPatterns(getOperation(), patterns,
                                     [](Operation *op) { return isa<mdl::DispatchOp>(op); })))
      signalPassFailure();
  }

  FrozenRewritePatternSet patterns;
};
} // namespace

void mlir::moe::populateMoeGpuMapDispatchPatterns(RewritePatternSet &patterns,
                                                  const MoeGpuMapDispatchOptions &options) {
  patterns.add<MapDispatch>(patterns.getContext(), options.blockSize);
}
