//===- LowerRouters.cpp - router fusion: one loop nest per router ---------===//
//
// Per token: E logits into a stack buffer (vector dot products over H), the
// scores in place, selection by repeated masked argmax (K is small, so O(K*E)
// beats a sort), and normalization, writing only the token's K slots. No
// [T, E] tensor exists except for expert choice, whose selection ranks the
// tokens of each expert and so needs the whole score matrix.
//
// Semantics follow docs/dialect.md: larger first, ties to the lower index;
// non-finite logits record MOE_ERR_NONFINITE_SCORE.
//
// One rewrite pattern per router kind (populateMoeLowerRoutersPatterns);
// the pieces they share are RouterEmitter's emit functions.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "moe/Conversion/MoeToLoops/Patterns.h"
#include "moe_status_codes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELOWERROUTERS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe::lowering;
namespace mdl = mlir::moe;

namespace {

/// Gate rows per register block of the router logits (emitLogits): 8
/// accumulators + the shared x vector fit in 16 AVX2 registers.
constexpr int64_t kLogitBlock = 8;

/// Per-router state shared by the emitters below.
struct RouterEmitter {
  OpBuilder &b;
  Location loc;
  Operation *op;
  int64_t width;
  /// CPU: tokens per thread-pool item of the per-token loops (0: serial).
  int64_t tokenChunk;

  Value c0() { return cIndex(b, loc, 0); }

  /// A [n] stack buffer at the function entry (per-token scratch).
  Value scratch(int64_t n, Type elementType) {
    return entryAlloca(op, MemRefType::get({n}, elementType));
  }

  /// A per-token loop: marked for the GPU mapping and, on the CPU, split
  /// into thread-pool items with private scratch (chunkForThreadPool).
  scf::ForOp tokenLoop(scf::ForOp loop) {
    markParallel(loop);
    chunkForThreadPool(loop, tokenChunk);
    return loop;
  }

  /// Marks every slot of ids/weights [T, K] unused (id -1, weight 0).
  void fillUnused(Value ids, Value w) {
    Value rows = dimOf(b, loc, ids, 0), cols = dimOf(b, loc, ids, 1);
    Value unusedId = cI32(b, loc, -1), zero = cF32(b, loc, 0.0f);
    tokenLoop(emitFor(b, loc, c0(), rows, [&](OpBuilder &b1, Location l, Value i) {
      emitFor(b1, l, cIndex(b1, l, 0), cols, [&](OpBuilder &b2, Location l2, Value j) {
        memref::StoreOp::create(b2, l2, unusedId, ids, ValueRange{i, j});
        memref::StoreOp::create(b2, l2, zero, w, ValueRange{i, j});
      });
    }));
  }

  /// logits[e] = gate[e, :] · x[t, :], recording non-finite values. The
  /// gate rows go in blocks of kLogitBlock sharing each loaded x vector (one
  /// x load per kLogitBlock FMAs instead of one per FMA: the router of a
  /// 128-expert layer was load-bound), then one at a time for the E mod
  /// kLogitBlock left over.
  void emitLogits(OpBuilder &lb, Location l, Value x, Value gate, Value t,
                  Value logits, int64_t e, int64_t h) {
    auto store = [&](OpBuilder &b2, Location l2, Value v, Value j) {
      memref::StoreOp::create(b2, l2, v, logits, ValueRange{j});
      Value abs = math::AbsFOp::create(b2, l2, v);
      Value finite = arith::CmpFOp::create(
          b2, l2, arith::CmpFPredicate::OLT, abs,
          cF32(b2, l2, std::numeric_limits<float>::infinity()));
      Value bad = arith::XOrIOp::create(
          b2, l2, finite, arith::ConstantOp::create(b2, l2, b2.getBoolAttr(true)));
      recordError(b2, l2, op, bad, MOE_ERR_NONFINITE_SCORE);
    };
    int64_t blocked = e - e % kLogitBlock;
    if (blocked > 0)
      scf::ForOp::create(
          lb, l, cIndex(lb, l, 0), cIndex(lb, l, blocked), cIndex(lb, l, kLogitBlock), ValueRange{},
          [&](OpBuilder &b2, Location l2, Value j0, ValueRange) {
            SmallVector<RowRef> gates;
            SmallVector<Value> js;
            for (int64_t r = 0; r < kLogitBlock; ++r) {
              js.push_back(arith::AddIOp::create(b2, l2, j0, cIndex(b2, l2, r)));
              gates.push_back(RowRef{gate, {js.back()}});
            }
            auto sums = emitDotTile(b2, l2, {RowRef{x, {t}}}, gates, h, width);
            for (int64_t r = 0; r < kLogitBlock; ++r)
              store(b2, l2, sums[0][r], js[r]);
            scf::YieldOp::create(b2, l2);
          });
    if (blocked < e)
      emitFor(lb, l, cIndex(lb, l, blocked), cIndex(lb, l, e), [&](OpBuilder &b2, Location l2, Value j) {
        store(b2, l2, emitDot(b2, l2, x, ValueRange{t}, gate, ValueRange{j}, h, width), j);
      });
  }

  /// In place: softmax (max-subtracted) or sigmoid of buf[0..e).
  void emitScores(OpBuilder &lb, Location l, Value buf, int64_t e,
                  mdl::Scoring scoring) {
    Value zero = cIndex(lb, l, 0), n = cIndex(lb, l, e);
    if (scoring == mdl::Scoring::sigmoid) {
      // The two-sided form of docs/dialect.md §2: with e = exp(-|v|) (never
      // overflows), 1 / (1 + e) for v >= 0 and e / (1 + e) otherwise. The
      // one-sided 1 / (1 + exp(-v)) overflows exp for v < -88 and gives 0
      // where the reference keeps a denormal score, so two very negative
      // logits would tie (lower id) instead of ranking by value.
      emitFor(lb, l, zero, n, [&](OpBuilder &b2, Location l2, Value j) {
        Value v = memref::LoadOp::create(b2, l2, buf, ValueRange{j});
        Value ex = math::ExpOp::create(
            b2, l2, arith::NegFOp::create(b2, l2, math::AbsFOp::create(b2, l2, v)));
        Value den = arith::AddFOp::create(b2, l2, cF32(b2, l2, 1.0f), ex);
        Value nonNegative =
            arith::CmpFOp::create(b2, l2, arith::CmpFPredicate::OGE, v, cF32(b2, l2, 0.0f));
        Value num = arith::SelectOp::create(b2, l2, nonNegative, cF32(b2, l2, 1.0f), ex);
        Value s = arith::DivFOp::create(b2, l2, num, den);
        memref::StoreOp::create(b2, l2, s, buf, ValueRange{j});
      });
      return;
    }
    Value mx = emitForWithArgs(
        lb, l, zero, n, ValueRange{cF32(lb, l, -std::numeric_limits<float>::infinity())},
        [&](OpBuilder &b2, Location l2, Value j, ValueRange acc) -> SmallVector<Value> {
          Value v = memref::LoadOp::create(b2, l2, buf, ValueRange{j});
          return {arith::MaximumFOp::create(b2, l2, v, acc[0])};
        })[0];
    Value sum = emitForWithArgs(
        lb, l, zero, n, ValueRange{cF32(lb, l, 0.0f)},
        [&](OpBuilder &b2, Location l2, Value j, ValueRange acc) -> SmallVector<Value> {
          Value v = memref::LoadOp::create(b2, l2, buf, ValueRange{j});
          Value ex = math::ExpOp::create(b2, l2, arith::SubFOp::create(b2, l2, v, mx));
          memref::StoreOp::create(b2, l2, ex, buf, ValueRange{j});
          return {arith::AddFOp::create(b2, l2, acc[0], ex)};
        })[0];
    emitFor(lb, l, zero, n, [&](OpBuilder &b2, Location l2, Value j) {
      Value v = memref::LoadOp::create(b2, l2, buf, ValueRange{j});
      memref::StoreOp::create(b2, l2, arith::DivFOp::create(b2, l2, v, sum), buf, ValueRange{j});
    });
  }

