//===- MapGroupedExperts.cpp - grouped GEMM kernels for the expert FFNs ---===//
//
// Each grouped FFN/LoRA op (and each dense moe.ffn) becomes two grouped-GEMM
// kernels: up (mid = act(x W1^T) [* x W3^T], the activation and gate product
// fused into the epilogue) and down (out = mid W2^T). A block computes a
// BM x BN output tile of one expert: grid.x enumerates the (expert, M-tile)
// pairs and is sized to the worst case ceil(P/BM) + E row tiles (P = T*(K+S)
// dispatched rows), so no host synchronisation is needed after the dispatch;
// a block finds its expert by scanning the bank's offsets and exits early
// when its tile index is past the last real tile. grid.y enumerates N tiles.
//
// In the block, BM*BK == BN*BK == threads: each thread stages one element of
// the x tile and one of each weight tile in shared memory per K step, then
// accumulates its own output element. Accumulators cross the K loop's
// barriers, so they live in per-thread storage (first index = thread id).
// LoRA weights are formed while staging: W[n, k] + alpha/r * B_e[n] . A_e[:, k].
// F32 SIMT; tensor-core MMA is not used yet.
//
// One rewrite pattern per op kind (populateMoeGpuMapGroupedExpertsPatterns);
// they differ only in how they fill ExpertGemms.
//
//===----------------------------------------------------------------------===//

#include "GpuMapping.h"
#include "moe/Conversion/MoeToGpu/Patterns.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUMAPGROUPEDEXPERTS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
using namespace mlir::moe::gpumap;
namespace mdl = mlir::moe;

