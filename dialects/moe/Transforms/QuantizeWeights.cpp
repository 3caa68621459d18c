//===- QuantizeWeights.cpp - FFN banks take low-precision weights ---------===//
//
// Why a pass and not only a data tool: a layer's weight format is part of
// its signature (the caller passes bf16 values or GGUF blocks, not FP32),
// so turning an FP32 model into a quantized one changes the IR. This pass
// does it for the banks whose weights are plain entry arguments; the data
// side is moe-quantize / moec.quantize (docs/quantization.md).
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Support/Quant.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEQUANTIZEWEIGHTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// One weight of a bank to convert: its argument and its row length K.
struct BankWeight {
  BlockArgument arg;
  int64_t k;
};

struct QuantizeWeightsPass
    : public mlir::moe::impl::MoeQuantizeWeightsBase<QuantizeWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    std::optional<WeightFormat> f = symbolizeWeightFormat(format);
    std::optional<ActivationPrecision> p = symbolizeActivationPrecision(activations);
    if (!f || !p) {
      getOperation().emitError() << "moe-quantize-weights: unknown "
                                 << (f ? "activations '" + activations + "'"
                                       : "format '" + format + "'");
      return signalPassFailure();
    }
    weightFormat = *f;
    precision = *p;
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal())
        convertFunction(func);
  }

  void convertFunction(func::FuncOp func) {
    // Banks and dense FFNs alike (a dense FFN's weights lack the expert
    // dimension).
    SmallVector<Operation *> ffns;
    func.walk([&](Operation *op) {
      if (auto bank = dyn_cast<FfnExpertsOp>(op); bank && bank.getWeightFormat() == WeightFormat::f32)
        ffns.push_back(op);
      if (auto dense = dyn_cast<FfnOp>(op); dense && dense.getWeightFormat() == WeightFormat::f32)
        ffns.push_back(op);
    });
    for (Operation *op : ffns) {
      auto bank = dyn_cast<FfnExpertsOp>(op);
      auto dense = dyn_cast<FfnOp>(op);
      FfnWeights w = bank ? FfnWeights{bank.getW1(), bank.getW3(), bank.getW2(),
                                       bank.getExperts().getType().getHidden(),
                                       cast<ShapedType>(bank.getW1().getType()).getDimSize(1)}
                          : FfnWeights{dense.getW1(), dense.getW3(), dense.getW2(),
                                       cast<ShapedType>(dense.getHidden().getType()).getDimSize(1),
                                       cast<ShapedType>(dense.getW1().getType()).getDimSize(0)};
      SmallVector<BankWeight> weights;
      std::string why = whyKept(w, func, weights);
      if (!why.empty()) {
        ++numKept;
        if (report)
          op->emitRemark() << "left in f32: " << why;
        continue;
      }
      SmallVector<Value> scales = convertArguments(func, weights);
      if (bank)
        setFormat(bank, scales);
      else
        setFormat(dense, scales);
      ++numBanks;
      if (report)
        op->emitRemark() << "weights now " << format << ", activations " << activations;
    }
  }

  /// The FFN weights of a bank or a dense FFN, and its H and I.
  struct FfnWeights {
    Value w1, w3, w2;
    int64_t h, inter;
  };

  /// Empty when the weights can be converted; else the reason. Fills `weights`.
  std::string whyKept(const FfnWeights &ffn, func::FuncOp func,
                      SmallVectorImpl<BankWeight> &weights) {
    int64_t h = ffn.h, inter = ffn.inter;
    SmallVector<std::pair<Value, int64_t>> operands = {{ffn.w1, h}};
    if (ffn.w3)
      operands.push_back({ffn.w3, h});
    operands.push_back({ffn.w2, inter});
    for (auto [v, k] : operands) {
      auto arg = dyn_cast<BlockArgument>(v);
      if (!arg || arg.getOwner() != &func.getBody().front() || !arg.hasOneUse())
        return "a weight is not an argument used by this bank alone";
      weights.push_back({arg, k});
    }
    bool blocks = ::moe::isBlockFormat(::moe::WeightFormat(int(weightFormat))) ||
                  precision == ActivationPrecision::q8_0;
    if (blocks && (h % ::moe::kQuantBlock || inter % ::moe::kQuantBlock))
      return "H and I must be multiples of 32 for " + format + " weights / " + activations +
             " activations";
    if (precision == ActivationPrecision::bf16 && weightFormat != WeightFormat::bf16)
      return "bf16 activations need bf16 weights";
    if (precision == ActivationPrecision::q8_0 && weightFormat != WeightFormat::int8 &&
        weightFormat != WeightFormat::q8_0 && weightFormat != WeightFormat::q4_0)
      return "q8_0 activations need int8, q8_0 or q4_0 weights";
    return "";
  }

  /// Retypes the weight arguments to the format's storage ([..., rows,
  /// stored(K)]) and, for int8, appends one [..., rows] scales argument per
  /// weight; returns those.
  SmallVector<Value> convertArguments(func::FuncOp func, ArrayRef<BankWeight> weights) {
    MLIRContext *ctx = func.getContext();
    Block &entry = func.getBody().front();
    SmallVector<Value> scales;
    for (BankWeight w : weights) {
      auto type = cast<RankedTensorType>(w.arg.getType());
      SmallVector<int64_t> shape(type.getShape());
      shape.back() = storedRowElements(weightFormat, w.k);
      w.arg.setType(RankedTensorType::get(shape, storageElementType(ctx, weightFormat)));
      if (weightFormat != WeightFormat::int8)
        continue;
      NamedAttrList attrs;
      attrs.set("moe.scales_of", IntegerAttr::get(IntegerType::get(ctx, 64), w.arg.getArgNumber()));
      shape.pop_back();
      (void)func.insertArgument(func.getNumArguments(),
                                RankedTensorType::get(shape, Float32Type::get(ctx)),
                                attrs.getDictionary(ctx), w.arg.getLoc());
      scales.push_back(entry.getArguments().back());
    }
    func.setType(FunctionType::get(ctx, entry.getArgumentTypes(),
                                   func.getFunctionType().getResults()));
    return scales;
  }

  template <typename OpT> void setFormat(OpT op, ArrayRef<Value> scales) {
    MLIRContext *ctx = op.getContext();
    op.getScalesMutable().assign(scales);
    op.setFormatAttr(WeightFormatAttr::get(ctx, weightFormat));
    if (precision != ActivationPrecision::f32)
      op.setActivationPrecisionAttr(ActivationPrecisionAttr::get(ctx, precision));
  }

  WeightFormat weightFormat = WeightFormat::f32;
  ActivationPrecision precision = ActivationPrecision::f32;
};

} // namespace
