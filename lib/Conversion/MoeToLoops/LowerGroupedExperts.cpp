//===- LowerGroupedExperts.cpp - grouped FFN/LoRA experts, dense FFNs -----===//
//
// FFN experts (moe.grouped_ffn) and dense FFNs (moe.ffn) are emitted by
// emitBlockedFfn (BlockedFfn.cpp): two cache-blocked GEMM phases over
// (expert, output block) work items, packed outer-product or dot-product
// register blocks. This file's patterns (one per op kind,
// populateMoeLowerGroupedExpertsPatterns) gather their operands;
// blockedConfig turns the pass's options into a BlockedFfnConfig.
//
// LoRA experts (moe.grouped_lora) share one frozen base. Its up-projections
// w1 · x (and w3 · x) are computed once per token into [T, I] buffers before
// the expert loop. Each work item is then one tile of `row-tile` rows of one
// expert: it adds the expert's rank-r adapter products to the tile's base
// projections, applies the activation and gate product into a [row-tile, I]
// stack buffer, and runs the down projection w2 (plus its adapter) from that
// buffer, so the [rows, I] intermediate never exists in memory.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfn.h"
#include "QuantizedFfn.h"
#include "LoweringUtils.h"
#include "moe/Conversion/MoeToLoops/Patterns.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERGROUPEDEXPERTS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {

/// A bank of LoRA experts as buffers: the shared frozen base, the experts'
/// adapters, and the base up-projections of every token.
struct LoraOperands {
  mdl::Activation act;
  Value w1, w3, w2;                // [I, H], [I, H] (null when not gated), [H, I]
  // Adapters (a3/b3 null when absent): a [N, r, in], b [N, out, r].
  Value a1, b1, a3, b3, a2, b2;
  SmallVector<Value> adapterPrefix; // the expert: index into the adapters
  float scale = 0.0f;              // alpha / r
  // w1 · x and w3 · x of every token, [T, I] (base3 null when not gated).
  Value base1, base3;
  int64_t h = 0, inter = 0, rank = 0;
};

/// The LoRA expert kernel: per-(expert, row tile) items over the base
/// projections, with the tile's scratch buffers.
struct LoraKernel {
  int64_t width;
  int64_t rowTile;
  Value mid;    // [rowTile, I] stack buffer: the fused activation output
  Value low;    // [rowTile, r] stack buffer: LoRA down-projection (or null)

