//===- Interpreter.cpp - execute moe functions on host tensors ------------===//
//
// One case per op, each a direct call into the reference kernels. Regions of
// moe.skip_block / moe.path_select run on the compacted tokens, exactly as
// docs/dialect.md describes.
//
//===----------------------------------------------------------------------===//

#include "moe/Reference/Interpreter.h"

#include "moe/IR/MoeOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <numeric>

using namespace mlir;
namespace mdl = ::mlir::moe;

namespace moe::ref {

static std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

static std::string locStr(Location loc) {
  if (auto fl = dyn_cast<FileLineColLoc>(loc))
    return (fl.getFilename().str() + ":" + std::to_string(fl.getLine()) + ":" +
            std::to_string(fl.getColumn()));
  if (auto nl = dyn_cast<NameLoc>(loc))
    return locStr(nl.getChildLoc());
  if (auto fused = dyn_cast<FusedLoc>(loc))
    if (!fused.getLocations().empty())
      return locStr(fused.getLocations().front());
  std::string s;
  llvm::raw_string_ostream os(s);
  os << loc;
  return s;
}

Status checkTensorType(Type type, const Tensor &value, const std::string &what) {
  auto tt = dyn_cast<RankedTensorType>(type);
  if (!tt)
    return Status::failure(what + ": type " + typeStr(type) +
                           " cannot be passed as a tensor");
  Type et = tt.getElementType();
  std::optional<DType> want = et.isF32()          ? std::optional(DType::F32)
                              : et.isInteger(32) ? std::optional(DType::I32)
                              : et.isInteger(64) ? std::optional(DType::I64)
                              : et.isBF16()      ? std::optional(DType::BF16)
                              : et.isF16()       ? std::optional(DType::F16)
                              : et.isInteger(8)  ? std::optional(DType::I8)
                                                 : std::nullopt;
  if (!want)
    return Status::failure(what + ": unsupported element type in " + typeStr(type));
  bool shapeOk = int64_t(value.rank()) == tt.getRank();
  for (int64_t d = 0; shapeOk && d < tt.getRank(); ++d)
    shapeOk = tt.isDynamicDim(d) || tt.getDimSize(d) == value.dim(d);
  if (value.dtype != *want || !shapeOk)
    return Status::failure(what + ": expected " + typeStr(type) + ", got " +
                           value.describe());
  return Status::success();
}

namespace {

Scoring toRef(mdl::Scoring s) {
  return s == mdl::Scoring::softmax ? Scoring::Softmax : Scoring::Sigmoid;
}

Activation toRef(mdl::Activation a) {
  switch (a) {
  case mdl::Activation::swiglu:
    return Activation::SwiGLU;
  case mdl::Activation::geglu:
    return Activation::GeGLU;
  case mdl::Activation::gelu:
    return Activation::GeLU;
  case mdl::Activation::relu:
    return Activation::ReLU;
  case mdl::Activation::silu:
    return Activation::SiLU;
  }
  return Activation::SwiGLU;
}

/// Values of a running function: tensors (held by shared_ptr so expert
/// banks can borrow them stably) and expert banks.
class Frame {
public:
  const Tensor *get(Value v) const {
    auto it = tensors.find(v);
    return it == tensors.end() ? nullptr : it->second.get();
  }
  const Tensor &at(Value v) const { return *get(v); }
  void set(Value v, Tensor t) { tensors[v] = std::make_shared<Tensor>(std::move(t)); }
  const ExpertBank &bank(Value v) const { return banks.find(v)->second; }
  void setBank(Value v, ExpertBank b) { banks[v] = b; }
  const Tensor *opt(Value v) const { return v ? &at(v) : nullptr; }
  /// Keeps `t` (a value no SSA name holds: dequantized weights) alive for
  /// the frame's lifetime.
  const Tensor *own(Tensor t) {
    owned.push_back(std::make_shared<Tensor>(std::move(t)));
    return owned.back().get();
  }

private:
  std::vector<std::shared_ptr<Tensor>> owned;
  llvm::DenseMap<Value, std::shared_ptr<Tensor>> tensors;
  llvm::DenseMap<Value, ExpertBank> banks;
};

class Interpreter {
public:
  /// Runs the ops of `block` (its arguments already bound); on reaching the
  /// terminator, returns the tensors it yields/returns.
  Status runBlock(Block &block, std::vector<Tensor> &yielded) {
    for (Operation &op : block) {
      if (op.hasTrait<OpTrait::IsTerminator>()) {
        std::vector<Tensor> out;
        for (Value v : op.getOperands())
          out.push_back(frame.at(v));
        yielded = std::move(out);
        return Status::success();
      }
      Status s = runOp(&op);
      if (!s.ok())
        return Status::failure(locStr(op.getLoc()) + ": '" +
                               op.getName().getStringRef().str() + "': " + s.error);
    }
    return Status::failure("block has no terminator");
  }

