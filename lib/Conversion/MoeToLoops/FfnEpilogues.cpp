//===- FfnEpilogues.cpp - the packed tiles' stores ------------------------===//
//
// What a packed register tile does with its accumulators after a K slice:
// phase A applies the activation (after the last slice) and stores panels
// of the intermediate; phase B stores rows of `out`, transposed in
// registers or scattered through a stack buffer. Before the last slice both
// park partial sums in panel buffers. Rows and panels a tile shares with its
// neighbour or takes past the group (PackedTile) are not stored.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

/// Phase A: accs[r * nv + v] (up) and accs[(rows + r) * nv + v] (gate) of
/// weight row rowIds[r], panel tiles[v]. `final`: act(up) (* gate) into
/// panelsMid; else up and gate as they are into panelsMid / panelsGate.
void BlockedFfnEmitter::storePackedA(OpBuilder &b, Location loc, const PackedTile &tile,
                                     ArrayRef<Value> accs, Value zero, bool final) const {
  const int64_t rows = tile.rowIds.size(), nv = tile.tiles.size();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < nv; ++v)
      emitWhen2(b, loc, tile.tileValid[v], slicesA > 1 ? tile.rowValid[r] : Value(),
                [&](OpBuilder &wb, Location wl) {
                  Value t = tile.tiles[v], row = tile.rowIds[r];
                  Value up = accs[r * nv + v];
                  Value gate = gated ? accs[(rows + r) * nv + v] : Value();
                  if (final) {
                    Value val = emitActivation(wb, wl, ops.act, up);
                    if (gated)
                      val = arith::MulFOp::create(wb, wl, val, gate);
                    vector::StoreOp::create(wb, wl, val, panelsMid, ValueRange{t, row, zero});
                  } else {
                    vector::StoreOp::create(wb, wl, up, panelsMid, ValueRange{t, row, zero});
                    if (gated)
                      vector::StoreOp::create(wb, wl, gate, panelsGate, ValueRange{t, row, zero});
                  }
                });
}

/// Phase B: rows shared with the previous tile have their partial sums
/// already holding this slice when K is sliced; unsliced, they are exact.
Value BlockedFfnEmitter::rowOkB(const PackedTile &tile, int64_t r) const {
  return slicesB > 1 ? tile.rowValid[r] : Value();
}

/// Phase B after a K slice: the results into `out` after the last slice,
/// else the partial sums into panelsAcc.
void BlockedFfnEmitter::finishPackedB(OpBuilder &b, Location loc, const PackedBResult &res,
                                      Value last) const {
  if (slicesB == 1)
    return scatterB(b, loc, res);
  emitIfThenElse(
      b, loc, last, [&](OpBuilder &yb, Location yl) { scatterB(yb, yl, res); },
      [&](OpBuilder &nb, Location nl) { parkPartialSumsB(nb, nl, res); });
}

/// Lane = row p, accumulator r = column rowIds[r] (consecutive):
/// transposed in registers, each row p's `rows` columns are one
/// masked vector store to out[p, rowIds[0]], instead of
/// rows x width scalar copies through `tmp` (38% of DS-P's
/// phase B, whose K is only 256).
void BlockedFfnEmitter::storeTransposedB(OpBuilder &b, Location loc, const PackedBResult &res) const {
  const PackedTile &tile = res.tile;
  const int64_t rows = tile.rowIds.size(), nv = tile.tiles.size();
  auto maskType = VectorType::get({width}, b.getI1Type());
  SmallVector<Value> lanes;
  for (int64_t j = 0; j < width; ++j) {
    Value ok = j < rows && rowOkB(tile, j)
                   ? rowOkB(tile, j)
                   : arith::ConstantOp::create(b, loc, b.getBoolAttr(j < rows)).getResult();
    lanes.push_back(ok);
  }
  Value mask = vector::FromElementsOp::create(b, loc, maskType, lanes);
  Value zeroVec = zeroVector(b, loc);
  for (int64_t v = 0; v < nv; ++v)
    emitWhen(b, loc, tile.tileValid[v], [&](OpBuilder &vb, Location vl) {
      SmallVector<Value> rowVecs;
      for (int64_t r = 0; r < width; ++r)
        rowVecs.push_back(r < rows ? res.accs[r * nv + v] : zeroVec);
      SmallVector<Value> perRow = transposeRows(vb, vl, rowVecs);
      Value p0 = panelRow0(vb, vl, res.item.start, tile.tiles[v], res.tb);
      for (int64_t j = 0; j < width; ++j) {
        Value p = arith::AddIOp::create(vb, vl, p0, cIndex(vb, vl, j));
        Value inside = arith::CmpIOp::create(vb, vl, arith::CmpIPredicate::ult, p, res.item.end);
        emitWhen(vb, vl, inside, [&](OpBuilder &sb, Location sl) {
          vector::MaskedStoreOp::create(sb, sl, ops.out, ValueRange{p, tile.rowIds[0]}, mask,
                                        perRow[j]);
        });
      }
    });
}

/// The results into out[p, rowIds[r]]: transposed in registers when the
/// tile allows it, else through `tmp`, lane by lane.
void BlockedFfnEmitter::scatterB(OpBuilder &b, Location loc, const PackedBResult &res) const {
  if (transposedB)
    return storeTransposedB(b, loc, res);
  const PackedTile &tile = res.tile;
  const int64_t rows = tile.rowIds.size(), nv = tile.tiles.size();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < nv; ++v)
      vector::StoreOp::create(b, loc, res.accs[r * nv + v], res.tmp,
                              ValueRange{cIndex(b, loc, r), cIndex(b, loc, v * width)});
  for (int64_t v = 0; v < nv; ++v)
    emitWhen(b, loc, tile.tileValid[v], [&](OpBuilder &vb, Location vl) {
      Value p0 = panelRow0(vb, vl, res.item.start, tile.tiles[v], res.tb);
      Value n = arith::MinUIOp::create(vb, vl, arith::SubIOp::create(vb, vl, res.item.end, p0),
                                       cIndex(vb, vl, width));
      emitFor(vb, vl, cIndex(vb, vl, 0), n, [&](OpBuilder &lb, Location ll, Value lane) {
        Value p = arith::AddIOp::create(lb, ll, p0, lane);
        Value col = arith::AddIOp::create(lb, ll, lane, cIndex(lb, ll, v * width));
        for (int64_t r = 0; r < rows; ++r)
          emitWhen(lb, ll, rowOkB(tile, r), [&](OpBuilder &sb, Location sl) {
            Value val = memref::LoadOp::create(sb, sl, res.tmp, ValueRange{cIndex(sb, sl, r), col});
            memref::StoreOp::create(sb, sl, val, ops.out, ValueRange{p, tile.rowIds[r]});
          });
      });
    });
}

/// Before the last K slice: the partial sums into panelsAcc, which the next
/// slice's kernel loads.
void BlockedFfnEmitter::parkPartialSumsB(OpBuilder &b, Location loc, const PackedBResult &res) const {
  const PackedTile &tile = res.tile;
  const int64_t rows = tile.rowIds.size(), nv = tile.tiles.size();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < nv; ++v)
      emitWhen2(b, loc, tile.tileValid[v], rowOkB(tile, r), [&](OpBuilder &wb, Location wl) {
        vector::StoreOp::create(wb, wl, res.accs[r * nv + v], panelsAcc,
                                ValueRange{tile.tiles[v], tile.rowIds[r], res.zero});
      });
}
