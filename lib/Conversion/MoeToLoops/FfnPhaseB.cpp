//===- FfnPhaseB.cpp - phase B: the down projection -----------------------===//
//
// out[p, c] = w2[c] · mid[p]: items (group, block of H) run every row of
// the group against one L2-sized block of w2 rows, as packed outer-product
// tiles over phase A's output panels for groups with panels, as K-sliced
// dot-product tiles for the others (FfnDotTiles.cpp).
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

void BlockedFfnEmitter::emitPhaseB(OpBuilder &b, Location loc) const {
  emitItems(b, loc, numGroups, blocksB, cfg.parallel, [&](OpBuilder &ib, Location l, Value g, Value blk) {
    WorkItem item = emitWorkItem(ib, l, g, blk, blockB, h);
    byLayout(
        ib, l, g,
        [&](OpBuilder &pb, Location pl, Value tb, Value te) { emitPackedB(pb, pl, item, tb, te); },
        [&](OpBuilder &db, Location dl) { emitDotB(db, dl, item); });
  });
}

/// Packed: the accumulators are (w2 row, panel) vectors, lane = row p;
/// after the last K slice they go to out[p, c], only for the lanes inside
/// the group (FfnEpilogues.cpp).
void BlockedFfnEmitter::emitPackedB(OpBuilder &b, Location loc, const WorkItem &item, Value tb,
                                    Value te) const {
  // Without the transpose in registers the results go through a small stack
  // buffer. Parallel items each own a tmp, released per item by an alloca
  // scope; serial code shares one at the function entry (an alloca scope
  // around loops would not survive scf-to-cf unless outlining inlines it).
  auto tmpType = MemRefType::get({rowsB, nvMax * width}, f32);
  OpBuilder ab = b;
  Value tmp;
  if (!transposedB && cfg.parallel) {
    auto scope = memref::AllocaScopeOp::create(b, loc, TypeRange{});
    Block *scopeBody = new Block();
    scope.getBodyRegion().push_back(scopeBody);
    ab = OpBuilder::atBlockEnd(scopeBody);
    tmp = memref::AllocaOp::create(ab, loc, tmpType, ValueRange{}, ab.getI64IntegerAttr(64));
  } else if (!transposedB) {
    tmp = entryAlloca(inFunc, tmpType);
  }
  PackedKernel kernel{width, vecType, {ops.w2}, prefixOf(item.g), panelsMid};
  emitPackedLoops(ab, loc, item, tb, te, inter, kcB, slicesB, 1, extentsB,
                  [&](OpBuilder &cb, Location cl, const KSlice &slice, const PackedTile &tile) {
                    emitPackedBTile(cb, cl, kernel, item, tb, slice, tile, tmp);
                  });
  if (!transposedB && cfg.parallel)
    memref::AllocaScopeReturnOp::create(ab, loc, ValueRange{});
}

/// One register tile over one K slice: the kernel starts from the partial
/// sums in panelsAcc unless the slice is the first.
void BlockedFfnEmitter::emitPackedBTile(OpBuilder &b, Location loc, const PackedKernel &kernel,
                                        const WorkItem &item, Value tb, const KSlice &slice,
                                        const PackedTile &tile, Value tmp) const {
  Value zero = cIndex(b, loc, 0);
  kernel.emit(
      b, loc, tile.tiles, tile.rowIds, slice.k0, slice.k1, slice.first, tile.prefetchNext,
      [&](OpBuilder &eb, Location el, int64_t, Value t, Value row) -> Value {
        return vector::LoadOp::create(eb, el, vecType, panelsAcc, ValueRange{t, row, zero});
      },
      [&](OpBuilder &fb, Location fl, ArrayRef<Value> accs) {
        finishPackedB(fb, fl, PackedBResult{item, tb, tile, accs, tmp, zero}, slice.last);
      });
}
