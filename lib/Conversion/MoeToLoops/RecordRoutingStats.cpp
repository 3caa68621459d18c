//===- RecordRoutingStats.cpp - per-layer routing statistics of a call ----===//
//
// moe-record-routing-stats (the CPU pipeline's `stats` option) makes every
// entry function count, per moe.layer, what its routing did in this call,
// and hand the counts to the runtime on return (moe_rt_record_stats, on the
// caller's thread); moe_last_stats() reads them back (moe_runtime.h).
//
// Why here and this way: the routing (the ids after every router, capacity
// op and skip) exists only inside the compiled call, so the call must count
// it; recomputing it outside would mean running the routers twice. The pass
// runs on the `moe` level, before moe-fold-trivial-experts, so it sees each
// layer's original expert table (zero/copy/constant experts still in it)
// and the ids the layer was given; the counting loops read those ids with
// tensor.extract and bump an i64 stack buffer, exactly like the status
// slot, and are left alone by every later lowering (a skip region's counts
// run on the compacted tokens, because the lowering inlines them there).
// The cost is one pass over the [T, K] ids per layer (and over the
// capacity op's input ids), on the caller's thread; see README for the
// measured overhead.
//
// The buffer is self-describing, so a caller needs nothing but it:
//   [0] kStatsMagic, [1] kStatsVersion, [2] R (layer records), then R records
//   record: [0] its length L = kRecordHeader + 2E + K + 1, [1] layer index,
//           [2] source line (0: unknown), [3] E, [4] K,
//           [5] T of the call (the tokens of the layer's outermost enclosing
//               op: a skip region's layers count the tokens that skipped),
//           [6] tokens the layer ran on, [7] valid pairs given to the
//           capacity op that made the layer's ids (-1: none),
//           [8] valid (token, slot) pairs the layer ran,
//           [9] FLOPs per token of the shared experts,
//           then E FLOPs per row of each expert, E rows per expert,
//           K + 1 tokens with j valid slots (j = 0..K).
// Counts accumulate (+=), so a layer that runs more than once per call
// (none today) would sum its runs.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOERECORDROUTINGSTATS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

namespace {
// Keep in sync with runtime/src/Stats.cpp (the reader).
constexpr int64_t kStatsMagic = 0x4D4F4553; // "MOES"
constexpr int64_t kStatsVersion = 1;
constexpr int64_t kRecordHeader = 10;
constexpr StringLiteral kRecordFn = "moe_rt_record_stats";

/// FLOPs (2 per multiply-add) of one row through one expert of `bank`:
/// its matrix products; zero, copy and constant experts cost 0.
int64_t flopsPerRow(Value bank) {
  int64_t h = cast<ExpertsType>(bank.getType()).getHidden();
  Operation *def = bank.getDefiningOp();
  if (auto ffn = dyn_cast_or_null<FfnExpertsOp>(def)) {
    int64_t inter = cast<RankedTensorType>(ffn.getW1().getType()).getDimSize(1);
    return (ffn.getW3() ? 3 : 2) * 2 * h * inter;
  }
  if (auto lora = dyn_cast_or_null<LoraExpertsOp>(def)) {
    int64_t inter = cast<RankedTensorType>(lora.getW1().getType()).getDimSize(0);
    int64_t rank = cast<RankedTensorType>(lora.getA1().getType()).getDimSize(1);
    int64_t matrices = lora.getW3() ? 3 : 2;
    // Base W·x plus the adapter B·(A·x), per matrix.
    return matrices * 2 * (h * inter + rank * (h + inter));
  }
  return 0;
}

/// The op directly in the function body that holds `op` (or `op` itself).
Operation *outermostAncestor(Operation *op, func::FuncOp func) {
  while (op->getParentOp() != func.getOperation())
    op = op->getParentOp();
  return op;
}

/// The [T, H] input of a function-level op that holds layers.
Value hiddenOfOutermost(Operation *outer, LayerOp layer) {
  if (auto skip = dyn_cast<SkipBlockOp>(outer))
    return skip.getHidden();
  if (auto path = dyn_cast<PathSelectOp>(outer))
    return path.getHidden();
  if (auto halting = dyn_cast<HaltingStackOp>(outer))
    return halting.getHidden();
  return layer.getHidden();
}

struct RecordRoutingStatsPass
    : public mlir::moe::impl::MoeRecordRoutingStatsBase<RecordRoutingStatsPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (!func.isExternal() && func.isPublic())
        instrument(func);
  }

  void instrument(func::FuncOp func);
};