  Frame frame;

private:
  Status setRouting(Operation *op, Status s, Routing &r) {
    if (s.ok()) {
      frame.set(op->getResult(0), std::move(r.ids));
      frame.set(op->getResult(1), std::move(r.weights));
    }
    return s;
  }

  Status runOp(Operation *op) {
    Routing r;
    return TypeSwitch<Operation *, Status>(op)
        .Case([&](mdl::TopKRouterOp o) {
          return setRouting(o, topkRouter(frame.at(o.getHidden()), frame.at(o.getGate()),
                                          frame.opt(o.getBias()), toRef(o.getScoring()),
                                          o.getK(), o.getRenormalize(),
                                          o.getScalingFactor().convertToFloat(), r),
                            r);
        })
        .Case([&](mdl::GroupedTopKRouterOp o) {
          return setRouting(
              o, groupedTopkRouter(frame.at(o.getHidden()), frame.at(o.getGate()),
                                   frame.opt(o.getBias()), toRef(o.getScoring()),
                                   o.getK(), o.getNumGroups(), o.getTopkGroups(),
                                   o.getRenormalize(),
                                   o.getScalingFactor().convertToFloat(), r),
              r);
        })
        .Case([&](mdl::TopPRouterOp o) {
          return setRouting(o, toppRouter(frame.at(o.getHidden()), frame.at(o.getGate()),
                                          o.getThreshold().convertToFloat(), o.getMaxK(),
                                          o.getRenormalize(),
                                          o.getScalingFactor().convertToFloat(), r),
                            r);
        })
        .Case([&](mdl::ReluRouterOp o) {
          int64_t slots = cast<ShapedType>(o.getIds().getType()).getDimSize(1);
          return setRouting(o, reluRouter(frame.at(o.getHidden()), frame.at(o.getGate()),
                                          slots, o.getScalingFactor().convertToFloat(), r),
                            r);
        })
        .Case([&](mdl::ExpertChoiceRouterOp o) {
          return setRouting(
              o, expertChoiceRouter(frame.at(o.getHidden()), frame.at(o.getGate()),
                                    toRef(o.getScoring()), o.getCapacity(),
                                    o.getScalingFactor().convertToFloat(), r),
              r);
        })
        .Case([&](mdl::HashRouterOp o) {
          return setRouting(o, hashRouter(frame.at(o.getTokenIds()), o.getNumExperts(), r), r);
        })
        .Case([&](mdl::CapacityDropOp o) {
          Routing in{frame.at(o.getInIds()), frame.at(o.getInWeights())};
          return setRouting(o, capacityDrop(in, o.getNumExperts(),
                                            o.getCapacityFactor().convertToFloat(), r),
                            r);
        })
        .Case([&](mdl::RouterScoresOp o) {
          Tensor scores;
          Status s = routerScores(frame.at(o.getHidden()), frame.at(o.getGate()),
                                  toRef(o.getScoring()), scores);
          if (s.ok())
            frame.set(o.getScores(), std::move(scores));
          return s;
        })
        .Case([&](mdl::CapacityRerouteOp o) {
          Routing in{frame.at(o.getInIds()), frame.at(o.getInWeights())};
          return setRouting(o, capacityReroute(in, frame.at(o.getScores()),
                                               o.getCapacityFactor().convertToFloat(), r),
                            r);
        })
        .Case([&](mdl::CompressSlotsOp o) {
          Routing in{frame.at(o.getInIds()), frame.at(o.getInWeights())};
          std::vector<int64_t> map(o.getCompressed().begin(), o.getCompressed().end());
          return setRouting(o, compressSlots(in, map, o.getKeep(), r), r);
        })
        .Case([&](mdl::PathRouterOp o) {
          Tensor paths;
          Status s = pathRouter(frame.at(o.getHidden()), frame.at(o.getGate()), paths);
          if (s.ok())
            frame.set(o.getPaths(), std::move(paths));
          return s;
        })
        .Case([&](mdl::ExitLayersOp o) {
          Tensor exits;
          Status s = exitLayers(frame.at(o.getPositions()), o.getMaxExit(), o.getMinExit(),
                                o.getDecayPositions(), exits);
          if (s.ok())
            frame.set(o.getExits(), std::move(exits));
          return s;
        })
        .Case([&](mdl::ExitPathsOp o) {
          Tensor paths;
          Status s = exitPaths(frame.at(o.getExits()), o.getLayer(), paths);
          if (s.ok())
            frame.set(o.getPaths(), std::move(paths));
          return s;
        })
        .Case([&](mdl::FfnExpertsOp o) { return runFfnExperts(o); })
        .Case([&](mdl::LoraExpertsOp o) {
          ExpertBank b = bankOf(o.getExperts(), ExpertBank::Kind::Lora);
          b.activation = toRef(o.getActivation());
          b.alpha = o.getAlpha().convertToFloat();
          b.w1 = &frame.at(o.getW1());
          b.w3 = frame.opt(o.getW3());
          b.w2 = &frame.at(o.getW2());
          b.a1 = &frame.at(o.getA1());
          b.b1 = &frame.at(o.getB1());
          b.a3 = frame.opt(o.getA3());
          b.b3 = frame.opt(o.getB3());
          b.a2 = &frame.at(o.getA2());
          b.b2 = &frame.at(o.getB2());
          frame.setBank(o.getExperts(), b);
          return Status::success();
        })
        .Case([&](mdl::ZeroExpertsOp o) {
          frame.setBank(o.getExperts(), bankOf(o.getExperts(), ExpertBank::Kind::Zero));
          return Status::success();
        })
        .Case([&](mdl::CopyExpertsOp o) {
          frame.setBank(o.getExperts(), bankOf(o.getExperts(), ExpertBank::Kind::Copy));
          return Status::success();
        })
        .Case([&](mdl::ConstExpertsOp o) {
          ExpertBank b = bankOf(o.getExperts(), ExpertBank::Kind::Const);
          b.values = &frame.at(o.getValues());
          frame.setBank(o.getExperts(), b);
          return Status::success();
        })
        .Case([&](mdl::LayerOp o) {
          std::vector<ExpertBank> experts, shared;
          for (Value v : o.getExperts())
            experts.push_back(frame.bank(v));
          for (Value v : o.getShared())
            shared.push_back(frame.bank(v));
          Routing in{frame.at(o.getIds()), frame.at(o.getWeights())};
          Tensor y;
          Status s = layer(frame.at(o.getHidden()), in, experts, shared, y);
          if (s.ok())
            frame.set(o.getResult(), std::move(y));
          return s;
        })
        .Case([&](mdl::FfnOp o) { return runFfn(o); })
        .Case([&](mdl::SkipBlockOp o) { return runSkipBlock(o); })
        .Case([&](mdl::PathSelectOp o) { return runPathSelect(o); })
        .Case([&](mdl::HaltingStackOp o) { return runHaltingStack(o); })
        .Case([&](arith::ConstantOp o) { return runConstant(o); })
        .Default([&](Operation *other) {
          return Status::failure("the reference interpreter does not execute '" +
                                 other->getName().getStringRef().str() + "'");
        });
  }