  /// out[outRow(p)] = FFN(x[token(p)]) for the `tile` rows starting at p0.
  void emitTile(OpBuilder &b, Location loc, const LoraOperands &ew, Value x,
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

    // The base up-projections w1 · x and w3 · x of the tile's rows, element
    // i: computed once per token (base1/base3) before the expert loop.
    auto upProjections = [&](OpBuilder &lb, Location l, Value i, bool want1, bool want3) {
      std::pair<SmallVector<Value>, SmallVector<Value>> res;
      for (int64_t r = 0; r < tile; ++r) {
        if (want1)
          res.first.push_back(memref::LoadOp::create(lb, l, ew.base1, ValueRange{tokens[r], i}));
        if (want3)
          res.second.push_back(memref::LoadOp::create(lb, l, ew.base3, ValueRange{tokens[r], i}));
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
      auto sums = emitDotTile(lb, l, midRows, {RowRef{ew.w2, {c}}}, ew.inter, width);
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
  void emitTiles(OpBuilder &b, Location loc, const LoraOperands &ew, Value x, Value out,
                 int64_t numGroups, bool parallel, Operation *anchor,
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
          std::optional<OpBuilder::InsertionGuard> inScope;
          if (parallel) {
            auto scope = memref::AllocaScopeOp::create(outer, l, TypeRange{});
            inScope.emplace(outer);
            outer.createBlock(&scope.getBodyRegion());
          }
          OpBuilder &lb = outer;
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
          LoraOperands e = ew;
          e.adapterPrefix = {g};
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
          if (parallel) {
            memref::AllocaScopeReturnOp::create(lb, l, ValueRange{});
            inScope.reset();
          }
          scf::YieldOp::create(outer, l);
        });
    mid = sharedMid;
    low = sharedLow;
    if (parallel)
      markThreadPoolLoop(loop);
  }
};

/// The sorted rows [start, end) of group n, i.e. of global expert
/// first + n: offsets[first + n] .. offsets[first + n + 1].
std::pair<Value, Value> groupRowRange(OpBuilder &b, Location loc, Value offsets, int64_t first,
                                      Value n) {
  Value id = arith::AddIOp::create(b, loc, n, cIndex(b, loc, first));
  Value start = toIndex(b, loc, memref::LoadOp::create(b, loc, offsets, ValueRange{id}));
  Value end = toIndex(
      b, loc,
      memref::LoadOp::create(b, loc, offsets,
                             ValueRange{arith::AddIOp::create(b, loc, id, cIndex(b, loc, 1))}));
  return std::make_pair(start, end);
}

/// The token whose hidden state is sorted row p.
Value tokenOfRow(OpBuilder &b, Location loc, Value rows, Value p) {
  return toIndex(b, loc, memref::LoadOp::create(b, loc, rows, ValueRange{p}));
}

/// The blocked FFN kernel's configuration from the pass options, with the
/// host-derived values resolved.
BlockedFfnConfig blockedConfig(const mdl::MoeLowerGroupedExpertsOptions &o) {
  BlockedFfnConfig cfg;
  cfg.width = resolveVectorWidth(o.vectorWidth);
  cfg.rowTile = resolveRowTile(o.rowTile);
  // Accumulators: three quarters of the vector registers (16 with AVX2,
  // 32 with AVX-512), the rest hold the loaded operands.
  cfg.accumulators = cfg.width >= 16 ? 24 : 12;
  cfg.parallel = o.parallel;
  if (o.blockBytes > 0)
    cfg.blockBytes = o.blockBytes;
  if (o.sliceBytes > 0)
    cfg.sliceBytes = o.sliceBytes;
  // The packed kernel pads each expert's rows to panels of `width`: from
  // half a panel on, it does more useful FMAs per loaded weight than the
  // dot-product blocks; below that (decode) the dot products' full-width
  // weight loads win.
  cfg.packMinRows = o.packMinRows >= 0 ? o.packMinRows : cfg.width / 2;
  cfg.packTiles = o.packTiles > 0 ? o.packTiles : 2;
  // With 24 accumulators a 3-panel tile (4 + 4 rows in phase A, 8 in B)
  // beats 2 panels x 6 + 6 rows on large experts (fewer weight rows in
  // flight share the L1 sets a 4 KiB row stride maps them to: MIX-P 6 %
  // faster) but pads small ones (QW-P's 2-panel experts 5 % slower), so
  // both bodies are emitted and each expert takes the cheaper.
  cfg.packTilesWide = o.packTiles <= 0 && cfg.accumulators >= 24 ? 3 : 0;
  if (o.packSliceBytes > 0)
    cfg.packSliceBytes = o.packSliceBytes;
  cfg.packRowsOuter = o.packRowsOuter;
  return cfg;
}

/// A LoRA kernel with its scratch at the function entry of `op`.
LoraKernel makeLoraKernel(Operation *op, const BlockedFfnConfig &cfg, int64_t inter, int64_t rank) {
  int64_t tile = cfg.rowTile;
  LoraKernel k{cfg.width, tile, Value(), Value()};
  k.mid = entryAlloca(op, MemRefType::get({tile, inter}, Float32Type::get(op->getContext())));
  if (rank > 0)
    k.low = entryAlloca(op, MemRefType::get({tile, rank}, Float32Type::get(op->getContext())));
  return k;
}

/// The shared part of the expert patterns: emits the op's loops before it
/// (`emit` returns the result's buffer) and replaces it.
template <typename OpT>
struct ExpertPattern : OpRewritePattern<OpT> {
  ExpertPattern(MLIRContext *ctx, const BlockedFfnConfig &config)
      : OpRewritePattern<OpT>(ctx), config(config) {}