void addTo(OpBuilder &b, Location loc, Value stats, Value index, Value amount) {
  Value old = memref::LoadOp::create(b, loc, stats, ValueRange{index});
  memref::StoreOp::create(b, loc, arith::AddIOp::create(b, loc, old, amount), stats,
                          ValueRange{index});
}

Value indexToI64(OpBuilder &b, Location loc, Value v) {
  return arith::IndexCastOp::create(b, loc, b.getI64Type(), v);
}

/// Whether ids[t, s] names an expert of [0, E) (invalid ids are the
/// layer's run-time error; they are never counted nor used as an index).
Value isExpert(OpBuilder &b, Location loc, Value id, int64_t e) {
  Value nonNegative = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, id, cI32(b, loc, 0));
  Value below = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, id, cI32(b, loc, e));
  return arith::AndIOp::create(b, loc, nonNegative, below);
}

/// Emits the counting of `ids` ([T, K]) against E experts: returns the
/// number of valid pairs (i64). With `stats`/`base`, also bumps the
/// per-expert rows and the slots-per-token histogram of the record at `base`.
Value countPairs(OpBuilder &b, Location loc, Value ids, int64_t e, Value stats, int64_t base) {
  int64_t k = cast<RankedTensorType>(ids.getType()).getDimSize(1);
  Value t = tensor::DimOp::create(b, loc, ids, 0);
  Value zero = cI64(b, loc, 0), one = cI64(b, loc, 1);
  ValueRange total = emitForWithArgs(
      b, loc, cIndex(b, loc, 0), t, ValueRange{zero},
      [&](OpBuilder &tb, Location l, Value token, ValueRange acc) -> SmallVector<Value> {
        ValueRange used = emitForWithArgs(
            tb, l, cIndex(tb, l, 0), cIndex(tb, l, k), ValueRange{cI64(tb, l, 0)},
            [&](OpBuilder &sb, Location sl, Value slot, ValueRange n) -> SmallVector<Value> {
              Value id = tensor::ExtractOp::create(sb, sl, ids, ValueRange{token, slot});
              Value valid = isExpert(sb, sl, id, e);
              if (stats)
                scf::IfOp::create(sb, sl, valid, [&](OpBuilder &ib, Location il) {
                  Value at = arith::AddIOp::create(ib, il, toIndex(ib, il, id),
                                                   cIndex(ib, il, base + kRecordHeader + e));
                  addTo(ib, il, stats, at, cI64(ib, il, 1));
                  scf::YieldOp::create(ib, il);
                });
              Value step = arith::ExtUIOp::create(sb, sl, sb.getI64Type(), valid);
              return {arith::AddIOp::create(sb, sl, n[0], step)};
            });
        if (stats) {
          Value bucket = arith::AddIOp::create(
              tb, l, arith::IndexCastOp::create(tb, l, tb.getIndexType(), used[0]),
              cIndex(tb, l, base + kRecordHeader + 2 * e));
          addTo(tb, l, stats, bucket, one);
        }
        return {arith::AddIOp::create(tb, l, acc[0], used[0])};
      });
  return total[0];
}