  /// sel[j] = scores[j] (+ bias[j]); masked[j] = false.
  void emitSelectionKeys(OpBuilder &lb, Location l, Value scores, Value bias,
                         Value sel, Value masked, int64_t e) {
    emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, e), [&](OpBuilder &b2, Location l2, Value j) {
      Value v = memref::LoadOp::create(b2, l2, scores, ValueRange{j});
      if (bias)
        v = arith::AddFOp::create(b2, l2, v, memref::LoadOp::create(b2, l2, bias, ValueRange{j}));
      memref::StoreOp::create(b2, l2, v, sel, ValueRange{j});
      memref::StoreOp::create(b2, l2, arith::ConstantOp::create(b2, l2, b2.getBoolAttr(false)),
                              masked, ValueRange{j});
    });
  }

  /// Puts expert j (an index) into slot s of token t and masks it.
  void emitTakeIndex(OpBuilder &lb, Location l, Value j, Value masked,
                     Value scores, Value ids, Value w, Value t, Value s) {
    memref::StoreOp::create(lb, l, arith::ConstantOp::create(lb, l, lb.getBoolAttr(true)),
                            masked, ValueRange{j});
    memref::StoreOp::create(lb, l, toI32(lb, l, j), ids, ValueRange{t, s});
    Value score = memref::LoadOp::create(lb, l, scores, ValueRange{j});
    memref::StoreOp::create(lb, l, score, w, ValueRange{t, s});
  }

  /// Takes the best unmasked selection key into slot s of token t; returns
  /// the expert (index).
  Value emitTake(OpBuilder &lb, Location l, Value sel, Value masked, Value scores,
                 int64_t e, Value ids, Value w, Value t, Value s) {
    Value j = emitArgmax(lb, l, sel, masked, e).first;
    emitTakeIndex(lb, l, j, masked, scores, ids, w, t, s);
    return j;
  }

  /// Renormalizes (when asked, and the sum is positive) and scales the
  /// weights of token t's K slots; unused slots hold 0 and stay 0.
  void emitNormalize(OpBuilder &lb, Location l, Value w, Value t, int64_t k,
                     bool renormalize, float scale) {
    if (!renormalize && scale == 1.0f)
      return;
    Value zero = cIndex(lb, l, 0), n = cIndex(lb, l, k);
    Value sum, positive;
    if (renormalize) {
      sum = emitForWithArgs(
          lb, l, zero, n, ValueRange{cF32(lb, l, 0.0f)},
          [&](OpBuilder &b2, Location l2, Value s, ValueRange acc) -> SmallVector<Value> {
            return {arith::AddFOp::create(
                b2, l2, acc[0], memref::LoadOp::create(b2, l2, w, ValueRange{t, s}))};
          })[0];
      positive = arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OGT, sum,
                                       cF32(lb, l, 0.0f));
    }
    // Each weight is divided by the sum, then scaled (docs/dialect.md §3.1).
    // Not one factor scale / sum: for scores that underflowed to denormals
    // (sigmoid of logits below about -88) the sum is denormal too and its
    // reciprocal overflows to +inf, which made the weights inf instead of
    // their ratios.
    emitFor(lb, l, zero, n, [&](OpBuilder &b2, Location l2, Value s) {
      Value v = memref::LoadOp::create(b2, l2, w, ValueRange{t, s});
      if (renormalize)
        v = arith::SelectOp::create(b2, l2, positive, arith::DivFOp::create(b2, l2, v, sum), v);
      if (scale != 1.0f)
        v = arith::MulFOp::create(b2, l2, v, cF32(b2, l2, scale));
      memref::StoreOp::create(b2, l2, v, w, ValueRange{t, s});
    });
  }

  /// Allocates [T, K] ids/weights for the router's results; unless every
  /// slot gets written (`fillsAllSlots`), fills them as unused.
  std::pair<Value, Value> routingBuffers(Value t, bool fillsAllSlots) {
    SmallVector<Value> dyn;
    if (cast<ShapedType>(op->getResult(0).getType()).isDynamicDim(0))
      dyn.push_back(t);
    Value ids = allocFor(b, loc, op->getResult(0).getType(), dyn);
    Value w = allocFor(b, loc, op->getResult(1).getType(), dyn);
    if (!fillsAllSlots)
      fillUnused(ids, w);
    return {ids, w};
  }

  /// DeepSeek-V3 group limiting: group score = sum of its top-min(2, size)
  /// selection keys; experts outside the best `topkGroups` groups get masked.
  void emitGroupMask(OpBuilder &b, Location loc, Value sel, Value masked,
                     Value groupScore, Value groupMasked, int64_t numGroups,
                     int64_t groupSize, int64_t topkGroups) {
    Value negInf = cF32(b, loc, -std::numeric_limits<float>::infinity());
    emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, numGroups), [&](OpBuilder &lb, Location l, Value g) {
      Value base = arith::MulIOp::create(lb, l, g, cIndex(lb, l, groupSize));
      ValueRange top2 = emitForWithArgs(
          lb, l, cIndex(lb, l, 0), cIndex(lb, l, groupSize), ValueRange{negInf, negInf},
          [&](OpBuilder &b2, Location l2, Value m, ValueRange acc) -> SmallVector<Value> {
            Value v = memref::LoadOp::create(b2, l2, sel,
                                             ValueRange{arith::AddIOp::create(b2, l2, base, m)});
            Value gt1 = arith::CmpFOp::create(b2, l2, arith::CmpFPredicate::OGT, v, acc[0]);
            Value first = arith::SelectOp::create(b2, l2, gt1, v, acc[0]);
            Value secondCand = arith::SelectOp::create(b2, l2, gt1, acc[0], v);
            Value second = arith::MaximumFOp::create(b2, l2, acc[1], secondCand);
            return {first, second};
          });
      Value sum = top2[0];
      if (groupSize >= 2)
        sum = arith::AddFOp::create(lb, l, top2[0], top2[1]);
      memref::StoreOp::create(lb, l, sum, groupScore, ValueRange{g});
      memref::StoreOp::create(lb, l, arith::ConstantOp::create(lb, l, lb.getBoolAttr(false)),
                              groupMasked, ValueRange{g});
    });
    // Pick the best groups; `groupMasked` then marks the kept ones.
    for (int64_t gi = 0; gi < topkGroups; ++gi) {
      Value g = emitArgmax(b, loc, groupScore, groupMasked, numGroups).first;
      memref::StoreOp::create(b, loc, arith::ConstantOp::create(b, loc, b.getBoolAttr(true)),
                              groupMasked, ValueRange{g});
    }
    emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, numGroups * groupSize),
            [&](OpBuilder &lb, Location l, Value j) {
              Value g = arith::DivUIOp::create(lb, l, j, cIndex(lb, l, groupSize));
              Value kept = memref::LoadOp::create(lb, l, groupMasked, ValueRange{g});
              Value drop = arith::XOrIOp::create(
                  lb, l, kept, arith::ConstantOp::create(lb, l, lb.getBoolAttr(true)));
              memref::StoreOp::create(lb, l, drop, masked, ValueRange{j});
            });
  }
};

/// What a router that scores a gate needs first: x [T, H] and gate [E, H]
/// as buffers, T, and the per-token logits scratch [E].
struct GateOperands {
  Value x, gate, t, logits;
  int64_t h, e;
};

