//===- LowerGroupedExperts.cpp - ragged grouped GEMMs, activation fused ---===//
//
// For each expert, its rows offsets[e]..offsets[e+1] are processed in tiles of
// `row-tile` rows. Within a tile, every weight vector is loaded once and used
// against all the tile's token rows (the register block is row-tile x
// {w1, w3} vector accumulators). The activation and gate product are applied
// as the first GEMM's epilogue into a [row-tile, I] stack buffer, which the
// second GEMM reads: the [rows, I] intermediate never exists in memory.
// Weights stay [out, in] row-major, so both GEMMs reduce along contiguous
// memory; the tile height and vector width are pass options the pipeline
// derives from the target.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfn.h"
#include "LoweringUtils.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERGROUPEDEXPERTS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {

/// Everything one expert's FFN needs, as buffers plus the expert index
/// prefix (empty for the dense/base weights).
struct ExpertWeights {
  mdl::Activation act;
  Value w1, w3, w2;                // [.., I, H], [.., I, H], [.., H, I]
  SmallVector<Value> basePrefix;   // index into w1/w3/w2
  // LoRA adapters (null when absent): a [N, r, in], b [N, out, r].
  Value a1, b1, a3, b3, a2, b2;
  SmallVector<Value> adapterPrefix;
  float scale = 0.0f;              // alpha / r
  // LoRA: the frozen base up-projections of every token, [T, I] (null for
  // FFN experts, which compute theirs per tile).
  Value base1, base3;
  int64_t h = 0, inter = 0, rank = 0;
};

struct Kernel {
  int64_t width;
  int64_t rowTile;
  Value mid;    // [rowTile, I] stack buffer: the fused activation output
  Value low;    // [rowTile, r] stack buffer: LoRA down-projection (or null)

