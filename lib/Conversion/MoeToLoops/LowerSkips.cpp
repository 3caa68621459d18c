//===- LowerSkips.cpp - compact skipped tokens out of skip regions --------===//
//
// skip_block / path_select run their region on a compact buffer of the
// selected tokens (ascending token order), then scatter-add the region's
// output into a copy of the input. The region's ops are inlined in place so
// the later lowerings treat them like any other op; they see a token count
// known only at run time, which is why every lowering handles dynamic T.
//
// One rewrite pattern per op (populateMoeLowerSkipsPatterns); the pass
// applies them once per nesting level, outermost first.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe/Conversion/MoeToLoops/Patterns.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "moe_status_codes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERSKIPS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {

/// Gathers x[idx[j]] for j < n into a new [n, H] buffer.
Value gather(OpBuilder &b, Location loc, Value x, Value idx, Value n, int64_t h) {
  Value xs = memref::AllocOp::create(
      b, loc, MemRefType::get({ShapedType::kDynamic, h}, b.getF32Type()), ValueRange{n},
      b.getI64IntegerAttr(64));
  markParallel(emitFor(b, loc, cIndex(b, loc, 0), n, [&](OpBuilder &lb, Location l, Value j) {
    Value t = toIndex(lb, l, memref::LoadOp::create(lb, l, idx, ValueRange{j}));
    emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, h), [&](OpBuilder &b2, Location l2, Value c) {
      memref::StoreOp::create(b2, l2, memref::LoadOp::create(b2, l2, x, ValueRange{t, c}), xs,
                              ValueRange{j, c});
    });
  }));
  return xs;
}

/// Moves `region`'s ops before `anchor` (the op being rewritten, which
/// owns the region) with its argument bound to `xs` and returns the buffer
/// of the value it yields. The yield goes first, while it is still inside
/// the rewritten op (the walk driver lets a pattern erase only that op and
/// what it contains).
Value inlineRegion(PatternRewriter &rewriter, Location loc, Region &region, Value xs,
                   Operation *anchor) {
  Block &body = region.front();
  BlockArgument arg = body.getArgument(0);
  Value argView = asTensor(rewriter, loc, xs, arg.getType());
  // Before reading the yielded value, which may be the argument itself.
  rewriter.replaceAllUsesWith(arg, argView);
  Operation *yield = body.getTerminator();
  Value yielded = yield->getOperand(0);
  rewriter.eraseOp(yield);
  rewriter.inlineBlockBefore(&body, anchor, ValueRange{argView});
  rewriter.setInsertionPoint(anchor);
  return getBuffer(rewriter, loc, yielded);
}

/// y[idx[j], :] += g_j * f[j, :] for j < n; g_j = scores[idx[j]] or 1.
void scatterAdd(OpBuilder &b, Location loc, Value y, Value f, Value idx, Value n,
                Value scores, int64_t h, int64_t width) {
  markParallel(emitFor(b, loc, cIndex(b, loc, 0), n, [&](OpBuilder &lb, Location l, Value j) {
    Value t = toIndex(lb, l, memref::LoadOp::create(lb, l, idx, ValueRange{j}));
    Value g = scores ? Value(memref::LoadOp::create(lb, l, scores, ValueRange{t}))
                     : cF32(lb, l, 1.0f);
    emitAxpy(lb, l, y, t, f, j, g, h, width);
  }));
}

Value allocLike(OpBuilder &b, Location loc, Value x, Value t) {
  auto type = cast<MemRefType>(x.getType());
  return memref::AllocOp::create(b, loc, type,
                                 type.isDynamicDim(0) ? ValueRange{t} : ValueRange{},
                                 b.getI64IntegerAttr(64));
}

/// Appends t to idx when `take` (i1) holds; carries the count.
Value appendIf(OpBuilder &b, Location loc, Value take, Value idx, Value count, Value t) {
  return emitIfElse(
      b, loc, TypeRange{b.getIndexType()}, take,
      [&](OpBuilder &tb, Location l) -> SmallVector<Value> {
        memref::StoreOp::create(tb, l, toI32(tb, l, t), idx, ValueRange{count});
        return {arith::AddIOp::create(tb, l, count, cIndex(tb, l, 1))};
      },
      [&](OpBuilder &, Location) -> SmallVector<Value> { return {count}; })[0];
}