GateOperands gateOperands(RouterEmitter &em) {
  GateOperands g;
  g.x = getBuffer(em.b, em.loc, em.op->getOperand(0));
  g.gate = getBuffer(em.b, em.loc, em.op->getOperand(1));
  g.t = dimOf(em.b, em.loc, g.x, 0);
  g.h = cast<ShapedType>(g.x.getType()).getDimSize(1);
  g.e = cast<ShapedType>(g.gate.getType()).getDimSize(0);
  g.logits = em.scratch(g.e, em.b.getF32Type());
  return g;
}

/// The scratch of the selecting routers (top-k, grouped top-k, top-p,
/// ReLU): selection keys and the taken mask [E], and K.
struct Selection {
  Value sel, masked;
  int64_t k;
};

Selection selectionScratch(RouterEmitter &em, int64_t e) {
  Selection s;
  s.sel = em.scratch(e, em.b.getF32Type());
  s.masked = em.scratch(e, em.b.getI1Type());
  s.k = cast<ShapedType>(em.op->getResult(0).getType()).getDimSize(1);
  return s;
}

/// What the router patterns share: the resolved options and the
/// replacement of the op by the buffers its `emit` returns.
struct RouterConfig {
  int64_t width;
  int64_t tokenChunk;
};

template <typename OpT>
struct RouterPattern : OpRewritePattern<OpT> {
  RouterPattern(MLIRContext *ctx, RouterConfig config)
      : OpRewritePattern<OpT>(ctx), config(config) {}

  LogicalResult matchAndRewrite(OpT op, PatternRewriter &rewriter) const final {
    rewriter.setInsertionPoint(op);
    RouterEmitter em{rewriter, op.getLoc(), op, config.width, config.tokenChunk};
    SmallVector<Value> buffers = emit(em, op);
    replaceOpWithBuffers(rewriter, op, buffers);
    return success();
  }

  /// Emits the router before `op`; returns the buffers of its results.
  virtual SmallVector<Value> emit(RouterEmitter &em, OpT op) const = 0;

  RouterConfig config;
};

/// moe.hash_router: expert (id * 2654435761 mod 2^32) mod E, weight 1.
struct LowerHashRouter : RouterPattern<mdl::HashRouterOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::HashRouterOp hash) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    Value tok = getBuffer(b, loc, hash.getTokenIds());
    Value t = dimOf(b, loc, tok, 0);
    auto [ids, w] = em.routingBuffers(t, /*fillsAllSlots=*/true);
    uint32_t e = hash.getNumExperts();
    em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
      Value id = memref::LoadOp::create(lb, l, tok, ValueRange{i});
      if (!id.getType().isInteger(32))
        id = arith::TruncIOp::create(lb, l, lb.getI32Type(), id);
      // (uint32(id) * 2654435761) mod 2^32 mod E
      Value h = arith::MulIOp::create(lb, l, id, cI32(lb, l, int32_t(2654435761u)));
      Value ex = arith::RemUIOp::create(lb, l, h, cI32(lb, l, int32_t(e)));
      memref::StoreOp::create(lb, l, ex, ids, ValueRange{i, cIndex(lb, l, 0)});
      memref::StoreOp::create(lb, l, cF32(lb, l, 1.0f), w, ValueRange{i, cIndex(lb, l, 0)});
    }));
    return {ids, w};
  }
};

/// moe.capacity_drop: each expert keeps its first C = ceil(cf * T * K / E)
/// slots in (slot, token) order; the rest become unused.
struct LowerCapacityDrop : RouterPattern<mdl::CapacityDropOp> {
  using RouterPattern::RouterPattern;

  /// C = ceil(cf * T * K / E) as an i64.
  static Value emitCapacity(OpBuilder &b, Location loc, float capacityFactor, Value t,
                            int64_t k, int64_t e) {
    // In double and in the reference's order ((cf * T) * K) / E: folding
    // cf * K / E into one constant rounds differently (e.g. cf 1, K 3,
    // E 17, T 85: 16 instead of 15).
    auto f64 = [&](double v) {
      return arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v));
    };
    Value tF = arith::UIToFPOp::create(b, loc, b.getF64Type(),
                                       arith::IndexCastOp::create(b, loc, b.getI64Type(), t));
    Value scaled = arith::MulFOp::create(
        b, loc, f64(double(capacityFactor)), tF);
    scaled = arith::MulFOp::create(b, loc, scaled, f64(double(k)));
    Value cF = math::CeilOp::create(
        b, loc, arith::DivFOp::create(b, loc, scaled, f64(double(e))));
    return arith::FPToSIOp::create(b, loc, b.getI64Type(), cF);
  }

  SmallVector<Value> emit(RouterEmitter &em, mdl::CapacityDropOp cap) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    Operation *op = cap;
    Value inIds = getBuffer(b, loc, cap.getInIds());
    Value inW = getBuffer(b, loc, cap.getInWeights());
    Value t = dimOf(b, loc, inIds, 0);
    int64_t k = cast<ShapedType>(inIds.getType()).getDimSize(1);
    int64_t e = cap.getNumExperts();
    auto [ids, w] = em.routingBuffers(t, /*fillsAllSlots=*/false);
    memref::CopyOp::create(b, loc, inIds, ids);
    memref::CopyOp::create(b, loc, inW, w);
    Value load = em.scratch(e, b.getI64Type());
    markParallel(emitFor(b, loc, em.c0(), cIndex(b, loc, e), [&](OpBuilder &lb, Location l, Value j) {
      memref::StoreOp::create(lb, l, arith::ConstantOp::create(lb, l, lb.getI64IntegerAttr(0)),
                              load, ValueRange{j});
    }));
    Value limit = emitCapacity(b, loc, cap.getCapacityFactor().convertToFloat(), t, k, e);
    emitFor(b, loc, em.c0(), cIndex(b, loc, k), [&](OpBuilder &lb, Location l, Value s) {
      emitFor(lb, l, cIndex(lb, l, 0), t, [&](OpBuilder &b2, Location l2, Value i) {
        Value id = memref::LoadOp::create(b2, l2, ids, ValueRange{i, s});
        Value used = arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sge, id, cI32(b2, l2, 0));
        Value bad = arith::OrIOp::create(
            b2, l2,
            arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::slt, id, cI32(b2, l2, -1)),
            arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sge, id, cI32(b2, l2, e)));
        recordError(b2, l2, op, bad, MOE_ERR_EXPERT_ID, {i, s, id, cIndex(b2, l2, e)});
        Value valid = arith::AndIOp::create(
            b2, l2, used,
            arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::slt, id, cI32(b2, l2, e)));
        scf::IfOp::create(b2, l2, valid, [&](OpBuilder &tb, Location tl) {
          Value j = toIndex(tb, tl, id);
          Value cur = memref::LoadOp::create(tb, tl, load, ValueRange{j});
          Value room = arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::slt, cur, limit);
          scf::IfOp::create(
              tb, tl, room,
              [&](OpBuilder &kb, Location kl) {
                Value next = arith::AddIOp::create(
                    kb, kl, cur, arith::ConstantOp::create(kb, kl, kb.getI64IntegerAttr(1)));
                memref::StoreOp::create(kb, kl, next, load, ValueRange{j});
                scf::YieldOp::create(kb, kl);
              },
              [&](OpBuilder &db, Location dl) {
                memref::StoreOp::create(db, dl, cI32(db, dl, -1), ids, ValueRange{i, s});
                memref::StoreOp::create(db, dl, cF32(db, dl, 0.0f), w, ValueRange{i, s});
                scf::YieldOp::create(db, dl);
              });
          scf::YieldOp::create(tb, tl);
        });
      });
    });
    return {ids, w};
  }
};

