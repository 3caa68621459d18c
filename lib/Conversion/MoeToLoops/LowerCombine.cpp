//===- LowerCombine.cpp - weighted scatter-add, trivial terms, remapping --===//
//
// moe.combine: y[t] = sum over t's slots of w * sorted[slot_rows[t, s]]
// (weight 1 for the shared-expert slots), as vector axpys over H.
// moe.trivial_combine: y = base + w * x (copy) + w * c (constant) per slot.
// moe.remap_experts: ids through a lookup table, dropped slots zeroed.
// Small per-expert tables (kinds, remap) are filled into stack buffers once
// per call; ids outside the table record MOE_ERR_EXPERT_ID and are dropped.
//
// One rewrite pattern per op (populateMoeLowerCombinePatterns).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe/Conversion/MoeToLoops/Patterns.h"
#include "moe_status_codes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERCOMBINE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {

/// A stack table filled with `values` at the function entry.
Value constantTable(OpBuilder &b, Operation *op, ArrayRef<int32_t> values) {
  Value table = entryAlloca(op, MemRefType::get({int64_t(values.size())},
                                                IntegerType::get(op->getContext(), 32)));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointAfterValue(table);
  Location loc = op->getLoc();
  for (auto [i, v] : llvm::enumerate(values))
    memref::StoreOp::create(b, loc, cI32(b, loc, v), table, ValueRange{cIndex(b, loc, i)});
  return table;
}

/// (valid, index) of the expert id at ids[token, slot]: valid when
/// 0 <= id < n; ids < -1 or >= n also record MOE_ERR_EXPERT_ID.
std::pair<Value, Value> checkedId(OpBuilder &b, Location loc, Operation *op, Value token,
                                  Value slot, Value id, int64_t n) {
  Value inRange = arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, id, cI32(b, loc, 0)),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, id, cI32(b, loc, n)));
  Value bad = arith::OrIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, id, cI32(b, loc, -1)),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, id, cI32(b, loc, n)));
  recordError(b, loc, op, bad, MOE_ERR_EXPERT_ID, {token, slot, id, cIndex(b, loc, n)});
  Value safe = arith::SelectOp::create(b, loc, inRange, id, cI32(b, loc, 0));
  return {inRange, toIndex(b, loc, safe)};
}

/// The per-token loop of a combine: `for (i < n) body(i)`, marked for the
/// GPU mapping; with `chunk` > 0 (CPU), split into moe.parallel items of
/// `chunk` tokens for the thread pool (every token writes only its own
/// output row, so the items are independent).
void emitTokenLoop(OpBuilder &b, Location loc, Value n, int64_t chunk,
                   function_ref<void(OpBuilder &, Location, Value)> body) {
  chunkForThreadPool(markParallel(emitFor(b, loc, cIndex(b, loc, 0), n, body)), chunk);
}

void zeroRows(OpBuilder &b, Location loc, Value buf, Value rows, int64_t h, int64_t chunk) {
  emitTokenLoop(b, loc, rows, chunk, [&](OpBuilder &lb, Location l, Value t) {
    emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, h), [&](OpBuilder &b2, Location l2, Value c) {
      memref::StoreOp::create(b2, l2, cF32(b2, l2, 0.0f), buf, ValueRange{t, c});
    });
  });
}

/// A [T, ...] buffer for a result of `type`.
Value allocTokens(OpBuilder &b, Location loc, Type type, Value t) {
  SmallVector<Value> dyn;
  if (cast<ShapedType>(type).isDynamicDim(0))
    dyn.push_back(t);
  return allocFor(b, loc, type, dyn);
}

/// The resolved options the combine patterns share.
struct CombineConfig {
  int64_t width;
  int64_t tokenChunk;
};

/// The shared part of the combine patterns: emits the op's loops before it
/// (`emit` returns its results' buffers) and replaces it.
template <typename OpT>
struct CombinePattern : OpRewritePattern<OpT> {
  CombinePattern(MLIRContext *ctx, CombineConfig config)
      : OpRewritePattern<OpT>(ctx), config(config) {}

  LogicalResult matchAndRewrite(OpT op, PatternRewriter &rewriter) const final {
    rewriter.setInsertionPoint(op);
    SmallVector<Value> buffers = emit(rewriter, op);
    replaceOpWithBuffers(rewriter, op, buffers);
    return success();
  }

