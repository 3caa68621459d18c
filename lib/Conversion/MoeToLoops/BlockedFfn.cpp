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

#include "BlockedFfn.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

namespace {

/// `for (i = lb; i + step <= ub; i += step) body(i)` then, for the rest,
/// tiles of decreasing powers of two below `step`: body gets (start, size).
void emitTiled(OpBuilder &b, Location loc, Value lb, Value ub, int64_t step,
               function_ref<void(OpBuilder &, Location, Value, int64_t)> body) {
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
  for (; pow >= 1; pow /= 2) {
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

/// The work-item loop: `for item < groups * blocks`, (group, block) =
/// divmod(item, blocks), marked for the pool when `parallel`.
void emitItems(OpBuilder &b, Location loc, int64_t groups, int64_t blocks, bool parallel,
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
    loop->setAttr("moe.parallel", UnitAttr::get(b.getContext()));
}

int64_t roundDown(int64_t v, int64_t m) { return std::max(m, v - v % m); }

} // namespace

void mlir::moe::lowering::emitBlockedFfn(
    OpBuilder &b, Location loc, const BlockedFfnConfig &cfg, const BlockedFfnOperands &ops,
    function_ref<std::pair<Value, Value>(OpBuilder &, Location, Value)> groupRange,
    function_ref<Value(OpBuilder &, Location, Value)> tokenOf) {
  const bool gated = ops.w3 != nullptr;
  const int64_t h = ops.h, inter = ops.inter, mr = cfg.rowTile, width = cfg.width;
  auto prefixOf = [&](Value g) {
    return ops.perGroupWeights ? SmallVector<Value>{g} : SmallVector<Value>{};
  };
  auto weightRow = [&](Value w, Value g, Value row) {
    SmallVector<Value> idx = prefixOf(g);
    idx.push_back(row);
    return RowRef{w, idx};
  };

  // The intermediate, at the function level (moe-finalize-buffers frees it).
  auto midType = MemRefType::get({ShapedType::kDynamic, inter}, b.getF32Type());
  Value mid = memref::AllocOp::create(b, loc, midType, ValueRange{ops.numRows},
                                      b.getI64IntegerAttr(64));

  // Phase A: mid[p, i] = act(w1[i] · x[t]) (* w3[i] · x[t]).
  const int64_t matsA = gated ? 2 : 1;
  const int64_t nrA = std::max<int64_t>(1, cfg.accumulators / (mr * matsA));
  const int64_t blockA =
      std::min(inter, roundDown(cfg.blockBytes / (4 * h * matsA), nrA));
  const int64_t blocksA = (inter + blockA - 1) / blockA;
  emitItems(b, loc, ops.numGroups, blocksA, cfg.parallel,
            [&](OpBuilder &ib, Location l, Value g, Value blk) {
    auto [start, end] = groupRange(ib, l, g);
    Value i0 = arith::MulIOp::create(ib, l, blk, cIndex(ib, l, blockA));
    Value i1 = arith::MinUIOp::create(ib, l, arith::AddIOp::create(ib, l, i0, cIndex(ib, l, blockA)),
                                      cIndex(ib, l, inter));
    emitTiled(ib, l, start, end, mr, [&](OpBuilder &rb, Location rl, Value p0, int64_t rows) {
      SmallVector<RowRef> xRows;
      SmallVector<Value> ps;
      for (int64_t r = 0; r < rows; ++r) {
        Value p = arith::AddIOp::create(rb, rl, p0, cIndex(rb, rl, r));
        ps.push_back(p);
        xRows.push_back({ops.x, {tokenOf(rb, rl, p)}});
      }
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
      });
    });
  });

  // Phase B: out[p, c] = w2[c] · mid[p], over K slices of `kc` elements.
  const int64_t nrB = std::max<int64_t>(1, cfg.accumulators / mr);
  int64_t kc = std::max<int64_t>(width, cfg.sliceBytes / (4 * mr));
  const int64_t slices = (inter + kc - 1) / kc;
  kc = std::min(inter, ((inter + slices - 1) / slices + width - 1) / width * width);
  const int64_t fullSlices = inter / kc, tail = inter - fullSlices * kc;
  const int64_t blockB = std::min(h, roundDown(cfg.blockBytes / (4 * kc), nrB));
  const int64_t blocksB = (h + blockB - 1) / blockB;
  emitItems(b, loc, ops.numGroups, blocksB, cfg.parallel,
            [&](OpBuilder &ib, Location l, Value g, Value blk) {
    auto [start, end] = groupRange(ib, l, g);
    Value c0 = arith::MulIOp::create(ib, l, blk, cIndex(ib, l, blockB));
    Value c1 = arith::MinUIOp::create(ib, l, arith::AddIOp::create(ib, l, c0, cIndex(ib, l, blockB)),
                                      cIndex(ib, l, h));
    // One K slice [k0, k0 + len) of every row tile x column group; the
    // first slice stores, the others accumulate.
    auto slice = [&](OpBuilder &sb, Location sl, Value k0, int64_t len, bool first) {
      emitTiled(sb, sl, start, end, mr, [&](OpBuilder &rb, Location rl, Value p0, int64_t rows) {
        SmallVector<RowRef> midRows;
        SmallVector<Value> ps;
        for (int64_t r = 0; r < rows; ++r) {
          Value p = arith::AddIOp::create(rb, rl, p0, cIndex(rb, rl, r));
          ps.push_back(p);
          midRows.push_back({mid, {p}});
        }
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
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < cols; ++j) {
              Value v = sums[r][j];
              if (!first)
                v = arith::AddFOp::create(
                    cb, cl, memref::LoadOp::create(cb, cl, ops.out, ValueRange{ps[r], cs[j]}), v);
              memref::StoreOp::create(cb, cl, v, ops.out, ValueRange{ps[r], cs[j]});
            }
        });
      });
    };
    slice(ib, l, cIndex(ib, l, 0), kc, true);
    if (fullSlices > 1)
      emitFor(ib, l, cIndex(ib, l, 1), cIndex(ib, l, fullSlices), [&](OpBuilder &kb, Location kl, Value s) {
        slice(kb, kl, arith::MulIOp::create(kb, kl, s, cIndex(kb, kl, kc)), kc, false);
      });
    if (tail > 0)
      slice(ib, l, cIndex(ib, l, fullSlices * kc), tail, false);
  });
}
