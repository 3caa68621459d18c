//===- LoweringUtils.cpp - shared helpers of the loop-emitting passes -----===//

#include "LoweringUtils.h"
#include "moe_status_codes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/SetVector.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/TargetParser/Host.h"

namespace mlir::moe::lowering {

int64_t hostVectorWidth() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  auto it = features.find("avx512f");
  return it != features.end() && it->second ? 16 : 8;
}

int64_t resolveVectorWidth(int64_t requested) {
  return requested > 0 ? requested : hostVectorWidth();
}

int64_t resolveRowTile(int64_t requested) {
  if (requested > 0)
    return requested;
  return hostVectorWidth() == 16 ? 8 : 4;
}

MemRefType bufferTypeOf(Type tensorType) {
  auto t = cast<RankedTensorType>(tensorType);
  return MemRefType::get(t.getShape(), t.getElementType());
}

Value getBuffer(OpBuilder &b, Location loc, Value tensor) {
  // A lowered op's result is a to_tensor of the buffer it wrote: the next
  // lowering reads that buffer directly.
  if (auto toTensor = tensor.getDefiningOp<bufferization::ToTensorOp>())
    return toTensor.getBuffer();
  // Anything else (an argument, an upstream tensor op's result) is read
  // only: one-shot-bufferize then gives its buffer without a copy.
  return bufferization::ToBufferOp::create(b, loc, bufferTypeOf(tensor.getType()), tensor,
                                           /*readOnly=*/true);
}

Value getWritableBuffer(OpBuilder &b, Location loc, Value tensor) {
  if (auto toTensor = tensor.getDefiningOp<bufferization::ToTensorOp>())
    return toTensor.getBuffer();
  // Written in place: a private copy, so the caller's tensor (an argument,
  // another op's operand) keeps its value.
  SmallVector<Value> dynamicSizes;
  auto type = cast<RankedTensorType>(tensor.getType());
  Value source = getBuffer(b, loc, tensor);
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dynamicSizes.push_back(memref::DimOp::create(b, loc, source, d));
  Value copy = allocFor(b, loc, type, dynamicSizes);
  memref::CopyOp::create(b, loc, source, copy);
  return copy;
}

Value asTensor(OpBuilder &b, Location loc, Value buffer, Type tensorType) {
  // `restrict`: the lowerings hand each buffer they allocate to tensor IR
  // only through these ops, so one-shot-bufferize may assume no other alias.
  // Not `writable`: an upstream op that would write into it in place gets a
  // copy instead.
  return bufferization::ToTensorOp::create(b, loc, tensorType, buffer, /*restrict=*/true,
                                           /*writable=*/false);
}

Value allocFor(OpBuilder &b, Location loc, Type tensorType,
               ValueRange dynamicSizes) {
  return memref::AllocOp::create(b, loc, bufferTypeOf(tensorType), dynamicSizes,
                                 b.getI64IntegerAttr(64));
}

static func::FuncOp enclosingFunc(Operation *op) {
  return isa<func::FuncOp>(op) ? cast<func::FuncOp>(op)
                               : op->getParentOfType<func::FuncOp>();
}

Value entryAlloca(Operation *inFunc, MemRefType type) {
  func::FuncOp func = enclosingFunc(inFunc);
  OpBuilder b(func.getContext());
  b.setInsertionPointToStart(&func.getBody().front());
  return memref::AllocaOp::create(b, func.getLoc(), type, ValueRange{},
                                  b.getI64IntegerAttr(64));
}