/// A buffer for `result` ([T] or [T, E]), its dynamic T given by `t`.
Value tokenMajorBuffer(OpBuilder &b, Location loc, Value result, Value t) {
  return allocFor(b, loc, result.getType(),
                  cast<ShapedType>(result.getType()).isDynamicDim(0) ? ValueRange{t} : ValueRange{});
}

/// moe.router_scores: per token, the logits and their scores into [T, E].
struct LowerRouterScores : RouterPattern<mdl::RouterScoresOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::RouterScoresOp op) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    GateOperands g = gateOperands(em);
    Value scores = tokenMajorBuffer(b, loc, op.getResult(), g.t);
    em.tokenLoop(emitFor(b, loc, em.c0(), g.t, [&](OpBuilder &lb, Location l, Value i) {
      em.emitLogits(lb, l, g.x, g.gate, i, g.logits, g.e, g.h);
      em.emitScores(lb, l, g.logits, g.e, op.getScoring());
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, g.e), [&](OpBuilder &b2, Location l2, Value j) {
        memref::StoreOp::create(b2, l2, memref::LoadOp::create(b2, l2, g.logits, ValueRange{j}),
                                scores, ValueRange{i, j});
      });
    }));
    return {scores};
  }
};

/// moe.capacity_reroute (docs/dialect.md): the used pairs sorted by
/// descending score (an LSD radix sort of 4 byte digits: stable, so ties keep
/// (token, slot) order; unused pairs last), first-come admission up to C per expert in that
/// order, then each dropped pair, in the same order, takes its token's best
/// expert with room that the token does not hold. Serial loops: the order
/// is global (on the GPU they run as single-thread kernels).
struct LowerCapacityReroute : RouterPattern<mdl::CapacityRerouteOp> {
  using RouterPattern::RouterPattern;

  /// The operands' buffers and sizes, and the sort's buffers.
  struct Buffers {
    Value inIds, inW, scores, ids, w, load, limit, t, keys[2], pairs[2], hist;
    int64_t k, e;
  };

