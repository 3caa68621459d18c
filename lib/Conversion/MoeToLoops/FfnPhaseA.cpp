//===- FfnPhaseA.cpp - phase A: the up projections ------------------------===//
//
// mid[p, i] = act(w1[i] · x[t]) (* w3[i] · x[t]) for the group's rows p:
// items (group, block of I) run every row of the group against one
// L2-sized block of w1/w3 rows, as packed outer-product tiles for groups
// with panels, as dot-product tiles for the others (FfnDotTiles.cpp).
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

void BlockedFfnEmitter::emitPhaseA(OpBuilder &b, Location loc) const {
  emitItems(b, loc, numGroups, blocksA, cfg.parallel, [&](OpBuilder &ib, Location l, Value g, Value blk) {
    WorkItem item = emitWorkItem(ib, l, g, blk, blockA, inter);
    byLayout(
        ib, l, g,
        [&](OpBuilder &pb, Location pl, Value tb, Value te) { emitPackedA(pb, pl, item, tb, te); },
        [&](OpBuilder &db, Location dl) { emitDotA(db, dl, item); });
  });
}

/// Packed: panelsMid[t, i, :] for the group's panels t, rows i of the block.
void BlockedFfnEmitter::emitPackedA(OpBuilder &b, Location loc, const WorkItem &item, Value tb,
                                    Value te) const {
  SmallVector<Value> mats{ops.w1};
  if (gated)
    mats.push_back(ops.w3);
  PackedKernel kernel{width, vecType, mats, prefixOf(item.g), panelsX};
  emitPackedLoops(b, loc, item, tb, te, h, kcA, slicesA, matsA, extentsA,
                  [&](OpBuilder &cb, Location cl, const KSlice &slice, const PackedTile &tile) {
                    emitPackedATile(cb, cl, kernel, slice, tile);
                  });
}

/// One register tile over one K slice; after the last slice the epilogue
/// applies the activation, before it the partial sums park in panelsMid
/// (up) and panelsGate (gate) for the next slice's kernel to load.
void BlockedFfnEmitter::emitPackedATile(OpBuilder &b, Location loc, const PackedKernel &kernel,
                                        const KSlice &slice, const PackedTile &tile) const {
  Value zero = cIndex(b, loc, 0);
  kernel.emit(
      b, loc, tile.tiles, tile.rowIds, slice.k0, slice.k1, slice.first, tile.prefetchNext,
      [&](OpBuilder &eb, Location el, int64_t m, Value t, Value row) -> Value {
        return vector::LoadOp::create(eb, el, vecType, m == 0 ? panelsMid : panelsGate,
                                      ValueRange{t, row, zero});
      },
      [&](OpBuilder &fb, Location fl, ArrayRef<Value> accs) {
        if (slicesA == 1)
          return storePackedA(fb, fl, tile, accs, zero, true);
        emitIfThenElse(
            fb, fl, slice.last,
            [&](OpBuilder &yb, Location yl) { storePackedA(yb, yl, tile, accs, zero, true); },
            [&](OpBuilder &nb, Location nl) { storePackedA(nb, nl, tile, accs, zero, false); });
      });
}
