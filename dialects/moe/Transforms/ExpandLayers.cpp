//===- ExpandLayers.cpp - moe.layer -> dispatch, grouped experts, combine -===//
//
// Shared experts are not a separate dense pass over all tokens: they become
// always-taken slots K..K+S-1 of the dispatch, so the grouped computation
// runs them with the routed experts (one kernel shape, one thread split).
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPANDLAYERS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
struct ExpandLayersPass
    : public mlir::moe::impl::MoeExpandLayersBase<ExpandLayersPass> {
  using Base::Base;
  void runOnOperation() override {
    SmallVector<LayerOp> layers;
    getOperation().walk([&](LayerOp op) { layers.push_back(op); });
    for (LayerOp layer : layers)
      if (failed(expand(layer)))
        return signalPassFailure();
    // Expert banks are descriptions consumed by layers; once every layer is
    // expanded they are dead (their weights flow into the grouped ops).
    SmallVector<Operation *> dead;
    getOperation().walk([&](Operation *op) {
      if (isa<FfnExpertsOp, LoraExpertsOp, ZeroExpertsOp, CopyExpertsOp,
              ConstExpertsOp>(op) &&
          op->use_empty())
        dead.push_back(op);
    });
    for (Operation *op : dead)
      op->erase();
  }

  LogicalResult expand(LayerOp layer) {
    OpBuilder b(layer);
    Location loc = layer.getLoc();
    auto hiddenType = cast<RankedTensorType>(layer.getHidden().getType());
    auto idsType = cast<RankedTensorType>(layer.getIds().getType());
    int64_t t = hiddenType.getDimSize(0), h = hiddenType.getDimSize(1);
    int64_t k = idsType.getDimSize(1);

    // Zero experts left in the table (the fold pass was not run, or kept one
    // as a placeholder) must not be dispatched: their slots become unused.
    SmallVector<int64_t> map;
    bool anyZero = false;
    int64_t numExperts = 0, numShared = 0;
    for (Value bank : layer.getExperts()) {
      int64_t count = cast<ExpertsType>(bank.getType()).getCount();
      Operation *def = bank.getDefiningOp();
      if (isa_and_nonnull<CopyExpertsOp, ConstExpertsOp>(def))
        return layer.emitOpError()
               << "copy/constant experts must be folded first "
                  "(run -moe-fold-trivial-experts)";
      bool zero = isa_and_nonnull<ZeroExpertsOp>(def);
      anyZero |= zero;
      for (int64_t n = 0; n < count; ++n)
        map.push_back(zero ? -1 : numExperts + n);
      numExperts += count;
    }
    for (Value bank : layer.getShared()) {
      if (!isa_and_nonnull<FfnExpertsOp, LoraExpertsOp>(bank.getDefiningOp()))
        return layer.emitOpError() << "shared experts must be FFN or LoRA experts";
      numShared += cast<ExpertsType>(bank.getType()).getCount();
    }
    Value ids = layer.getIds(), weights = layer.getWeights();
    if (anyZero) {
      auto remap = RemapExpertsOp::create(b, loc, ids.getType(), weights.getType(),
                                          ids, weights, b.getDenseI64ArrayAttr(map));
      ids = remap.getIds();
      weights = remap.getWeights();
    }

    int64_t slots = k + numShared;
    int64_t rowsStatic = ShapedType::isDynamic(t) ? ShapedType::kDynamic : t * slots;
    auto i32 = b.getI32Type();
    auto dispatch = DispatchOp::create(
        b, loc, RankedTensorType::get({numExperts + numShared + 1}, i32),
        RankedTensorType::get({rowsStatic}, i32),
        RankedTensorType::get({t, slots}, i32), ids, b.getI64IntegerAttr(numExperts),
        b.getI64IntegerAttr(numShared));

    // The sorted expert outputs, one row per (token, slot) pair.
    auto sortedType = RankedTensorType::get({rowsStatic, h}, b.getF32Type());
    SmallVector<Value> dynSizes;
    if (ShapedType::isDynamic(rowsStatic)) {
      Value tDim = tensor::DimOp::create(b, loc, layer.getHidden(), 0);
      dynSizes.push_back(arith::MulIOp::create(
          b, loc, tDim, arith::ConstantIndexOp::create(b, loc, slots)));
    }
    Value acc = tensor::EmptyOp::create(b, loc, sortedType, dynSizes);

    int64_t first = 0;
    for (Value bank : llvm::concat<Value>(layer.getExperts(), layer.getShared())) {
      int64_t count = cast<ExpertsType>(bank.getType()).getCount();
      Operation *def = bank.getDefiningOp();
      if (auto ffn = dyn_cast_or_null<FfnExpertsOp>(def)) {
        acc = GroupedFfnOp::create(b, loc, sortedType, ffn.getActivationAttr(),
                                   layer.getHidden(), dispatch.getRows(),
                                   dispatch.getOffsets(), ffn.getW1(), ffn.getW3(),
                                   ffn.getW2(), ffn.getScales(), acc,
                                   b.getI64IntegerAttr(first), ffn.getFormatAttr(),
                                   ffn.getActivationPrecisionAttr());
      } else if (auto lora = dyn_cast_or_null<LoraExpertsOp>(def)) {
        acc = GroupedLoraOp::create(
            b, loc, sortedType, lora.getActivationAttr(), lora.getAlphaAttr(),
            layer.getHidden(), dispatch.getRows(), dispatch.getOffsets(),
            lora.getW1(), lora.getW3(), lora.getW2(), lora.getA1(), lora.getB1(),
            lora.getA3(), lora.getB3(), lora.getA2(), lora.getB2(), acc,
            b.getI64IntegerAttr(first));
      } else if (!isa_and_nonnull<ZeroExpertsOp>(def)) {
        return layer.emitOpError() << "expert bank #" << first
                                   << " is not defined by an expert op";
      }
      first += count;
    }
    numSharedExperts += numShared;
    if (report)
      layer.emitRemark() << "expanded into a counting-sort dispatch over " << numExperts
                         << " routed + " << numShared
                         << " shared experts, grouped expert GEMMs and a weighted combine";
    auto combine = CombineOp::create(b, loc, layer.getType(), acc,
                                     dispatch.getSlotRows(), weights);
    layer.getResult().replaceAllUsesWith(combine.getResult());
    layer.erase();
    ++numLayers;
    return success();
  }
};
} // namespace