namespace {

constexpr int64_t kTile = 16;               // BM = BN = BK
constexpr int64_t kThreads = kTile * kTile; // one output element per thread

/// Loads element (n, k) of expert e's projection weight.
using WeightFn = std::function<Value(OpBuilder &, Location, Value e, Value n, Value k)>;
/// The input row of sorted row p (the gather through `rows`, or p).
using RowFn = std::function<Value(OpBuilder &, Location, Value p)>;
/// Where a block's tile lies: (valid, expert, first row, end row).
using TileFn = std::function<std::array<Value, 4>(OpBuilder &, Location, Value tile)>;

struct Gemm {
  StringRef name;
  Value x;                 // [rowsIn, K]
  RowFn rowOf;
  SmallVector<WeightFn> weights; // 1, or 2 for gated (w1, w3)
  int64_t n = 0, kdim = 0; // output columns, reduction length
  mdl::Activation act = mdl::Activation::relu;
  bool applyAct = false;
  Value out;               // [P, n]
  Value gridRows;          // number of row tiles (worst case)
  std::optional<GridExpr> gridRowsExpr;
  TileFn tile;
};

void emitGemm(OpBuilder &b, Location loc, const Gemm &g) {
  int64_t nacc = g.weights.size();
  Value gridN = cIndex(b, loc, (g.n + kTile - 1) / kTile);
  std::optional<GridExpr> nExpr = GridExpr{0, (g.n + kTile - 1) / kTile, 1, 1, 0};
  buildKernel(
      b, loc, g.name, ValueRange{g.gridRows, gridN}, {g.gridRowsExpr, nExpr},
      [&](OpBuilder &kb, Location l, ValueRange blk) {
        auto [valid, expert, rowStart, rowEnd] = g.tile(kb, l, blk[0]);
        Value nTile = blk[1];
        auto f32 = kb.getF32Type();
        Value xs = allocWorkgroup(kb, l, {kTile, kTile}, f32);
        Value ws = allocWorkgroup(kb, l, {nacc, kTile, kTile}, f32);
        Value acc = allocPerThread(kb, l, kThreads, {nacc}, f32);
        scf::IfOp::create(kb, l, valid, [&](OpBuilder &ib, Location il) {
          buildThreads(ib, il, kThreads, [&](OpBuilder &tb, Location tl, Value tid) {
            // (row, col) of this thread in a 16x16 tile; recomputed in each
            // barrier phase so no SSA value crosses a barrier.
            auto rc = [&](OpBuilder &pb, Location pl) {
              Value c16 = cIndex(pb, pl, kTile);
              return std::make_pair(arith::DivUIOp::create(pb, pl, tid, c16).getResult(),
                                    arith::RemUIOp::create(pb, pl, tid, c16).getResult());
            };
            for (int64_t j = 0; j < nacc; ++j)
              memref::StoreOp::create(tb, tl, cF32(tb, tl, 0.0f), acc,
                                      ValueRange{tid, cIndex(tb, tl, j)});
            emitStrided(tb, tl, cIndex(tb, tl, 0), cIndex(tb, tl, g.kdim), cIndex(tb, tl, kTile),
                        [&](OpBuilder &lb, Location ll, Value k0) {
              // Stage: x tile [row r][k c], weight tiles [col r][k c].
              auto [r, c] = rc(lb, ll);
              Value kk = arith::AddIOp::create(lb, ll, k0, c);
              Value kIn = arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult, kk,
                                                cIndex(lb, ll, g.kdim));
              Value p = arith::AddIOp::create(lb, ll, rowStart, r);
              Value rowIn = arith::AndIOp::create(
                  lb, ll, kIn, arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult, p, rowEnd));
              Value xv = emitIfElse(
                  lb, ll, TypeRange{f32}, rowIn,
                  [&](OpBuilder &yb, Location yl) -> SmallVector<Value> {
                    return {memref::LoadOp::create(yb, yl, g.x, ValueRange{g.rowOf(yb, yl, p), kk})};
                  },
                  [&](OpBuilder &nb, Location nl) -> SmallVector<Value> { return {cF32(nb, nl, 0.0f)}; })[0];
              memref::StoreOp::create(lb, ll, xv, xs, ValueRange{r, c});
              Value col = arith::AddIOp::create(
                  lb, ll, arith::MulIOp::create(lb, ll, nTile, cIndex(lb, ll, kTile)), r);
              Value colIn = arith::AndIOp::create(
                  lb, ll, kIn, arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult, col, cIndex(lb, ll, g.n)));
              for (int64_t j = 0; j < nacc; ++j) {
                Value wv = emitIfElse(
                    lb, ll, TypeRange{f32}, colIn,
                    [&](OpBuilder &yb, Location yl) -> SmallVector<Value> {
                      return {g.weights[j](yb, yl, expert, col, kk)};
                    },
                    [&](OpBuilder &nb, Location nl) -> SmallVector<Value> { return {cF32(nb, nl, 0.0f)}; })[0];
                memref::StoreOp::create(lb, ll, wv, ws, ValueRange{cIndex(lb, ll, j), r, c});
              }
              gpu::BarrierOp::create(lb, ll);
              // Accumulate this thread's element over the staged K step.
              auto [ty, tx] = rc(lb, ll);
              for (int64_t j = 0; j < nacc; ++j) {
                Value jj = cIndex(lb, ll, j);
                Value init = memref::LoadOp::create(lb, ll, acc, ValueRange{tid, jj});
                Value sum = emitForWithArgs(
                    lb, ll, cIndex(lb, ll, 0), cIndex(lb, ll, kTile), ValueRange{init},
                    [&](OpBuilder &fb, Location fl, Value q, ValueRange s) -> SmallVector<Value> {
                      Value a = memref::LoadOp::create(fb, fl, xs, ValueRange{ty, q});
                      Value w = memref::LoadOp::create(fb, fl, ws, ValueRange{jj, tx, q});
                      return {math::FmaOp::create(fb, fl, a, w, s[0])};
                    })[0];
                memref::StoreOp::create(lb, ll, sum, acc, ValueRange{tid, jj});
              }
              gpu::BarrierOp::create(lb, ll);
            });
            // Epilogue: activation and gate product, bounds-checked store.
            auto [ty, tx] = rc(tb, tl);
            Value p = arith::AddIOp::create(tb, tl, rowStart, ty);
            Value col = arith::AddIOp::create(
                tb, tl, arith::MulIOp::create(tb, tl, nTile, cIndex(tb, tl, kTile)), tx);
            Value in = arith::AndIOp::create(
                tb, tl, arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::ult, p, rowEnd),
                arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::ult, col, cIndex(tb, tl, g.n)));
            scf::IfOp::create(tb, tl, in, [&](OpBuilder &sb, Location sl) {
              Value v = memref::LoadOp::create(sb, sl, acc, ValueRange{tid, cIndex(sb, sl, 0)});
              if (g.applyAct)
                v = emitActivation(sb, sl, g.act, v);
              if (nacc == 2)
                v = arith::MulFOp::create(
                    sb, sl, v, memref::LoadOp::create(sb, sl, acc, ValueRange{tid, cIndex(sb, sl, 1)}));
              memref::StoreOp::create(sb, sl, v, g.out, ValueRange{p, col});
              scf::YieldOp::create(sb, sl);
            });
          });
          scf::YieldOp::create(ib, il);
        });
      });
}