/// Appends to idx the ceil(fraction * T) tokens with the best scores, in
/// ascending token order; returns how many (an index). `zero` is the index
/// 0 the loops start from.
Value selectByCapacity(OpBuilder &b, Location loc, Value scores, Value idx, Value t, Value zero,
                       double fraction) {
  // Capacity: the ceil(fraction * T) best (in double, like the reference).
  // Radix select, O(32 T): scores map to order-preserving uint32 keys;
  // the quota-th largest key K is built bit by bit from the top, then
  // tokens above K are taken, and tokens equal to K in ascending order
  // until the quota is full (ties to the lower token, as specified).
  Value tF = arith::UIToFPOp::create(b, loc, b.getF64Type(),
                                     arith::IndexCastOp::create(b, loc, b.getI64Type(), t));
  Value want = math::CeilOp::create(
      b, loc, arith::MulFOp::create(b, loc, tF,
                                    arith::ConstantOp::create(b, loc, b.getF64FloatAttr(fraction))));
  Value quota = arith::MinUIOp::create(
      b, loc, arith::IndexCastOp::create(b, loc, b.getIndexType(),
                                         arith::FPToSIOp::create(b, loc, b.getI64Type(), want)),
      t);
  auto i32 = b.getI32Type();
  auto c32 = [&](OpBuilder &ob, Location l, uint32_t v) { return cI32(ob, l, int32_t(v)); };
  Value keys = memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic}, i32),
                                       ValueRange{t}, b.getI64IntegerAttr(64));
  emitFor(b, loc, zero, t, [&](OpBuilder &lb, Location l, Value i) {
    // + 0.0 turns -0 into +0, which the reference treats as equal.
    Value v = arith::AddFOp::create(lb, l, memref::LoadOp::create(lb, l, scores, ValueRange{i}),
                                    cF32(lb, l, 0.0f));
    Value bits = arith::BitcastOp::create(lb, l, i32, v);
    Value neg = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, bits, c32(lb, l, 0));
    Value key = arith::SelectOp::create(
        lb, l, neg, arith::XOrIOp::create(lb, l, bits, c32(lb, l, 0xffffffffu)),
        arith::OrIOp::create(lb, l, bits, c32(lb, l, 0x80000000u)));
    memref::StoreOp::create(lb, l, key, keys, ValueRange{i});
  });
  auto countIf = [&](OpBuilder &ob, Location l, arith::CmpIPredicate pred, Value k) {
    return emitForWithArgs(
        ob, l, cIndex(ob, l, 0), t, ValueRange{cIndex(ob, l, 0)},
        [&](OpBuilder &b2, Location l2, Value i, ValueRange acc) -> SmallVector<Value> {
          Value key = memref::LoadOp::create(b2, l2, keys, ValueRange{i});
          Value hit = arith::CmpIOp::create(b2, l2, pred, key, k);
          return {arith::AddIOp::create(
              b2, l2, acc[0],
              arith::SelectOp::create(b2, l2, hit, cIndex(b2, l2, 1), cIndex(b2, l2, 0)))};
        })[0];
  };
  Value kth = emitForWithArgs(
      b, loc, zero, cIndex(b, loc, 32), ValueRange{c32(b, loc, 0)},
      [&](OpBuilder &lb, Location l, Value bit, ValueRange acc) -> SmallVector<Value> {
        Value shift = arith::SubIOp::create(lb, l, c32(lb, l, 31), toI32(lb, l, bit));
        Value cand = arith::OrIOp::create(
            lb, l, acc[0], arith::ShLIOp::create(lb, l, c32(lb, l, 1), shift));
        Value cnt = countIf(lb, l, arith::CmpIPredicate::uge, cand);
        Value enough = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::uge, cnt, quota);
        return {arith::SelectOp::create(lb, l, enough, cand, acc[0])};
      })[0];
  Value greater = countIf(b, loc, arith::CmpIPredicate::ugt, kth);
  Value tieQuota = arith::SubIOp::create(b, loc, quota, greater);
  return emitForWithArgs(
      b, loc, zero, t, ValueRange{zero, zero},
      [&](OpBuilder &lb, Location l, Value i, ValueRange acc) -> SmallVector<Value> {
        Value key = memref::LoadOp::create(lb, l, keys, ValueRange{i});
        Value above = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::ugt, key, kth);
        Value tie = arith::AndIOp::create(
            lb, l, arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq, key, kth),
            arith::CmpIOp::create(lb, l, arith::CmpIPredicate::ult, acc[1], tieQuota));
        Value take = arith::OrIOp::create(lb, l, above, tie);
        Value ties = arith::AddIOp::create(
            lb, l, acc[1],
            arith::SelectOp::create(lb, l, tie, cIndex(lb, l, 1), cIndex(lb, l, 0)));
        return {appendIf(lb, l, take, idx, acc[0], i), ties};
      })[0];
}

