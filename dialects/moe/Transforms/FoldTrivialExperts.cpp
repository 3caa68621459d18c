//===- FoldTrivialExperts.cpp - zero/copy/constant experts cost nothing ---===//
//
// A zero expert still costs a full FFN if it is dispatched like the others
// (the usual "map it to expert 0 with weight 0" trick). Here each trivial bank
// leaves the expert table: its slots are remapped to "unused" before the
// dispatch, and copy/constant contributions are added back as element-wise
// terms by moe.trivial_combine, which reads the original routing.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFOLDTRIVIALEXPERTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
struct FoldTrivialExpertsPass
    : public mlir::moe::impl::MoeFoldTrivialExpertsBase<FoldTrivialExpertsPass> {
  using Base::Base;
  void runOnOperation() override {
    SmallVector<LayerOp> layers;
    getOperation().walk([&](LayerOp op) { layers.push_back(op); });
    for (LayerOp layer : layers)
      fold(layer);
  }

  void fold(LayerOp layer) {
    SmallVector<Value> kept, consts;
    SmallVector<int64_t> map;
    SmallVector<int32_t> kinds;
    bool anyTrivial = false;
    int64_t zero = 0, copy = 0, constant = 0;
    int64_t nextId = 0;
    for (Value bank : layer.getExperts()) {
      int64_t count = cast<ExpertsType>(bank.getType()).getCount();
      Operation *def = bank.getDefiningOp();
      int32_t kind = 0;
      if (isa_and_nonnull<ZeroExpertsOp>(def)) {
        zero += count;
      } else if (isa_and_nonnull<CopyExpertsOp>(def)) {
        kind = 1;
        copy += count;
      } else if (auto c = dyn_cast_or_null<ConstExpertsOp>(def)) {
        kind = 2 + consts.size();
        consts.push_back(c.getValues());
        constant += count;
      } else {
        kept.push_back(bank);
        for (int64_t n = 0; n < count; ++n) {
          map.push_back(nextId++);
          kinds.push_back(0);
        }
        continue;
      }
      anyTrivial = true;
      for (int64_t n = 0; n < count; ++n) {
        map.push_back(-1);
        kinds.push_back(kind);
      }
    }
    if (!anyTrivial)
      return;
    numZeroExperts += zero;
    numCopyExperts += copy;
    numConstExperts += constant;
    if (report) {
      layer.emitRemark() << "folded " << zero << " zero, " << copy << " copy and " << constant
                         << " constant experts out of the expert table; " << kept.size()
                         << " expert bank(s) left to dispatch";
    }

    OpBuilder b(layer);
    Location loc = layer.getLoc();
    // Only trivial routed experts and no shared ones: no moe.layer is left,
    // the element-wise terms are the whole output (trivial_combine, no base).
    Value base;
    if (!kept.empty() || !layer.getShared().empty()) {
      if (kept.empty()) {
        // Only trivial routed experts: keep one zero expert as the (empty)
        // routed table so shared experts still have a layer to run in.
        kept.push_back(ZeroExpertsOp::create(
            b, loc, ExpertsType::get(b.getContext(), 1,
                                     cast<ShapedType>(layer.getHidden().getType())
                                         .getDimSize(1))));
      }
      auto remap = RemapExpertsOp::create(
          b, loc, layer.getIds().getType(), layer.getWeights().getType(),
          layer.getIds(), layer.getWeights(), b.getDenseI64ArrayAttr(map));
      base = LayerOp::create(b, loc, layer.getType(), layer.getHidden(),
                             remap.getIds(), remap.getWeights(), kept,
                             layer.getShared())
                 .getResult();
    }
    auto terms = TrivialCombineOp::create(
        b, loc, layer.getType(), base, layer.getHidden(),
        layer.getIds(), layer.getWeights(), consts, b.getDenseI32ArrayAttr(kinds));
    layer.getResult().replaceAllUsesWith(terms.getResult());
    layer.erase();
  }
};
} // namespace