static WeightFn bankWeight(Value w) {
  return [w](OpBuilder &b, Location l, Value e, Value n, Value k) -> Value {
    return memref::LoadOp::create(b, l, w, ValueRange{e, n, k});
  };
}
static WeightFn denseWeight(Value w) {
  return [w](OpBuilder &b, Location l, Value, Value n, Value k) -> Value {
    return memref::LoadOp::create(b, l, w, ValueRange{n, k});
  };
}
/// base[n, k] + scale * sum_q bAd[e, n, q] * aAd[e, q, k].
static WeightFn loraWeight(Value base, Value aAd, Value bAd, float scale) {
  return [=](OpBuilder &b, Location l, Value e, Value n, Value k) -> Value {
    int64_t rank = cast<MemRefType>(aAd.getType()).getDimSize(1);
    Value low = emitForWithArgs(
        b, l, cIndex(b, l, 0), cIndex(b, l, rank), ValueRange{cF32(b, l, 0.0f)},
        [&](OpBuilder &fb, Location fl, Value q, ValueRange s) -> SmallVector<Value> {
          Value bv = memref::LoadOp::create(fb, fl, bAd, ValueRange{e, n, q});
          Value av = memref::LoadOp::create(fb, fl, aAd, ValueRange{e, q, k});
          return {math::FmaOp::create(fb, fl, bv, av, s[0])};
        })[0];
    Value w = memref::LoadOp::create(b, l, base, ValueRange{n, k});
    return math::FmaOp::create(b, l, cF32(b, l, scale), low, w);
  };
}

/// One expert FFN op as its two GEMMs: what the op kinds differ in.
struct ExpertGemms {
  Value x, out;
  mdl::Activation act;
  SmallVector<WeightFn> up, down;
  int64_t inter = 0;
  Value gridRows;
  std::optional<GridExpr> gridExpr;
  TileFn tile;
  RowFn rowOf;
  Value rowsTotal;
};

/// The up kernel into a [rows, I] device intermediate, then the down kernel
/// into g.out.
void emitExpertGemms(OpBuilder &b, Location loc, const ExpertGemms &g) {
  int64_t h = cast<MemRefType>(g.x.getType()).getDimSize(1);
  Value mid = memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic, g.inter}, b.getF32Type()),
                                      ValueRange{g.rowsTotal}, b.getI64IntegerAttr(64));
  Gemm upG{"expert_up", g.x, g.rowOf, g.up, g.inter, h, g.act, true, mid, g.gridRows, g.gridExpr, g.tile};
  emitGemm(b, loc, upG);
  Gemm downG{"expert_down", mid, [](OpBuilder &, Location, Value p) { return p; }, g.down, h, g.inter,
             g.act, false, g.out, g.gridRows, g.gridExpr, g.tile};
  emitGemm(b, loc, downG);
}