/// The resolved options the skip patterns share.
struct SkipConfig {
  int64_t width;
  bool report;
};

/// Declines (notifyMatchFailure) a skip op inside another skip op's region:
/// the enclosing op's lowering inlines it, and it is lowered on the
/// compacted rows in a later walk (outermost first).
LogicalResult outermost(Operation *op, PatternRewriter &rewriter) {
  for (Operation *p = op->getParentOp(); p; p = p->getParentOp())
    if (isa<mdl::SkipBlockOp, mdl::PathSelectOp, mdl::HaltingStackOp>(p))
      return rewriter.notifyMatchFailure(op, "inside a skip region: lowered once it is inlined");
  return success();
}

/// moe.skip_block: scores, selection (threshold or capacity fraction),
/// compaction, the inlined region, scatter-add.
struct LowerSkipBlock : OpRewritePattern<mdl::SkipBlockOp> {
  LowerSkipBlock(MLIRContext *ctx, SkipConfig config) : OpRewritePattern(ctx), config(config) {}

  LogicalResult matchAndRewrite(mdl::SkipBlockOp op, PatternRewriter &rewriter) const override {
    if (failed(outermost(op, rewriter)))
      return failure();
    if (config.report) {
      auto remark = op.emitRemark() << "compacts the tokens selected by ";
      if (auto f = op.getCapacityFraction())
        remark << "capacity fraction " << f->convertToFloat();
      else
        remark << "score > " << op.getThreshold()->convertToFloat();
      remark << " into a dense buffer before the block; skipped tokens cost only the copy";
    }
    rewriter.setInsertionPoint(op);
    OpBuilder &b = rewriter;
    int64_t width = config.width;
    Location loc = op.getLoc();
    Value x = getBuffer(b, loc, op.getHidden());
    Value router = getBuffer(b, loc, op.getRouter());
    Value t = dimOf(b, loc, x, 0);
    int64_t h = cast<ShapedType>(x.getType()).getDimSize(1);
    auto f32 = b.getF32Type();
    Value scores = memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic}, f32),
                                           ValueRange{t}, b.getI64IntegerAttr(64));
    Value idx = memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
                                        ValueRange{t}, b.getI64IntegerAttr(64));
    Value zero = cIndex(b, loc, 0);
    markParallel(emitFor(b, loc, zero, t, [&](OpBuilder &lb, Location l, Value i) {
      Value r = emitDot(lb, l, x, ValueRange{i}, router, ValueRange{}, h, width);
      memref::StoreOp::create(lb, l, r, scores, ValueRange{i});
      Value finite = arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OLT,
                                           math::AbsFOp::create(lb, l, r),
                                           cF32(lb, l, std::numeric_limits<float>::infinity()));
      recordError(lb, l, op, arith::XOrIOp::create(lb, l, finite,
                                                   arith::ConstantOp::create(lb, l, lb.getBoolAttr(true))),
                  MOE_ERR_NONFINITE_SCORE);
    }));

    Value n;
    if (auto threshold = op.getThreshold()) {
      Value thr = cF32(b, loc, threshold->convertToFloat());
      n = emitForWithArgs(b, loc, zero, t, ValueRange{zero},
                          [&](OpBuilder &lb, Location l, Value i, ValueRange acc) -> SmallVector<Value> {
                            Value r = memref::LoadOp::create(lb, l, scores, ValueRange{i});
                            Value take = arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OGT, r, thr);
                            return {appendIf(lb, l, take, idx, acc[0], i)};
                          })[0];
    } else {
      n = selectByCapacity(b, loc, scores, idx, t, zero,
                           op.getCapacityFraction()->convertToFloat());
    }

    Value xs = gather(b, loc, x, idx, n, h);
    Value y = allocLike(b, loc, x, t);
    memref::CopyOp::create(b, loc, x, y);
    Value f = inlineRegion(rewriter, loc, op.getBody(), xs, op);
    scatterAdd(b, loc, y, f, idx, n, op.getScaleByScore() ? scores : Value(), h, width);
    replaceOpWithBuffers(rewriter, op, y);
    return success();
  }

  SkipConfig config;
};

