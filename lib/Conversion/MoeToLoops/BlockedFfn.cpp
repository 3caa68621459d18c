//===- BlockedFfn.cpp - cache-blocked grouped FFN GEMMs -------------------===//
//
// Why two phases instead of one fused tile loop: a tile that runs the whole
// FFN for a few rows streams every weight of the expert once per tile, so a
// prefill batch with many rows per expert re-reads tens of MB per tile from
// memory. Here a work item owns one L2-sized block of weight rows and runs
// every row of its group against it, so each weight is read from memory
// once per call; the [P, I] intermediate (activation already applied) is
// the price, and it is read back tile by tile from cache-sized K slices.
//
// The register block: `rowTile` rows x n weight rows (n chosen so the
// accumulators fill the vector register budget), each loaded vector used by
// the whole block, one horizontal reduction per accumulator per K slice.
// Items are (group, output block) pairs claimed one at a time by the pool,
// so a skewed routing still spreads over every core.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

namespace {

int64_t roundDown(int64_t v, int64_t m) { return std::max(m, v - v % m); }

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// The block of an extent `n` split into blocks of at most about `maxBlock`
/// (a multiple of `m`): as many blocks as `maxBlock` needs, made equal
/// (rounded up to a multiple of `m`, capped at n). Equal blocks keep the
/// last one from being a sliver: the packed kernel's row tile is capped by
/// the smallest block, and DS-P's phase B (H = 1024 in blocks of 255) had a
/// last block of 4 rows, so every tile was 4 rows instead of 12.
int64_t balancedBlock(int64_t n, int64_t maxBlock, int64_t m) {
  int64_t blocks = ceilDiv(n, std::max<int64_t>(1, maxBlock));
  return std::min(n, ceilDiv(ceilDiv(n, blocks), m) * m);
}

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

void mlir::moe::lowering::emitBlockedFfn(
    OpBuilder &b, Location loc, const BlockedFfnConfig &cfg, const BlockedFfnOperands &ops,
    function_ref<std::pair<Value, Value>(OpBuilder &, Location, Value)> groupRange,
    function_ref<Value(OpBuilder &, Location, Value)> tokenOf) {
  const bool gated = ops.w3 != nullptr;
  const int64_t h = ops.h, inter = ops.inter, mr = cfg.rowTile, width = cfg.width;
  const int64_t numGroups = ops.numGroups;
  auto f32 = b.getF32Type();
  auto vecType = VectorType::get({width}, f32);
  // Inside builder callbacks the enclosing ops are not attached yet, so the
  // function is found from here.
  Operation *inFunc = b.getInsertionBlock()->getParentOp();
  auto prefixOf = [&](Value g) {
    return ops.perGroupWeights ? SmallVector<Value>{g} : SmallVector<Value>{};
  };
  auto weightRow = [&](Value w, Value g, Value row) {
    SmallVector<Value> idx = prefixOf(g);
    idx.push_back(row);
    return RowRef{w, idx};
  };

  // The intermediate, at the function level (moe-finalize-buffers frees it).
  auto midType = MemRefType::get({ShapedType::kDynamic, inter}, f32);
  Value mid = memref::AllocOp::create(b, loc, midType, ValueRange{ops.numRows},
                                      b.getI64IntegerAttr(64));

  // The packed path's layout: every group with enough rows gets
  // ceil(rows / width) row panels, tileOff[g] .. tileOff[g + 1]; a panel is
  // [K, width] with lane = row (padding lanes are zero). x is packed once
  // into `panelsX` (its gather folded in); phase A writes its output as
  // panels (`panelsMid`), which is exactly phase B's input layout.
  const bool packing = cfg.packMinRows > 0;
  // Panels per register tile: `packTiles`, and with `packTilesWide` a
  // second kernel body with that many, which groups of enough panels take
  // (emitTileVariants). Buffers and K slices are sized for the wider.
  const int64_t nvNarrow = std::max<int64_t>(1, cfg.packTiles);
  const int64_t nvWide = cfg.packTilesWide > nvNarrow ? cfg.packTilesWide : 0;
  const int64_t nvMax = std::max(nvNarrow, nvWide);
  const int64_t matsA = gated ? 2 : 1;
  auto rowsFor = [&](int64_t mats, int64_t nv) {
    return std::min<int64_t>(12, std::max<int64_t>(1, cfg.accumulators / (mats * nv)));
  };
  // A group of n panels takes the wide tiles when their padded panel count,
  // discounted by the wide kernel's measured advantage (1.2x: MIX-P's
  // groups of 8 panels ran 6 % faster in 3-panel tiles, padding included),
  // is below the narrow tiles': n = 3, 5..9, 11.. with 3 vs 2.
  auto emitTileVariants = [&](OpBuilder &vb, Location vl, Value tb, Value te,
                              function_ref<void(OpBuilder &, Location, int64_t)> fn) {
    if (!nvWide)
      return fn(vb, vl, nvNarrow);
    Value n = arith::SubIOp::create(vb, vl, te, tb);
    auto padded = [&](int64_t nv, int64_t weight) {
      return arith::MulIOp::create(vb, vl, arith::CeilDivUIOp::create(vb, vl, n, cIndex(vb, vl, nv)),
                                   cIndex(vb, vl, nv * weight));
    };
    Value wide = arith::CmpIOp::create(vb, vl, arith::CmpIPredicate::ult, padded(nvWide, 5),
                                       padded(nvNarrow, 6));
    emitIfThenElse(
        vb, vl, wide, [&](OpBuilder &tb2, Location tl) { fn(tb2, tl, nvWide); },
        [&](OpBuilder &eb, Location el) { fn(eb, el, nvNarrow); });
  };
  auto sliceLen = [&](int64_t k) {
    int64_t kc = std::min(k, std::max<int64_t>(1, cfg.packSliceBytes / (nvMax * width * 4)));
    return ceilDiv(k, ceilDiv(k, kc)); // equal slices
  };
  const int64_t kcA = sliceLen(h), slicesA = ceilDiv(h, kcA);
  const int64_t kcB = sliceLen(inter), slicesB = ceilDiv(inter, kcB);
  Value tileOff, panelsX, panelsMid, panelsGate, panelsAcc;
  if (packing) {
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
    // Packing: panelsX[t, k, lane] = x[token(row), k], zero past the group.
    emitItems(b, loc, numGroups, 1, cfg.parallel, [&](OpBuilder &ib, Location l, Value g, Value) {
      auto [start, end] = groupRange(ib, l, g);
      Value tb = memref::LoadOp::create(ib, l, tileOff, ValueRange{g});
      Value te = memref::LoadOp::create(
          ib, l, tileOff, ValueRange{arith::AddIOp::create(ib, l, g, cIndex(ib, l, 1))});
      emitFor(ib, l, tb, te, [&](OpBuilder &tb2, Location tl, Value t) {
        Value p0 = arith::AddIOp::create(
            tb2, tl, start,
            arith::MulIOp::create(tb2, tl, arith::SubIOp::create(tb2, tl, t, tb), cIndex(tb2, tl, width)));
        // Whole width x width blocks: a row vector per lane (zero past the
        // group), transposed in registers, stored as the panel's k vectors.
        const int64_t mainK = llvm::isPowerOf2_64(width) ? h - h % width : 0;
        Value lastRow = arith::SubIOp::create(tb2, tl, end, cIndex(tb2, tl, 1));
        SmallVector<Value> toks, inside;
        for (int64_t lane = 0; lane < width; ++lane) {
          Value p = arith::AddIOp::create(tb2, tl, p0, cIndex(tb2, tl, lane));
          inside.push_back(arith::CmpIOp::create(tb2, tl, arith::CmpIPredicate::ult, p, end));
          toks.push_back(tokenOf(tb2, tl, arith::MinUIOp::create(tb2, tl, p, lastRow)));
        }
        Value zeroVec = arith::ConstantOp::create(
            tb2, tl, vecType, DenseElementsAttr::get(vecType, tb2.getF32FloatAttr(0.0f)));
        if (mainK > 0)
          scf::ForOp::create(
              tb2, tl, cIndex(tb2, tl, 0), cIndex(tb2, tl, mainK), cIndex(tb2, tl, width), ValueRange{},
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
          emitFor(tb2, tl, cIndex(tb2, tl, mainK), cIndex(tb2, tl, h), [&](OpBuilder &kb, Location kl, Value k) {
            for (int64_t lane = 0; lane < width; ++lane) {
              Value v = memref::LoadOp::create(kb, kl, ops.x, ValueRange{toks[lane], k});
              v = arith::SelectOp::create(kb, kl, inside[lane], v, cF32(kb, kl, 0.0f));
              memref::StoreOp::create(kb, kl, v, panelsX, ValueRange{t, k, cIndex(kb, kl, lane)});
            }
          });
      });
    });
  }

  // K slices of a packed phase: one static slice, or a loop over `slices`
  // slices of `kc` with run-time first/last flags (partial sums park in
  // panel buffers between slices).
  auto emitSlices = [&](OpBuilder &sb, Location sl, int64_t k, int64_t kc, int64_t slices,
                        function_ref<void(OpBuilder &, Location, Value, Value, Value, Value)> body) {
    if (slices == 1) {
      Value yes = arith::ConstantOp::create(sb, sl, sb.getBoolAttr(true));
      body(sb, sl, cIndex(sb, sl, 0), cIndex(sb, sl, k), yes, yes);
      return;
    }
    emitFor(sb, sl, cIndex(sb, sl, 0), cIndex(sb, sl, slices), [&](OpBuilder &lb, Location l, Value s) {
      Value k0 = arith::MulIOp::create(lb, l, s, cIndex(lb, l, kc));
      Value k1 = arith::MinUIOp::create(lb, l, arith::AddIOp::create(lb, l, k0, cIndex(lb, l, kc)),
                                        cIndex(lb, l, k));
      Value first = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq, s, cIndex(lb, l, 0));
      Value last = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq, s, cIndex(lb, l, slices - 1));
      body(lb, l, k0, k1, first, last);
    });
  };
  // `then` when the group is packed (tileOff[g] < tileOff[g + 1]), else
  // `otherwise`; just `otherwise` without packing.
  auto byLayout = [&](OpBuilder &ib, Location l, Value g,
                      function_ref<void(OpBuilder &, Location, Value, Value)> then,
                      function_ref<void(OpBuilder &, Location)> otherwise) {
    if (!packing)
      return otherwise(ib, l);
    Value tb = memref::LoadOp::create(ib, l, tileOff, ValueRange{g});
    Value te = memref::LoadOp::create(ib, l, tileOff,
                                      ValueRange{arith::AddIOp::create(ib, l, g, cIndex(ib, l, 1))});
    Value packed = arith::CmpIOp::create(ib, l, arith::CmpIPredicate::ult, tb, te);
    emitIfThenElse(
        ib, l, packed, [&](OpBuilder &tb2, Location tl) { then(tb2, tl, tb, te); }, otherwise);
  };

