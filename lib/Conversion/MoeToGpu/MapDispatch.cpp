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
//===----------------------------------------------------------------------===//

#include "GpuMapping.h"
#include "moe_runtime.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUMAPDISPATCH
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
using namespace mlir::moe::gpumap;
namespace mdl = mlir::moe;

namespace {

/// The expert of slot s of token t (an i32; -1 when unused or invalid).
/// Slots >= K are the shared experts E + (s - K).
Value expertOf(OpBuilder &b, Location loc, Operation *op, Value ids, Value t, Value s,
               int64_t k, int64_t e, bool check) {
  Value isRouted = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, s, cIndex(b, loc, k));
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
        return {arith::AddIOp::create(
            eb, l, toI32(eb, l, arith::SubIOp::create(eb, l, s, cIndex(eb, l, k))), cI32(eb, l, e))};
      })[0];
}

struct MapDispatchPass : public mlir::moe::impl::MoeGpuMapDispatchBase<MapDispatchPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<mdl::DispatchOp> ops;
    getOperation().walk([&](mdl::DispatchOp op) { ops.push_back(op); });
    for (mdl::DispatchOp op : ops)
      lower(op);
  }

  /// One thread per token: `body(builder, loc, token)` for tokens < t.
  void perToken(OpBuilder &b, Location loc, StringRef name, Value t,
                function_ref<void(OpBuilder &, Location, Value)> body) {
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

  void lower(mdl::DispatchOp op) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    Value ids = getBuffer(b, loc, op.getIds());
    Value t = dimOf(b, loc, ids, 0);
    int64_t k = cast<ShapedType>(ids.getType()).getDimSize(1);
    int64_t e = op.getNumExperts(), sh = op.getNumShared(), slots = k + sh;
    int64_t total = e + sh;
    int64_t bs = blockSize;

    SmallVector<Value> dynRows, dynSlots;
    if (cast<ShapedType>(op.getRows().getType()).isDynamicDim(0))
      dynRows.push_back(arith::MulIOp::create(b, loc, t, cIndex(b, loc, slots)));
    if (cast<ShapedType>(op.getSlotRows().getType()).isDynamicDim(0))
      dynSlots.push_back(t);
    Value offsets = allocFor(b, loc, op.getOffsets().getType(), {});
    Value rows = allocFor(b, loc, op.getRows().getType(), dynRows);
    Value slotRows = allocFor(b, loc, op.getSlotRows().getType(), dynSlots);
    // Device scratch (freed by moe-finalize-buffers): per-expert counters,
    // then cursors.
    Value cursor = memref::AllocOp::create(b, loc, MemRefType::get({total}, b.getI32Type()),
                                           ValueRange{}, b.getI64IntegerAttr(64));
    auto i32one = [](OpBuilder &ob, Location l) { return cI32(ob, l, 1); };

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
    perToken(b, loc, "dispatch_count", t, [&](OpBuilder &tb, Location l, Value i) {
      emitFor(tb, l, cIndex(tb, l, 0), cIndex(tb, l, slots), [&](OpBuilder &sb, Location sl, Value s) {
        Value id = expertOf(sb, sl, op, ids, i, s, k, e, /*check=*/true);
        Value used = arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::sge, id, cI32(sb, sl, 0));
        scf::IfOp::create(sb, sl, used, [&](OpBuilder &ub, Location ul) {
          memref::AtomicRMWOp::create(ub, ul, arith::AtomicRMWKind::addi, i32one(ub, ul), cursor,
                                      ValueRange{toIndex(ub, ul, id)});
          scf::YieldOp::create(ub, ul);
        });
      });
    });
    // prefix: a single thread scans the counts.
    buildKernel(b, loc, "dispatch_prefix", ValueRange{cIndex(b, loc, 1)}, {GridExpr{0, 1, 1, 1, 0}},
                [&](OpBuilder &kb, Location l, ValueRange) {
                  buildThreads(kb, l, 1, [&](OpBuilder &tb, Location tl, Value) {
                    Value end = emitForWithArgs(
                        tb, tl, cIndex(tb, tl, 0), cIndex(tb, tl, total), ValueRange{cI32(tb, tl, 0)},
                        [&](OpBuilder &lb, Location ll, Value j, ValueRange acc) -> SmallVector<Value> {
                          Value c = memref::LoadOp::create(lb, ll, cursor, ValueRange{j});
                          memref::StoreOp::create(lb, ll, acc[0], offsets, ValueRange{j});
                          memref::StoreOp::create(lb, ll, acc[0], cursor, ValueRange{j});
                          return {arith::AddIOp::create(lb, ll, acc[0], c)};
                        })[0];
                    memref::StoreOp::create(tb, tl, end, offsets, ValueRange{cIndex(tb, tl, total)});
                  });
                });
    // scatter
    perToken(b, loc, "dispatch_scatter", t, [&](OpBuilder &tb, Location l, Value i) {
      emitFor(tb, l, cIndex(tb, l, 0), cIndex(tb, l, slots), [&](OpBuilder &sb, Location sl, Value s) {
        Value id = expertOf(sb, sl, op, ids, i, s, k, e, /*check=*/false);
        Value used = arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::sge, id, cI32(sb, sl, 0));
        scf::IfOp::create(
            sb, sl, used,
            [&](OpBuilder &ub, Location ul) {
              Value p = memref::AtomicRMWOp::create(ub, ul, arith::AtomicRMWKind::addi,
                                                    i32one(ub, ul), cursor,
                                                    ValueRange{toIndex(ub, ul, id)});
              memref::StoreOp::create(ub, ul, toI32(ub, ul, i), rows, ValueRange{toIndex(ub, ul, p)});
              memref::StoreOp::create(ub, ul, p, slotRows, ValueRange{i, s});
              scf::YieldOp::create(ub, ul);
            },
            [&](OpBuilder &nb, Location nl) {
              memref::StoreOp::create(nb, nl, cI32(nb, nl, -1), slotRows, ValueRange{i, s});
              scf::YieldOp::create(nb, nl);
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