  ExpertBank bankOf(Value v, ExpertBank::Kind kind) {
    auto type = cast<mdl::ExpertsType>(v.getType());
    ExpertBank b;
    b.kind = kind;
    b.count = type.getCount();
    b.hidden = type.getHidden();
    return b;
  }

  /// An FFN bank; weights in another format than f32 are dequantized once
  /// here (Quant.h), so every expert application computes in double from
  /// exactly the documented values.
  Status runFfnExperts(mdl::FfnExpertsOp o) {
    ExpertBank b = bankOf(o.getExperts(), ExpertBank::Kind::Ffn);
    b.activation = toRef(o.getActivation());
    b.activations = ActivationPrecision(int(o.getActivationPrecisionOrDefault()));
    auto format = WeightFormat(int(o.getWeightFormat()));
    if (format == WeightFormat::F32) {
      b.w1 = &frame.at(o.getW1());
      b.w3 = frame.opt(o.getW3());
      b.w2 = &frame.at(o.getW2());
    } else {
      int64_t h = b.hidden, inter = cast<ShapedType>(o.getW1().getType()).getDimSize(1);
      auto scales = o.getScales();
      unsigned next = 0;
      auto scaleOf = [&]() { return scales.empty() ? nullptr : &frame.at(scales[next++]); };
      b.w1 = frame.own(dequantizeWeights(format, frame.at(o.getW1()), scaleOf(), h));
      if (o.getW3())
        b.w3 = frame.own(dequantizeWeights(format, frame.at(o.getW3()), scaleOf(), h));
      b.w2 = frame.own(dequantizeWeights(format, frame.at(o.getW2()), scaleOf(), inter));
    }
    frame.setBank(o.getExperts(), b);
    return Status::success();
  }