void RecordRoutingStatsPass::instrument(func::FuncOp func) {
  SmallVector<LayerOp> layers;
  func.walk<WalkOrder::PreOrder>([&](LayerOp layer) { layers.push_back(layer); });
  if (layers.empty())
    return;
  // Static part of each record (the rest starts at 0).
  SmallVector<int64_t> init = {kStatsMagic, kStatsVersion, int64_t(layers.size())};
  SmallVector<int64_t> bases;
  for (auto [index, layer] : llvm::enumerate(layers)) {
    // K is static: the layer's verifier (a routing pair) requires it.
    auto ids = cast<RankedTensorType>(layer.getIds().getType());
    int64_t e = layer.getNumExperts(), k = ids.getDimSize(1);
    int64_t line = 0;
    if (auto file = dyn_cast<FileLineColLoc>(layer.getLoc()))
      line = file.getLine();
    bool capacity = isa_and_nonnull<CapacityDropOp, CapacityRerouteOp>(layer.getIds().getDefiningOp());
    int64_t shared = 0;
    for (Value bank : layer.getShared())
      shared += cast<ExpertsType>(bank.getType()).getCount() * flopsPerRow(bank);
    bases.push_back(init.size());
    init.append({kRecordHeader + 2 * e + k + 1, int64_t(index), line, e, k, 0, 0,
                 capacity ? 0 : -1, 0, shared});
    for (Value bank : layer.getExperts())
      init.append(cast<ExpertsType>(bank.getType()).getCount(), flopsPerRow(bank));
    init.append(e + k + 1, 0);
  }

  Location loc = func.getLoc();
  OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
  auto type = MemRefType::get({int64_t(init.size())}, b.getI64Type());
  Value stats = memref::AllocaOp::create(b, loc, type);
  // A constant global copied in: the records' sizes and costs.
  {
    ModuleOp module = getOperation();
    OpBuilder mb = OpBuilder::atBlockBegin(module.getBody());
    std::string name = ("__moe_stats_init_" + func.getSymName()).str();
    auto attr = DenseElementsAttr::get(RankedTensorType::get(type.getShape(), b.getI64Type()),
                                       ArrayRef<int64_t>(init));
    memref::GlobalOp::create(mb, loc, name, mb.getStringAttr("private"), type, attr,
                             /*constant=*/true, /*alignment=*/nullptr);
    Value global = memref::GetGlobalOp::create(b, loc, type, name);
    memref::CopyOp::create(b, loc, global, stats);
  }

  for (auto [layer, base] : llvm::zip(layers, bases)) {
    int64_t e = layer.getNumExperts();
    Location l = layer.getLoc();
    // T of the call, once, before the op in the function body that holds
    // the layer (its tokens before any skip).
    Operation *outer = outermostAncestor(layer, func);
    OpBuilder ob(outer);
    Value callTokens = tensor::DimOp::create(ob, l, hiddenOfOutermost(outer, layer), 0);
    memref::StoreOp::create(ob, l, indexToI64(ob, l, callTokens), stats,
                            ValueRange{cIndex(ob, l, base + 5)});

    OpBuilder lb(layer);
    Value tokens = tensor::DimOp::create(lb, l, layer.getHidden(), 0);
    addTo(lb, l, stats, cIndex(lb, l, base + 6), indexToI64(lb, l, tokens));
    if (Operation *cap = layer.getIds().getDefiningOp();
        isa_and_nonnull<CapacityDropOp, CapacityRerouteOp>(cap)) {
      Value before = countPairs(lb, l, cap->getOperand(0), e, Value(), 0);
      addTo(lb, l, stats, cIndex(lb, l, base + 7), before);
    }
    Value pairs = countPairs(lb, l, layer.getIds(), e, stats, base);
    addTo(lb, l, stats, cIndex(lb, l, base + 8), pairs);
  }

  // Hand the buffer to the runtime before each return (the caller's thread).
  declareRuntimeFunction(func, kRecordFn, {b.getI64Type(), b.getI64Type()}, {});
  func.walk([&](func::ReturnOp ret) {
    OpBuilder rb(ret);
    Value address = memref::ExtractAlignedPointerAsIndexOp::create(rb, loc, stats);
    func::CallOp::create(rb, loc, kRecordFn, TypeRange{},
                         ValueRange{indexToI64(rb, loc, address), cI64(rb, loc, int64_t(init.size()))});
  });
}
} // namespace