  /// out[outRow(p)] = FFN(x[token(p)]) for the `tile` rows starting at p0.
  void emitTile(OpBuilder &b, Location loc, const ExpertWeights &ew, Value x,
                Value out, int64_t tile, Value p0,
                function_ref<Value(OpBuilder &, Location, Value)> tokenOf) {
    SmallVector<Value> tokens, outRows;
    for (int64_t r = 0; r < tile; ++r) {
      Value p = arith::AddIOp::create(b, loc, p0, cIndex(b, loc, r));
      outRows.push_back(p);
      tokens.push_back(tokenOf(b, loc, p));
    }
    SmallVector<RowRef> xRows;
    for (Value t : tokens)
      xRows.push_back({x, {t}});
    bool gated = ew.w3 != nullptr;

    // LoRA: low[r, q] = a[q] · v_r, then the projection adds scale * b[i] · low[r].
    auto lowProject = [&](OpBuilder &lb, Location l, Value a, ArrayRef<RowRef> vRows,
                          int64_t len) {
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, ew.rank), [&](OpBuilder &b2, Location l2, Value q) {
        SmallVector<Value> aIdx(ew.adapterPrefix);
        aIdx.push_back(q);
        auto sums = emitDotTile(b2, l2, vRows, {RowRef{a, aIdx}}, len, width);
        for (int64_t r = 0; r < tile; ++r)
          memref::StoreOp::create(b2, l2, sums[r][0], low, ValueRange{cIndex(b2, l2, r), q});
      });
    };
    auto addAdapter = [&](OpBuilder &lb, Location l, Value bAd, Value row,
                          SmallVector<Value> &vals) {
      SmallVector<Value> bIdx(ew.adapterPrefix);
      bIdx.push_back(row);
      SmallVector<RowRef> lowRows;
      for (int64_t r = 0; r < tile; ++r)
        lowRows.push_back({low, {cIndex(lb, l, r)}});
      auto sums = emitDotTile(lb, l, lowRows, {RowRef{bAd, bIdx}}, ew.rank, width);
      for (int64_t r = 0; r < tile; ++r)
        vals[r] = math::FmaOp::create(lb, l, cF32(lb, l, ew.scale), sums[r][0], vals[r]);
    };

    // The base up-projections w1 · x and w3 · x of the tile's rows: for LoRA
    // banks they were computed once per token (base1/base3) before the expert
    // loop; for FFN experts they are this tile's GEMM.
    auto upProjections = [&](OpBuilder &lb, Location l, Value i, bool want1, bool want3) {
      std::pair<SmallVector<Value>, SmallVector<Value>> res;
      if (ew.base1) {
        for (int64_t r = 0; r < tile; ++r) {
          if (want1)
            res.first.push_back(memref::LoadOp::create(lb, l, ew.base1, ValueRange{tokens[r], i}));
          if (want3)
            res.second.push_back(memref::LoadOp::create(lb, l, ew.base3, ValueRange{tokens[r], i}));
        }
        return res;
      }
      SmallVector<Value> idx(ew.basePrefix);
      idx.push_back(i);
      SmallVector<RowRef> ws;
      if (want1)
        ws.push_back(RowRef{ew.w1, idx});
      if (want3)
        ws.push_back(RowRef{ew.w3, idx});
      auto sums = emitDotTile(lb, l, xRows, ws, ew.h, width);
      for (int64_t r = 0; r < tile; ++r) {
        if (want1)
          res.first.push_back(sums[r][0]);
        if (want3)
          res.second.push_back(sums[r][want1 ? 1 : 0]);
      }
      return res;
    };

    // With a LoRA adapter on w3 the two projections need different low-rank
    // products, so the gate projection runs first, parked in `mid`, and the
    // w1 pass below multiplies it in.
    bool loraGate = gated && ew.a3;
    if (loraGate) {
      lowProject(b, loc, ew.a3, xRows, ew.h);
      emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, ew.inter), [&](OpBuilder &lb, Location l, Value i) {
        SmallVector<Value> vals = upProjections(lb, l, i, false, true).second;
        addAdapter(lb, l, ew.b3, i, vals);
        for (int64_t r = 0; r < tile; ++r)
          memref::StoreOp::create(lb, l, vals[r], mid, ValueRange{cIndex(lb, l, r), i});
      });
    }
    if (ew.a1)
      lowProject(b, loc, ew.a1, xRows, ew.h);
    // GEMM 1 with the activation (and gate) epilogue: mid[r, i].
    emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, ew.inter), [&](OpBuilder &lb, Location l, Value i) {
      auto [up, gate] = upProjections(lb, l, i, true, gated && !loraGate);
      if (ew.a1)
        addAdapter(lb, l, ew.b1, i, up);
      for (int64_t r = 0; r < tile; ++r) {
        Value v = emitActivation(lb, l, ew.act, up[r]);
        if (gated) {
          Value g = loraGate ? Value(memref::LoadOp::create(lb, l, mid, ValueRange{cIndex(lb, l, r), i}))
                             : gate[r];
          v = arith::MulFOp::create(lb, l, v, g);
        }
        memref::StoreOp::create(lb, l, v, mid, ValueRange{cIndex(lb, l, r), i});
      }
    });

    // GEMM 2: out[row, c] = w2[c] · mid[r] (+ LoRA on w2).
    SmallVector<RowRef> midRows;
    for (int64_t r = 0; r < tile; ++r)
      midRows.push_back({mid, {cIndex(b, loc, r)}});
    if (ew.a2)
      lowProject(b, loc, ew.a2, midRows, ew.inter);
    emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, ew.h), [&](OpBuilder &lb, Location l, Value c) {
      SmallVector<Value> idx(ew.basePrefix);
      idx.push_back(c);
      auto sums = emitDotTile(lb, l, midRows, {RowRef{ew.w2, idx}}, ew.inter, width);
      SmallVector<Value> vals;
      for (int64_t r = 0; r < tile; ++r)
        vals.push_back(sums[r][0]);
      if (ew.a2)
        addAdapter(lb, l, ew.b2, c, vals);
      for (int64_t r = 0; r < tile; ++r)
        memref::StoreOp::create(lb, l, vals[r], out, ValueRange{outRows[r], c});
    });
  }

  /// out[t, i] = w[i] · x[t] for every token: the LoRA base projections,
  /// computed once per token rather than once per (token, expert) pair.
  /// Work items are tiles of `rowTile` tokens (marked for the pool).
  void emitDenseProjection(OpBuilder &b, Location loc, Value x, Value w, Value out,
                           int64_t h, int64_t inter, bool parallel) {
    Value t = dimOf(b, loc, x, 0), rt = cIndex(b, loc, rowTile);
    Value items = arith::CeilDivUIOp::create(b, loc, t, rt);
    auto loop = scf::ForOp::create(
        b, loc, cIndex(b, loc, 0), items, cIndex(b, loc, 1), ValueRange{},
        [&](OpBuilder &lb, Location l, Value item, ValueRange) {
          Value start = arith::MulIOp::create(lb, l, item, rt);
          Value end = arith::MinUIOp::create(lb, l, arith::AddIOp::create(lb, l, start, rt), t);
          auto rows = [&](OpBuilder &ob, Location ol, Value first, int64_t n) {
            SmallVector<RowRef> refs;
            SmallVector<Value> toks;
            for (int64_t r = 0; r < n; ++r) {
              Value tok = arith::AddIOp::create(ob, ol, first, cIndex(ob, ol, r));
              toks.push_back(tok);
              refs.push_back({x, {tok}});
            }
            emitFor(ob, ol, cIndex(ob, ol, 0), cIndex(ob, ol, inter), [&](OpBuilder &b2, Location l2, Value i) {
              auto sums = emitDotTile(b2, l2, refs, {RowRef{w, {i}}}, h, width);
              for (int64_t r = 0; r < n; ++r)
                memref::StoreOp::create(b2, l2, sums[r][0], out, ValueRange{toks[r], i});
            });
          };
          Value full = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq,
                                             arith::SubIOp::create(lb, l, end, start), rt);
          scf::IfOp::create(
              lb, l, full,
              [&](OpBuilder &tb, Location tl) {
                rows(tb, tl, start, rowTile);
                scf::YieldOp::create(tb, tl);
              },
              [&](OpBuilder &eb, Location el) {
                emitFor(eb, el, start, end, [&](OpBuilder &b3, Location l3, Value p) { rows(b3, l3, p, 1); });
                scf::YieldOp::create(eb, el);
              });
          scf::YieldOp::create(lb, l);
        });
    if (parallel)
      markThreadPoolLoop(loop);
  }

  /// Every group's rows in tiles of `rowTile` rows: work item i is one tile
  /// of one group (expert), so the items are balanced even when the routing
  /// is skewed. With `parallel` the loop over items is marked `moe.parallel`
  /// (moe-outline-parallel hands it to the runtime's thread pool) and each
  /// item gets its own scratch buffers.
  void emitTiles(OpBuilder &b, Location loc, const ExpertWeights &ew, Value x, Value out,
                 int64_t numGroups, bool parallel, bool prefixIsAdapter, Operation *anchor,
                 function_ref<std::pair<Value, Value>(OpBuilder &, Location, Value)> groupRange,
                 function_ref<Value(OpBuilder &, Location, Value)> tokenOf) {
    Value tileOff = entryAlloca(anchor, MemRefType::get({numGroups + 1}, b.getIndexType()));
    Value rt = cIndex(b, loc, rowTile);
    memref::StoreOp::create(b, loc, cIndex(b, loc, 0), tileOff, ValueRange{cIndex(b, loc, 0)});
    emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, numGroups), [&](OpBuilder &lb, Location l, Value g) {
      auto [start, end] = groupRange(lb, l, g);
      Value rows = arith::SubIOp::create(lb, l, end, start);
      Value tiles = arith::CeilDivUIOp::create(lb, l, rows, rt);
      Value prev = memref::LoadOp::create(lb, l, tileOff, ValueRange{g});
      memref::StoreOp::create(lb, l, arith::AddIOp::create(lb, l, prev, tiles), tileOff,
                              ValueRange{arith::AddIOp::create(lb, l, g, cIndex(lb, l, 1))});
    });
    Value total = memref::LoadOp::create(b, loc, tileOff, ValueRange{cIndex(b, loc, numGroups)});
    Value sharedMid = mid, sharedLow = low;
    auto loop = scf::ForOp::create(
        b, loc, cIndex(b, loc, 0), total, cIndex(b, loc, 1), ValueRange{},
        [&](OpBuilder &outer, Location l, Value item, ValueRange) {
          // Parallel items get their own scratch, in an alloca scope so it is
          // released every iteration even if the loop is not outlined.
          OpBuilder lb = outer;
          if (parallel) {
            auto scope = memref::AllocaScopeOp::create(outer, l, TypeRange{});
            Block *scopeBody = new Block();
            scope.getBodyRegion().push_back(scopeBody);
            lb = OpBuilder::atBlockEnd(scopeBody);
          }
          if (parallel) {
            mid = memref::AllocaOp::create(lb, l, cast<MemRefType>(sharedMid.getType()));
            if (sharedLow)
              low = memref::AllocaOp::create(lb, l, cast<MemRefType>(sharedLow.getType()));
          }
          // The group of this item: how many groups end at or before it.
          Value g = emitForWithArgs(
              lb, l, cIndex(lb, l, 0), cIndex(lb, l, numGroups), ValueRange{cIndex(lb, l, 0)},
              [&](OpBuilder &b2, Location l2, Value n, ValueRange acc) -> SmallVector<Value> {
                Value endTile = memref::LoadOp::create(
                    b2, l2, tileOff, ValueRange{arith::AddIOp::create(b2, l2, n, cIndex(b2, l2, 1))});
                Value before = arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::ule, endTile, item);
                return {arith::AddIOp::create(
                    b2, l2, acc[0],
                    arith::SelectOp::create(b2, l2, before, cIndex(b2, l2, 1), cIndex(b2, l2, 0)))};
              })[0];
          auto [gStart, gEnd] = groupRange(lb, l, g);
          Value first = memref::LoadOp::create(lb, l, tileOff, ValueRange{g});
          Value start = arith::AddIOp::create(
              lb, l, gStart,
              arith::MulIOp::create(lb, l, arith::SubIOp::create(lb, l, item, first), rt));
          Value end = arith::MinUIOp::create(lb, l, arith::AddIOp::create(lb, l, start, rt), gEnd);
          ExpertWeights e = ew;
          if (numGroups > 1 || !ew.basePrefix.empty() || !ew.adapterPrefix.empty()) {
            if (prefixIsAdapter)
              e.adapterPrefix = {g};
            else
              e.basePrefix = {g};
          }
          Value full = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq,
                                             arith::SubIOp::create(lb, l, end, start), rt);
          scf::IfOp::create(
              lb, l, full,
              [&](OpBuilder &tb, Location tl) {
                emitTile(tb, tl, e, x, out, rowTile, start, tokenOf);
                scf::YieldOp::create(tb, tl);
              },
              [&](OpBuilder &eb, Location el) {
                emitFor(eb, el, start, end, [&](OpBuilder &b3, Location l3, Value p) {
                  emitTile(b3, l3, e, x, out, 1, p, tokenOf);
                });
                scf::YieldOp::create(eb, el);
              });
          if (parallel)
            memref::AllocaScopeReturnOp::create(lb, l, ValueRange{});
          scf::YieldOp::create(outer, l);
        });
    mid = sharedMid;
    low = sharedLow;
    if (parallel)
      markThreadPoolLoop(loop);
  }
};