/// moe.path_select: per branch, the tokens whose path selects it are
/// compacted, run through the inlined branch and scatter-added.
struct LowerPathSelect : OpRewritePattern<mdl::PathSelectOp> {
  LowerPathSelect(MLIRContext *ctx, SkipConfig config) : OpRewritePattern(ctx), config(config) {}

  LogicalResult matchAndRewrite(mdl::PathSelectOp op, PatternRewriter &rewriter) const override {
    if (failed(outermost(op, rewriter)))
      return failure();
    if (config.report)
      op.emitRemark() << "compacts the tokens of each of " << op.getBranches().size()
                      << " paths into a dense buffer before its branch; skipped tokens cost "
                         "only the copy";
    rewriter.setInsertionPoint(op);
    OpBuilder &b = rewriter;
    int64_t width = config.width;
    Location loc = op.getLoc();
    Value x = getBuffer(b, loc, op.getHidden());
    Value paths = getBuffer(b, loc, op.getPaths());
    Value t = dimOf(b, loc, x, 0);
    int64_t h = cast<ShapedType>(x.getType()).getDimSize(1);
    int64_t numBranches = op.getBranches().size();
    Value zero = cIndex(b, loc, 0);
    // Paths outside [0, P] are errors; such tokens are treated as skipped.
    emitFor(b, loc, zero, t, [&](OpBuilder &lb, Location l, Value i) {
      Value p = memref::LoadOp::create(lb, l, paths, ValueRange{i});
      Value bad = arith::OrIOp::create(
          lb, l, arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, p, cI32(lb, l, 0)),
          arith::CmpIOp::create(lb, l, arith::CmpIPredicate::sgt, p, cI32(lb, l, numBranches)));
      recordError(lb, l, op, bad, MOE_ERR_PATH_ID,
                  {i, cIndex(lb, l, -1), p, cIndex(lb, l, numBranches)});
    });
    Value y = allocLike(b, loc, x, t);
    memref::CopyOp::create(b, loc, x, y);
    for (auto [index, region] : llvm::enumerate(op.getBranches())) {
      int32_t path = index + 1;
      Value idx = memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
                                          ValueRange{t}, b.getI64IntegerAttr(64));
      Value n = emitForWithArgs(b, loc, zero, t, ValueRange{zero},
                                [&](OpBuilder &lb, Location l, Value i, ValueRange acc) -> SmallVector<Value> {
                                  Value p = memref::LoadOp::create(lb, l, paths, ValueRange{i});
                                  Value take = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq, p,
                                                                     cI32(lb, l, path));
                                  return {appendIf(lb, l, take, idx, acc[0], i)};
                                })[0];
      Value xs = gather(b, loc, x, idx, n, h);
      Value f = inlineRegion(rewriter, loc, region, xs, op);
      scatterAdd(b, loc, y, f, idx, n, Value(), h, width);
    }
    replaceOpWithBuffers(rewriter, op, y);
    return success();
  }

  SkipConfig config;
};

/// A zero-filled buffer of a [T] or [T, H] type (T dynamic or not).
Value zeroBuffer(OpBuilder &b, Location loc, Type type, Value t) {
  auto shaped = cast<ShapedType>(type);
  Value buf = allocFor(b, loc, type, shaped.isDynamicDim(0) ? ValueRange{t} : ValueRange{});
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(shaped.getElementType()));
  markParallel(emitFor(b, loc, cIndex(b, loc, 0), t, [&](OpBuilder &lb, Location l, Value i) {
    if (shaped.getRank() == 1) {
      memref::StoreOp::create(lb, l, zero, buf, ValueRange{i});
      return;
    }
    emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, shaped.getDimSize(1)),
            [&](OpBuilder &b2, Location l2, Value c) {
              memref::StoreOp::create(b2, l2, zero, buf, ValueRange{i, c});
            });
  }));
  return buf;
}

/// sigmoid(v) in the two-sided form of docs/dialect.md §2 (exp never
/// overflows).
Value emitSigmoid(OpBuilder &b, Location loc, Value v) {
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, math::AbsFOp::create(b, loc, v)));
  Value onePlus = arith::AddFOp::create(b, loc, cF32(b, loc, 1.0f), e);
  Value nonNegative = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE, v, cF32(b, loc, 0.0f));
  return arith::SelectOp::create(b, loc, nonNegative,
                                 arith::DivFOp::create(b, loc, cF32(b, loc, 1.0f), onePlus),
                                 arith::DivFOp::create(b, loc, e, onePlus));
}