  LogicalResult matchAndRewrite(OpT op, PatternRewriter &rewriter) const final {
    rewriter.setInsertionPoint(op);
    Value result = emit(rewriter, op);
    replaceOpWithBuffers(rewriter, op, result);
    return success();
  }

  virtual Value emit(OpBuilder &b, OpT op) const = 0;

  BlockedFfnConfig config;
};

/// The micro-kernel operands every FFN in a low-precision format shares
/// (a bank's grouped_ffn or a dense ffn): activation, format, precision,
/// the weights and int8 scales as buffers; I is w1's second-to-last
/// dimension.
template <typename OpT>
QuantizedFfnOperands quantizedWeights(OpBuilder &b, Location loc, OpT op) {
  auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
  QuantizedFfnOperands ops;
  ops.act = op.getActivation();
  ops.format = op.getWeightFormat();
  ops.precision = op.getActivationPrecisionOrDefault();
  ops.w1 = buf(op.getW1());
  ops.w3 = buf(op.getW3());
  ops.w2 = buf(op.getW2());
  auto scales = op.getScales();
  if (!scales.empty()) {
    ops.s1 = buf(scales.front());
    ops.s2 = buf(scales.back());
    if (ops.w3)
      ops.s3 = buf(scales[1]);
  }
  auto w1Type = cast<ShapedType>(ops.w1.getType());
  ops.inter = w1Type.getDimSize(w1Type.getRank() - 2);
  return ops;
}

QuantizedFfnConfig quantizedConfig(const BlockedFfnConfig &config, mdl::WeightFormat format,
                                   StringRef requestedIsa) {
  QuantizedFfnConfig qc;
  qc.isa = mlir::moe::lowering::microKernelIsa(format, requestedIsa, config.width);
  qc.blockBytes = config.blockBytes;
  qc.parallel = config.parallel;
  return qc;
}

struct LowerDenseFfn : ExpertPattern<mdl::FfnOp> {
  LowerDenseFfn(MLIRContext *ctx, const BlockedFfnConfig &config, std::string microKernelIsa)
      : ExpertPattern(ctx, config), requestedIsa(std::move(microKernelIsa)) {}

  /// A dense FFN: the blocked kernel with one group, the tokens 0..T in
  /// order; in a low-precision format the micro-kernels with one group.
  Value emit(OpBuilder &b, mdl::FfnOp ffn) const override {
    Location loc = ffn.getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
    Value x = buf(ffn.getHidden());
    Value t = dimOf(b, loc, x, 0);
    SmallVector<Value> dyn;
    if (cast<ShapedType>(ffn.getType()).isDynamicDim(0))
      dyn.push_back(t);
    Value out = allocFor(b, loc, ffn.getType(), dyn);
    if (ffn.getWeightFormat() != mdl::WeightFormat::f32)
      return emitQuantized(b, ffn, x, out);
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
        b, loc, config, ops,
        [&](OpBuilder &lb, Location l, Value) {
          return std::make_pair(cIndex(lb, l, 0), dimOf(lb, l, x, 0));
        },
        [](OpBuilder &, Location, Value p) { return p; });
    return out;
  }

  Value emitQuantized(OpBuilder &b, mdl::FfnOp ffn, Value x, Value out) const {
    QuantizedFfnOperands ops = quantizedWeights(b, ffn.getLoc(), ffn);
    ops.x = x;
    ops.out = out;
    ops.numGroups = 1;
    ops.h = cast<ShapedType>(x.getType()).getDimSize(1);
    emitQuantizedFfn(b, ffn.getLoc(), quantizedConfig(config, ops.format, requestedIsa), ops);
    return out;
  }

  std::string requestedIsa; // empty: the host's best per format
};

struct LowerGroupedFfn : ExpertPattern<mdl::GroupedFfnOp> {
  LowerGroupedFfn(MLIRContext *ctx, const BlockedFfnConfig &config, std::string microKernelIsa)
      : ExpertPattern(ctx, config), requestedIsa(std::move(microKernelIsa)) {}