  virtual SmallVector<Value> emit(OpBuilder &b, OpT op) const = 0;

  CombineConfig config;
};

/// moe.combine: per token, the weighted sum of its slots' sorted rows.
struct LowerCombine : CombinePattern<mdl::CombineOp> {
  using CombinePattern::CombinePattern;
  SmallVector<Value> emit(OpBuilder &b, mdl::CombineOp op) const override {
    Location loc = op.getLoc();
    int64_t width = config.width;
    Value sorted = getBuffer(b, loc, op.getSorted());
    Value slotRows = getBuffer(b, loc, op.getSlotRows());
    Value weights = getBuffer(b, loc, op.getWeights());
    Value t = dimOf(b, loc, slotRows, 0);
    int64_t slots = cast<ShapedType>(slotRows.getType()).getDimSize(1);
    int64_t k = cast<ShapedType>(weights.getType()).getDimSize(1);
    int64_t h = cast<ShapedType>(sorted.getType()).getDimSize(1);
    Value out = allocTokens(b, loc, op.getType(), t);
    zeroRows(b, loc, out, t, h, config.tokenChunk);
    emitTokenLoop(b, loc, t, config.tokenChunk, [&](OpBuilder &lb, Location l, Value i) {
      for (int64_t s = 0; s < slots; ++s) {
        Value si = cIndex(lb, l, s);
        Value p = memref::LoadOp::create(lb, l, slotRows, ValueRange{i, si});
        Value used = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::sge, p, cI32(lb, l, 0));
        scf::IfOp::create(lb, l, used, [&](OpBuilder &tb, Location tl) {
          Value w = s < k ? Value(memref::LoadOp::create(tb, tl, weights, ValueRange{i, si}))
                          : cF32(tb, tl, 1.0f);
          emitAxpy(tb, tl, out, i, sorted, toIndex(tb, tl, p), w, h, width);
          scf::YieldOp::create(tb, tl);
        });
      }
    });
    return {out};
  }
};

/// moe.trivial_combine: the copy and constant experts' terms.
struct LowerTrivialCombine : CombinePattern<mdl::TrivialCombineOp> {
  using CombinePattern::CombinePattern;
  SmallVector<Value> emit(OpBuilder &b, mdl::TrivialCombineOp op) const override {
    Location loc = op.getLoc();
    int64_t width = config.width;
    Value x = getBuffer(b, loc, op.getHidden());
    Value ids = getBuffer(b, loc, op.getIds());
    Value weights = getBuffer(b, loc, op.getWeights());
    Value t = dimOf(b, loc, x, 0);
    int64_t k = cast<ShapedType>(ids.getType()).getDimSize(1);
    int64_t h = cast<ShapedType>(x.getType()).getDimSize(1);
    ArrayRef<int32_t> kinds = op.getKinds();
    int64_t e = kinds.size();
    SmallVector<Value> consts;
    for (Value c : op.getConsts())
      consts.push_back(getBuffer(b, loc, c));
    // Row of each constant expert within its bank.
    SmallVector<int32_t> rowOf(e, 0);
    llvm::DenseMap<int32_t, int32_t> seen;
    for (int64_t j = 0; j < e; ++j)
      if (kinds[j] >= 2)
        rowOf[j] = seen[kinds[j]]++;
    Value kindTable = constantTable(b, op, kinds);
    Value rowTable = constantTable(b, op, rowOf);

    Value out = allocTokens(b, loc, op.getType(), t);
    if (op.getBase())
      memref::CopyOp::create(b, loc, getBuffer(b, loc, op.getBase()), out);
    else
      zeroRows(b, loc, out, t, h, config.tokenChunk);
    emitTokenLoop(b, loc, t, config.tokenChunk, [&](OpBuilder &lb, Location l, Value i) {
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, k), [&](OpBuilder &b2, Location l2, Value s) {
        Value id = memref::LoadOp::create(b2, l2, ids, ValueRange{i, s});
        auto [valid, j] = checkedId(b2, l2, op, i, s, id, e);
        scf::IfOp::create(b2, l2, valid, [&](OpBuilder &tb, Location tl) {
          Value kind = memref::LoadOp::create(tb, tl, kindTable, ValueRange{j});
          Value w = memref::LoadOp::create(tb, tl, weights, ValueRange{i, s});
          auto when = [&](int32_t code, function_ref<void(OpBuilder &, Location)> body) {
            Value is = arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::eq, kind, cI32(tb, tl, code));
            scf::IfOp::create(tb, tl, is, [&](OpBuilder &ib, Location il) {
              body(ib, il);
              scf::YieldOp::create(ib, il);
            });
          };
          when(1, [&](OpBuilder &ib, Location il) { emitAxpy(ib, il, out, i, x, i, w, h, width); });
          for (auto [bank, c] : llvm::enumerate(consts))
            when(2 + bank, [&](OpBuilder &ib, Location il) {
              Value row = toIndex(ib, il, memref::LoadOp::create(ib, il, rowTable, ValueRange{j}));
              emitAxpy(ib, il, out, i, c, row, w, h, width);
            });
          scf::YieldOp::create(tb, tl);
        });
      });
    });
    return {out};
  }
};