bool chunkForThreadPool(scf::ForOp loop, int64_t chunk) {
  if (chunk <= 0 || !matchPattern(loop.getLowerBound(), m_Zero()) ||
      !matchPattern(loop.getStep(), m_One()) || loop.getNumResults() != 0)
    return false;
  func::FuncOp func = loop->getParentOfType<func::FuncOp>();
  Block &entry = func.getBody().front();
  // Scratch: static entry-block allocas (not the call's slots) used in the loop.
  SetVector<Value> scratch;
  loop.walk([&](Operation *op) {
    for (Value v : op->getOperands())
      if (auto alloca = v.getDefiningOp<memref::AllocaOp>())
        if (alloca->getBlock() == &entry && !isCallSlot(alloca))
          scratch.insert(v);
  });
  for (Value v : scratch)
    for (Operation *user : v.getUsers())
      if (!loop->isAncestor(user))
        return false;
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  Value n = loop.getUpperBound();
  Value items = arith::CeilDivUIOp::create(b, loc, n, cIndex(b, loc, chunk));
  auto outer = scf::ForOp::create(b, loc, cIndex(b, loc, 0), items, cIndex(b, loc, 1));
  markThreadPoolLoop(outer);
  b.setInsertionPointToStart(outer.getBody());
  Value c = outer.getInductionVar();
  auto scope = memref::AllocaScopeOp::create(b, loc, TypeRange{});
  Block *body = new Block();
  scope.getBodyRegion().push_back(body);
  OpBuilder sb = OpBuilder::atBlockEnd(body);
  Value begin = arith::MulIOp::create(sb, loc, c, cIndex(sb, loc, chunk));
  Value end = arith::MinUIOp::create(sb, loc, arith::AddIOp::create(sb, loc, begin, cIndex(sb, loc, chunk)), n);
  for (Value v : scratch) {
    auto old = v.getDefiningOp<memref::AllocaOp>();
    Value priv = memref::AllocaOp::create(sb, loc, old.getType(), ValueRange{}, old.getAlignmentAttr());
    v.replaceUsesWithIf(priv, [&](OpOperand &use) { return loop->isAncestor(use.getOwner()); });
  }
  auto ret = memref::AllocaScopeReturnOp::create(sb, loc, ValueRange{});
  loop->moveBefore(ret);
  loop.setLowerBound(begin);
  loop.setUpperBound(end);
  for (Value v : scratch)
    if (v.use_empty())
      v.getDefiningOp()->erase();
  return true;
}

namespace {
Value entrySlot(Operation *inFunc, StringRef attr) {
  func::FuncOp func = enclosingFunc(inFunc);
  for (Operation &op : func.getBody().front())
    if (op.hasAttr(attr))
      return op.getResult(0);
  return Value();
}

/// Stores `code` and `detail` into the error-detail slot unless an earlier
/// check already did (the message names the first bad value).
void recordDetail(OpBuilder &b, Location loc, Value slot, int32_t code, ValueRange detail) {
  Value recorded = memref::LoadOp::create(b, loc, slot, ValueRange{cIndex(b, loc, 0)});
  Type i64 = b.getI64Type();
  Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, recorded,
                                      arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0)));
  scf::IfOp::create(b, loc, first, [&](OpBuilder &tb, Location l) {
    SmallVector<Value> values = {arith::ConstantOp::create(tb, l, tb.getI64IntegerAttr(code))};
    for (Value v : detail)
      values.push_back(v.getType().isIndex() ? arith::IndexCastOp::create(tb, l, i64, v).getResult()
                       : v.getType() == i64  ? v
                                             : arith::ExtSIOp::create(tb, l, i64, v).getResult());
    for (auto [i, v] : llvm::enumerate(values))
      memref::StoreOp::create(tb, l, v, slot, ValueRange{cIndex(tb, l, i)});
    scf::YieldOp::create(tb, l);
  });
}
} // namespace

Value statusSlot(Operation *inFunc) { return entrySlot(inFunc, kStatusAttr); }
Value errorDetailSlot(Operation *inFunc) { return entrySlot(inFunc, kErrorDetailAttr); }

bool isCallSlot(Operation *op) {
  return op->hasAttr(kStatusAttr) || op->hasAttr(kErrorDetailAttr);
}