  /// An i32 whose unsigned order is the descending order of the f32 `v`
  /// (-0 counted as +0, as a float comparison does).
  static Value descendingKey(OpBuilder &b, Location l, Value v) {
    Value zero = cF32(b, l, 0.0f);
    Value isZero = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, v, zero);
    Value bits = arith::BitcastOp::create(b, l, b.getI32Type(),
                                          arith::SelectOp::create(b, l, isZero, zero, v));
    Value negative = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, bits, cI32(b, l, 0));
    Value flipped = arith::XOrIOp::create(b, l, bits, cI32(b, l, 0x7FFFFFFF));
    return arith::SelectOp::create(b, l, negative, bits, flipped);
  }

  /// Checks ids and scores, and writes every pair's (key, index t * K + s)
  /// into keys[0], pairs[0]: unused pairs (and invalid ids) get the key
  /// 0xFFFFFFFF, above every finite score's, so they sort last and the
  /// passes below skip them. (Every pair, not a compacted list: a count
  /// computed on the device could not bound the GPU's later loops.)
  static void emitCollect(RouterEmitter &em, Operation *op, Buffers &bu) {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    markParallel(emitFor(b, loc, em.c0(), bu.t, [&](OpBuilder &lb, Location l, Value i) {
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, bu.e), [&](OpBuilder &b2, Location l2, Value j) {
        Value v = memref::LoadOp::create(b2, l2, bu.scores, ValueRange{i, j});
        Value abs = math::AbsFOp::create(b2, l2, v);
        Value bad = arith::CmpFOp::create(b2, l2, arith::CmpFPredicate::UGE, abs,
                                          cF32(b2, l2, std::numeric_limits<float>::infinity()));
        recordError(b2, l2, op, bad, MOE_ERR_NONFINITE_SCORE);
      });
      for (int64_t s = 0; s < bu.k; ++s) {
        Value sIdx = cIndex(lb, l, s);
        Value id = memref::LoadOp::create(lb, l, bu.inIds, ValueRange{i, sIdx});
        Value bad = arith::OrIOp::create(
            lb, l, arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, id, cI32(lb, l, -1)),
            arith::CmpIOp::create(lb, l, arith::CmpIPredicate::sge, id, cI32(lb, l, bu.e)));
        recordError(lb, l, op, bad, MOE_ERR_EXPERT_ID, {i, sIdx, id, cIndex(lb, l, bu.e)});
        Value valid = arith::AndIOp::create(
            lb, l, arith::CmpIOp::create(lb, l, arith::CmpIPredicate::sge, id, cI32(lb, l, 0)),
            arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, id, cI32(lb, l, bu.e)));
        Value pair = arith::AddIOp::create(
            lb, l, arith::MulIOp::create(lb, l, i, cIndex(lb, l, bu.k)), sIdx);
        Value key = emitIfElse(
            lb, l, TypeRange{lb.getI32Type()}, valid,
            [&](OpBuilder &tb, Location tl) -> SmallVector<Value> {
              Value v = memref::LoadOp::create(tb, tl, bu.scores, ValueRange{i, toIndex(tb, tl, id)});
              return {descendingKey(tb, tl, v)};
            },
            [&](OpBuilder &eb, Location el) -> SmallVector<Value> { return {cI32(eb, el, -1)}; })[0];
        memref::StoreOp::create(lb, l, key, bu.keys[0], ValueRange{pair});
        memref::StoreOp::create(lb, l, toI32(lb, l, pair), bu.pairs[0], ValueRange{pair});
      }
    }));
  }

  /// The pair (token, slot) at position n of the sorted list, and whether
  /// it is used with a valid id (the others sorted last: skip them).
  static std::tuple<Value, Value, Value> emitSortedPair(OpBuilder &b, Location l, Buffers &bu,
                                                        Value n) {
    Value pair = toIndex(b, l, memref::LoadOp::create(b, l, bu.pairs[0], ValueRange{n}));
    Value tok = arith::DivUIOp::create(b, l, pair, cIndex(b, l, bu.k));
    Value s = arith::RemUIOp::create(b, l, pair, cIndex(b, l, bu.k));
    Value key = memref::LoadOp::create(b, l, bu.keys[0], ValueRange{n});
    Value used = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, key, cI32(b, l, -1));
    return {tok, s, used};
  }

  /// One stable counting-sort pass on the byte at `shift` of the keys:
  /// keys/pairs[from] -> keys/pairs[1 - from].
  static void emitRadixPass(OpBuilder &b, Location loc, Buffers &bu, Value count, int shift,
                            int from) {
    Value zero = cIndex(b, loc, 0), buckets = cIndex(b, loc, 256);
    auto digit = [&](OpBuilder &lb, Location l, Value key) {
      Value d = arith::AndIOp::create(
          lb, l, arith::ShRUIOp::create(lb, l, key, cI32(lb, l, shift)), cI32(lb, l, 255));
      return toIndex(lb, l, d);
    };
    emitFor(b, loc, zero, buckets, [&](OpBuilder &lb, Location l, Value d) {
      memref::StoreOp::create(lb, l, cI64(lb, l, 0), bu.hist, ValueRange{d});
    });
    emitFor(b, loc, zero, count, [&](OpBuilder &lb, Location l, Value i) {
      Value d = digit(lb, l, memref::LoadOp::create(lb, l, bu.keys[from], ValueRange{i}));
      Value c = memref::LoadOp::create(lb, l, bu.hist, ValueRange{d});
      memref::StoreOp::create(lb, l, arith::AddIOp::create(lb, l, c, cI64(lb, l, 1)), bu.hist,
                              ValueRange{d});
    });
    // The running sum lives in hist[256], not in a loop result: a loop
    // result would be device data the GPU's host would have to wait for.
    memref::StoreOp::create(b, loc, cI64(b, loc, 0), bu.hist, ValueRange{buckets});
    emitFor(b, loc, zero, buckets, [&](OpBuilder &lb, Location l, Value d) {
      Value sum = memref::LoadOp::create(lb, l, bu.hist, ValueRange{cIndex(lb, l, 256)});
      Value c = memref::LoadOp::create(lb, l, bu.hist, ValueRange{d});
      memref::StoreOp::create(lb, l, sum, bu.hist, ValueRange{d});
      memref::StoreOp::create(lb, l, arith::AddIOp::create(lb, l, sum, c), bu.hist,
                              ValueRange{cIndex(lb, l, 256)});
    });
    emitFor(b, loc, zero, count, [&](OpBuilder &lb, Location l, Value i) {
      Value key = memref::LoadOp::create(lb, l, bu.keys[from], ValueRange{i});
      Value pair = memref::LoadOp::create(lb, l, bu.pairs[from], ValueRange{i});
      Value d = digit(lb, l, key);
      Value pos = memref::LoadOp::create(lb, l, bu.hist, ValueRange{d});
      memref::StoreOp::create(lb, l, arith::AddIOp::create(lb, l, pos, cI64(lb, l, 1)), bu.hist,
                              ValueRange{d});
      Value at = arith::IndexCastOp::create(lb, l, lb.getIndexType(), pos);
      memref::StoreOp::create(lb, l, key, bu.keys[1 - from], ValueRange{at});
      memref::StoreOp::create(lb, l, pair, bu.pairs[1 - from], ValueRange{at});
    });
  }

  /// load[e] += 1.
  static void emitBump(OpBuilder &b, Location l, Value load, Value expert) {
    Value cur = memref::LoadOp::create(b, l, load, ValueRange{expert});
    memref::StoreOp::create(b, l, arith::AddIOp::create(b, l, cur, cI64(b, l, 1)), load,
                            ValueRange{expert});
  }

  /// Admission in sorted order: each expert keeps its first C pairs, the
  /// others become unused in ids/w.
  static void emitAdmit(OpBuilder &b, Location loc, Buffers &bu, Value count) {
    emitFor(b, loc, cIndex(b, loc, 0), count, [&](OpBuilder &lb, Location l, Value n) {
      auto [tok, s, used] = emitSortedPair(lb, l, bu, n);
      scf::IfOp::create(lb, l, used, [&](OpBuilder &ub, Location ul) {
        Value j = toIndex(ub, ul, memref::LoadOp::create(ub, ul, bu.inIds, ValueRange{tok, s}));
        Value cur = memref::LoadOp::create(ub, ul, bu.load, ValueRange{j});
        Value room = arith::CmpIOp::create(ub, ul, arith::CmpIPredicate::slt, cur, bu.limit);
        emitIfThenElse(
            ub, ul, room, [&](OpBuilder &tb, Location tl) { emitBump(tb, tl, bu.load, j); },
            [&](OpBuilder &eb, Location el) {
              memref::StoreOp::create(eb, el, cI32(eb, el, -1), bu.ids, ValueRange{tok, s});
              memref::StoreOp::create(eb, el, cF32(eb, el, 0.0f), bu.w, ValueRange{tok, s});
            });
        scf::YieldOp::create(ub, ul);
      });
    });
  }

  /// The best expert (index; -1 if none) for token `tok`: room left, not
  /// held in any of its slots, highest score, ties to the lower id.
  static Value emitBestWithRoom(OpBuilder &b, Location loc, Buffers &bu, Value tok) {
    Value negInf = cF32(b, loc, -std::numeric_limits<float>::infinity());
    return emitForWithArgs(
        b, loc, cIndex(b, loc, 0), cIndex(b, loc, bu.e), ValueRange{cIndex(b, loc, -1), negInf},
        [&](OpBuilder &lb, Location l, Value j, ValueRange acc) -> SmallVector<Value> {
          Value room = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt,
                                             memref::LoadOp::create(lb, l, bu.load, ValueRange{j}),
                                             bu.limit);
          Value jId = toI32(lb, l, j);
          for (int64_t q = 0; q < bu.k; ++q) {
            Value held = memref::LoadOp::create(lb, l, bu.ids, ValueRange{tok, cIndex(lb, l, q)});
            room = arith::AndIOp::create(
                lb, l, room, arith::CmpIOp::create(lb, l, arith::CmpIPredicate::ne, held, jId));
          }
          Value v = memref::LoadOp::create(lb, l, bu.scores, ValueRange{tok, j});
          Value better = arith::OrIOp::create(
              lb, l, arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OGT, v, acc[1]),
              arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, acc[0], cIndex(lb, l, 0)));
          Value take = arith::AndIOp::create(lb, l, room, better);
          return {arith::SelectOp::create(lb, l, take, j, acc[0]),
                  arith::SelectOp::create(lb, l, take, v, acc[1])};
        })[0];
  }

  /// Re-routing in sorted order: a pair dropped by emitAdmit (still unused)
  /// whose score is not 0 moves to emitBestWithRoom, weight scaled by the
  /// ratio of the new expert's score to the old one's.
  static void emitReroute(OpBuilder &b, Location loc, Buffers &bu, Value count) {
    emitFor(b, loc, cIndex(b, loc, 0), count, [&](OpBuilder &b0, Location l, Value n) {
      auto [tok, s, used] = emitSortedPair(b0, l, bu, n);
      auto usedIf = scf::IfOp::create(b0, l, used, /*withElseRegion=*/false);
      OpBuilder lb = usedIf.getThenBodyBuilder();
      Value old = toIndex(lb, l, memref::LoadOp::create(lb, l, bu.inIds, ValueRange{tok, s}));
      Value oldScore = memref::LoadOp::create(lb, l, bu.scores, ValueRange{tok, old});
      Value dropped = arith::AndIOp::create(
          lb, l,
          arith::CmpIOp::create(lb, l, arith::CmpIPredicate::eq,
                                memref::LoadOp::create(lb, l, bu.ids, ValueRange{tok, s}),
                                cI32(lb, l, -1)),
          arith::CmpFOp::create(lb, l, arith::CmpFPredicate::UNE, oldScore, cF32(lb, l, 0.0f)));
      scf::IfOp::create(lb, l, dropped, [&](OpBuilder &tb, Location tl) {
        Value best = emitBestWithRoom(tb, tl, bu, tok);
        Value found = arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::sge, best,
                                            cIndex(tb, tl, 0));
        scf::IfOp::create(tb, tl, found, [&](OpBuilder &fb, Location fl) {
          emitBump(fb, fl, bu.load, best);
          memref::StoreOp::create(fb, fl, toI32(fb, fl, best), bu.ids, ValueRange{tok, s});
          Value ratio = arith::DivFOp::create(
              fb, fl, memref::LoadOp::create(fb, fl, bu.scores, ValueRange{tok, best}), oldScore);
          Value weight = arith::MulFOp::create(
              fb, fl, memref::LoadOp::create(fb, fl, bu.inW, ValueRange{tok, s}), ratio);
          memref::StoreOp::create(fb, fl, weight, bu.w, ValueRange{tok, s});
          scf::YieldOp::create(fb, fl);
        });
        scf::YieldOp::create(tb, tl);
      });
    });
  }

  SmallVector<Value> emit(RouterEmitter &em, mdl::CapacityRerouteOp op) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    Buffers bu;
    bu.inIds = getBuffer(b, loc, op.getInIds());
    bu.inW = getBuffer(b, loc, op.getInWeights());
    bu.scores = getBuffer(b, loc, op.getScores());
    bu.t = dimOf(b, loc, bu.inIds, 0);
    bu.k = cast<ShapedType>(bu.inIds.getType()).getDimSize(1);
    bu.e = op.getNumExperts();
    std::tie(bu.ids, bu.w) = em.routingBuffers(bu.t, /*fillsAllSlots=*/false);
    memref::CopyOp::create(b, loc, bu.inIds, bu.ids);
    memref::CopyOp::create(b, loc, bu.inW, bu.w);
    bu.load = em.scratch(bu.e, b.getI64Type());
    // 256 buckets + the prefix sum's total; i64, not index: a GPU device
    // buffer needs an element type with a byte size.
    bu.hist = em.scratch(257, b.getI64Type());
    markParallel(emitFor(b, loc, em.c0(), cIndex(b, loc, bu.e), [&](OpBuilder &lb, Location l, Value j) {
      memref::StoreOp::create(lb, l, cI64(lb, l, 0), bu.load, ValueRange{j});
    }));
    bu.limit = LowerCapacityDrop::emitCapacity(b, loc, op.getCapacityFactor().convertToFloat(),
                                               bu.t, bu.k, bu.e);
    Value pairs = arith::MulIOp::create(b, loc, bu.t, cIndex(b, loc, bu.k));
    auto vector = RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type());
    for (int i = 0; i < 2; ++i) {
      bu.keys[i] = allocFor(b, loc, vector, {pairs});
      bu.pairs[i] = allocFor(b, loc, vector, {pairs});
    }
    emitCollect(em, op, bu);
    Value count = pairs;
    for (int pass = 0; pass < 4; ++pass)
      emitRadixPass(b, loc, bu, count, 8 * pass, pass % 2);
    emitAdmit(b, loc, bu, count);
    emitReroute(b, loc, bu, count);
    return {bu.ids, bu.w};
  }
};

