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
//===----------------------------------------------------------------------===//

#include "GpuMapping.h"

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

struct MapGroupedExpertsPass
    : public mlir::moe::impl::MoeGpuMapGroupedExpertsBase<MapGroupedExpertsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<mdl::GroupedFfnOp, mdl::GroupedLoraOp, mdl::FfnOp, tensor::EmptyOp>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      // The grouped ops' destinations (moe-expand-layers' tensor.empty):
      // a device buffer every row of which some expert writes.
      Value result;
      if (auto empty = dyn_cast<tensor::EmptyOp>(op))
        result = allocFor(b, op->getLoc(), empty.getType(), empty.getDynamicSizes());
      else
        result = lower(b, op);
      op->getResult(0).replaceAllUsesWith(asTensor(b, op->getLoc(), result, op->getResult(0).getType()));
      op->erase();
    }
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

  Value lower(OpBuilder &b, Operation *op) {
    Location loc = op->getLoc();
    auto buf = [&](Value v) { return v ? getBuffer(b, loc, v) : Value(); };
    auto f32 = b.getF32Type();
    Value x, out;
    mdl::Activation act;
    SmallVector<WeightFn> up, down;
    int64_t h, inter;
    Value gridRows;
    std::optional<GridExpr> gridExpr;
    TileFn tile;
    RowFn rowOf;
    Value rowsTotal;

    if (auto ffn = dyn_cast<mdl::FfnOp>(op)) {
      x = buf(ffn.getHidden());
      act = ffn.getActivation();
      Value w1 = buf(ffn.getW1()), w3 = buf(ffn.getW3()), w2 = buf(ffn.getW2());
      inter = cast<MemRefType>(w1.getType()).getDimSize(0);
      up.push_back(denseWeight(w1));
      if (w3)
        up.push_back(denseWeight(w3));
      down.push_back(denseWeight(w2));
      Value t = dimOf(b, loc, x, 0);
      SmallVector<Value> dyn;
      if (cast<ShapedType>(ffn.getType()).isDynamicDim(0))
        dyn.push_back(t);
      out = allocFor(b, loc, ffn.getType(), dyn);
      rowsTotal = t;
      gridRows = ceilDiv(b, loc, t, kTile);
      gridExpr = ceilDivGrid(t, kTile);
      tile = [t](OpBuilder &tb, Location l, Value r) -> std::array<Value, 4> {
        Value start = arith::MulIOp::create(tb, l, r, cIndex(tb, l, kTile));
        Value valid = arith::CmpIOp::create(tb, l, arith::CmpIPredicate::ult, start, t);
        return {valid, cIndex(tb, l, 0), start, t};
      };
      rowOf = [](OpBuilder &, Location, Value p) { return p; };
    } else {
      Value rows, offsets;
      int64_t count, first;
      if (auto g = dyn_cast<mdl::GroupedFfnOp>(op)) {
        x = buf(g.getHidden());
        rows = buf(g.getRows());
        offsets = buf(g.getOffsets());
        out = getWritableBuffer(b, loc, g.getAcc());
        act = g.getActivation();
        Value w1 = buf(g.getW1()), w3 = buf(g.getW3()), w2 = buf(g.getW2());
        count = cast<MemRefType>(w1.getType()).getDimSize(0);
        inter = cast<MemRefType>(w1.getType()).getDimSize(1);
        first = g.getFirstExpert();
        up.push_back(bankWeight(w1));
        if (w3)
          up.push_back(bankWeight(w3));
        down.push_back(bankWeight(w2));
      } else {
        auto lg = cast<mdl::GroupedLoraOp>(op);
        x = buf(lg.getHidden());
        rows = buf(lg.getRows());
        offsets = buf(lg.getOffsets());
        out = getWritableBuffer(b, loc, lg.getAcc());
        act = lg.getActivation();
        Value a1 = buf(lg.getA1());
        count = cast<MemRefType>(a1.getType()).getDimSize(0);
        int64_t rank = cast<MemRefType>(a1.getType()).getDimSize(1);
        float scale = lg.getAlpha().convertToFloat() / float(rank);
        inter = cast<MemRefType>(buf(lg.getW1()).getType()).getDimSize(0);
        first = lg.getFirstExpert();
        up.push_back(loraWeight(buf(lg.getW1()), a1, buf(lg.getB1()), scale));
        if (lg.getW3())
          up.push_back(loraWeight(buf(lg.getW3()), buf(lg.getA3()), buf(lg.getB3()), scale));
        down.push_back(loraWeight(buf(lg.getW2()), buf(lg.getA2()), buf(lg.getB2()), scale));
      }
      rowsTotal = dimOf(b, loc, rows, 0);
      // Worst case: every expert's last tile is partial.
      gridRows = arith::AddIOp::create(b, loc, ceilDiv(b, loc, rowsTotal, kTile), cIndex(b, loc, count));
      if (auto e = ceilDivGrid(rowsTotal, kTile)) {
        (*e)[4] = count;
        gridExpr = e;
      }
      tile = [offsets, count, first](OpBuilder &tb, Location l, Value r) -> std::array<Value, 4> {
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
      rowOf = [rows](OpBuilder &rb, Location l, Value p) {
        return toIndex(rb, l, memref::LoadOp::create(rb, l, rows, ValueRange{p}));
      };
    }
    h = cast<MemRefType>(x.getType()).getDimSize(1);
    Value mid = memref::AllocOp::create(b, loc, MemRefType::get({ShapedType::kDynamic, inter}, f32),
                                        ValueRange{rowsTotal}, b.getI64IntegerAttr(64));
    Gemm upG{"expert_up", x, rowOf, up, inter, h, act, true, mid, gridRows, gridExpr, tile};
    emitGemm(b, loc, upG);
    Gemm downG{"expert_down", mid, [](OpBuilder &, Location, Value p) { return p; }, down, h, inter,
               act, false, out, gridRows, gridExpr, tile};
    emitGemm(b, loc, downG);
    return out;
  }
};
} // namespace