/// moe.remap_experts: ids through the map table, dropped slots zeroed.
struct LowerRemapExperts : CombinePattern<mdl::RemapExpertsOp> {
  using CombinePattern::CombinePattern;
  SmallVector<Value> emit(OpBuilder &b, mdl::RemapExpertsOp op) const override {
    Location loc = op.getLoc();
    Value inIds = getBuffer(b, loc, op.getInIds());
    Value inW = getBuffer(b, loc, op.getInWeights());
    Value t = dimOf(b, loc, inIds, 0);
    int64_t k = cast<ShapedType>(inIds.getType()).getDimSize(1);
    SmallVector<int32_t> map(op.getMap().begin(), op.getMap().end());
    Value table = constantTable(b, op, map);
    Value ids = allocTokens(b, loc, op.getIds().getType(), t);
    Value w = allocTokens(b, loc, op.getWeights().getType(), t);
    markParallel(emitFor(b, loc, cIndex(b, loc, 0), t, [&](OpBuilder &lb, Location l, Value i) {
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, k), [&](OpBuilder &b2, Location l2, Value s) {
        Value id = memref::LoadOp::create(b2, l2, inIds, ValueRange{i, s});
        auto [valid, j] = checkedId(b2, l2, op, i, s, id, map.size());
        Value mapped = memref::LoadOp::create(b2, l2, table, ValueRange{j});
        Value newId = arith::SelectOp::create(b2, l2, valid, mapped, cI32(b2, l2, -1));
        Value keep = arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sge, newId, cI32(b2, l2, 0));
        Value wIn = memref::LoadOp::create(b2, l2, inW, ValueRange{i, s});
        Value newW = arith::SelectOp::create(b2, l2, keep, wIn, cF32(b2, l2, 0.0f));
        memref::StoreOp::create(b2, l2, newId, ids, ValueRange{i, s});
        memref::StoreOp::create(b2, l2, newW, w, ValueRange{i, s});
      });
    }));
    return {ids, w};
  }
};

struct LowerCombinePass : public mlir::moe::impl::MoeLowerCombineBase<LowerCombinePass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *ctx) override {
    mdl::MoeLowerCombineOptions options;
    options.vectorWidth = vectorWidth;
    options.tokenChunk = tokenChunk;
    RewritePatternSet set(ctx);
    mdl::populateMoeLowerCombinePatterns(set, options);
    patterns = std::move(set);
    return success();
  }

  void runOnOperation() override {
    auto isCombine = [](Operation *op) {
      return isa<mdl::CombineOp, mdl::TrivialCombineOp, mdl::RemapExpertsOp>(op);
    };
    numCombines += countOps(getOperation(), isCombine);
    if (failed(applyLoweringPatterns(getOperation(), patterns, isCombine)))
      signalPassFailure();
  }

  FrozenRewritePatternSet patterns;
};
} // namespace

void mlir::moe::populateMoeLowerCombinePatterns(RewritePatternSet &patterns,
                                                const MoeLowerCombineOptions &options) {
  CombineConfig config{resolveVectorWidth(options.vectorWidth), options.tokenChunk};
  patterns.add<LowerCombine, LowerTrivialCombine, LowerRemapExperts>(patterns.getContext(),
                                                                     config);
}