  /// A dense FFN; weights in another format than f32 are dequantized here
  /// as a bank's are.
  Status runFfn(mdl::FfnOp o) {
    const Tensor *w1 = &frame.at(o.getW1()), *w3 = frame.opt(o.getW3()), *w2 = &frame.at(o.getW2());
    auto format = WeightFormat(int(o.getWeightFormat()));
    if (format != WeightFormat::F32) {
      int64_t h = cast<ShapedType>(o.getHidden().getType()).getDimSize(1);
      int64_t inter = cast<ShapedType>(o.getW1().getType()).getDimSize(0);
      auto scales = o.getScales();
      unsigned next = 0;
      auto scaleOf = [&]() { return scales.empty() ? nullptr : &frame.at(scales[next++]); };
      w1 = frame.own(dequantizeWeights(format, *w1, scaleOf(), h));
      if (w3)
        w3 = frame.own(dequantizeWeights(format, *w3, scaleOf(), h));
      w2 = frame.own(dequantizeWeights(format, *w2, scaleOf(), inter));
    }
    Tensor y;
    Status s = ffn(frame.at(o.getHidden()), toRef(o.getActivation()), *w1, w3, *w2, y,
                   ActivationPrecision(int(o.getActivationPrecisionOrDefault())));
    if (s.ok())
      frame.set(o.getResult(), std::move(y));
    return s;
  }

  /// Runs a branch region on the rows `tokens` of x and adds its output,
  /// scaled, into y.
  Status runBranch(Region &region, const Tensor &x,
                   const std::vector<int64_t> &tokens,
                   const std::vector<float> &scale, Tensor &y) {
    Block &block = region.front();
    frame.set(block.getArgument(0), gatherRows(x, tokens));
    std::vector<Tensor> out;
    Status s = runBlock(block, out);
    if (!s.ok())
      return s;
    return addRows(y, tokens, out[0], scale);
  }

  Status runSkipBlock(mdl::SkipBlockOp o) {
    const Tensor &x = frame.at(o.getHidden());
    std::optional<float> fraction, threshold;
    if (auto f = o.getCapacityFraction())
      fraction = f->convertToFloat();
    if (auto t = o.getThreshold())
      threshold = t->convertToFloat();
    std::vector<int64_t> selected;
    std::vector<float> scores;
    Status s = skipSelect(x, frame.at(o.getRouter()), fraction, threshold,
                          selected, scores);
    if (!s.ok())
      return s;
    std::vector<float> scale;
    if (o.getScaleByScore())
      for (int64_t t : selected)
        scale.push_back(scores[t]);
    Tensor y = x;
    if (!(s = runBranch(o.getBody(), x, selected, scale, y)).ok())
      return s;
    frame.set(o.getResult(), std::move(y));
    return Status::success();
  }

