//===- HoistWeightPacking.cpp - split an entry into prepare + run ---------===//
//
// Why at the tensor level, before any lowering: what depends only on the
// weights is visible here as plain SSA dependence on the static-shaped
// arguments, and the split is independent of how the body is bufferized
// later. The packed layout travels in the IR (moe.pack's #moe.pack_layout);
// the run entry sees each weight as a slice of its packed buffer, which the
// CPU lowering turns into a strided view, so the kernels read the packed
// rows without knowing they were packed.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEHOISTWEIGHTPACKING
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Bytes of a cache line.
constexpr int64_t kLineBytes = 64;


/// True when `use` reads its value as an FFN weight (w1/w3/w2), whose rows
/// the expert kernels stream in register tiles.
bool isFfnWeightUse(OpOperand &use) {
  Operation *user = use.getOwner();
  Value v = use.get();
  // Not the int8 row scales (nor a dense FFN's hidden state).
  if (auto bank = dyn_cast<FfnExpertsOp>(user))
    return v == bank.getW1() || v == bank.getW3() || v == bank.getW2();
  auto ffn = dyn_cast<FfnOp>(user);
  return ffn && (v == ffn.getW1() || v == ffn.getW3() || v == ffn.getW2());
}

/// Rows padded to an odd number of lines: row r then starts in L1 set
/// (r * lines) mod 64 (plus the base), all distinct for 64 consecutive rows
/// when `lines` is odd.
int64_t paddedStride(int64_t cols, Type elementType) {
  const int64_t kLineElems = kLineBytes / (elementType.getIntOrFloatBitWidth() / 8);
  int64_t lines = (cols + kLineElems - 1) / kLineElems;
  if (lines % 2 == 0)
    ++lines;
  return lines * kLineElems;
}

struct EntrySplit {
  func::FuncOp entry;
  /// Weight arguments (indices) and the ops that depend only on them.
  llvm::BitVector isWeightArg;
  llvm::SetVector<Operation *> hoisted;
  /// Weight-derived values the rest of the body uses, with their strides.
  SmallVector<Value> frontier;
  SmallVector<int64_t> strides;
};

struct HoistWeightPackingPass
    : public mlir::moe::impl::MoeHoistWeightPackingBase<HoistWeightPackingPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> entries;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal() || !func.isPublic())
        continue;
      if (!entry.empty() && func.getSymName() != entry)
        continue;
      entries.push_back(func);
    }
    if (!entry.empty() && entries.empty()) {
      module.emitError() << "moe-hoist-weight-packing: no public function '" << entry << "'";
      return signalPassFailure();
    }
    for (func::FuncOp func : entries)
      if (failed(split(func)))
        return signalPassFailure();
  }

  LogicalResult split(func::FuncOp func);
  void analyze(EntrySplit &s);
  func::FuncOp buildPrepare(EntrySplit &s, StringRef name);
  void rewriteRun(EntrySplit &s, func::FuncOp run);
};

/// Weights: the static-shaped f32 arguments. Hoisted: the pure, region-free
/// top-level ops whose operands are all weight-derived and whose results are
/// static tensors. Frontier: weight-derived values with a use outside the
/// hoisted ops; a value is padded when all those uses are FFN weights.
void HoistWeightPackingPass::analyze(EntrySplit &s) {
  Block &body = s.entry.getBody().front();
  s.isWeightArg.resize(body.getNumArguments());
  DenseSet<Value> derived;
  for (BlockArgument arg : body.getArguments())
    if (isWeightType(arg.getType())) {
      s.isWeightArg.set(arg.getArgNumber());
      derived.insert(arg);
    }
  for (Operation &op : body.without_terminator()) {
    if (op.getNumRegions() || !isPure(&op) || op.getNumOperands() == 0 ||
        !llvm::all_of(op.getOperands(), [&](Value v) { return derived.contains(v); }) ||
        !llvm::all_of(op.getResultTypes(), isWeightType))
      continue;
    s.hoisted.insert(&op);
    for (Value r : op.getResults())
      derived.insert(r);
  }
  auto consider = [&](Value v) {
    bool used = false, allFfn = true;
    for (OpOperand &use : v.getUses()) {
      Operation *owner = s.entry.getBody().findAncestorOpInRegion(*use.getOwner());
      if (owner && s.hoisted.contains(owner))
        continue;
      used = true;
      allFfn = allFfn && isFfnWeightUse(use);
    }
    if (!used)
      return;
    auto type = cast<RankedTensorType>(v.getType());
    int64_t cols = type.getShape().back();
    s.frontier.push_back(v);
    s.strides.push_back(padRows && allFfn && type.getRank() >= 2 ? paddedStride(cols, type.getElementType()) : cols);
  };
  for (BlockArgument arg : body.getArguments())
    if (s.isWeightArg.test(arg.getArgNumber()))
      consider(arg);
  for (Operation *op : s.hoisted)
    for (Value r : op->getResults())
      consider(r);
}

