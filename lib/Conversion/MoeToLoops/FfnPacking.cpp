//===- FfnPacking.cpp - x packed into row panels --------------------------===//
//
// The packed path's input layout: every group with enough rows gets
// ceil(rows / width) row panels of [K, width] (lane = row), so that the
// micro-kernel loads one vector per panel and k. x is gathered and
// transposed into them once per call, in registers.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

/// log2(n) butterfly stages of n two-input shuffles each. The stage of
/// half-size h swaps the off-diagonal h x h blocks of every 2h x 2h block
/// ([[A, B], [C, D]] -> [[A, C], [B, D]]); after all of them every block is
/// transposed. 64 shuffles for 16 x 16 instead of 256 scalar loads and
/// stores.
SmallVector<Value> ffn::transposeRows(OpBuilder &b, Location loc, SmallVector<Value> rows) {
  const int64_t n = rows.size();
  for (int64_t h = n / 2; h >= 1; h /= 2) {
    SmallVector<int64_t> lowMask(n), highMask(n);
    for (int64_t j = 0; j < n; ++j) {
      lowMask[j] = (j & h) == 0 ? j : n + j - h;
      highMask[j] = (j & h) == 0 ? j + h : n + j;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (i & h)
        continue;
      Value a = rows[i], c = rows[i + h];
      rows[i] = vector::ShuffleOp::create(b, loc, a, c, lowMask);
      rows[i + h] = vector::ShuffleOp::create(b, loc, a, c, highMask);
    }
  }
  return rows;
}

/// The layout: group g's panels are tileOff[g] .. tileOff[g + 1] (none below
/// packMinRows rows); a panel is [K, width] with lane = row (padding lanes
/// are zero). x is packed once into `panelsX` (its gather folded in); phase
/// A writes its output as panels (`panelsMid`), which is exactly phase B's
/// input layout. `panelsGate` and `panelsAcc` hold phase A's and B's
/// partial sums between K slices.
void BlockedFfnEmitter::emitPanelLayout(OpBuilder &b, Location loc) {
  tileOff = memref::AllocOp::create(b, loc, MemRefType::get({numGroups + 1}, b.getIndexType()),
                                    ValueRange{}, b.getI64IntegerAttr(64));
  memref::StoreOp::create(b, loc, cIndex(b, loc, 0), tileOff, ValueRange{cIndex(b, loc, 0)});
  emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, numGroups), [&](OpBuilder &lb, Location l, Value g) {
    auto [start, end] = groupRange(lb, l, g);
    Value rows = arith::SubIOp::create(lb, l, end, start);
    Value enough = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::uge, rows,
                                         cIndex(lb, l, cfg.packMinRows));
    Value tiles = arith::SelectOp::create(
        lb, l, enough, arith::CeilDivUIOp::create(lb, l, rows, cIndex(lb, l, width)), cIndex(lb, l, 0));
    Value prev = memref::LoadOp::create(lb, l, tileOff, ValueRange{g});
    memref::StoreOp::create(lb, l, arith::AddIOp::create(lb, l, prev, tiles), tileOff,
                            ValueRange{arith::AddIOp::create(lb, l, g, cIndex(lb, l, 1))});
  });
  Value total = memref::LoadOp::create(b, loc, tileOff, ValueRange{cIndex(b, loc, numGroups)});
  // Padded by one register tile of panels: the last panel tile of a group
  // may read past its panels (PackedTile).
  Value count = arith::AddIOp::create(b, loc, total, cIndex(b, loc, nvMax));
  auto panelAlloc = [&](int64_t k) {
    return memref::AllocOp::create(
        b, loc, MemRefType::get({ShapedType::kDynamic, k, width}, f32), ValueRange{count},
        b.getI64IntegerAttr(64));
  };
  panelsX = panelAlloc(h);
  panelsMid = panelAlloc(inter);
  if (gated && slicesA > 1)
    panelsGate = panelAlloc(inter);
  if (slicesB > 1)
    panelsAcc = panelAlloc(h);
}

/// Packing: panelsX[t, k, lane] = x[token(row), k], zero past the group.
void BlockedFfnEmitter::emitPackX(OpBuilder &b, Location loc) const {
  emitItems(b, loc, numGroups, 1, cfg.parallel, [&](OpBuilder &ib, Location l, Value g, Value) {
    auto [start, end] = groupRange(ib, l, g);
    Value tb = memref::LoadOp::create(ib, l, tileOff, ValueRange{g});
    Value te = memref::LoadOp::create(
        ib, l, tileOff, ValueRange{arith::AddIOp::create(ib, l, g, cIndex(ib, l, 1))});
    emitFor(ib, l, tb, te, [&](OpBuilder &tb2, Location tl, Value t) {
      emitPackPanel(tb2, tl, start, end, tb, t);
    });
  });
}

/// Panel `t` of a group with rows [start, end) whose panels start at `tb`.
void BlockedFfnEmitter::emitPackPanel(OpBuilder &b, Location loc, Value start, Value end, Value tb,
                                      Value t) const {
  Value p0 = panelRow0(b, loc, start, t, tb);
  // Whole width x width blocks: a row vector per lane (zero past the
  // group), transposed in registers, stored as the panel's k vectors.
  const int64_t mainK = llvm::isPowerOf2_64(width) ? h - h % width : 0;
  Value lastRow = arith::SubIOp::create(b, loc, end, cIndex(b, loc, 1));
  SmallVector<Value> toks, inside;
  for (int64_t lane = 0; lane < width; ++lane) {
    Value p = arith::AddIOp::create(b, loc, p0, cIndex(b, loc, lane));
    inside.push_back(arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, p, end));
    toks.push_back(tokenOf(b, loc, arith::MinUIOp::create(b, loc, p, lastRow)));
  }
  Value zeroVec = zeroVector(b, loc);
  if (mainK > 0)
    scf::ForOp::create(
        b, loc, cIndex(b, loc, 0), cIndex(b, loc, mainK), cIndex(b, loc, width), ValueRange{},
        [&](OpBuilder &kb, Location kl, Value k0, ValueRange) {
          SmallVector<Value> rowVecs;
          for (int64_t lane = 0; lane < width; ++lane) {
            Value v = vector::LoadOp::create(kb, kl, vecType, ops.x, ValueRange{toks[lane], k0});
            rowVecs.push_back(arith::SelectOp::create(kb, kl, inside[lane], v, zeroVec));
          }
          SmallVector<Value> cols = transposeRows(kb, kl, rowVecs);
          for (int64_t j = 0; j < width; ++j)
            vector::StoreOp::create(
                kb, kl, cols[j], panelsX,
                ValueRange{t, arith::AddIOp::create(kb, kl, k0, cIndex(kb, kl, j)), cIndex(kb, kl, 0)});
          scf::YieldOp::create(kb, kl);
        });
  // The K tail (h not a multiple of width; all of K when width is not
  // a power of two), element by element.
  if (mainK < h)
    emitFor(b, loc, cIndex(b, loc, mainK), cIndex(b, loc, h), [&](OpBuilder &kb, Location kl, Value k) {
      for (int64_t lane = 0; lane < width; ++lane) {
        Value v = memref::LoadOp::create(kb, kl, ops.x, ValueRange{toks[lane], k});
        v = arith::SelectOp::create(kb, kl, inside[lane], v, cF32(kb, kl, 0.0f));
        memref::StoreOp::create(kb, kl, v, panelsX, ValueRange{t, k, cIndex(kb, kl, lane)});
      }
    });
}
