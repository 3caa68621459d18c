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
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
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
};

struct LowerRoutersPass : public mlir::moe::impl::MoeLowerRoutersBase<LowerRoutersPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> routers;
    getOperation().walk([&](Operation *op) {
      if (isa<mdl::TopKRouterOp, mdl::GroupedTopKRouterOp, mdl::TopPRouterOp,
              mdl::ReluRouterOp, mdl::ExpertChoiceRouterOp, mdl::HashRouterOp,
              mdl::CapacityDropOp, mdl::PathRouterOp>(op))
        routers.push_back(op);
    });
    int64_t width = resolveVectorWidth(vectorWidth);
    for (Operation *op : routers) {
      OpBuilder b(op);
      RouterEmitter em{b, op->getLoc(), op, width, tokenChunk};
      SmallVector<Value> results = lower(em, op);
      for (auto [res, buf] : llvm::zip(op->getResults(), results))
        res.replaceAllUsesWith(asTensor(b, op->getLoc(), buf, res.getType()));
      op->erase();
      ++numRouters;
    }
  }

  /// Allocates [T, K] ids/weights for `op`'s results, filled as unused.
  std::pair<Value, Value> routingBuffers(RouterEmitter &em, Operation *op, Value t) {
    OpBuilder &b = em.b;
    SmallVector<Value> dyn;
    if (cast<ShapedType>(op->getResult(0).getType()).isDynamicDim(0))
      dyn.push_back(t);
    Value ids = allocFor(b, em.loc, op->getResult(0).getType(), dyn);
    Value w = allocFor(b, em.loc, op->getResult(1).getType(), dyn);
    // Top-k (plain and grouped) and hash routing write every slot; the
    // others may leave slots unused, which must read as id -1, weight 0.
    if (!isa<mdl::TopKRouterOp, mdl::GroupedTopKRouterOp, mdl::HashRouterOp>(op))
      em.fillUnused(ids, w);
    return {ids, w};
  }

  SmallVector<Value> lower(RouterEmitter &em, Operation *op) {
    OpBuilder &b = em.b;
    Location loc = em.loc;
    auto scratch = [&](int64_t n, Type et) {
      return entryAlloca(op, MemRefType::get({n}, et));
    };
    auto f32 = b.getF32Type();
    auto i1 = b.getI1Type();

    if (auto hash = dyn_cast<mdl::HashRouterOp>(op)) {
      Value tok = getBuffer(b, loc, hash.getTokenIds());
      Value t = dimOf(b, loc, tok, 0);
      auto [ids, w] = routingBuffers(em, op, t);
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

    if (auto cap = dyn_cast<mdl::CapacityDropOp>(op)) {
      Value inIds = getBuffer(b, loc, cap.getInIds());
      Value inW = getBuffer(b, loc, cap.getInWeights());
      Value t = dimOf(b, loc, inIds, 0);
      int64_t k = cast<ShapedType>(inIds.getType()).getDimSize(1);
      int64_t e = cap.getNumExperts();
      auto [ids, w] = routingBuffers(em, op, t);
      memref::CopyOp::create(b, loc, inIds, ids);
      memref::CopyOp::create(b, loc, inW, w);
      Value load = scratch(e, b.getI64Type());
      markParallel(emitFor(b, loc, em.c0(), cIndex(b, loc, e), [&](OpBuilder &lb, Location l, Value j) {
        memref::StoreOp::create(lb, l, arith::ConstantOp::create(lb, l, lb.getI64IntegerAttr(0)),
                                load, ValueRange{j});
      }));
      // C = ceil(cf * T * K / E), in double and in the reference's order
      // ((cf * T) * K) / E: folding cf * K / E into one constant rounds
      // differently (e.g. cf 1, K 3, E 17, T 85: 16 instead of 15).
      auto f64 = [&](double v) {
        return arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v));
      };
      Value tF = arith::UIToFPOp::create(b, loc, b.getF64Type(),
                                         arith::IndexCastOp::create(b, loc, b.getI64Type(), t));
      Value scaled = arith::MulFOp::create(
          b, loc, f64(double(cap.getCapacityFactor().convertToFloat())), tF);
      scaled = arith::MulFOp::create(b, loc, scaled, f64(double(k)));
      Value cF = math::CeilOp::create(
          b, loc, arith::DivFOp::create(b, loc, scaled, f64(double(e))));
      Value limit = arith::FPToSIOp::create(b, loc, b.getI64Type(), cF);
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

    // All remaining routers start from logits = gate · x per token.
    Value x = getBuffer(b, loc, op->getOperand(0));
    Value gate = getBuffer(b, loc, op->getOperand(1));
    Value t = dimOf(b, loc, x, 0);
    int64_t h = cast<ShapedType>(x.getType()).getDimSize(1);
    int64_t e = cast<ShapedType>(gate.getType()).getDimSize(0);
    Value logits = scratch(e, f32);

    if (isa<mdl::PathRouterOp>(op)) {
      Value paths = allocFor(b, loc, op->getResult(0).getType(),
                             cast<ShapedType>(op->getResult(0).getType()).isDynamicDim(0)
                                 ? ValueRange{t}
                                 : ValueRange{});
      em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
        em.emitLogits(lb, l, x, gate, i, logits, e, h);
        Value j = emitArgmax(lb, l, logits, Value(), e).first;
        memref::StoreOp::create(lb, l, toI32(lb, l, j), paths, ValueRange{i});
      }));
      return {paths};
    }

    auto [ids, w] = routingBuffers(em, op, t);

    if (auto ec = dyn_cast<mdl::ExpertChoiceRouterOp>(op)) {
      // S [T, E], then each expert takes its top-min(capacity, T) tokens.
      Value scores = allocFor(b, loc, RankedTensorType::get({ShapedType::kDynamic, e}, f32), {t});
      Value taken = allocFor(b, loc, RankedTensorType::get({ShapedType::kDynamic, e}, i1), {t});
      em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
        em.emitLogits(lb, l, x, gate, i, logits, e, h);
        em.emitScores(lb, l, logits, e, ec.getScoring());
        emitFor(lb, l, cIndex(lb, l, 0), cIndex(lb, l, e), [&](OpBuilder &b2, Location l2, Value j) {
          memref::StoreOp::create(b2, l2, memref::LoadOp::create(b2, l2, logits, ValueRange{j}),
                                  scores, ValueRange{i, j});
          memref::StoreOp::create(b2, l2, arith::ConstantOp::create(b2, l2, b2.getBoolAttr(false)),
                                  taken, ValueRange{i, j});
        });
      }));
      Value capacity = arith::MinUIOp::create(b, loc, cIndex(b, loc, ec.getCapacity()), t);
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
      float scale = ec.getScalingFactor().convertToFloat();
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
      return {ids, w};
    }

    Value sel = scratch(e, f32);
    Value masked = scratch(e, i1);
    int64_t k = cast<ShapedType>(op->getResult(0).getType()).getDimSize(1);

    if (auto relu = dyn_cast<mdl::ReluRouterOp>(op)) {
      em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
        em.emitLogits(lb, l, x, gate, i, logits, e, h);
        em.emitSelectionKeys(lb, l, logits, Value(), sel, masked, e);
        for (int64_t s = 0; s < k; ++s) {
          auto best = emitArgmax(lb, l, sel, masked, e);
          Value positive = arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OGT, best.second,
                                                 cF32(lb, l, 0.0f));
          scf::IfOp::create(lb, l, positive, [&](OpBuilder &tb, Location tl) {
            em.emitTakeIndex(tb, tl, best.first, masked, logits, ids, w, i, cIndex(tb, tl, s));
            scf::YieldOp::create(tb, tl);
          });
        }
        em.emitNormalize(lb, l, w, i, k, false, relu.getScalingFactor().convertToFloat());
      }));
      return {ids, w};
    }

    if (auto topp = dyn_cast<mdl::TopPRouterOp>(op)) {
      float threshold = topp.getThreshold().convertToFloat();
      em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
        em.emitLogits(lb, l, x, gate, i, logits, e, h);
        em.emitScores(lb, l, logits, e, mdl::Scoring::softmax);
        em.emitSelectionKeys(lb, l, logits, Value(), sel, masked, e);
        // (cumulative probability, done) threaded through the K takes; the
        // first expert is always taken.
        Value cum = cF32(lb, l, 0.0f);
        Value done = arith::ConstantOp::create(lb, l, lb.getBoolAttr(false));
        for (int64_t s = 0; s < k; ++s) {
          ValueRange res = emitIfElse(
              lb, l, TypeRange{lb.getF32Type(), lb.getI1Type()}, done,
              [&](OpBuilder &, Location) -> SmallVector<Value> { return {cum, done}; },
              [&](OpBuilder &eb, Location el) -> SmallVector<Value> {
                Value j = em.emitTake(eb, el, sel, masked, logits, e, ids, w, i, cIndex(eb, el, s));
                Value p = memref::LoadOp::create(eb, el, logits, ValueRange{j});
                Value next = arith::AddFOp::create(eb, el, cum, p);
                Value reached = arith::CmpFOp::create(eb, el, arith::CmpFPredicate::OGE, next,
                                                      cF32(eb, el, threshold));
                return {next, reached};
              });
          cum = res[0];
          done = res[1];
        }
        em.emitNormalize(lb, l, w, i, k, topp.getRenormalize(),
                         topp.getScalingFactor().convertToFloat());
      }));
      return {ids, w};
    }

    // Top-k and grouped top-k.
    Value bias;
    mdl::Scoring scoring;
    bool renormalize;
    float scale;
    int64_t numGroups = 1, topkGroups = 1;
    if (auto topk = dyn_cast<mdl::TopKRouterOp>(op)) {
      if (topk.getBias())
        bias = getBuffer(b, loc, topk.getBias());
      scoring = topk.getScoring();
      renormalize = topk.getRenormalize();
      scale = topk.getScalingFactor().convertToFloat();
    } else {
      auto grouped = cast<mdl::GroupedTopKRouterOp>(op);
      if (grouped.getBias())
        bias = getBuffer(b, loc, grouped.getBias());
      scoring = grouped.getScoring();
      renormalize = grouped.getRenormalize();
      scale = grouped.getScalingFactor().convertToFloat();
      numGroups = grouped.getNumGroups();
      topkGroups = grouped.getTopkGroups();
    }
    int64_t groupSize = e / numGroups;
    Value groupScore = numGroups > 1 ? scratch(numGroups, f32) : Value();
    Value groupMasked = numGroups > 1 ? scratch(numGroups, i1) : Value();
    em.tokenLoop(emitFor(b, loc, em.c0(), t, [&](OpBuilder &lb, Location l, Value i) {
      em.emitLogits(lb, l, x, gate, i, logits, e, h);
      em.emitScores(lb, l, logits, e, scoring);
      em.emitSelectionKeys(lb, l, logits, bias, sel, masked, e);
      if (numGroups > 1)
        emitGroupMask(lb, l, sel, masked, groupScore, groupMasked, numGroups,
                      groupSize, topkGroups);
      for (int64_t s = 0; s < k; ++s)
        em.emitTake(lb, l, sel, masked, logits, e, ids, w, i, cIndex(lb, l, s));
      em.emitNormalize(lb, l, w, i, k, renormalize, scale);
    }));
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
} // namespace