/// moe.compress_slots: per token (parallel), each used slot's rank by
/// descending weight (ties: lower slot) counted over the K slots; slots of
/// rank >= keep take E + compressed[id].
struct LowerCompressSlots : RouterPattern<mdl::CompressSlotsOp> {
  using RouterPattern::RouterPattern;

  /// E + compressed[id] for a valid id (i32): the constant when every
  /// expert shares one stand-in, id + E when the map is the identity, else
  /// a chain of selects.
  static Value emitCompressedId(OpBuilder &b, Location l, Value id, ArrayRef<int64_t> map) {
    int64_t e = int64_t(map.size());
    bool same = llvm::all_equal(map), identity = true;
    for (int64_t j = 0; j < e; ++j)
      identity &= map[j] == j;
    if (same)
      return cI32(b, l, int32_t(e + map[0]));
    if (identity)
      return arith::AddIOp::create(b, l, id, cI32(b, l, int32_t(e)));
    Value v = cI32(b, l, int32_t(e + map[e - 1]));
    for (int64_t j = e - 2; j >= 0; --j) {
      Value is = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, id, cI32(b, l, int32_t(j)));
      v = arith::SelectOp::create(b, l, is, cI32(b, l, int32_t(e + map[j])), v);
    }
    return v;
  }

  SmallVector<Value> emit(RouterEmitter &em, mdl::CompressSlotsOp op) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    Operation *rootOp = op;
    Value inIds = getBuffer(b, loc, op.getInIds());
    Value inW = getBuffer(b, loc, op.getInWeights());
    Value t = dimOf(b, loc, inIds, 0);
    int64_t k = cast<ShapedType>(inIds.getType()).getDimSize(1);
    int64_t e = op.getNumFull();
    ArrayRef<int64_t> map = op.getCompressed();
    Value keep = cIndex(b, loc, int64_t(op.getKeep()));
    auto [ids, w] = em.routingBuffers(t, /*fillsAllSlots=*/true);
    em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
      Value kEnd = cIndex(lb, l, k);
      emitFor(lb, l, cIndex(lb, l, 0), kEnd, [&](OpBuilder &b2, Location l2, Value s) {
        Value id = memref::LoadOp::create(b2, l2, inIds, ValueRange{i, s});
        Value weight = memref::LoadOp::create(b2, l2, inW, ValueRange{i, s});
        Value bad = arith::OrIOp::create(
            b2, l2, arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::slt, id, cI32(b2, l2, -1)),
            arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sge, id, cI32(b2, l2, e)));
        recordError(b2, l2, rootOp, bad, MOE_ERR_EXPERT_ID, {i, s, id, cIndex(b2, l2, e)});
        Value rank = emitForWithArgs(
            b2, l2, cIndex(b2, l2, 0), kEnd, ValueRange{cIndex(b2, l2, 0)},
            [&](OpBuilder &b3, Location l3, Value q, ValueRange acc) -> SmallVector<Value> {
              Value v = memref::LoadOp::create(b3, l3, inW, ValueRange{i, q});
              Value qUsed = arith::CmpIOp::create(
                  b3, l3, arith::CmpIPredicate::sge,
                  memref::LoadOp::create(b3, l3, inIds, ValueRange{i, q}), cI32(b3, l3, 0));
              Value ahead = arith::OrIOp::create(
                  b3, l3, arith::CmpFOp::create(b3, l3, arith::CmpFPredicate::OGT, v, weight),
                  arith::AndIOp::create(
                      b3, l3, arith::CmpFOp::create(b3, l3, arith::CmpFPredicate::OEQ, v, weight),
                      arith::CmpIOp::create(b3, l3, arith::CmpIPredicate::ult, q, s)));
              Value counts = arith::AndIOp::create(b3, l3, qUsed, ahead);
              return {arith::AddIOp::create(
                  b3, l3, acc[0], arith::IndexCastUIOp::create(b3, l3, b3.getIndexType(), counts))};
            })[0];
        Value valid = arith::AndIOp::create(
            b2, l2, arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::sge, id, cI32(b2, l2, 0)),
            arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::slt, id, cI32(b2, l2, e)));
        Value demote = arith::AndIOp::create(
            b2, l2, valid, arith::CmpIOp::create(b2, l2, arith::CmpIPredicate::uge, rank, keep));
        Value out = arith::SelectOp::create(b2, l2, demote,
                                            emitCompressedId(b2, l2, id, map), id);
        memref::StoreOp::create(b2, l2, out, ids, ValueRange{i, s});
        memref::StoreOp::create(b2, l2, weight, w, ValueRange{i, s});
      });
    }));
    return {ids, w};
  }
};

/// moe.path_router: each token's path is the argmax of its logits.
struct LowerPathRouter : RouterPattern<mdl::PathRouterOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::PathRouterOp op) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    GateOperands g = gateOperands(em);
    Value paths = tokenMajorBuffer(b, loc, op.getResult(), g.t);
    em.tokenLoop(emitFor(b, loc, em.c0(), g.t, [&](OpBuilder &lb, Location l, Value i) {
      em.emitLogits(lb, l, g.x, g.gate, i, g.logits, g.e, g.h);
      Value j = emitArgmax(lb, l, g.logits, Value(), g.e).first;
      memref::StoreOp::create(lb, l, toI32(lb, l, j), paths, ValueRange{i});
    }));
    return {paths};
  }
};

/// moe.exit_layers: max_exit - (max_exit - min_exit) * min(p, D) / D per
/// token, in i64 (no overflow for any i32 position); a negative position
/// records MOE_ERR_POSITION.
struct LowerExitLayers : RouterPattern<mdl::ExitLayersOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::ExitLayersOp op) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    Value pos = getBuffer(b, loc, op.getPositions());
    Value t = dimOf(b, loc, pos, 0);
    Value exits = tokenMajorBuffer(b, loc, op.getExits(), t);
    int64_t maxExit = op.getMaxExit(), span = maxExit - op.getMinExit(),
            decay = op.getDecayPositions();
    em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
      Value p = memref::LoadOp::create(lb, l, pos, ValueRange{i});
      Value negative = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, p, cI32(lb, l, 0));
      recordError(lb, l, op, negative, MOE_ERR_POSITION,
                  {i, cIndex(lb, l, -1), p, cIndex(lb, l, -1)});
      Value p64 = arith::ExtSIOp::create(lb, l, lb.getI64Type(), p);
      Value clamped = arith::MinSIOp::create(
          lb, l, arith::MaxSIOp::create(lb, l, p64, cI64(lb, l, 0)), cI64(lb, l, decay));
      Value drop = arith::DivSIOp::create(
          lb, l, arith::MulIOp::create(lb, l, clamped, cI64(lb, l, span)), cI64(lb, l, decay));
      Value e = arith::SubIOp::create(lb, l, cI64(lb, l, maxExit), drop);
      memref::StoreOp::create(lb, l, arith::TruncIOp::create(lb, l, lb.getI32Type(), e), exits,
                              ValueRange{i});
    }));
    return {exits};
  }
};