void recordError(OpBuilder &b, Location loc, Operation *inFunc, Value failed,
                 int32_t code, ValueRange detail) {
  Value slot = statusSlot(inFunc);
  if (!slot)
    return;
  assert((detail.empty() || detail.size() == kErrorDetailSize - 1) &&
         "a detail is token, slot, id and bound");
  Value detailSlot = detail.empty() ? Value() : errorDetailSlot(inFunc);
  scf::IfOp::create(b, loc, failed, [&](OpBuilder &tb, Location l) {
    memref::StoreOp::create(tb, l, cI32(tb, l, code), slot);
    if (detailSlot)
      recordDetail(tb, l, detailSlot, code, detail);
    scf::YieldOp::create(tb, l);
  });
}

Value cIndex(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}
Value cF32(OpBuilder &b, Location loc, float v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}
Value cI64(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
}

func::FuncOp declareRuntimeFunction(Operation *inModule, StringRef name, TypeRange args,
                                    TypeRange results) {
  auto module = inModule->getParentOfType<ModuleOp>();
  if (auto fn = module.lookupSymbol<func::FuncOp>(name))
    return fn;
  OpBuilder b(module.getBodyRegion());
  auto fn = func::FuncOp::create(b, module.getLoc(), name, b.getFunctionType(args, results));
  fn.setPrivate();
  return fn;
}

Value cI32(OpBuilder &b, Location loc, int32_t v) {
  return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
}
Value dimOf(OpBuilder &b, Location loc, Value buffer, int64_t d) {
  return memref::DimOp::create(b, loc, buffer, d);
}
Value toIndex(OpBuilder &b, Location loc, Value i32) {
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), i32);
}
Value toI32(OpBuilder &b, Location loc, Value index) {
  return arith::IndexCastOp::create(b, loc, b.getI32Type(), index);
}

scf::ForOp markParallel(scf::ForOp loop) {
  loop->setAttr(kGpuParallelAttr, UnitAttr::get(loop.getContext()));
  return loop;
}

void markThreadPoolLoop(scf::ForOp loop) {
  MoeDialect::ParallelAttrHelper(loop.getContext()).setAttr(loop, UnitAttr::get(loop.getContext()));
}

bool isThreadPoolLoop(scf::ForOp loop) {
  return MoeDialect::ParallelAttrHelper(loop.getContext()).isAttrPresent(loop);
}

scf::ForOp emitFor(OpBuilder &b, Location loc, Value lb, Value ub,
                   function_ref<void(OpBuilder &, Location, Value)> body) {
  return scf::ForOp::create(b, loc, lb, ub, cIndex(b, loc, 1), ValueRange{},
                     [&](OpBuilder &lb2, Location l, Value iv, ValueRange) {
                       body(lb2, l, iv);
                       scf::YieldOp::create(lb2, l);
                     });
}

ValueRange emitForWithArgs(
    OpBuilder &b, Location loc, Value lb, Value ub, ValueRange init,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange)>
        body) {
  auto loop = scf::ForOp::create(
      b, loc, lb, ub, cIndex(b, loc, 1), init,
      [&](OpBuilder &lb2, Location l, Value iv, ValueRange args) {
        scf::YieldOp::create(lb2, l, body(lb2, l, iv, args));
      });
  return loop.getResults();
}