struct LowerGroupedExpertsPass
    : public mlir::moe::impl::MoeLowerGroupedExpertsBase<LowerGroupedExpertsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<mdl::GroupedFfnOp, mdl::GroupedLoraOp, mdl::FfnOp, tensor::EmptyOp>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      Value result;
      if (auto empty = dyn_cast<tensor::EmptyOp>(op)) {
        result = allocFor(b, loc, empty.getType(), empty.getDynamicSizes());
      } else {
        result = lower(b, op);
        if (isa<mdl::FfnOp>(op))
          ++numDenseFfns;
        else
          ++numGroupedOps;
      }
      op->getResult(0).replaceAllUsesWith(asTensor(b, loc, result, op->getResult(0).getType()));
      op->erase();
    }
  }

  BlockedFfnConfig blockedConfig() {
    BlockedFfnConfig cfg;
    cfg.width = resolveVectorWidth(vectorWidth);
    cfg.rowTile = resolveRowTile(rowTile);
    // Accumulators: three quarters of the vector registers (16 with AVX2,
    // 32 with AVX-512), the rest hold the loaded operands.
    cfg.accumulators = cfg.width >= 16 ? 24 : 12;
    cfg.parallel = parallel;
    if (blockBytes > 0)
      cfg.blockBytes = blockBytes;
    if (sliceBytes > 0)
      cfg.sliceBytes = sliceBytes;
    // The packed kernel pads each expert's rows to panels of `width`: from
    // half a panel on, it does more useful FMAs per loaded weight than the
    // dot-product blocks; below that (decode) the dot products' full-width
    // weight loads win.
    cfg.packMinRows = packMinRows >= 0 ? packMinRows : cfg.width / 2;
    cfg.packTiles = packTiles > 0 ? packTiles : 2;
    // With 24 accumulators a 3-panel tile (4 + 4 rows in phase A, 8 in B)
    // beats 2 panels x 6 + 6 rows on large experts (fewer weight rows in
    // flight share the L1 sets a 4 KiB row stride maps them to: MIX-P 6 %
    // faster) but pads small ones (QW-P's 2-panel experts 5 % slower), so
    // both bodies are emitted and each expert takes the cheaper.
    cfg.packTilesWide = packTiles <= 0 && cfg.accumulators >= 24 ? 3 : 0;
    if (packSliceBytes > 0)
      cfg.packSliceBytes = packSliceBytes;
    cfg.packRowsOuter = packRowsOuter;
    return cfg;
  }

  Kernel makeKernel(Operation *op, int64_t inter, int64_t rank) {
    int64_t tile = resolveRowTile(rowTile);
    Kernel k{resolveVectorWidth(vectorWidth), tile, Value(), Value()};
    k.mid = entryAlloca(op, MemRefType::get({tile, inter}, Float32Type::get(op->getContext())));
    if (rank > 0)
      k.low = entryAlloca(op, MemRefType::get({tile, rank}, Float32Type::get(op->getContext())));
    return k;
  }

  Value lower(OpBuilder &b, Operation *op) {
    Location loc = op->getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };

    if (auto ffn = dyn_cast<mdl::FfnOp>(op)) {
      Value x = buf(ffn.getHidden());
      Value t = dimOf(b, loc, x, 0);
      SmallVector<Value> dyn;
      if (cast<ShapedType>(ffn.getType()).isDynamicDim(0))
        dyn.push_back(t);
      Value out = allocFor(b, loc, ffn.getType(), dyn);
      BlockedFfnOperands ops;
      ops.act = ffn.getActivation();
      ops.x = x;
      ops.w1 = buf(ffn.getW1());
      ops.w3 = buf(ffn.getW3());
      ops.w2 = buf(ffn.getW2());
      ops.perGroupWeights = false;
      ops.out = out;
      ops.numRows = t;
      ops.h = cast<ShapedType>(x.getType()).getDimSize(1);
      ops.inter = cast<ShapedType>(ops.w1.getType()).getDimSize(0);
      emitBlockedFfn(
          b, loc, blockedConfig(), ops,
          [&](OpBuilder &lb, Location l, Value) {
            return std::make_pair(cIndex(lb, l, 0), dimOf(lb, l, x, 0));
          },
          [](OpBuilder &, Location, Value p) { return p; });
      return out;
    }

    // Grouped: loop over the bank's experts, each over its ragged rows.
    Value x, rows, offsets, out;
    int64_t count, first;
    ExpertWeights ew;
    bool lora = false;
    if (auto g = dyn_cast<mdl::GroupedFfnOp>(op)) {
      x = buf(g.getHidden());
      rows = buf(g.getRows());
      offsets = buf(g.getOffsets());
      out = buf(g.getAcc());
      ew.act = g.getActivation();
      ew.w1 = buf(g.getW1());
      ew.w3 = buf(g.getW3());
      ew.w2 = buf(g.getW2());
      count = cast<ShapedType>(ew.w1.getType()).getDimSize(0);
      ew.inter = cast<ShapedType>(ew.w1.getType()).getDimSize(1);
      first = g.getFirstExpert();
    } else {
      auto lg = cast<mdl::GroupedLoraOp>(op);
      lora = true;
      x = buf(lg.getHidden());
      rows = buf(lg.getRows());
      offsets = buf(lg.getOffsets());
      out = buf(lg.getAcc());
      ew.act = lg.getActivation();
      ew.w1 = buf(lg.getW1());
      ew.w3 = buf(lg.getW3());
      ew.w2 = buf(lg.getW2());
      ew.a1 = buf(lg.getA1());
      ew.b1 = buf(lg.getB1());
      ew.a3 = buf(lg.getA3());
      ew.b3 = buf(lg.getB3());
      ew.a2 = buf(lg.getA2());
      ew.b2 = buf(lg.getB2());
      count = cast<ShapedType>(ew.a1.getType()).getDimSize(0);
      ew.rank = cast<ShapedType>(ew.a1.getType()).getDimSize(1);
      ew.inter = cast<ShapedType>(ew.w1.getType()).getDimSize(0);
      ew.scale = lg.getAlpha().convertToFloat() / float(ew.rank);
      first = lg.getFirstExpert();
    }
    ew.h = cast<ShapedType>(x.getType()).getDimSize(1);
    auto groupRange = [&](OpBuilder &lb, Location l, Value n) {
      Value id = arith::AddIOp::create(lb, l, n, cIndex(lb, l, first));
      Value start = toIndex(lb, l, memref::LoadOp::create(lb, l, offsets, ValueRange{id}));
      Value end = toIndex(
          lb, l,
          memref::LoadOp::create(lb, l, offsets,
                                 ValueRange{arith::AddIOp::create(lb, l, id, cIndex(lb, l, 1))}));
      return std::make_pair(start, end);
    };
    auto tokenOf = [&](OpBuilder &b2, Location l2, Value p) {
      return toIndex(b2, l2, memref::LoadOp::create(b2, l2, rows, ValueRange{p}));
    };
    if (!lora) {
      BlockedFfnOperands ops;
      ops.act = ew.act;
      ops.x = x;
      ops.w1 = ew.w1;
      ops.w3 = ew.w3;
      ops.w2 = ew.w2;
      ops.out = out;
      ops.numRows = dimOf(b, loc, rows, 0);
      ops.numGroups = count;
      ops.h = ew.h;
      ops.inter = ew.inter;
      emitBlockedFfn(b, loc, blockedConfig(), ops, groupRange, tokenOf);
      return out;
    }
    Kernel k = makeKernel(op, ew.inter, ew.rank);
    if (lora) {
      // The frozen base's up-projections, once per token for all experts.
      Value t = dimOf(b, loc, x, 0);
      auto baseType = MemRefType::get({ShapedType::kDynamic, ew.inter}, b.getF32Type());
      ew.base1 = memref::AllocOp::create(b, loc, baseType, ValueRange{t}, b.getI64IntegerAttr(64));
      k.emitDenseProjection(b, loc, x, ew.w1, ew.base1, ew.h, ew.inter, parallel);
      if (ew.w3) {
        ew.base3 = memref::AllocOp::create(b, loc, baseType, ValueRange{t}, b.getI64IntegerAttr(64));
        k.emitDenseProjection(b, loc, x, ew.w3, ew.base3, ew.h, ew.inter, parallel);
      }
    }
    // Mark the prefix kind: per-expert base weights (FFN) or adapters (LoRA).
    if (lora)
      ew.adapterPrefix = {cIndex(b, loc, 0)};
    else
      ew.basePrefix = {cIndex(b, loc, 0)};
    k.emitTiles(b, loc, ew, x, out, count, parallel, lora, op, groupRange, tokenOf);
    return out;
  }
};
} // namespace
