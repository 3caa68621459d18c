//===- FfnLoops.cpp - the blocked FFN's loop structure --------------------===//
//
// The loops both phases share: work items (group, output block) for the
// pool, tiled loops with power-of-two remainder tiles for the dot-product
// path, and the packed path's register-tile loops over weight rows and
// panels.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

void ffn::emitTiled(OpBuilder &b, Location loc, Value lb, Value ub, int64_t step,
                    function_ref<void(OpBuilder &, Location, Value, int64_t)> body,
                    ArrayRef<int64_t> extents) {
  Value n = arith::SubIOp::create(b, loc, ub, lb);
  Value full = arith::MulIOp::create(
      b, loc, arith::DivUIOp::create(b, loc, n, cIndex(b, loc, step)), cIndex(b, loc, step));
  Value mainEnd = arith::AddIOp::create(b, loc, lb, full);
  scf::ForOp::create(b, loc, lb, mainEnd, cIndex(b, loc, step), ValueRange{},
                     [&](OpBuilder &lb2, Location l, Value i, ValueRange) {
                       body(lb2, l, i, step);
                       scf::YieldOp::create(lb2, l);
                     });
  // The remainder (< step) as a binary decomposition: at most one tile of
  // each power of two, largest first.
  if (step == 1)
    return;
  Value pos = mainEnd;
  int64_t pow = 1;
  while (pow * 2 < step)
    pow *= 2;
  int64_t needed = ~int64_t(0);
  if (!extents.empty()) {
    needed = 0;
    for (int64_t e : extents)
      needed |= e % step;
  }
  for (; pow >= 1; pow /= 2) {
    if (!(needed & pow))
      continue;
    Value left = arith::SubIOp::create(b, loc, ub, pos);
    Value take = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::uge, left, cIndex(b, loc, pow));
    Value start = pos;
    scf::IfOp::create(b, loc, take, [&](OpBuilder &tb, Location tl) {
      body(tb, tl, start, pow);
      scf::YieldOp::create(tb, tl);
    });
    pos = arith::SelectOp::create(b, loc, take, arith::AddIOp::create(b, loc, pos, cIndex(b, loc, pow)),
                                  pos);
  }
}

void ffn::emitItems(OpBuilder &b, Location loc, int64_t groups, int64_t blocks, bool parallel,
                    function_ref<void(OpBuilder &, Location, Value, Value)> body) {
  auto loop = scf::ForOp::create(
      b, loc, cIndex(b, loc, 0), cIndex(b, loc, groups * blocks), cIndex(b, loc, 1), ValueRange{},
      [&](OpBuilder &lb, Location l, Value item, ValueRange) {
        Value g = arith::DivUIOp::create(lb, l, item, cIndex(lb, l, blocks));
        Value blk = arith::RemUIOp::create(lb, l, item, cIndex(lb, l, blocks));
        body(lb, l, g, blk);
        scf::YieldOp::create(lb, l);
      });
  if (parallel)
    markThreadPoolLoop(loop);
}

void ffn::emitWhen(OpBuilder &b, Location loc, Value cond, BodyFn fn) {
  if (!cond)
    return fn(b, loc);
  scf::IfOp::create(b, loc, cond, [&](OpBuilder &tb, Location tl) {
    fn(tb, tl);
    scf::YieldOp::create(tb, tl);
  });
}

void ffn::emitWhen2(OpBuilder &b, Location loc, Value a, Value c, BodyFn fn) {
  emitWhen(b, loc, a, [&](OpBuilder &ib, Location il) { emitWhen(ib, il, c, fn); });
}

void ffn::emitPackedTiles(OpBuilder &b, Location loc, Value r0, Value r1, int64_t rows, Value t0,
                          Value t1, int64_t nv, bool rowsOuter,
                          function_ref<void(OpBuilder &, Location, const PackedTile &)> body) {
  auto rowLoop = [&](OpBuilder &lb, Location l, function_ref<void(OpBuilder &, Location, PackedTile)> inner,
                     PackedTile tile) {
    Value lastStart = arith::SubIOp::create(lb, l, r1, cIndex(lb, l, rows));
    scf::ForOp::create(lb, l, r0, r1, cIndex(lb, l, rows), ValueRange{},
                       [&](OpBuilder &ib, Location il, Value i, ValueRange) {
                         Value base = arith::MinUIOp::create(ib, il, i, lastStart);
                         Value shift = arith::SubIOp::create(ib, il, i, base);
                         tile.rowIds.clear();
                         tile.rowValid.clear();
                         for (int64_t r = 0; r < rows; ++r) {
                           tile.rowIds.push_back(arith::AddIOp::create(ib, il, base, cIndex(ib, il, r)));
                           tile.rowValid.push_back(
                               r == rows - 1 ? Value()
                                             : Value(arith::CmpIOp::create(ib, il, arith::CmpIPredicate::uge,
                                                                          cIndex(ib, il, r), shift)));
                         }
                         inner(ib, il, tile);
                         scf::YieldOp::create(ib, il);
                       });
  };
  auto tileLoop = [&](OpBuilder &lb, Location l, function_ref<void(OpBuilder &, Location, PackedTile)> inner,
                      PackedTile tile) {
    scf::ForOp::create(lb, l, t0, t1, cIndex(lb, l, nv), ValueRange{},
                       [&](OpBuilder &ib, Location il, Value t, ValueRange) {
                         tile.tiles.clear();
                         tile.tileValid.clear();
                         if (rowsOuter)
                           tile.prefetchNext = arith::CmpIOp::create(ib, il, arith::CmpIPredicate::eq, t, t0);
                         for (int64_t v = 0; v < nv; ++v) {
                           Value id = arith::AddIOp::create(ib, il, t, cIndex(ib, il, v));
                           tile.tiles.push_back(id);
                           tile.tileValid.push_back(
                               v == 0 ? Value()
                                      : Value(arith::CmpIOp::create(ib, il, arith::CmpIPredicate::ult, id, t1)));
                         }
                         inner(ib, il, tile);
                         scf::YieldOp::create(ib, il);
                       });
  };
  auto leaf = [&](OpBuilder &ib, Location il, PackedTile tile) { body(ib, il, tile); };
  if (rowsOuter)
    return rowLoop(b, loc, [&](OpBuilder &ob, Location ol, PackedTile tile) { tileLoop(ob, ol, leaf, tile); },
                   PackedTile());
  tileLoop(b, loc, [&](OpBuilder &ob, Location ol, PackedTile tile) { rowLoop(ob, ol, leaf, tile); },
           PackedTile());
}

