//===- FfnDotTiles.cpp - the dot-product tiles ----------------------------===//
//
// The groups without panels (all of them when packing is off) run both
// phases as register blocks of dot products (emitDotTile): rows of x or of
// the intermediate against full-width loads of weight rows, one horizontal
// reduction per accumulator. With packing on these are the small groups of
// decode, where the weights' bandwidth is the bound.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

namespace {

/// `base + i` for i < n, clamped to `last`.
SmallVector<Value> clampedIds(OpBuilder &b, Location loc, Value base, int64_t n, Value last) {
  SmallVector<Value> ids;
  for (int64_t i = 0; i < n; ++i)
    ids.push_back(i == 0 ? base
                         : Value(arith::MinUIOp::create(
                               b, loc, arith::AddIOp::create(b, loc, base, cIndex(b, loc, i)), last)));
  return ids;
}

} // namespace

/// With packing on, only groups below pack-min-rows come here (decode,
/// bandwidth-bound): single rows when there are few, else one row-tile
/// body with the last tile's rows clamped (duplicates recompute and store
/// the same values) instead of remainder tiles; without packing,
/// remainder tiles as before.
void BlockedFfnEmitter::dotRows(OpBuilder &b, Location loc, Value start, Value end,
                                DotRowsFn body) const {
  if (!packing)
    return emitTiled(b, loc, start, end, mr, [&](OpBuilder &rb, Location rl, Value p0, int64_t rows) {
      SmallVector<Value> ps;
      for (int64_t r = 0; r < rows; ++r)
        ps.push_back(arith::AddIOp::create(rb, rl, p0, cIndex(rb, rl, r)));
      body(rb, rl, p0, rows, ps);
    });
  auto clampedTiles = [&](OpBuilder &cb, Location cl) {
    Value lastRow = arith::SubIOp::create(cb, cl, end, cIndex(cb, cl, 1));
    scf::ForOp::create(cb, cl, start, end, cIndex(cb, cl, mr), ValueRange{},
                       [&](OpBuilder &rb, Location rl, Value p0, ValueRange) {
                         body(rb, rl, p0, mr, clampedIds(rb, rl, p0, mr, lastRow));
                         scf::YieldOp::create(rb, rl);
                       });
  };
  if (mr < 4)
    return clampedTiles(b, loc);
  // A group of n < mr / 2 rows (decode: mostly 1) goes one row at a time:
  // a clamped tile would do mr / n times its FMAs and, worse, mr
  // horizontal reductions per weight row (DS-D 6.3 -> 3.2 ms with mr = 8
  // on AVX-512); a 1-row tile does one, with all accumulators on weights.
  Value n = arith::SubIOp::create(b, loc, end, start);
  Value few = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::ult,
      arith::MulIOp::create(b, loc, n, cIndex(b, loc, 2)), cIndex(b, loc, mr));
  emitIfThenElse(
      b, loc, few,
      [&](OpBuilder &tb, Location tl) {
        emitFor(tb, tl, start, end, [&](OpBuilder &rb, Location rl, Value p) {
          body(rb, rl, p, 1, {p});
        });
      },
      clampedTiles);
}

//===----------------------------------------------------------------------===//
// Phase A
//===----------------------------------------------------------------------===//

/// Dot products: mid[p, i] for the group's rows p in tiles of `mr`.
void BlockedFfnEmitter::emitDotA(OpBuilder &b, Location loc, const WorkItem &item) const {
  dotRows(b, loc, item.start, item.end,
          [&](OpBuilder &rb, Location rl, Value, int64_t rows, SmallVector<Value> ps) {
            SmallVector<RowRef> xRows;
            for (int64_t r = 0; r < rows; ++r)
              xRows.push_back({ops.x, {tokenOf(rb, rl, ps[r])}});
            int64_t nr = std::max<int64_t>(1, cfg.accumulators / (rows * matsA));
            nr = std::min(nr, nrA * std::max<int64_t>(1, mr / rows));
            emitTiled(
                rb, rl, item.lo, item.hi, nr,
                [&](OpBuilder &cb, Location cl, Value c0, int64_t cols) {
                  emitDotATile(cb, cl, item.g, xRows, ps, c0, cols);
                },
                extentsA);
          });
}