  /// A bank of FFN experts: the blocked kernel over the experts' ragged groups
  /// of sorted rows, written in place into the accumulator; a bank in a
  /// low-precision format calls the micro-kernels instead (QuantizedFfn.h).
  Value emit(OpBuilder &b, mdl::GroupedFfnOp op) const override {
    if (op.getWeightFormat() != mdl::WeightFormat::f32)
      return emitQuantized(b, op);
    Location loc = op.getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
    BlockedFfnOperands ops;
    ops.x = buf(op.getHidden());
    Value rows = buf(op.getRows());
    Value offsets = buf(op.getOffsets());
    ops.out = getWritableBuffer(b, loc, op.getAcc());
    ops.act = op.getActivation();
    ops.w1 = buf(op.getW1());
    ops.w3 = buf(op.getW3());
    ops.w2 = buf(op.getW2());
    ops.numRows = dimOf(b, loc, rows, 0);
    ops.numGroups = cast<ShapedType>(ops.w1.getType()).getDimSize(0);
    ops.h = cast<ShapedType>(ops.x.getType()).getDimSize(1);
    ops.inter = cast<ShapedType>(ops.w1.getType()).getDimSize(1);
    int64_t first = op.getFirstExpert();
    emitBlockedFfn(
        b, loc, config, ops,
        [&](OpBuilder &lb, Location l, Value n) { return groupRowRange(lb, l, offsets, first, n); },
        [&](OpBuilder &lb, Location l, Value p) { return tokenOfRow(lb, l, rows, p); });
    return ops.out;
  }

  Value emitQuantized(OpBuilder &b, mdl::GroupedFfnOp op) const {
    Location loc = op.getLoc();
    QuantizedFfnOperands ops = quantizedWeights(b, loc, op);
    ops.x = getBuffer(b, loc, op.getHidden());
    ops.rows = getBuffer(b, loc, op.getRows());
    ops.offsets = getBuffer(b, loc, op.getOffsets());
    ops.firstExpert = op.getFirstExpert();
    ops.out = getWritableBuffer(b, loc, op.getAcc());
    ops.numGroups = cast<ShapedType>(ops.w1.getType()).getDimSize(0);
    ops.h = cast<ShapedType>(ops.x.getType()).getDimSize(1);
    emitQuantizedFfn(b, loc, quantizedConfig(config, ops.format, requestedIsa), ops);
    return ops.out;
  }

  std::string requestedIsa; // empty: the host's best per format
};

struct LowerGroupedLora : ExpertPattern<mdl::GroupedLoraOp> {
  using ExpertPattern::ExpertPattern;
  /// A bank of LoRA experts: the base up-projections once per token, then
  /// the (expert, row tile) items of LoraKernel, in place into the accumulator.
  Value emit(OpBuilder &b, mdl::GroupedLoraOp op) const override {
    Location loc = op.getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
    Value x = buf(op.getHidden());
    Value rows = buf(op.getRows());
    Value offsets = buf(op.getOffsets());
    Value out = getWritableBuffer(b, loc, op.getAcc());
    LoraOperands ew;
    ew.act = op.getActivation();
    ew.w1 = buf(op.getW1());
    ew.w3 = buf(op.getW3());
    ew.w2 = buf(op.getW2());
    ew.a1 = buf(op.getA1());
    ew.b1 = buf(op.getB1());
    ew.a3 = buf(op.getA3());
    ew.b3 = buf(op.getB3());
    ew.a2 = buf(op.getA2());
    ew.b2 = buf(op.getB2());
    int64_t count = cast<ShapedType>(ew.a1.getType()).getDimSize(0);
    ew.rank = cast<ShapedType>(ew.a1.getType()).getDimSize(1);
    ew.inter = cast<ShapedType>(ew.w1.getType()).getDimSize(0);
    ew.scale = op.getAlpha().convertToFloat() / float(ew.rank);
    ew.h = cast<ShapedType>(x.getType()).getDimSize(1);
    int64_t first = op.getFirstExpert();

    LoraKernel k = makeLoraKernel(op, config, ew.inter, ew.rank);
    // The frozen base's up-projections, once per token for all experts.
    Value t = dimOf(b, loc, x, 0);
    auto baseType = MemRefType::get({ShapedType::kDynamic, ew.inter}, b.getF32Type());
    ew.base1 = memref::AllocOp::create(b, loc, baseType, ValueRange{t}, b.getI64IntegerAttr(64));
    k.emitDenseProjection(b, loc, x, ew.w1, ew.base1, ew.h, ew.inter, config.parallel);
    if (ew.w3) {
      ew.base3 = memref::AllocOp::create(b, loc, baseType, ValueRange{t}, b.getI64IntegerAttr(64));
      k.emitDenseProjection(b, loc, x, ew.w3, ew.base3, ew.h, ew.inter, config.parallel);
    }
    k.emitTiles(
        b, loc, ew, x, out, count, config.parallel, op,
        [&](OpBuilder &lb, Location l, Value n) { return groupRowRange(lb, l, offsets, first, n); },
        [&](OpBuilder &lb, Location l, Value p) { return tokenOfRow(lb, l, rows, p); });
    return out;
  }
};