/// The buffers ACT keeps across the layers of one moe.halting_stack.
struct HaltingBuffers {
  Value state, out, cumulative, steps, running, keep, haltWeights, haltBias;
  int64_t h;
};

/// After layer `layer` ran on running[0..n): each token's halting
/// probability, its weight in the output (the probability, or the
/// remainder when it halts: at the first layer where its cumulative
/// halting reaches 1 - epsilon, or at the last layer), and keep[j] for the
/// tokens that go on. Tokens are distinct, so the loop is parallel.
void emitHaltingStep(OpBuilder &b, Location loc, Operation *op, const HaltingBuffers &hb,
                     Value n, int64_t layer, bool lastLayer, float epsilon, int64_t width) {
  float threshold = float(1.0 - double(epsilon));
  markParallel(emitFor(b, loc, cIndex(b, loc, 0), n, [&](OpBuilder &lb, Location l, Value j) {
    Value t = toIndex(lb, l, memref::LoadOp::create(lb, l, hb.running, ValueRange{j}));
    Value layerIndex = cIndex(lb, l, layer);
    Value logit = arith::AddFOp::create(
        lb, l, emitDot(lb, l, hb.state, ValueRange{t}, hb.haltWeights, ValueRange{layerIndex}, hb.h, width),
        memref::LoadOp::create(lb, l, hb.haltBias, ValueRange{layerIndex}));
    Value finite = arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OLT, math::AbsFOp::create(lb, l, logit),
                                         cF32(lb, l, std::numeric_limits<float>::infinity()));
    recordError(lb, l, op,
                arith::XOrIOp::create(lb, l, finite, arith::ConstantOp::create(lb, l, lb.getBoolAttr(true))),
                MOE_ERR_NONFINITE_SCORE);
    Value p = emitSigmoid(lb, l, logit);
    Value before = memref::LoadOp::create(lb, l, hb.cumulative, ValueRange{t});
    Value after = arith::AddFOp::create(lb, l, before, p);
    Value halts = lastLayer ? Value(arith::ConstantOp::create(lb, l, lb.getBoolAttr(true)))
                            : Value(arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OGE, after,
                                                          cF32(lb, l, threshold)));
    Value remainder = arith::SubFOp::create(lb, l, cF32(lb, l, 1.0f), before);
    Value weight = arith::SelectOp::create(lb, l, halts, remainder, p);
    emitAxpy(lb, l, hb.out, t, hb.state, t, weight, hb.h, width);
    memref::StoreOp::create(lb, l, after, hb.cumulative, ValueRange{t});
    memref::StoreOp::create(lb, l, cI32(lb, l, int32_t(layer + 1)), hb.steps, ValueRange{t});
    Value keep = arith::XOrIOp::create(lb, l, halts, arith::ConstantOp::create(lb, l, lb.getBoolAttr(true)));
    memref::StoreOp::create(lb, l, keep, hb.keep, ValueRange{j});
  }));
}

/// running[0..n) loses the tokens whose keep[j] is false (order kept);
/// returns the new count.
Value compactRunning(OpBuilder &b, Location loc, const HaltingBuffers &hb, Value n) {
  Value zero = cIndex(b, loc, 0);
  return emitForWithArgs(b, loc, zero, n, ValueRange{zero},
                         [&](OpBuilder &lb, Location l, Value j, ValueRange acc) -> SmallVector<Value> {
                           Value keep = memref::LoadOp::create(lb, l, hb.keep, ValueRange{j});
                           Value t = memref::LoadOp::create(lb, l, hb.running, ValueRange{j});
                           return {appendIf(lb, l, keep, hb.running, acc[0], toIndex(lb, l, t))};
                         })[0];
}

/// moe.halting_stack (ACT): per layer, the running tokens' states are
/// gathered, the layer's region inlined on them and its output added to
/// their states; then the halting step weighs each state into the output
/// and drops the halted tokens from the running list, so later layers see
/// only the tokens still running.
struct LowerHaltingStack : OpRewritePattern<mdl::HaltingStackOp> {
  LowerHaltingStack(MLIRContext *ctx, SkipConfig config) : OpRewritePattern(ctx), config(config) {}

