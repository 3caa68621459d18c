//===- FfnPackedKernel.cpp - the packed outer-product micro-kernel --------===//
//
// One K slice of a register tile of the packed path, shared by both phases:
// rows x panels vector accumulators, each weight element broadcast once
// and used by every panel, the next weight-row tile prefetched into L2.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

void PackedKernel::emit(OpBuilder &b, Location loc, ArrayRef<Value> tiles, ArrayRef<Value> rowIds,
                        Value k0, Value k1, Value first, Value prefetchNext, InitFn init,
                        FinishFn finish) const {
  const int64_t mats = weights.size(), rows = rowIds.size(), nv = tiles.size();
  auto accIndex = [&](int64_t m, int64_t r, int64_t v) { return (m * rows + r) * nv + v; };
  SmallVector<Type> types(mats * rows * nv, vecType);
  // A statically first slice has nothing to load (and no partial-sum
  // buffer exists then).
  std::optional<int64_t> constFirst = getConstantIntValue(first);
  if (constFirst && *constFirst) {
    Value zero = arith::ConstantOp::create(
        b, loc, vecType, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0.0f)));
    emitAccumulate(b, loc, tiles, rowIds, SmallVector<Value>(types.size(), zero), k0, k1,
                   prefetchNext, finish);
    return;
  }
  ValueRange initAccs = emitIfElse(
      b, loc, types, first,
      [&](OpBuilder &tb, Location tl) -> SmallVector<Value> {
        Value zero = arith::ConstantOp::create(
            tb, tl, vecType, DenseElementsAttr::get(vecType, tb.getF32FloatAttr(0.0f)));
        return SmallVector<Value>(types.size(), zero);
      },
      [&](OpBuilder &eb, Location el) -> SmallVector<Value> {
        SmallVector<Value> accs(types.size());
        for (int64_t m = 0; m < mats; ++m)
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t v = 0; v < nv; ++v)
              accs[accIndex(m, r, v)] = init(eb, el, m, tiles[v], rowIds[r]);
        return accs;
      });
  emitAccumulate(b, loc, tiles, rowIds, SmallVector<Value>(initAccs.begin(), initAccs.end()), k0,
                 k1, prefetchNext, finish);
}

void PackedKernel::emitAccumulate(OpBuilder &b, Location loc, ArrayRef<Value> tiles,
                                  ArrayRef<Value> rowIds, SmallVector<Value> accs, Value k0,
                                  Value k1, Value prefetchNext, FinishFn finish) const {
  const int64_t mats = weights.size(), rows = rowIds.size(), nv = tiles.size();
  auto accIndex = [&](int64_t m, int64_t r, int64_t v) { return (m * rows + r) * nv + v; };
  // The next tile's first row, kept so that all its rows exist (the rows
  // of a tile are consecutive: PackedTile); one per matrix shape.
  SmallVector<Value> nextBase;
  for (int64_t m = 0; m < mats; ++m) {
    auto type = cast<MemRefType>(weights[m].getType());
    int64_t lastBase = std::max<int64_t>(0, type.getDimSize(type.getRank() - 2) - rows);
    nextBase.push_back(arith::MinUIOp::create(
        b, loc, arith::AddIOp::create(b, loc, rowIds[0], cIndex(b, loc, rows)), cIndex(b, loc, lastBase)));
  }
  ValueRange done = emitForWithArgs(
      b, loc, k0, k1, accs,
      [&](OpBuilder &lb, Location l, Value k, ValueRange acc) -> SmallVector<Value> {
        SmallVector<Value> xs, next(acc.begin(), acc.end());
        Value zero = cIndex(lb, l, 0);
        for (int64_t v = 0; v < nv; ++v)
          xs.push_back(vector::LoadOp::create(lb, l, vecType, panels, ValueRange{tiles[v], k, zero}));
        // Software prefetch of the next weight-row tile (nextBase + r,
        // same k), one line per row every kLineFloats k: the
        // hardware prefetchers do not follow 2 x 6-12 row streams of
        // ~1 KB that all cross a line at the same k, so without it each
        // tile started with a burst of L3 misses (QW-P's experts see
        // their weights once per call: 25.9 -> 21.1 ms on a Xeon). Into
        // L2 only (locality 2): an L1 prefetch evicted the panel slice
        // that a reused weight tile streams over (MIX-P 3% slower).
        Value atLine = arith::CmpIOp::create(
            lb, l, arith::CmpIPredicate::eq,
            arith::AndIOp::create(lb, l, k, cIndex(lb, l, kLineFloats - 1)), zero);
        if (prefetchNext)
          atLine = arith::AndIOp::create(lb, l, atLine, prefetchNext);
        scf::IfOp::create(lb, l, atLine, [&](OpBuilder &pb, Location pl) {
          emitPrefetch(pb, pl, nextBase, rows, k);
          scf::YieldOp::create(pb, pl);
        });
        for (int64_t m = 0; m < mats; ++m)
          for (int64_t r = 0; r < rows; ++r) {
            SmallVector<Value> idx(prefix);
            idx.push_back(rowIds[r]);
            idx.push_back(k);
            Value w = memref::LoadOp::create(lb, l, weights[m], idx);
            Value wv = vector::BroadcastOp::create(lb, l, vecType, w);
            for (int64_t v = 0; v < nv; ++v)
              next[accIndex(m, r, v)] = vector::FMAOp::create(lb, l, wv, xs[v], next[accIndex(m, r, v)]);
          }
        return next;
      });
  finish(b, loc, SmallVector<Value>(done.begin(), done.end()));
}

void PackedKernel::emitPrefetch(OpBuilder &b, Location loc, ArrayRef<Value> nextBase, int64_t rows,
                                Value k) const {
  for (size_t m = 0; m < weights.size(); ++m) {
    for (int64_t r = 0; r < rows; ++r) {
      SmallVector<Value> idx(prefix);
      idx.push_back(arith::AddIOp::create(b, loc, nextBase[m], cIndex(b, loc, r)));
      idx.push_back(k);
      memref::PrefetchOp::create(b, loc, weights[m], idx, /*isWrite=*/false,
                                 /*localityHint=*/2, /*isDataCache=*/true);
    }
  }
}
