//===- LowerDispatch.cpp - moe.dispatch as a counting sort ----------------===//
//
// counts[e] over all used slots -> offsets (exclusive prefix sum) -> every
// slot scattered to cursor[e]++ in token order, so each expert's rows are a
// contiguous, token-ascending range. Shared experts (E..E+S-1) take every
// token. Ids outside [-1, E) record MOE_ERR_EXPERT_ID and are treated as
// unused, so nothing indexes out of bounds.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe_runtime.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERDISPATCH
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {
struct LowerDispatchPass
    : public mlir::moe::impl::MoeLowerDispatchBase<LowerDispatchPass> {
  void runOnOperation() override {
    SmallVector<mdl::DispatchOp> ops;
    getOperation().walk([&](mdl::DispatchOp op) { ops.push_back(op); });
    for (mdl::DispatchOp op : ops) {
      lower(op);
      ++numDispatches;
    }
  }

  /// The expert of slot s of token t (an i32; -1 when unused or invalid).
  Value expertOf(OpBuilder &b, Location loc, Operation *op, Value ids, Value t,
                 Value s, int64_t k, int64_t e, bool check) {
    // Slots >= K are the shared experts E + (s - K).
    Value isRouted = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, s,
                                           cIndex(b, loc, k));
    return emitIfElse(
        b, loc, TypeRange{b.getI32Type()}, isRouted,
        [&](OpBuilder &tb, Location l) -> SmallVector<Value> {
          Value id = memref::LoadOp::create(tb, l, ids, ValueRange{t, s});
          Value bad = arith::OrIOp::create(
              tb, l, arith::CmpIOp::create(tb, l, arith::CmpIPredicate::slt, id, cI32(tb, l, -1)),
              arith::CmpIOp::create(tb, l, arith::CmpIPredicate::sge, id, cI32(tb, l, e)));
          if (check)
            recordError(tb, l, op, bad, MOE_ERR_EXPERT_ID);
          return {arith::SelectOp::create(tb, l, bad, cI32(tb, l, -1), id)};
        },
        [&](OpBuilder &eb, Location l) -> SmallVector<Value> {
          Value shared = arith::AddIOp::create(
              eb, l, toI32(eb, l, arith::SubIOp::create(eb, l, s, cIndex(eb, l, k))),
              cI32(eb, l, e));
          return {shared};
        })[0];
  }

  void lower(mdl::DispatchOp op) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    Value ids = getBuffer(b, loc, op.getIds());
    Value t = dimOf(b, loc, ids, 0);
    int64_t k = cast<ShapedType>(ids.getType()).getDimSize(1);
    int64_t e = op.getNumExperts(), sh = op.getNumShared(), slots = k + sh;
    int64_t total = e + sh;

    SmallVector<Value> dynRows, dynSlots;
    if (cast<ShapedType>(op.getRows().getType()).isDynamicDim(0))
      dynRows.push_back(arith::MulIOp::create(b, loc, t, cIndex(b, loc, slots)));
    if (cast<ShapedType>(op.getSlotRows().getType()).isDynamicDim(0))
      dynSlots.push_back(t);
    Value offsets = allocFor(b, loc, op.getOffsets().getType(), {});
    Value rows = allocFor(b, loc, op.getRows().getType(), dynRows);
    Value slotRows = allocFor(b, loc, op.getSlotRows().getType(), dynSlots);
    Value cursor = entryAlloca(op, MemRefType::get({total}, b.getI32Type()));

    Value zero = cIndex(b, loc, 0);
    // 1. counts (in cursor).
    emitFor(b, loc, zero, cIndex(b, loc, total), [&](OpBuilder &lb, Location l, Value j) {
      memref::StoreOp::create(lb, l, cI32(lb, l, 0), cursor, ValueRange{j});
    });
    emitFor(b, loc, zero, t, [&](OpBuilder &lb, Location l, Value i) {
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, slots), [&](OpBuilder &b2, Location l2, Value s) {
        Value id = expertOf(b2, l2, op, ids, i, s, k, e, /*check=*/true);
        Value used = arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sge, id, cI32(b2, l2, 0));
        scf::IfOp::create(b2, l2, used, [&](OpBuilder &tb, Location tl) {
          Value j = toIndex(tb, tl, id);
          Value c = memref::LoadOp::create(tb, tl, cursor, ValueRange{j});
          memref::StoreOp::create(tb, tl, arith::AddIOp::create(tb, tl, c, cI32(tb, tl, 1)),
                                  cursor, ValueRange{j});
          scf::YieldOp::create(tb, tl);
        });
      });
    });
    // 2. exclusive prefix sum: offsets[j] = sum of counts before j; the
    //    cursor becomes each expert's next free row.
    Value end = emitForWithArgs(
        b, loc, zero, cIndex(b, loc, total), ValueRange{cI32(b, loc, 0)},
        [&](OpBuilder &lb, Location l, Value j, ValueRange acc) -> SmallVector<Value> {
          Value c = memref::LoadOp::create(lb, l, cursor, ValueRange{j});
          memref::StoreOp::create(lb, l, acc[0], offsets, ValueRange{j});
          memref::StoreOp::create(lb, l, acc[0], cursor, ValueRange{j});
          return {arith::AddIOp::create(lb, l, acc[0], c)};
        })[0];
    memref::StoreOp::create(b, loc, end, offsets, ValueRange{cIndex(b, loc, total)});
    // 3. stable scatter: token order within each expert.
    emitFor(b, loc, zero, t, [&](OpBuilder &lb, Location l, Value i) {
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, slots), [&](OpBuilder &b2, Location l2, Value s) {
        Value id = expertOf(b2, l2, op, ids, i, s, k, e, /*check=*/false);
        Value used = arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sge, id, cI32(b2, l2, 0));
        scf::IfOp::create(
            b2, l2, used,
            [&](OpBuilder &tb, Location tl) {
              Value j = toIndex(tb, tl, id);
              Value p = memref::LoadOp::create(tb, tl, cursor, ValueRange{j});
              memref::StoreOp::create(tb, tl, arith::AddIOp::create(tb, tl, p, cI32(tb, tl, 1)),
                                      cursor, ValueRange{j});
              memref::StoreOp::create(tb, tl, toI32(tb, tl, i), rows, ValueRange{toIndex(tb, tl, p)});
              memref::StoreOp::create(tb, tl, p, slotRows, ValueRange{i, s});
              scf::YieldOp::create(tb, tl);
            },
            [&](OpBuilder &eb, Location el) {
              memref::StoreOp::create(eb, el, cI32(eb, el, -1), slotRows, ValueRange{i, s});
              scf::YieldOp::create(eb, el);
            });
      });
    });
    op.getOffsets().replaceAllUsesWith(asTensor(b, loc, offsets, op.getOffsets().getType()));
    op.getRows().replaceAllUsesWith(asTensor(b, loc, rows, op.getRows().getType()));
    op.getSlotRows().replaceAllUsesWith(asTensor(b, loc, slotRows, op.getSlotRows().getType()));
    op.erase();
  }
};
} // namespace