/// moe.exit_paths: 1 where layer < exits[t], else 0.
struct LowerExitPaths : RouterPattern<mdl::ExitPathsOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::ExitPathsOp op) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    Value exits = getBuffer(b, loc, op.getExits());
    Value t = dimOf(b, loc, exits, 0);
    Value paths = tokenMajorBuffer(b, loc, op.getPaths(), t);
    // Exit layers are i32: a layer index beyond i32 is above every exit.
    int64_t layer = std::min<int64_t>(op.getLayer(), std::numeric_limits<int32_t>::max());
    em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
      Value e = memref::LoadOp::create(lb, l, exits, ValueRange{i});
      Value run = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, cI32(lb, l, layer), e);
      memref::StoreOp::create(lb, l, arith::ExtUIOp::create(lb, l, lb.getI32Type(), run), paths,
                              ValueRange{i});
    }));
    return {paths};
  }
};

/// moe.expert_choice_router: scores S [T, E], then each expert takes its
/// top-min(capacity, T) tokens; a token's slots list its experts in order.
struct LowerExpertChoiceRouter : RouterPattern<mdl::ExpertChoiceRouterOp> {
  using RouterPattern::RouterPattern;

  /// taken[i, j] for the best min(capacity, T) tokens i of each expert j
  /// (ties: lower token).
  static void emitExpertPicks(RouterEmitter &em, Value scores, Value taken, Value t,
                              Value capacity, int64_t e) {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    markParallel(emitFor(b, loc, em.c0(), cIndex(b, loc, e), [&](OpBuilder &lb, Location l, Value j) {
      emitFor(lb, l, cIndex(lb, l, 0), capacity, [&](OpBuilder &b2, Location l2, Value) {
        // Best token of column j not yet taken by j (ties: lower token).
        Value negInf = cF32(b2, l2, -std::numeric_limits<float>::infinity());
        ValueRange best = emitForWithArgs(
            b2, l2, cIndex(b2, l2, 0), t, ValueRange{cIndex(b2, l2, -1), negInf},
            [&](OpBuilder &b3, Location l3, Value i, ValueRange acc) -> SmallVector<Value> {
              Value v = memref::LoadOp::create(b3, l3, scores, ValueRange{i, j});
              Value m = memref::LoadOp::create(b3, l3, taken, ValueRange{i, j});
              Value better = arith::OrIOp::create(
                  b3, l3, arith::CmpFOp::create(b3, l3, arith::CmpFPredicate::OGT, v, acc[1]),
                  arith::CmpIOp::create(b3, l3, arith::CmpIPredicate::slt, acc[0],
                                        cIndex(b3, l3, 0)));
              Value take = arith::AndIOp::create(
                  b3, l3, better,
                  arith::XOrIOp::create(b3, l3, m,
                                        arith::ConstantOp::create(b3, l3, b3.getBoolAttr(true))));
              return {arith::SelectOp::create(b3, l3, take, i, acc[0]),
                      arith::SelectOp::create(b3, l3, take, v, acc[1])};
            });
        memref::StoreOp::create(b2, l2, arith::ConstantOp::create(b2, l2, b2.getBoolAttr(true)),
                                taken, ValueRange{best[0], j});
      });
    }));
  }

  /// Per token: its slots, in expert order, get the experts that took it
  /// with their scaled scores.
  static void emitTokenSlots(RouterEmitter &em, Value scores, Value taken, Value ids, Value w,
                             Value t, int64_t e, float scale) {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
      emitForWithArgs(
          lb, l, cIndex(lb, l, 0), cIndex(lb, l, e), ValueRange{cIndex(lb, l, 0)},
          [&](OpBuilder &b2, Location l2, Value j, ValueRange acc) -> SmallVector<Value> {
            Value m = memref::LoadOp::create(b2, l2, taken, ValueRange{i, j});
            return SmallVector<Value>{emitIfElse(
                b2, l2, TypeRange{b2.getIndexType()}, m,
                [&](OpBuilder &tb, Location tl) -> SmallVector<Value> {
                  memref::StoreOp::create(tb, tl, toI32(tb, tl, j), ids, ValueRange{i, acc[0]});
                  Value s = memref::LoadOp::create(tb, tl, scores, ValueRange{i, j});
                  memref::StoreOp::create(tb, tl, arith::MulFOp::create(tb, tl, s, cF32(tb, tl, scale)),
                                          w, ValueRange{i, acc[0]});
                  return {arith::AddIOp::create(tb, tl, acc[0], cIndex(tb, tl, 1))};
                },
                [&](OpBuilder &, Location) -> SmallVector<Value> { return {acc[0]}; })[0]};
          });
    }));
  }

  SmallVector<Value> emit(RouterEmitter &em, mdl::ExpertChoiceRouterOp ec) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    GateOperands g = gateOperands(em);
    auto [ids, w] = em.routingBuffers(g.t, /*fillsAllSlots=*/false);
    int64_t e = g.e;
    Value scores = allocFor(b, loc, RankedTensorType::get({ShapedType::kDynamic, e}, b.getF32Type()),
                            {g.t});
    Value taken = allocFor(b, loc, RankedTensorType::get({ShapedType::kDynamic, e}, b.getI1Type()),
                           {g.t});
    em.tokenLoop(emitFor(b, loc, em.c0(), g.t, [&](OpBuilder &lb, Location l, Value i) {
      em.emitLogits(lb, l, g.x, g.gate, i, g.logits, e, g.h);
      em.emitScores(lb, l, g.logits, e, ec.getScoring());
      emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, e), [&](OpBuilder &b2, Location l2, Value j) {
        memref::StoreOp::create(b2, l2, memref::LoadOp::create(b2, l2, g.logits, ValueRange{j}),
                                scores, ValueRange{i, j});
        memref::StoreOp::create(b2, l2, arith::ConstantOp::create(b2, l2, b2.getBoolAttr(false)),
                                taken, ValueRange{i, j});
      });
    }));
    Value capacity = arith::MinUIOp::create(b, loc, cIndex(b, loc, ec.getCapacity()), g.t);
    emitExpertPicks(em, scores, taken, g.t, capacity, e);
    emitTokenSlots(em, scores, taken, ids, w, g.t, e, ec.getScalingFactor().convertToFloat());
    return {ids, w};
  }
};

