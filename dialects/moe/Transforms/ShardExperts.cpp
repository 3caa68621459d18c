//===- ShardExperts.cpp - expert parallelism: the per-rank program --------===//
//
// Tokens are data-parallel (each rank routes, sorts and combines its own),
// experts are not: the sorted rows go to the rank holding their expert and
// come back after it. The exchange sits between moe.dispatch and the
// grouped experts so that both keep their single-process lowering: the
// grouped ops only see a different (hidden, rows, offsets) triple, whose
// offsets leave the other ranks' experts empty.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESHARDEXPERTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// An op whose result depends on the whole batch of tokens, or null.
StringRef batchWideReason(Operation *op) {
  if (isa<CapacityDropOp>(op))
    return "drops slots over a capacity counted over the whole batch";
  if (isa<CapacityRerouteOp>(op))
    return "re-routes slots over a capacity counted over the whole batch";
  if (isa<ExpertChoiceRouterOp>(op))
    return "lets each expert choose among the whole batch's tokens";
  if (auto skip = dyn_cast<SkipBlockOp>(op))
    if (skip.getCapacityFractionAttr())
      return "keeps a fraction of the whole batch's tokens";
  return {};
}

struct ShardExpertsPass
    : public mlir::moe::impl::MoeShardExpertsBase<ShardExpertsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (ranks < 1 || ranks > std::numeric_limits<int32_t>::max()) {
      getOperation().emitError() << "moe-shard-experts: 'ranks' must be in [1, 2^31), got "
                                 << int64_t(ranks);
      return signalPassFailure();
    }
    WalkResult batchWide = getOperation().walk([&](Operation *op) {
      StringRef reason = batchWideReason(op);
      if (reason.empty())
        return WalkResult::advance();
      op->emitError() << "cannot shard tokens over ranks: '" << op->getName() << "' "
                      << reason << ", so one rank's share would give another result";
      return WalkResult::interrupt();
    });
    if (batchWide.wasInterrupted())
      return signalPassFailure();
    SmallVector<DispatchOp> dispatches;
    getOperation().walk([&](DispatchOp op) { dispatches.push_back(op); });
    for (DispatchOp dispatch : dispatches)
      if (failed(shard(dispatch)))
        return signalPassFailure();
  }

  /// Each dispatched expert's rank: the `placement` option for the routed
  /// experts (contiguous blocks without it), -1 (local) for shared ones.
  FailureOr<SmallVector<int32_t>> placementFor(DispatchOp dispatch) {
    int64_t routed = dispatch.getNumExperts(), shared = dispatch.getNumShared();
    SmallVector<int32_t> out;
    if (!placement.empty()) {
      if (static_cast<int64_t>(placement.size()) != routed)
        return dispatch.emitError()
               << "moe-shard-experts: 'placement' has " << placement.size()
               << " entries but the dispatch routes " << routed
               << " experts (the FFN/LoRA experts left after trivial-expert folding)";
      for (auto [expert, rank] : llvm::enumerate(placement)) {
        if (rank < 0 || rank >= ranks)
          return dispatch.emitError() << "moe-shard-experts: expert " << expert
                                      << " is placed on rank " << rank << ", outside [0, "
                                      << int64_t(ranks) << ")";
        out.push_back(static_cast<int32_t>(rank));
      }
    } else {
      int64_t block = (routed + ranks - 1) / ranks;
      for (int64_t e = 0; e < routed; ++e)
        out.push_back(static_cast<int32_t>(e / block));
    }
    out.append(shared, -1);
    return out;
  }

  LogicalResult shard(DispatchOp dispatch) {
    // The grouped experts over this dispatch, in program order (they chain
    // through their accumulator), and the combine that reads the last one.
    SmallVector<Operation *> grouped;
    for (Operation *user : dispatch.getRows().getUsers())
      if (isa<GroupedFfnOp, GroupedLoraOp>(user))
        grouped.push_back(user);
    if (grouped.empty())
      return success();
    llvm::sort(grouped, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
    FailureOr<SmallVector<int32_t>> ranksOf = placementFor(dispatch);
    if (failed(ranksOf))
      return failure();

    Operation *first = grouped.front(), *last = grouped.back();
    Value hidden = operandsOf(first).hidden.get();
    Value oldAcc = operandsOf(first).acc.get();
    auto hiddenType = cast<RankedTensorType>(hidden.getType());
    int64_t h = hiddenType.getDimSize(1);
    int64_t n = dispatch.getNumExperts() + dispatch.getNumShared();
    OpBuilder b(first);
    Location loc = dispatch.getLoc();
    auto i32 = b.getI32Type();
    auto recvHiddenType = RankedTensorType::get({ShapedType::kDynamic, h}, b.getF32Type());
    auto exchange = AllToAllOp::create(
        b, loc, recvHiddenType, RankedTensorType::get({ShapedType::kDynamic}, i32),
        dispatch.getOffsets().getType(), RankedTensorType::get({ranks, n}, i32), hidden,
        dispatch.getRows(), dispatch.getOffsets(), b.getI64IntegerAttr(ranks),
        b.getDenseI32ArrayAttr(*ranksOf));
    Value recvCount = tensor::DimOp::create(b, loc, exchange.getRecvRows(), 0);
    Value acc = tensor::EmptyOp::create(b, loc, recvHiddenType, ValueRange{recvCount});
    Type sortedType = last->getResult(0).getType();
    for (Operation *op : grouped) {
      GroupedOperands operands = operandsOf(op);
      operands.hidden.set(exchange.getRecvHidden());
      operands.rows.set(exchange.getRecvRows());
      operands.offsets.set(exchange.getRecvOffsets());
      operands.acc.set(acc);
      op->getResult(0).setType(recvHiddenType);
      acc = op->getResult(0);
    }
    if (Operation *def = oldAcc.getDefiningOp(); def && def->use_empty())
      def->erase();
    b.setInsertionPointAfter(last);
    auto back = AllToAllCombineOp::create(b, loc, sortedType, acc, exchange.getRecvRows(),
                                          exchange.getPlan(), dispatch.getOffsets(),
                                          b.getI64IntegerAttr(ranks),
                                          b.getDenseI32ArrayAttr(*ranksOf));
    acc.replaceUsesWithIf(back.getResult(), [&](OpOperand &use) {
      return use.getOwner() != back.getOperation();
    });
    ++numExchanges;
    return success();
  }

  /// The operands of a grouped expert op the exchange rewires.
  struct GroupedOperands {
    OpOperand &hidden, &rows, &offsets, &acc;
  };
  static GroupedOperands operandsOf(Operation *grouped) {
    if (auto ffn = dyn_cast<GroupedFfnOp>(grouped))
      return {ffn.getHiddenMutable(), ffn.getRowsMutable(), ffn.getOffsetsMutable(),
              ffn.getAccMutable()};
    auto lora = cast<GroupedLoraOp>(grouped);
    return {lora.getHiddenMutable(), lora.getRowsMutable(), lora.getOffsetsMutable(),
            lora.getAccMutable()};
  }
};
} // namespace