//===----------------------------------------------------------------------===//
// The emitter's loop units
//===----------------------------------------------------------------------===//

WorkItem BlockedFfnEmitter::emitWorkItem(OpBuilder &b, Location loc, Value g, Value blk,
                                         int64_t block, int64_t extent) const {
  auto [start, end] = groupRange(b, loc, g);
  Value lo = arith::MulIOp::create(b, loc, blk, cIndex(b, loc, block));
  Value hi = arith::MinUIOp::create(b, loc, arith::AddIOp::create(b, loc, lo, cIndex(b, loc, block)),
                                    cIndex(b, loc, extent));
  return WorkItem{g, start, end, lo, hi};
}

/// K slices of a packed phase: one static slice, or a loop over `slices`
/// slices of `kc` with run-time first/last flags (partial sums park in
/// panel buffers between slices).
void BlockedFfnEmitter::emitSlices(OpBuilder &b, Location loc, int64_t k, int64_t kc, int64_t slices,
                                   function_ref<void(OpBuilder &, Location, const KSlice &)> body) const {
  if (slices == 1) {
    Value yes = arith::ConstantOp::create(b, loc, b.getBoolAttr(true));
    body(b, loc, KSlice{cIndex(b, loc, 0), cIndex(b, loc, k), yes, yes});
    return;
  }
  emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, slices), [&](OpBuilder &lb, Location l, Value s) {
    Value k0 = arith::MulIOp::create(lb, l, s, cIndex(lb, l, kc));
    Value k1 = arith::MinUIOp::create(lb, l, arith::AddIOp::create(lb, l, k0, cIndex(lb, l, kc)),
                                      cIndex(lb, l, k));
    Value first = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq, s, cIndex(lb, l, 0));
    Value last = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq, s, cIndex(lb, l, slices - 1));
    body(lb, l, KSlice{k0, k1, first, last});
  });
}

/// A group of n panels takes the wide tiles when their padded panel count,
/// discounted by the wide kernel's measured advantage (1.2x: MIX-P's
/// groups of 8 panels ran 6 % faster in 3-panel tiles, padding included),
/// is below the narrow tiles': n = 3, 5..9, 11.. with 3 vs 2.
void BlockedFfnEmitter::emitTileVariants(OpBuilder &b, Location loc, Value tb, Value te,
                                         TileVariantFn fn) const {
  if (!nvWide)
    return fn(b, loc, nvNarrow);
  Value n = arith::SubIOp::create(b, loc, te, tb);
  auto padded = [&](int64_t nv, int64_t weight) {
    return arith::MulIOp::create(b, loc, arith::CeilDivUIOp::create(b, loc, n, cIndex(b, loc, nv)),
                                 cIndex(b, loc, nv * weight));
  };
  Value wide = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, padded(nvWide, 5),
                                     padded(nvNarrow, 6));
  emitIfThenElse(
      b, loc, wide, [&](OpBuilder &tb2, Location tl) { fn(tb2, tl, nvWide); },
      [&](OpBuilder &eb, Location el) { fn(eb, el, nvNarrow); });
}

/// A packed phase's loop nest for one item: K slices of `kc` (of `k`) outside
/// the tile variants outside the register tiles over the item's block of
/// weight rows (of `mats` matrices) and the group's panels [tb, te).
void BlockedFfnEmitter::emitPackedLoops(OpBuilder &b, Location loc, const WorkItem &item, Value tb,
                                        Value te, int64_t k, int64_t kc, int64_t slices, int64_t mats,
                                        ArrayRef<int64_t> extents, PackedBodyFn body) const {
  emitSlices(b, loc, k, kc, slices, [&](OpBuilder &sb, Location sl, const KSlice &slice) {
    emitTileVariants(sb, sl, tb, te, [&](OpBuilder &vb, Location vl, int64_t nv) {
      emitPackedTiles(vb, vl, item.lo, item.hi, packedRows(mats, nv, extents), tb, te, nv,
                      cfg.packRowsOuter, [&](OpBuilder &cb, Location cl, const PackedTile &tile) {
                        body(cb, cl, slice, tile);
                      });
    });
  });
}

/// `then` when the group is packed (tileOff[g] < tileOff[g + 1]), else
/// `otherwise`; just `otherwise` without packing.
void BlockedFfnEmitter::byLayout(OpBuilder &b, Location loc, Value g,
                                 function_ref<void(OpBuilder &, Location, Value, Value)> then,
                                 BodyFn otherwise) const {
  if (!packing)
    return otherwise(b, loc);
  Value tb = memref::LoadOp::create(b, loc, tileOff, ValueRange{g});
  Value te = memref::LoadOp::create(b, loc, tileOff,
                                    ValueRange{arith::AddIOp::create(b, loc, g, cIndex(b, loc, 1))});
  Value packed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, tb, te);
  emitIfThenElse(
      b, loc, packed, [&](OpBuilder &tb2, Location tl) { then(tb2, tl, tb, te); }, otherwise);
}