/// moe.relu_router: up to K experts with positive logits, best first.
struct LowerReluRouter : RouterPattern<mdl::ReluRouterOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::ReluRouterOp relu) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    GateOperands g = gateOperands(em);
    auto [ids, w] = em.routingBuffers(g.t, /*fillsAllSlots=*/false);
    Selection sel = selectionScratch(em, g.e);
    em.tokenLoop(emitFor(b, loc, em.c0(), g.t, [&](OpBuilder &lb, Location l, Value i) {
      em.emitLogits(lb, l, g.x, g.gate, i, g.logits, g.e, g.h);
      em.emitSelectionKeys(lb, l, g.logits, Value(), sel.sel, sel.masked, g.e);
      for (int64_t s = 0; s < sel.k; ++s) {
        auto best = emitArgmax(lb, l, sel.sel, sel.masked, g.e);
        Value positive = arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OGT, best.second,
                                               cF32(lb, l, 0.0f));
        scf::IfOp::create(lb, l, positive, [&](OpBuilder &tb, Location tl) {
          em.emitTakeIndex(tb, tl, best.first, sel.masked, g.logits, ids, w, i, cIndex(tb, tl, s));
          scf::YieldOp::create(tb, tl);
        });
      }
      em.emitNormalize(lb, l, w, i, sel.k, false, relu.getScalingFactor().convertToFloat());
    }));
    return {ids, w};
  }
};

/// moe.topp_router: the best experts (softmax scores) until their
/// cumulative probability reaches the threshold, at most K.
struct LowerTopPRouter : RouterPattern<mdl::TopPRouterOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::TopPRouterOp topp) const override {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    GateOperands g = gateOperands(em);
    auto [ids, w] = em.routingBuffers(g.t, /*fillsAllSlots=*/false);
    Selection sel = selectionScratch(em, g.e);
    float threshold = topp.getThreshold().convertToFloat();
    em.tokenLoop(emitFor(b, loc, em.c0(), g.t, [&](OpBuilder &lb, Location l, Value i) {
      em.emitLogits(lb, l, g.x, g.gate, i, g.logits, g.e, g.h);
      em.emitScores(lb, l, g.logits, g.e, mdl::Scoring::softmax);
      em.emitSelectionKeys(lb, l, g.logits, Value(), sel.sel, sel.masked, g.e);
      // (cumulative probability, done) threaded through the K takes; the
      // first expert is always taken.
      Value cum = cF32(lb, l, 0.0f);
      Value done = arith::ConstantOp::create(lb, l, lb.getBoolAttr(false));
      for (int64_t s = 0; s < sel.k; ++s) {
        ValueRange res = emitIfElse(
            lb, l, TypeRange{lb.getF32Type(), lb.getI1Type()}, done,
            [&](OpBuilder &, Location) -> SmallVector<Value> { return {cum, done}; },
            [&](OpBuilder &eb, Location el) -> SmallVector<Value> {
              Value j = em.emitTake(eb, el, sel.sel, sel.masked, g.logits, g.e, ids, w, i,
                                    cIndex(eb, el, s));
              Value p = memref::LoadOp::create(eb, el, g.logits, ValueRange{j});
              Value next = arith::AddFOp::create(eb, el, cum, p);
              Value reached = arith::CmpFOp::create(eb, el, arith::CmpFPredicate::OGE, next,
                                                    cF32(eb, el, threshold));
              return {next, reached};
            });
        cum = res[0];
        done = res[1];
      }
      em.emitNormalize(lb, l, w, i, sel.k, topp.getRenormalize(),
                       topp.getScalingFactor().convertToFloat());
    }));
    return {ids, w};
  }
};

/// The attributes top-k and grouped top-k routing share (numGroups 1:
/// no group limiting).
struct TopKParams {
  Value bias; // an operand (tensor), or null
  mdl::Scoring scoring;
  bool renormalize;
  float scale;
  int64_t numGroups = 1, topkGroups = 1;
};

/// Top-k selection per token, after group limiting when numGroups > 1.
SmallVector<Value> emitTopK(RouterEmitter &em, const TopKParams &p) {
  OpBuilder &b = em.b;
  Location loc = em.loc;
  GateOperands g = gateOperands(em);
  auto [ids, w] = em.routingBuffers(g.t, /*fillsAllSlots=*/true);
  Selection sel = selectionScratch(em, g.e);
  Value bias = p.bias ? getBuffer(b, loc, p.bias) : Value();
  int64_t groupSize = g.e / p.numGroups;
  Value groupScore = p.numGroups > 1 ? em.scratch(p.numGroups, b.getF32Type()) : Value();
  Value groupMasked = p.numGroups > 1 ? em.scratch(p.numGroups, b.getI1Type()) : Value();
  em.tokenLoop(emitFor(b, loc, em.c0(), g.t, [&](OpBuilder &lb, Location l, Value i) {
    em.emitLogits(lb, l, g.x, g.gate, i, g.logits, g.e, g.h);
    em.emitScores(lb, l, g.logits, g.e, p.scoring);
    em.emitSelectionKeys(lb, l, g.logits, bias, sel.sel, sel.masked, g.e);
    if (p.numGroups > 1)
      em.emitGroupMask(lb, l, sel.sel, sel.masked, groupScore, groupMasked, p.numGroups,
                       groupSize, p.topkGroups);
    for (int64_t s = 0; s < sel.k; ++s)
      em.emitTake(lb, l, sel.sel, sel.masked, g.logits, g.e, ids, w, i, cIndex(lb, l, s));
    em.emitNormalize(lb, l, w, i, sel.k, p.renormalize, p.scale);
  }));
  return {ids, w};
}

/// moe.topk_router.
struct LowerTopKRouter : RouterPattern<mdl::TopKRouterOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::TopKRouterOp op) const override {
    return emitTopK(em, TopKParams{op.getBias(), op.getScoring(), op.getRenormalize(),
                                   op.getScalingFactor().convertToFloat()});
  }
};

/// moe.grouped_topk_router (DeepSeek-V3 group limiting).
struct LowerGroupedTopKRouter : RouterPattern<mdl::GroupedTopKRouterOp> {
  using RouterPattern::RouterPattern;
  SmallVector<Value> emit(RouterEmitter &em, mdl::GroupedTopKRouterOp op) const override {
    return emitTopK(em, TopKParams{op.getBias(), op.getScoring(), op.getRenormalize(),
                                   op.getScalingFactor().convertToFloat(),
                                   int64_t(op.getNumGroups()), int64_t(op.getTopkGroups())});
  }
};

struct LowerRoutersPass : public mlir::moe::impl::MoeLowerRoutersBase<LowerRoutersPass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *ctx) override {
    mdl::MoeLowerRoutersOptions options;
    options.vectorWidth = vectorWidth;
    options.tokenChunk = tokenChunk;
    RewritePatternSet set(ctx);
    mdl::populateMoeLowerRoutersPatterns(set, options);
    patterns = std::move(set);
    return success();
  }

  void runOnOperation() override {
    numRouters += countOps(getOperation(), isRouter);
    if (failed(applyLoweringPatterns(getOperation(), patterns, isRouter)))
      signalPassFailure();
  }

  static bool isRouter(Operation *op) {
    return isa<mdl::TopKRouterOp, mdl::GroupedTopKRouterOp, mdl::TopPRouterOp, mdl::ReluRouterOp,
               mdl::ExpertChoiceRouterOp, mdl::HashRouterOp, mdl::CapacityDropOp,
               mdl::RouterScoresOp, mdl::CapacityRerouteOp, mdl::CompressSlotsOp,
               mdl::PathRouterOp, mdl::ExitLayersOp, mdl::ExitPathsOp>(op);
  }

  FrozenRewritePatternSet patterns;
};
} // namespace

void mlir::moe::populateMoeLowerRoutersPatterns(RewritePatternSet &patterns,
                                                const MoeLowerRoutersOptions &options) {
  RouterConfig config{resolveVectorWidth(options.vectorWidth), options.tokenChunk};
  patterns.add<LowerTopKRouter, LowerGroupedTopKRouter, LowerTopPRouter, LowerReluRouter,
               LowerExpertChoiceRouter, LowerHashRouter, LowerCapacityDrop, LowerRouterScores,
               LowerCapacityReroute, LowerCompressSlots, LowerPathRouter, LowerExitLayers,
               LowerExitPaths>(
      patterns.getContext(), config);
}