/// rows x cols: up (and gate) sums, the activation applied, into mid.
void BlockedFfnEmitter::emitDotATile(OpBuilder &b, Location loc, Value g, ArrayRef<RowRef> xRows,
                                     ArrayRef<Value> ps, Value c0, int64_t cols) const {
  const int64_t rows = xRows.size();
  SmallVector<RowRef> ws;
  SmallVector<Value> cs;
  for (int64_t j = 0; j < cols; ++j) {
    Value c = arith::AddIOp::create(b, loc, c0, cIndex(b, loc, j));
    cs.push_back(c);
    ws.push_back(weightRow(ops.w1, g, c));
    if (gated)
      ws.push_back(weightRow(ops.w3, g, c));
  }
  auto sums = emitDotTile(b, loc, xRows, ws, h, width);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      Value v = emitActivation(b, loc, ops.act, sums[r][j * matsA]);
      if (gated)
        v = arith::MulFOp::create(b, loc, v, sums[r][j * matsA + 1]);
      memref::StoreOp::create(b, loc, v, mid, ValueRange{ps[r], cs[j]});
    }
}

//===----------------------------------------------------------------------===//
// Phase B
//===----------------------------------------------------------------------===//

/// Dot products over K slices of `kc` (and a tail): the first slice stores,
/// the others accumulate.
void BlockedFfnEmitter::emitDotB(OpBuilder &b, Location loc, const WorkItem &item) const {
  auto flag = [&](OpBuilder &fb, Location fl, bool v) {
    return arith::ConstantOp::create(fb, fl, fb.getBoolAttr(v)).getResult();
  };
  if (fullSlices == 1)
    emitDotBSlice(b, loc, item, cIndex(b, loc, 0), kc, flag(b, loc, true));
  else
    emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, fullSlices), [&](OpBuilder &kb, Location kl, Value s) {
      Value first = arith::CmpIOp::create(kb, kl, arith::CmpIPredicate::eq, s, cIndex(kb, kl, 0));
      emitDotBSlice(kb, kl, item, arith::MulIOp::create(kb, kl, s, cIndex(kb, kl, kc)), kc, first);
    });
  if (tail > 0)
    emitDotBSlice(b, loc, item, cIndex(b, loc, fullSlices * kc), tail, flag(b, loc, false));
}

/// One K slice [k0, k0 + len) of every row tile x column group. `first`
/// (i1) stores the slice's sums, else adds them to out; all of a tile's
/// loads come before its stores, so clamped duplicate rows add their
/// (equal) sums once.
void BlockedFfnEmitter::emitDotBSlice(OpBuilder &b, Location loc, const WorkItem &item, Value k0,
                                      int64_t len, Value first) const {
  dotRows(b, loc, item.start, item.end,
          [&](OpBuilder &rb, Location rl, Value, int64_t rows, SmallVector<Value> ps) {
            SmallVector<RowRef> midRows;
            for (int64_t r = 0; r < rows; ++r)
              midRows.push_back({mid, {ps[r]}});
            int64_t nr = std::max<int64_t>(1, cfg.accumulators / rows);
            nr = std::min(nr, nrB * std::max<int64_t>(1, mr / rows));
            emitTiled(
                rb, rl, item.lo, item.hi, nr,
                [&](OpBuilder &cb, Location cl, Value cStart, int64_t cols) {
                  emitDotBTile(cb, cl, item.g, midRows, ps, cStart, cols, k0, len, first);
                },
                extentsB);
          });
}

void BlockedFfnEmitter::emitDotBTile(OpBuilder &b, Location loc, Value g, ArrayRef<RowRef> midRows,
                                     ArrayRef<Value> ps, Value cStart, int64_t cols, Value k0,
                                     int64_t len, Value first) const {
  const int64_t rows = midRows.size();
  std::optional<int64_t> constFirst = getConstantIntValue(first);
  SmallVector<RowRef> ws;
  SmallVector<Value> cs;
  for (int64_t j = 0; j < cols; ++j) {
    Value c = arith::AddIOp::create(b, loc, cStart, cIndex(b, loc, j));
    cs.push_back(c);
    ws.push_back(weightRow(ops.w2, g, c));
  }
  auto sums = emitDotTile(b, loc, midRows, ws, len, width, k0);
  SmallVector<Value> vals;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      Value v = sums[r][j];
      if (!constFirst || !*constFirst) {
        Value sum = arith::AddFOp::create(
            b, loc, memref::LoadOp::create(b, loc, ops.out, ValueRange{ps[r], cs[j]}), v);
        v = constFirst ? sum : Value(arith::SelectOp::create(b, loc, first, v, sum));
      }
      vals.push_back(v);
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      memref::StoreOp::create(b, loc, vals[r * cols + j], ops.out, ValueRange{ps[r], cs[j]});
}