  Status runPathSelect(mdl::PathSelectOp o) {
    const Tensor &x = frame.at(o.getHidden());
    std::vector<std::vector<int64_t>> groups;
    Status s = groupByPath(frame.at(o.getPaths()), o.getBranches().size() + 1, groups);
    if (!s.ok())
      return s;
    Tensor y = x;
    for (auto [idx, region] : llvm::enumerate(o.getBranches()))
      if (!(s = runBranch(region, x, groups[idx + 1], {}, y)).ok())
        return s;
    frame.set(o.getResult(), std::move(y));
    return Status::success();
  }

  /// Each layer runs on the tokens that have not halted; the state keeps
  /// every token's latest hidden state (f32, like the path_select rule).
  Status runHaltingStack(mdl::HaltingStackOp o) {
    Tensor state = frame.at(o.getHidden());
    int64_t t = state.dim(0), h = state.dim(1);
    HaltingState halting(t, h);
    std::vector<int64_t> active(t);
    std::iota(active.begin(), active.end(), 0);
    int64_t layers = o.getLayers().size();
    for (auto [index, region] : llvm::enumerate(o.getLayers())) {
      // runBranch gathers the running rows before it adds to them, so the
      // state can be both its input and its output (no copy per layer).
      Status s = runBranch(region, state, active, {}, state);
      if (s.ok())
        s = haltingUpdate(state, frame.at(o.getHaltWeights()), frame.at(o.getHaltBias()),
                          index, int64_t(index) == layers - 1,
                          o.getEpsilon().convertToFloat(), active, halting);
      if (!s.ok())
        return s;
    }
    Tensor y = Tensor::f32({t, h});
    for (int64_t i = 0; i < t * h; ++i)
      y.f[i] = float(halting.out[i]);
    frame.set(o.getResult(), std::move(y));
    frame.set(o.getSteps(), std::move(halting.steps));
    return Status::success();
  }

  Status runConstant(arith::ConstantOp o) {
    auto dense = dyn_cast<DenseElementsAttr>(o.getValue());
    auto type = dyn_cast<RankedTensorType>(o.getType());
    if (!dense || !type)
      return Status::failure("only dense tensor constants are supported");
    std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
    Type et = type.getElementType();
    if (et.isF32()) {
      std::vector<float> data(dense.getValues<float>().begin(),
                              dense.getValues<float>().end());
      frame.set(o.getResult(), Tensor::f32(shape, data));
    } else if (et.isInteger(32) || et.isInteger(64)) {
      std::vector<int64_t> data;
      for (const APInt &v : dense.getValues<APInt>())
        data.push_back(v.getSExtValue());
      frame.set(o.getResult(),
                Tensor::ints(et.isInteger(32) ? DType::I32 : DType::I64, shape, data));
    } else {
      return Status::failure("unsupported constant element type " + typeStr(et));
    }
    return Status::success();
  }
};
} // namespace

Status interpret(func::FuncOp func, const std::vector<Tensor> &args,
                 std::vector<Tensor> &results) {
  if (func.isExternal())
    return Status::failure("function '" + func.getSymName().str() + "' has no body");
  Block &entry = func.getBody().front();
  if (args.size() != entry.getNumArguments())
    return Status::failure("function '" + func.getSymName().str() + "' takes " +
                           std::to_string(entry.getNumArguments()) +
                           " arguments, got " + std::to_string(args.size()));
  Interpreter interp;
  for (auto [idx, arg] : llvm::enumerate(entry.getArguments())) {
    Status s = checkTensorType(arg.getType(), args[idx],
                               "argument #" + std::to_string(idx));
    if (!s.ok())
      return s;
    interp.frame.set(arg, args[idx]);
  }
  std::vector<Tensor> out;
  Status s = interp.runBlock(entry, out);
  if (!s.ok())
    return s;
  results = std::move(out);
  return Status::success();
}

} // namespace moe::ref