/// The tiling of a bank of `count` experts (global ids first..): row tiles
/// of each expert's ragged group of sorted rows, gathered through `rows`.
void tileBank(OpBuilder &b, Location loc, ExpertGemms &g, Value rows, Value offsets, int64_t count,
              int64_t first) {
  g.rowsTotal = dimOf(b, loc, rows, 0);
  // Worst case: every expert's last tile is partial.
  g.gridRows = arith::AddIOp::create(b, loc, ceilDiv(b, loc, g.rowsTotal, kTile), cIndex(b, loc, count));
  if (auto e = ceilDivGrid(g.rowsTotal, kTile)) {
    (*e)[4] = count;
    g.gridExpr = e;
  }
  g.tile = [offsets, count, first](OpBuilder &tb, Location l, Value r) -> std::array<Value, 4> {
    // Scan the bank's experts for the one owning row tile r.
    Value none = cIndex(tb, l, -1);
    Value zero = cIndex(tb, l, 0);
    ValueRange found = emitForWithArgs(
        tb, l, zero, cIndex(tb, l, count), ValueRange{zero, none, zero, zero},
        [&](OpBuilder &fb, Location fl, Value n, ValueRange acc) -> SmallVector<Value> {
          Value id = arith::AddIOp::create(fb, fl, n, cIndex(fb, fl, first));
          Value start = toIndex(fb, fl, memref::LoadOp::create(fb, fl, offsets, ValueRange{id}));
          Value end = toIndex(fb, fl, memref::LoadOp::create(
                                          fb, fl, offsets,
                                          ValueRange{arith::AddIOp::create(fb, fl, id, cIndex(fb, fl, 1))}));
          Value tiles = ceilDiv(fb, fl, arith::SubIOp::create(fb, fl, end, start), kTile);
          Value next = arith::AddIOp::create(fb, fl, acc[0], tiles);
          Value mine = arith::AndIOp::create(
              fb, fl, arith::CmpIOp::create(fb, fl, arith::CmpIPredicate::uge, r, acc[0]),
              arith::CmpIOp::create(fb, fl, arith::CmpIPredicate::ult, r, next));
          Value myStart = arith::AddIOp::create(
              fb, fl, start,
              arith::MulIOp::create(fb, fl, arith::SubIOp::create(fb, fl, r, acc[0]), cIndex(fb, fl, kTile)));
          return {next, arith::SelectOp::create(fb, fl, mine, n, acc[1]),
                  arith::SelectOp::create(fb, fl, mine, myStart, acc[2]),
                  arith::SelectOp::create(fb, fl, mine, end, acc[3])};
        });
    Value valid = arith::CmpIOp::create(tb, l, arith::CmpIPredicate::sge, found[1], zero);
    Value expert = arith::SelectOp::create(tb, l, valid, found[1], zero);
    return {valid, expert, found[2], found[3]};
  };
  g.rowOf = [rows](OpBuilder &rb, Location l, Value p) {
    return toIndex(rb, l, memref::LoadOp::create(rb, l, rows, ValueRange{p}));
  };
}

/// The shared part of the expert patterns: emits the op's kernels before
/// it (`emit` returns the result's buffer) and replaces it.
template <typename OpT>
struct ExpertPattern : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpT op, PatternRewriter &rewriter) const final {
    rewriter.setInsertionPoint(op);
    Value result = emit(rewriter, op);
    replaceOpWithBuffers(rewriter, op, result);
    return success();
  }

  virtual Value emit(OpBuilder &b, OpT op) const = 0;
};

/// A dense moe.ffn: the tokens 0..T in order, one "expert".
struct MapDenseFfn : ExpertPattern<mdl::FfnOp> {
  using ExpertPattern::ExpertPattern;
  Value emit(OpBuilder &b, mdl::FfnOp ffn) const override {
    Location loc = ffn.getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
    ExpertGemms g;
    g.x = buf(ffn.getHidden());
    g.act = ffn.getActivation();
    Value w1 = buf(ffn.getW1()), w3 = buf(ffn.getW3()), w2 = buf(ffn.getW2());
    g.inter = cast<MemRefType>(w1.getType()).getDimSize(0);
    g.up.push_back(denseWeight(w1));
    if (w3)
      g.up.push_back(denseWeight(w3));
    g.down.push_back(denseWeight(w2));
    Value t = dimOf(b, loc, g.x, 0);
    SmallVector<Value> dyn;
    if (cast<ShapedType>(ffn.getType()).isDynamicDim(0))
      dyn.push_back(t);
    g.out = allocFor(b, loc, ffn.getType(), dyn);
    g.rowsTotal = t;
    g.gridRows = ceilDiv(b, loc, t, kTile);
    g.gridExpr = ceilDivGrid(t, kTile);
    g.tile = [t](OpBuilder &tb, Location l, Value r) -> std::array<Value, 4> {
      Value start = arith::MulIOp::create(tb, l, r, cIndex(tb, l, kTile));
      Value valid = arith::CmpIOp::create(tb, l, arith::CmpIPredicate::ult, start, t);
      return {valid, cIndex(tb, l, 0), start, t};
    };
    g.rowOf = [](OpBuilder &, Location, Value p) { return p; };
    emitExpertGemms(b, loc, g);
    return g.out;
  }
};