/// @<entry>_prepare(weights...) -> (packed...): the hoisted ops, then one
/// moe.pack per frontier value.
func::FuncOp HoistWeightPackingPass::buildPrepare(EntrySplit &s, StringRef name) {
  MLIRContext *ctx = s.entry.getContext();
  Location loc = s.entry.getLoc();
  SmallVector<Type> argTypes, resultTypes;
  SmallVector<DictionaryAttr> argAttrs;
  for (BlockArgument arg : s.entry.getArguments())
    if (s.isWeightArg.test(arg.getArgNumber())) {
      argTypes.push_back(arg.getType());
      argAttrs.push_back(s.entry.getArgAttrDict(arg.getArgNumber()));
    }
  for (auto [v, stride] : llvm::zip(s.frontier, s.strides)) {
    auto type = cast<RankedTensorType>(v.getType());
    SmallVector<int64_t> shape(type.getShape());
    shape.back() = stride;
    resultTypes.push_back(RankedTensorType::get(shape, type.getElementType()));
  }
  OpBuilder mb(s.entry);
  auto prepare = func::FuncOp::create(mb, loc, name, FunctionType::get(ctx, argTypes, resultTypes));
  for (auto [i, attrs] : llvm::enumerate(argAttrs))
    if (attrs)
      prepare.setArgAttrs(i, attrs);
  Block *body = prepare.addEntryBlock();
  OpBuilder b = OpBuilder::atBlockEnd(body);
  IRMapping map;
  unsigned next = 0;
  for (BlockArgument arg : s.entry.getArguments())
    if (s.isWeightArg.test(arg.getArgNumber()))
      map.map(arg, body->getArgument(next++));
  for (Operation *op : s.hoisted)
    b.clone(*op, map);
  SmallVector<Value> packed;
  for (auto [v, stride, type] : llvm::zip(s.frontier, s.strides, resultTypes))
    packed.push_back(PackOp::create(b, v.getLoc(), type, map.lookup(v),
                                    PackLayoutAttr::get(ctx, stride)));
  func::ReturnOp::create(b, loc, packed);
  return prepare;
}

/// The run entry: activations, then the packed buffers; weights read as
/// slices of them; the hoisted ops and the weight arguments gone.
void HoistWeightPackingPass::rewriteRun(EntrySplit &s, func::FuncOp run) {
  Block &body = run.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&body);
  for (auto [v, stride] : llvm::zip(s.frontier, s.strides)) {
    auto type = cast<RankedTensorType>(v.getType());
    SmallVector<int64_t> shape(type.getShape());
    int64_t cols = shape.back();
    shape.back() = stride;
    // Through the function (not the block), so the argument attributes
    // stay one per argument.
    (void)run.insertArgument(run.getNumArguments(),
                             RankedTensorType::get(shape, type.getElementType()), DictionaryAttr(),
                             v.getLoc());
    Value arg = body.getArguments().back();
    Value logical = arg;
    if (stride != cols) {
      SmallVector<OpFoldResult> offsets(shape.size(), b.getIndexAttr(0)),
          strides(shape.size(), b.getIndexAttr(1)), sizes;
      for (int64_t d : type.getShape())
        sizes.push_back(b.getIndexAttr(d));
      logical = tensor::ExtractSliceOp::create(b, v.getLoc(), type, arg, offsets, sizes, strides);
      paddingBytes += (stride - cols) * (type.getElementTypeBitWidth() / 8) *
                      (type.getNumElements() / cols);
      ++numPadded;
    }
    v.replaceUsesWithIf(logical, [&](OpOperand &use) {
      Operation *owner = run.getBody().findAncestorOpInRegion(*use.getOwner());
      return !(owner && s.hoisted.contains(owner));
    });
  }
  SmallVector<Operation *> hoisted = s.hoisted.takeVector();
  for (Operation *op : llvm::reverse(hoisted))
    op->erase();
  llvm::BitVector erase(body.getNumArguments());
  for (unsigned i = 0; i < s.isWeightArg.size(); ++i)
    if (s.isWeightArg.test(i))
      erase.set(i);
  (void)run.eraseArguments(erase);
}

LogicalResult HoistWeightPackingPass::split(func::FuncOp func) {
  std::string name = func.getSymName().str();
  ModuleOp module = getOperation();
  for (StringRef suffix : {StringRef("_prepare"), StringRef(keepUnprepared ? "_run" : "")})
    if (!suffix.empty() && module.lookupSymbol(name + suffix.str()))
      return func.emitOpError() << "cannot be split: a symbol '" << name << suffix
                                << "' exists already";
  func::FuncOp run = func;
  if (keepUnprepared) {
    run = func.clone();
    run.setSymName(name + "_run");
    OpBuilder b(func);
    b.setInsertionPointAfter(func);
    b.insert(run);
  }
  EntrySplit s;
  s.entry = run;
  analyze(s);
  int64_t padded = 0, hoistedOps = s.hoisted.size(), packed = s.frontier.size();
  for (auto [v, stride] : llvm::zip(s.frontier, s.strides))
    padded += stride != cast<RankedTensorType>(v.getType()).getShape().back();
  buildPrepare(s, name + "_prepare");
  rewriteRun(s, run);
  ++numEntries;
  numPacked += packed;
  numHoisted += hoistedOps;
  if (report) {
    run.emitRemark() << "split into @" << name << "_prepare and @" << run.getSymName() << ": "
                     << s.isWeightArg.count() << " weight arguments, " << packed << " packed ("
                     << padded << " with padded rows), " << hoistedOps << " ops hoisted";
  }
  return success();
}

} // namespace