/// sums[r][w] = rows[r] · weights[w] over `len` contiguous elements.
SmallVector<SmallVector<Value>> emitDotTile(OpBuilder &b, Location loc,
                                            ArrayRef<RowRef> rows,
                                            ArrayRef<RowRef> weights,
                                            int64_t len, int64_t width, Value offset) {
  auto vecType = VectorType::get({width}, b.getF32Type());
  size_t nr = rows.size(), nw = weights.size();
  int64_t mainLen = len - len % width;
  auto at = [&](OpBuilder &ab, Location al, const RowRef &ref, Value last) {
    SmallVector<Value> idx(ref.prefix);
    idx.push_back(offset ? Value(arith::AddIOp::create(ab, al, offset, last)) : last);
    return idx;
  };
  SmallVector<SmallVector<Value>> sums(nr, SmallVector<Value>(nw, cF32(b, loc, 0.0f)));
  if (mainLen > 0) {
    Value zero = arith::ConstantOp::create(
        b, loc, vecType, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0.0f)));
    SmallVector<Value> init(nr * nw, zero);
    auto loop = scf::ForOp::create(
        b, loc, cIndex(b, loc, 0), cIndex(b, loc, mainLen), cIndex(b, loc, width), init,
        [&](OpBuilder &lb, Location l, Value c, ValueRange acc) {
          SmallVector<Value> wv, next;
          for (const RowRef &w : weights)
            wv.push_back(vector::LoadOp::create(lb, l, vecType, w.buffer, at(lb, l, w, c)));
          for (size_t r = 0; r < nr; ++r) {
            Value xv = vector::LoadOp::create(lb, l, vecType, rows[r].buffer, at(lb, l, rows[r], c));
            for (size_t w = 0; w < nw; ++w)
              next.push_back(vector::FMAOp::create(lb, l, xv, wv[w], acc[r * nw + w]));
          }
          scf::YieldOp::create(lb, l, next);
        });
    for (size_t r = 0; r < nr; ++r)
      for (size_t w = 0; w < nw; ++w)
        // reassoc lets LLVM reduce the lanes as a log2(width)-deep tree of
        // shuffles + adds instead of a chain of `width` dependent scalar adds
        // (strict in-order fadd): the reductions end every K slice, and at
        // decode sizes they sit on the critical path between slices (DS-D
        // 5.0 -> 4.7 ms on a Zen3). The result differs from the in-order sum
        // only by rounding.
        sums[r][w] = vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD,
                                                 loop.getResult(r * nw + w),
                                                 arith::FastMathFlags::reassoc);
  }
  for (int64_t c = mainLen; c < len; ++c) {
    Value idx = cIndex(b, loc, c);
    SmallVector<Value> wv;
    for (const RowRef &w : weights)
      wv.push_back(memref::LoadOp::create(b, loc, w.buffer, at(b, loc, w, idx)));
    for (size_t r = 0; r < nr; ++r) {
      Value xv = memref::LoadOp::create(b, loc, rows[r].buffer, at(b, loc, rows[r], idx));
      for (size_t w = 0; w < nw; ++w)
        sums[r][w] = math::FmaOp::create(b, loc, xv, wv[w], sums[r][w]);
    }
  }
  return sums;
}

Value emitDot(OpBuilder &b, Location loc, Value a, ValueRange aPrefix, Value bv,
              ValueRange bPrefix, int64_t len, int64_t width) {
  RowRef row{a, SmallVector<Value>(aPrefix.begin(), aPrefix.end())};
  RowRef weight{bv, SmallVector<Value>(bPrefix.begin(), bPrefix.end())};
  return emitDotTile(b, loc, {row}, {weight}, len, width)[0][0];
}

/// out[outRow, :] += w * src[srcRow, :] over `len` contiguous elements.
void emitAxpy(OpBuilder &b, Location loc, Value out, Value outRow, Value src,
              Value srcRow, Value w, int64_t len, int64_t width) {
  auto vecType = VectorType::get({width}, b.getF32Type());
  int64_t mainLen = len - len % width;
  if (mainLen > 0) {
    Value wv = vector::BroadcastOp::create(b, loc, vecType, w);
    scf::ForOp::create(b, loc, cIndex(b, loc, 0), cIndex(b, loc, mainLen), cIndex(b, loc, width),
                       ValueRange{}, [&](OpBuilder &lb, Location l, Value c, ValueRange) {
                         Value s = vector::LoadOp::create(lb, l, vecType, src, ValueRange{srcRow, c});
                         Value o = vector::LoadOp::create(lb, l, vecType, out, ValueRange{outRow, c});
                         Value r = vector::FMAOp::create(lb, l, s, wv, o);
                         vector::StoreOp::create(lb, l, r, out, ValueRange{outRow, c});
                         scf::YieldOp::create(lb, l);
                       });
  }
  for (int64_t c = mainLen; c < len; ++c) {
    Value idx = cIndex(b, loc, c);
    Value s = memref::LoadOp::create(b, loc, src, ValueRange{srcRow, idx});
    Value o = memref::LoadOp::create(b, loc, out, ValueRange{outRow, idx});
    memref::StoreOp::create(b, loc, math::FmaOp::create(b, loc, s, w, o), out,
                            ValueRange{outRow, idx});
  }
}