  LogicalResult matchAndRewrite(mdl::HaltingStackOp op, PatternRewriter &rewriter) const override {
    if (failed(outermost(op, rewriter)))
      return failure();
    if (config.report)
      op.emitRemark() << "runs each of its " << op.getLayers().size()
                      << " layers on the tokens that have not halted, compacted; halted tokens "
                         "cost nothing in later layers";
    rewriter.setInsertionPoint(op);
    OpBuilder &b = rewriter;
    Location loc = op.getLoc();
    Value x = getBuffer(b, loc, op.getHidden());
    Value t = dimOf(b, loc, x, 0);
    HaltingBuffers hb;
    hb.h = cast<ShapedType>(x.getType()).getDimSize(1);
    hb.haltWeights = getBuffer(b, loc, op.getHaltWeights());
    hb.haltBias = getBuffer(b, loc, op.getHaltBias());
    hb.state = allocLike(b, loc, x, t);
    memref::CopyOp::create(b, loc, x, hb.state);
    hb.out = zeroBuffer(b, loc, op.getResult().getType(), t);
    hb.steps = zeroBuffer(b, loc, op.getSteps().getType(), t);
    auto tokens = [&](Type element) {
      return memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic}, element),
                                     ValueRange{t}, b.getI64IntegerAttr(64));
    };
    hb.cumulative = tokens(b.getF32Type());
    hb.running = tokens(b.getI32Type());
    hb.keep = tokens(b.getI1Type());
    markParallel(emitFor(b, loc, cIndex(b, loc, 0), t, [&](OpBuilder &lb, Location l, Value i) {
      memref::StoreOp::create(lb, l, cF32(lb, l, 0.0f), hb.cumulative, ValueRange{i});
      memref::StoreOp::create(lb, l, toI32(lb, l, i), hb.running, ValueRange{i});
    }));
    Value n = t;
    int64_t layers = op.getLayers().size();
    float epsilon = op.getEpsilon().convertToFloat();
    for (auto [index, region] : llvm::enumerate(op.getLayers())) {
      Value xs = gather(b, loc, hb.state, hb.running, n, hb.h);
      Value f = inlineRegion(rewriter, loc, region, xs, op);
      scatterAdd(b, loc, hb.state, f, hb.running, n, Value(), hb.h, config.width);
      bool last = int64_t(index) == layers - 1;
      emitHaltingStep(b, loc, op, hb, n, index, last, epsilon, config.width);
      if (!last)
        n = compactRunning(b, loc, hb, n);
    }
    replaceOpWithBuffers(rewriter, op, {hb.out, hb.steps});
    return success();
  }

  SkipConfig config;
};

struct LowerSkipsPass : public mlir::moe::impl::MoeLowerSkipsBase<LowerSkipsPass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *ctx) override {
    mdl::MoeLowerSkipsOptions options;
    options.vectorWidth = vectorWidth;
    options.report = report;
    RewritePatternSet set(ctx);
    mdl::populateMoeLowerSkipsPatterns(set, options);
    patterns = std::move(set);
    return success();
  }

  void runOnOperation() override {
    auto isSkipBlock = [](Operation *op) { return isa<mdl::SkipBlockOp>(op); };
    auto isPathSelect = [](Operation *op) { return isa<mdl::PathSelectOp>(op); };
    auto isHaltingStack = [](Operation *op) { return isa<mdl::HaltingStackOp>(op); };
    auto isSkip = [](Operation *op) {
      return isa<mdl::SkipBlockOp, mdl::PathSelectOp, mdl::HaltingStackOp>(op);
    };
    numSkipBlocks += countOps(getOperation(), isSkipBlock);
    numPathSelects += countOps(getOperation(), isPathSelect);
    numHaltingStacks += countOps(getOperation(), isHaltingStack);
    // One walk per nesting level: each walk lowers the outermost skip ops,
    // whose inlined regions expose the next level. Stops when a walk
    // lowers nothing (then what is left is reported).
    int64_t left = countOps(getOperation(), isSkip);
    while (left > 0) {
      walkAndApplyPatterns(getOperation(), patterns);
      int64_t now = countOps(getOperation(), isSkip);
      if (now == left)
        break;
      left = now;
    }
    if (left > 0 && failed(reportUnlowered(getOperation(), isSkip)))
      signalPassFailure();
  }

  FrozenRewritePatternSet patterns;
};
} // namespace

void mlir::moe::populateMoeLowerSkipsPatterns(RewritePatternSet &patterns,
                                              const MoeLowerSkipsOptions &options) {
  SkipConfig config{resolveVectorWidth(options.vectorWidth), options.report};
  patterns.add<LowerSkipBlock, LowerPathSelect, LowerHaltingStack>(patterns.getContext(), config);
}