  // With packing on, only groups below pack-min-rows come here (decode,
  // bandwidth-bound): single rows when there are few, else one row-tile
  // body with the last tile's rows clamped (duplicates recompute and store
  // the same values) instead of remainder tiles; without packing,
  // remainder tiles as before.
  auto dotRows = [&](OpBuilder &db, Location dl, Value start, Value end,
                   function_ref<void(OpBuilder &, Location, Value, int64_t, SmallVector<Value>)> body) {
    if (!packing)
      return emitTiled(db, dl, start, end, mr, [&](OpBuilder &rb, Location rl, Value p0, int64_t rows) {
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
      return clampedTiles(db, dl);
    // A group of n < mr / 2 rows (decode: mostly 1) goes one row at a time:
    // a clamped tile would do mr / n times its FMAs and, worse, mr
    // horizontal reductions per weight row (DS-D 6.3 -> 3.2 ms with mr = 8
    // on AVX-512); a 1-row tile does one, with all accumulators on weights.
    Value n = arith::SubIOp::create(db, dl, end, start);
    Value few = arith::CmpIOp::create(
        db, dl, arith::CmpIPredicate::ult,
        arith::MulIOp::create(db, dl, n, cIndex(db, dl, 2)), cIndex(db, dl, mr));
    emitIfThenElse(
        db, dl, few,
        [&](OpBuilder &tb, Location tl) {
          emitFor(tb, tl, start, end, [&](OpBuilder &rb, Location rl, Value p) {
            body(rb, rl, p, 1, {p});
          });
        },
        clampedTiles);
  };
  // Phase A: mid[p, i] = act(w1[i] · x[t]) (* w3[i] · x[t]).
  const int64_t nrA = std::max<int64_t>(1, cfg.accumulators / (mr * matsA));
  const int64_t blockA =
      balancedBlock(inter, roundDown(cfg.blockBytes / (4 * h * matsA), nrA), nrA);
  const int64_t blocksA = (inter + blockA - 1) / blockA;
  const SmallVector<int64_t> extentsA{blockA, inter - (blocksA - 1) * blockA};
  // A weight-row tile never exceeds a block (PackedTile shifts the last).
  auto rowsAFor = [&](int64_t nv) { return std::min(rowsFor(matsA, nv), *llvm::min_element(extentsA)); };
  emitItems(b, loc, numGroups, blocksA, cfg.parallel,
            [&](OpBuilder &ib, Location l, Value g, Value blk) {
    auto [start, end] = groupRange(ib, l, g);
    Value i0 = arith::MulIOp::create(ib, l, blk, cIndex(ib, l, blockA));
    Value i1 = arith::MinUIOp::create(ib, l, arith::AddIOp::create(ib, l, i0, cIndex(ib, l, blockA)),
                                      cIndex(ib, l, inter));
    // Packed: panelsMid[t, i, :] for the group's panels t, rows i of the block.
    auto packedA = [&](OpBuilder &pb, Location pl, Value tb, Value te) {
      SmallVector<Value> mats{ops.w1};
      if (gated)
        mats.push_back(ops.w3);
      PackedKernel kernel{width, vecType, mats, prefixOf(g), panelsX};
      emitSlices(pb, pl, h, kcA, slicesA, [&](OpBuilder &sb, Location sl, Value k0, Value k1, Value first,
                                               Value last) {
        emitTileVariants(sb, sl, tb, te, [&](OpBuilder &vb, Location vl, int64_t nv) {
          emitPackedTiles(vb, vl, i0, i1, rowsAFor(nv), tb, te, nv, cfg.packRowsOuter,
                        [&](OpBuilder &cb, Location cl, const PackedTile &tile) {
            Value zero = cIndex(cb, cl, 0);
            const int64_t rows = tile.rowIds.size(), nv = tile.tiles.size();
            kernel.emit(
                cb, cl, tile.tiles, tile.rowIds, k0, k1, first, tile.prefetchNext,
                [&](OpBuilder &eb, Location el, int64_t m, Value t, Value row) -> Value {
                  return vector::LoadOp::create(eb, el, vecType, m == 0 ? panelsMid : panelsGate,
                                                ValueRange{t, row, zero});
                },
                [&](OpBuilder &fb, Location fl, ArrayRef<Value> accs) {
                  auto store = [&](OpBuilder &ob, Location ol, bool final) {
                    for (int64_t r = 0; r < rows; ++r)
                      for (int64_t v = 0; v < nv; ++v)
                        emitWhen2(ob, ol, tile.tileValid[v], slicesA > 1 ? tile.rowValid[r] : Value(),
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
                  };
                  if (slicesA == 1)
                    return store(fb, fl, true);
                  emitIfThenElse(
                      fb, fl, last, [&](OpBuilder &yb, Location yl) { store(yb, yl, true); },
                      [&](OpBuilder &nb, Location nl) { store(nb, nl, false); });
                });
        });
        });
      });
    };
    // Dot products: mid[p, i] for the group's rows p in tiles of `mr`.
    auto dotA = [&](OpBuilder &db, Location dl) {
    dotRows(db, dl, start, end, [&](OpBuilder &rb, Location rl, Value, int64_t rows, SmallVector<Value> ps) {
      SmallVector<RowRef> xRows;
      for (int64_t r = 0; r < rows; ++r)
        xRows.push_back({ops.x, {tokenOf(rb, rl, ps[r])}});
      int64_t nr = std::max<int64_t>(1, cfg.accumulators / (rows * matsA));
      nr = std::min(nr, nrA * std::max<int64_t>(1, mr / rows));
      emitTiled(rb, rl, i0, i1, nr, [&](OpBuilder &cb, Location cl, Value c0, int64_t cols) {
        SmallVector<RowRef> ws;
        SmallVector<Value> cs;
        for (int64_t j = 0; j < cols; ++j) {
          Value c = arith::AddIOp::create(cb, cl, c0, cIndex(cb, cl, j));
          cs.push_back(c);
          ws.push_back(weightRow(ops.w1, g, c));
          if (gated)
            ws.push_back(weightRow(ops.w3, g, c));
        }
        auto sums = emitDotTile(cb, cl, xRows, ws, h, width);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < cols; ++j) {
            Value v = emitActivation(cb, cl, ops.act, sums[r][j * matsA]);
            if (gated)
              v = arith::MulFOp::create(cb, cl, v, sums[r][j * matsA + 1]);
            memref::StoreOp::create(cb, cl, v, mid, ValueRange{ps[r], cs[j]});
          }
      }, extentsA);
    });
    };
    byLayout(ib, l, g, packedA, dotA);
  });

  // Phase B: out[p, c] = w2[c] · mid[p], over K slices of `kc` elements.
  const int64_t nrB = std::max<int64_t>(1, cfg.accumulators / mr);
  int64_t kc = std::max<int64_t>(width, cfg.sliceBytes / (4 * mr));
  const int64_t slices = (inter + kc - 1) / kc;
  kc = std::min(inter, ((inter + slices - 1) / slices + width - 1) / width * width);
  const int64_t fullSlices = inter / kc, tail = inter - fullSlices * kc;
  const int64_t blockB = balancedBlock(h, roundDown(cfg.blockBytes / (4 * kc), nrB), nrB);
  const int64_t blocksB = (h + blockB - 1) / blockB;
  const SmallVector<int64_t> extentsB{blockB, h - (blocksB - 1) * blockB};
  auto rowsBFor = [&](int64_t nv) { return std::min(rowsFor(1, nv), *llvm::min_element(extentsB)); };
  const int64_t rowsB = std::max(rowsBFor(nvNarrow), nvWide ? rowsBFor(nvWide) : 0);
  emitItems(b, loc, numGroups, blocksB, cfg.parallel,
            [&](OpBuilder &ib, Location l, Value g, Value blk) {
    auto [start, end] = groupRange(ib, l, g);
    Value c0 = arith::MulIOp::create(ib, l, blk, cIndex(ib, l, blockB));
    Value c1 = arith::MinUIOp::create(ib, l, arith::AddIOp::create(ib, l, c0, cIndex(ib, l, blockB)),
                                      cIndex(ib, l, h));
    // Packed: the accumulators are (w2 row, panel) vectors, lane = row p;
    // after the last K slice they go through a small stack buffer to
    // out[p, c], only for the lanes inside the group.
    auto packedB = [&](OpBuilder &pb, Location pl, Value tb, Value te) {
      // Parallel items each own a tmp, released per item by an alloca scope;
      // serial code shares one at the function entry (an alloca scope around
      // loops would not survive scf-to-cf unless outlining inlines it).
      // With power-of-two lanes and tiles of at most `width` rows, the
      // results go out transposed in registers (no tmp).
      const bool transposed = llvm::isPowerOf2_64(width) && rowsB <= width;
      auto tmpType = MemRefType::get({rowsB, nvMax * width}, f32);
      OpBuilder ab = pb;
      Value tmp;
      if (!transposed && cfg.parallel) {
        auto scope = memref::AllocaScopeOp::create(pb, pl, TypeRange{});
        Block *scopeBody = new Block();
        scope.getBodyRegion().push_back(scopeBody);
        ab = OpBuilder::atBlockEnd(scopeBody);
        tmp = memref::AllocaOp::create(ab, pl, tmpType, ValueRange{}, ab.getI64IntegerAttr(64));
      } else if (!transposed) {
        tmp = entryAlloca(inFunc, tmpType);
      }
      PackedKernel kernel{width, vecType, {ops.w2}, prefixOf(g), panelsMid};
      emitSlices(ab, pl, inter, kcB, slicesB, [&](OpBuilder &sb, Location sl, Value k0, Value k1,
                                                  Value first, Value last) {
        emitTileVariants(sb, sl, tb, te, [&](OpBuilder &vb, Location vl, int64_t nv) {
          emitPackedTiles(vb, vl, c0, c1, rowsBFor(nv), tb, te, nv, cfg.packRowsOuter,
                        [&](OpBuilder &cb, Location cl, const PackedTile &tile) {
            Value zero = cIndex(cb, cl, 0);
            const int64_t rows = tile.rowIds.size(), nv = tile.tiles.size();
            // Rows shared with the previous tile: their partial sums already
            // hold this slice when K is sliced; unsliced, they are exact.
            auto rowOk = [&](int64_t r) { return slicesB > 1 ? tile.rowValid[r] : Value(); };
            kernel.emit(
                cb, cl, tile.tiles, tile.rowIds, k0, k1, first, tile.prefetchNext,
                [&](OpBuilder &eb, Location el, int64_t, Value t, Value row) -> Value {
                  return vector::LoadOp::create(eb, el, vecType, panelsAcc, ValueRange{t, row, zero});
                },
                [&](OpBuilder &fb, Location fl, ArrayRef<Value> accs) {
                  // Lane = row p, accumulator r = column rowIds[r] (consecutive):
                  // transposed in registers, each row p's `rows` columns are one
                  // masked vector store to out[p, rowIds[0]], instead of
                  // rows x width scalar copies through `tmp` (38% of DS-P's
                  // phase B, whose K is only 256).
                  auto transposedStore = [&](OpBuilder &ob, Location ol) {
                    auto maskType = VectorType::get({width}, ob.getI1Type());
                    SmallVector<Value> lanes;
                    for (int64_t j = 0; j < width; ++j) {
                      Value ok = j < rows && rowOk(j) ? rowOk(j)
                                                      : arith::ConstantOp::create(ob, ol, ob.getBoolAttr(j < rows)).getResult();
                      lanes.push_back(ok);
                    }
                    Value mask = vector::FromElementsOp::create(ob, ol, maskType, lanes);
                    Value zeroVec = arith::ConstantOp::create(
                        ob, ol, vecType, DenseElementsAttr::get(vecType, ob.getF32FloatAttr(0.0f)));
                    for (int64_t v = 0; v < nv; ++v)
                      emitWhen(ob, ol, tile.tileValid[v], [&](OpBuilder &vb, Location vl) {
                        SmallVector<Value> rowVecs;
                        for (int64_t r = 0; r < width; ++r)
                          rowVecs.push_back(r < rows ? accs[r * nv + v] : zeroVec);
                        SmallVector<Value> perRow = transposeRows(vb, vl, rowVecs);
                        Value p0 = arith::AddIOp::create(
                            vb, vl, start,
                            arith::MulIOp::create(vb, vl, arith::SubIOp::create(vb, vl, tile.tiles[v], tb),
                                                  cIndex(vb, vl, width)));
                        for (int64_t j = 0; j < width; ++j) {
                          Value p = arith::AddIOp::create(vb, vl, p0, cIndex(vb, vl, j));
                          Value inside = arith::CmpIOp::create(vb, vl, arith::CmpIPredicate::ult, p, end);
                          emitWhen(vb, vl, inside, [&](OpBuilder &sb2, Location sl2) {
                            vector::MaskedStoreOp::create(sb2, sl2, ops.out, ValueRange{p, tile.rowIds[0]},
                                                          mask, perRow[j]);
                          });
                        }
                      });
                  };
                  auto scatter = [&](OpBuilder &ob, Location ol) {
                    if (transposed)
                      return transposedStore(ob, ol);
                    for (int64_t r = 0; r < rows; ++r)
                      for (int64_t v = 0; v < nv; ++v)
                        vector::StoreOp::create(ob, ol, accs[r * nv + v], tmp,
                                                ValueRange{cIndex(ob, ol, r), cIndex(ob, ol, v * width)});
                    for (int64_t v = 0; v < nv; ++v)
                      emitWhen(ob, ol, tile.tileValid[v], [&](OpBuilder &vb, Location vl) {
                        Value p0 = arith::AddIOp::create(
                            vb, vl, start,
                            arith::MulIOp::create(vb, vl, arith::SubIOp::create(vb, vl, tile.tiles[v], tb),
                                                  cIndex(vb, vl, width)));
                        Value n = arith::MinUIOp::create(vb, vl, arith::SubIOp::create(vb, vl, end, p0),
                                                         cIndex(vb, vl, width));
                        emitFor(vb, vl, cIndex(vb, vl, 0), n, [&](OpBuilder &lb, Location ll, Value lane) {
                          Value p = arith::AddIOp::create(lb, ll, p0, lane);
                          Value col = arith::AddIOp::create(lb, ll, lane, cIndex(lb, ll, v * width));
                          for (int64_t r = 0; r < rows; ++r)
                            emitWhen(lb, ll, rowOk(r), [&](OpBuilder &sb2, Location sl2) {
                              Value val = memref::LoadOp::create(sb2, sl2, tmp,
                                                                 ValueRange{cIndex(sb2, sl2, r), col});
                              memref::StoreOp::create(sb2, sl2, val, ops.out, ValueRange{p, tile.rowIds[r]});
                            });
                        });
                      });
                  };
                  if (slicesB == 1)
                    return scatter(fb, fl);
                  emitIfThenElse(
                      fb, fl, last, [&](OpBuilder &yb, Location yl) { scatter(yb, yl); },
                      [&](OpBuilder &nb, Location nl) {
                        for (int64_t r = 0; r < rows; ++r)
                          for (int64_t v = 0; v < nv; ++v)
                            emitWhen2(nb, nl, tile.tileValid[v], rowOk(r), [&](OpBuilder &wb, Location wl) {
                              vector::StoreOp::create(wb, wl, accs[r * nv + v], panelsAcc,
                                                      ValueRange{tile.tiles[v], tile.rowIds[r], zero});
                            });
                      });
                });
        });
        });
      });
      if (!transposed && cfg.parallel)
        memref::AllocaScopeReturnOp::create(ab, pl, ValueRange{});
    };
    // Dot products: one K slice [k0, k0 + len) of every row tile x column
    // group; the first slice stores, the others accumulate.
    // `first` (i1) stores the slice's sums, else adds them to out; all of a
    // tile's loads come before its stores, so clamped duplicate rows add
    // their (equal) sums once.
    auto slice = [&](OpBuilder &sb, Location sl, Value k0, int64_t len, Value first) {
      std::optional<int64_t> constFirst = getConstantIntValue(first);
      dotRows(sb, sl, start, end, [&](OpBuilder &rb, Location rl, Value, int64_t rows, SmallVector<Value> ps) {
        SmallVector<RowRef> midRows;
        for (int64_t r = 0; r < rows; ++r)
          midRows.push_back({mid, {ps[r]}});
        int64_t nr = std::max<int64_t>(1, cfg.accumulators / rows);
        nr = std::min(nr, nrB * std::max<int64_t>(1, mr / rows));
        emitTiled(rb, rl, c0, c1, nr, [&](OpBuilder &cb, Location cl, Value cStart, int64_t cols) {
          SmallVector<RowRef> ws;
          SmallVector<Value> cs;
          for (int64_t j = 0; j < cols; ++j) {
            Value c = arith::AddIOp::create(cb, cl, cStart, cIndex(cb, cl, j));
            cs.push_back(c);
            ws.push_back(weightRow(ops.w2, g, c));
          }
          auto sums = emitDotTile(cb, cl, midRows, ws, len, width, k0);
          SmallVector<Value> vals;
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j) {
              Value v = sums[r][j];
              if (!constFirst || !*constFirst) {
                Value sum = arith::AddFOp::create(
                    cb, cl, memref::LoadOp::create(cb, cl, ops.out, ValueRange{ps[r], cs[j]}), v);
                v = constFirst ? sum : Value(arith::SelectOp::create(cb, cl, first, v, sum));
              }
              vals.push_back(v);
            }
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j)
              memref::StoreOp::create(cb, cl, vals[r * cols + j], ops.out, ValueRange{ps[r], cs[j]});
        }, extentsB);
      });
    };
    auto dotB = [&](OpBuilder &db, Location dl) {
      auto flag = [&](OpBuilder &fb, Location fl, bool v) {
        return arith::ConstantOp::create(fb, fl, fb.getBoolAttr(v)).getResult();
      };
      if (fullSlices == 1)
        slice(db, dl, cIndex(db, dl, 0), kc, flag(db, dl, true));
      else
        emitFor(db, dl, cIndex(db, dl, 0), cIndex(db, dl, fullSlices), [&](OpBuilder &kb, Location kl, Value s) {
          Value first = arith::CmpIOp::create(kb, kl, arith::CmpIPredicate::eq, s, cIndex(kb, kl, 0));
          slice(kb, kl, arith::MulIOp::create(kb, kl, s, cIndex(kb, kl, kc)), kc, first);
        });
      if (tail > 0)
        slice(db, dl, cIndex(db, dl, fullSlices * kc), tail, flag(db, dl, false));
    };
    byLayout(ib, l, g, packedB, dotB);
  });
}