/// An f32 constant of `like`'s type: a scalar, or a splat for a vector.
static Value f32Like(OpBuilder &b, Location loc, Value like, float v) {
  if (auto vt = dyn_cast<VectorType>(like.getType()))
    return arith::ConstantOp::create(b, loc, vt,
                                     DenseElementsAttr::get(vt, b.getF32FloatAttr(v)));
  return cF32(b, loc, v);
}

Value emitActivation(OpBuilder &b, Location loc, Activation act,
                     Value v) {
  switch (act) {
  case Activation::swiglu:
  case Activation::silu: {
    // silu(v) = v / (1 + exp(-v))
    Value neg = arith::NegFOp::create(b, loc, v);
    Value e = math::ExpOp::create(b, loc, neg);
    Value den = arith::AddFOp::create(b, loc, f32Like(b, loc, v, 1.0f), e);
    return arith::DivFOp::create(b, loc, v, den);
  }
  case Activation::geglu:
  case Activation::gelu: {
    // gelu(v) = 0.5 v (1 + erf(v / sqrt 2))
    Value scaled = arith::MulFOp::create(b, loc, v, f32Like(b, loc, v, 0.70710678118654752f));
    Value erf = math::ErfOp::create(b, loc, scaled);
    Value one = arith::AddFOp::create(b, loc, f32Like(b, loc, v, 1.0f), erf);
    Value half = arith::MulFOp::create(b, loc, v, f32Like(b, loc, v, 0.5f));
    return arith::MulFOp::create(b, loc, half, one);
  }
  case Activation::relu:
    return arith::MaximumFOp::create(b, loc, v, f32Like(b, loc, v, 0.0f));
  }
  return v;
}

ValueRange emitIfElse(
    OpBuilder &b, Location loc, TypeRange types, Value cond,
    function_ref<SmallVector<Value>(OpBuilder &, Location)> thenBody,
    function_ref<SmallVector<Value>(OpBuilder &, Location)> elseBody) {
  auto ifOp = scf::IfOp::create(b, loc, types, cond, /*withElseRegion=*/true);
  // The branches are built with `b` itself (a pattern's rewriter sees them).
  OpBuilder::InsertionGuard guard(b);
  for (auto [block, body] : {std::make_pair(ifOp.thenBlock(), thenBody),
                             std::make_pair(ifOp.elseBlock(), elseBody)}) {
    if (!block->empty() && block->back().hasTrait<OpTrait::IsTerminator>())
      block->back().erase();
    b.setInsertionPointToEnd(block);
    scf::YieldOp::create(b, loc, body(b, loc));
  }
  return ifOp.getResults();
}

void emitIfThenElse(OpBuilder &b, Location loc, Value cond,
                    function_ref<void(OpBuilder &, Location)> thenBody,
                    function_ref<void(OpBuilder &, Location)> elseBody) {
  scf::IfOp::create(
      b, loc, cond,
      [&](OpBuilder &tb, Location tl) {
        thenBody(tb, tl);
        scf::YieldOp::create(tb, tl);
      },
      [&](OpBuilder &eb, Location el) {
        elseBody(eb, el);
        scf::YieldOp::create(eb, el);
      });
}