/// The grouped ops' destinations (moe-expand-layers' tensor.empty): a
/// buffer the experts accumulate into.
struct LowerBankAccumulator : ExpertPattern<tensor::EmptyOp> {
  using ExpertPattern::ExpertPattern;
  Value emit(OpBuilder &b, tensor::EmptyOp empty) const override {
    return allocFor(b, empty.getLoc(), empty.getType(), empty.getDynamicSizes());
  }
};

struct LowerGroupedExpertsPass
    : public mlir::moe::impl::MoeLowerGroupedExpertsBase<LowerGroupedExpertsPass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *ctx) override {
    mdl::MoeLowerGroupedExpertsOptions options;
    options.vectorWidth = vectorWidth;
    options.rowTile = rowTile;
    options.parallel = parallel;
    options.blockBytes = blockBytes;
    options.sliceBytes = sliceBytes;
    options.packMinRows = packMinRows;
    options.packTiles = packTiles;
    options.packSliceBytes = packSliceBytes;
    options.packRowsOuter = packRowsOuter;
    options.microKernelIsa = microKernelIsa;
    RewritePatternSet set(ctx);
    mdl::populateMoeLowerGroupedExpertsPatterns(set, options);
    patterns = std::move(set);
    return success();
  }

  void runOnOperation() override {
    numDenseFfns += countOps(getOperation(), [](Operation *op) { return isa<mdl::FfnOp>(op); });
    numGroupedOps += countOps(getOperation(), [](Operation *op) {
      return isa<mdl::GroupedFfnOp, mdl::GroupedLoraOp>(op);
    });
    numMicroKernelBanks += countOps(getOperation(), [](Operation *op) {
      auto ffn = dyn_cast<mdl::GroupedFfnOp>(op);
      return ffn && ffn.getWeightFormat() != mdl::WeightFormat::f32;
    });
    if (failed(applyLoweringPatterns(getOperation(), patterns, [](Operation *op) {
          return isa<mdl::GroupedFfnOp, mdl::GroupedLoraOp, mdl::FfnOp, tensor::EmptyOp>(op);
        })))
      signalPassFailure();
  }

  FrozenRewritePatternSet patterns;
};
} // namespace

void mlir::moe::populateMoeLowerGroupedExpertsPatterns(
    RewritePatternSet &patterns, const MoeLowerGroupedExpertsOptions &options) {
  BlockedFfnConfig config = blockedConfig(options);
  patterns.add<LowerGroupedLora, LowerBankAccumulator>(patterns.getContext(), config);
  patterns.add<LowerDenseFfn, LowerGroupedFfn>(patterns.getContext(), config,
                                               options.microKernelIsa);
}