/// moe.grouped_ffn: a bank of FFN experts, in place into the accumulator.
struct MapGroupedFfn : ExpertPattern<mdl::GroupedFfnOp> {
  using ExpertPattern::ExpertPattern;
  Value emit(OpBuilder &b, mdl::GroupedFfnOp op) const override {
    Location loc = op.getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
    ExpertGemms g;
    g.x = buf(op.getHidden());
    Value rows = buf(op.getRows());
    Value offsets = buf(op.getOffsets());
    g.out = getWritableBuffer(b, loc, op.getAcc());
    g.act = op.getActivation();
    Value w1 = buf(op.getW1()), w3 = buf(op.getW3()), w2 = buf(op.getW2());
    int64_t count = cast<MemRefType>(w1.getType()).getDimSize(0);
    g.inter = cast<MemRefType>(w1.getType()).getDimSize(1);
    g.up.push_back(bankWeight(w1));
    if (w3)
      g.up.push_back(bankWeight(w3));
    g.down.push_back(bankWeight(w2));
    tileBank(b, loc, g, rows, offsets, count, op.getFirstExpert());
    emitExpertGemms(b, loc, g);
    return g.out;
  }
};

/// moe.grouped_lora: a bank of LoRA experts over one frozen base; the
/// adapted weights are formed while staging the tiles.
struct MapGroupedLora : ExpertPattern<mdl::GroupedLoraOp> {
  using ExpertPattern::ExpertPattern;
  Value emit(OpBuilder &b, mdl::GroupedLoraOp lg) const override {
    Location loc = lg.getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
    ExpertGemms g;
    g.x = buf(lg.getHidden());
    Value rows = buf(lg.getRows());
    Value offsets = buf(lg.getOffsets());
    g.out = getWritableBuffer(b, loc, lg.getAcc());
    g.act = lg.getActivation();
    Value a1 = buf(lg.getA1());
    int64_t count = cast<MemRefType>(a1.getType()).getDimSize(0);
    int64_t rank = cast<MemRefType>(a1.getType()).getDimSize(1);
    float scale = lg.getAlpha().convertToFloat() / float(rank);
    g.inter = cast<MemRefType>(buf(lg.getW1()).getType()).getDimSize(0);
    g.up.push_back(loraWeight(buf(lg.getW1()), a1, buf(lg.getB1()), scale));
    if (lg.getW3())
      g.up.push_back(loraWeight(buf(lg.getW3()), buf(lg.getA3()), buf(lg.getB3()), scale));
    g.down.push_back(loraWeight(buf(lg.getW2()), buf(lg.getA2()), buf(lg.getB2()), scale));
    tileBank(b, loc, g, rows, offsets, count, lg.getFirstExpert());
    emitExpertGemms(b, loc, g);
    return g.out;
  }
};

/// The grouped ops' destinations (moe-expand-layers' tensor.empty): a
/// device buffer every row of which some expert writes.
struct MapBankAccumulator : ExpertPattern<tensor::EmptyOp> {
  using ExpertPattern::ExpertPattern;
  Value emit(OpBuilder &b, tensor::EmptyOp empty) const override {
    return allocFor(b, empty.getLoc(), empty.getType(), empty.getDynamicSizes());
  }
};

struct MapGroupedExpertsPass
    : public mlir::moe::impl::MoeGpuMapGroupedExpertsBase<MapGroupedExpertsPass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *ctx) override {
    RewritePatternSet set(ctx);
    mdl::populateMoeGpuMapGroupedExpertsPatterns(set);
    patterns = std::move(set);
    return success();
  }

  void runOnOperation() override {
    if (failed(applyLoweringPatterns(getOperation(), patterns, [](Operation *op) {
          return isa<mdl::GroupedFfnOp, mdl::GroupedLoraOp, mdl::FfnOp, tensor::EmptyOp>(op);
        })))
      signalPassFailure();
  }

  FrozenRewritePatternSet patterns;
};
} // namespace

void mlir::moe::populateMoeGpuMapGroupedExpertsPatterns(RewritePatternSet &patterns) {
  patterns.add<MapDenseFfn, MapGroupedFfn, MapGroupedLora, MapBankAccumulator>(
      patterns.getContext());
}