std::pair<Value, Value> emitArgmax(OpBuilder &b, Location loc, Value buf,
                                   Value masked, int64_t n) {
  Value negInf = cF32(b, loc, -std::numeric_limits<float>::infinity());
  // Start from index -1 so a fully masked buffer is detectable.
  ValueRange res = emitForWithArgs(
      b, loc, cIndex(b, loc, 0), cIndex(b, loc, n),
      ValueRange{cIndex(b, loc, -1), negInf},
      [&](OpBuilder &lb, Location l, Value j, ValueRange acc) -> SmallVector<Value> {
        Value v = memref::LoadOp::create(lb, l, buf, ValueRange{j});
        // Strictly greater keeps the lower index on ties; the first unmasked
        // entry is taken even when it is -inf.
        Value better = arith::CmpFOp::create(lb, l, arith::CmpFPredicate::OGT, v, acc[1]);
        Value none = arith::CmpIOp::create(lb, l, arith::CmpIPredicate::slt, acc[0],
                                           cIndex(lb, l, 0));
        Value take = arith::OrIOp::create(lb, l, better, none);
        if (masked) {
          Value m = memref::LoadOp::create(lb, l, masked, ValueRange{j});
          Value notMasked = arith::XOrIOp::create(
              lb, l, m, arith::ConstantOp::create(lb, l, lb.getBoolAttr(true)));
          take = arith::AndIOp::create(lb, l, take, notMasked);
        }
        Value idx = arith::SelectOp::create(lb, l, take, j, acc[0]);
        Value val = arith::SelectOp::create(lb, l, take, v, acc[1]);
        return {idx, val};
      });
  return {res[0], res[1]};
}

DispatchLowering::DispatchLowering(OpBuilder &b, DispatchOp op) : op(op) {
  Location loc = op.getLoc();
  ids = getBuffer(b, loc, op.getIds());
  t = dimOf(b, loc, ids, 0);
  k = cast<ShapedType>(ids.getType()).getDimSize(1);
  e = op.getNumExperts();
  int64_t sh = op.getNumShared();
  slots = k + sh;
  total = e + sh;

  SmallVector<Value> dynRows, dynSlots;
  if (cast<ShapedType>(op.getRows().getType()).isDynamicDim(0))
    dynRows.push_back(arith::MulIOp::create(b, loc, t, cIndex(b, loc, slots)));
  if (cast<ShapedType>(op.getSlotRows().getType()).isDynamicDim(0))
    dynSlots.push_back(t);
  offsets = allocFor(b, loc, op.getOffsets().getType(), {});
  rows = allocFor(b, loc, op.getRows().getType(), dynRows);
  slotRows = allocFor(b, loc, op.getSlotRows().getType(), dynSlots);
}

Value DispatchLowering::expertOf(OpBuilder &b, Location loc, Value token, Value s,
                                 bool check) const {
  Value isRouted = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, s, cIndex(b, loc, k));
  return emitIfElse(
      b, loc, TypeRange{b.getI32Type()}, isRouted,
      [&](OpBuilder &tb, Location l) -> SmallVector<Value> {
        Value id = memref::LoadOp::create(tb, l, ids, ValueRange{token, s});
        Value bad = arith::OrIOp::create(
            tb, l, arith::CmpIOp::create(tb, l, arith::CmpIPredicate::slt, id, cI32(tb, l, -1)),
            arith::CmpIOp::create(tb, l, arith::CmpIPredicate::sge, id, cI32(tb, l, e)));
        if (check)
          recordError(tb, l, op, bad, MOE_ERR_EXPERT_ID, {token, s, id, cIndex(tb, l, e)});
        return {arith::SelectOp::create(tb, l, bad, cI32(tb, l, -1), id)};
      },
      [&](OpBuilder &eb, Location l) -> SmallVector<Value> {
        return {arith::AddIOp::create(
            eb, l, toI32(eb, l, arith::SubIOp::create(eb, l, s, cIndex(eb, l, k))), cI32(eb, l, e))};
      })[0];
}

void DispatchLowering::forEachSlot(
    OpBuilder &b, Location loc, Value token, bool check,
    function_ref<void(OpBuilder &, Location, Value, Value)> used,
    function_ref<void(OpBuilder &, Location, Value)> unused) const {
  emitFor(b, loc, cIndex(b, loc, 0), cIndex(b, loc, slots), [&](OpBuilder &sb, Location sl, Value s) {
    Value id = expertOf(sb, sl, token, s, check);
    Value isUsed = arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::sge, id, cI32(sb, sl, 0));
    auto usedBody = [&](OpBuilder &ub, Location ul) {
      used(ub, ul, s, id);
      scf::YieldOp::create(ub, ul);
    };
    if (!unused) {
      scf::IfOp::create(sb, sl, isUsed, usedBody);
      return;
    }
    scf::IfOp::create(sb, sl, isUsed, usedBody, [&](OpBuilder &nb, Location nl) {
      unused(nb, nl, s);
      scf::YieldOp::create(nb, nl);
    });
  });
}

void DispatchLowering::emitPrefixSum(OpBuilder &b, Location loc, Value cursor, Value zero) const {
  Value end = emitForWithArgs(
      b, loc, zero, cIndex(b, loc, total), ValueRange{cI32(b, loc, 0)},
      [&](OpBuilder &lb, Location l, Value j, ValueRange acc) -> SmallVector<Value> {
        Value c = memref::LoadOp::create(lb, l, cursor, ValueRange{j});
        memref::StoreOp::create(lb, l, acc[0], offsets, ValueRange{j});
        memref::StoreOp::create(lb, l, acc[0], cursor, ValueRange{j});
        return {arith::AddIOp::create(lb, l, acc[0], c)};
      })[0];
  memref::StoreOp::create(b, loc, end, offsets, ValueRange{cIndex(b, loc, total)});
}

void DispatchLowering::scatterToken(
    OpBuilder &b, Location loc, Value token,
    function_ref<Value(OpBuilder &, Location, Value)> claimRow) const {
  forEachSlot(
      b, loc, token, /*check=*/false,
      [&](OpBuilder &ub, Location ul, Value s, Value id) {
        Value p = claimRow(ub, ul, id);
        memref::StoreOp::create(ub, ul, toI32(ub, ul, token), rows, ValueRange{toIndex(ub, ul, p)});
        memref::StoreOp::create(ub, ul, p, slotRows, ValueRange{token, s});
      },
      [&](OpBuilder &nb, Location nl, Value s) {
        memref::StoreOp::create(nb, nl, cI32(nb, nl, -1), slotRows, ValueRange{token, s});
      });
}

void DispatchLowering::replaceOp(RewriterBase &rewriter) {
  replaceOpWithBuffers(rewriter, op, {offsets, rows, slotRows});
}

void replaceOpWithBuffers(RewriterBase &rewriter, Operation *op, ValueRange buffers) {
  assert(buffers.size() == op->getNumResults() && "one buffer per result");
  SmallVector<Value> tensors;
  for (auto [result, buffer] : llvm::zip(op->getResults(), buffers))
    tensors.push_back(asTensor(rewriter, op->getLoc(), buffer, result.getType()));
  rewriter.replaceOp(op, tensors);
}

int64_t countOps(Operation *root, function_ref<bool(Operation *)> pred) {
  int64_t n = 0;
  root->walk([&](Operation *op) { n += pred(op) ? 1 : 0; });
  return n;
}

LogicalResult applyLoweringPatterns(Operation *root, const FrozenRewritePatternSet &patterns,
                                    function_ref<bool(Operation *)> isLowered) {
  walkAndApplyPatterns(root, patterns);
  return reportUnlowered(root, isLowered);
}

LogicalResult reportUnlowered(Operation *root, function_ref<bool(Operation *)> isLowered) {
  bool clean = true;
  root->walk([&](Operation *op) {
    if (!isLowered(op))
      return;
    op->emitOpError("could not be lowered");
    clean = false;
  });
  return success(clean);
}

} // namespace mlir::moe::lowering
