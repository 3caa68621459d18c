//===- MoeLoweringOps.cpp - ops produced by the lowering passes -----------===//
//
// These ops are created by passes, not written by users, so their verifiers
// check the invariants the next pass relies on (shapes that index each other)
// rather than user-facing model rules.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;

#define GET_OP_CLASSES
#include "moe/IR/MoeLoweringOps.cpp.inc"

void MoeDialect::registerLoweringOps() {
  addOperations<
#define GET_OP_LIST
#include "moe/IR/MoeLoweringOps.cpp.inc"
      >();
}

/// The discardable `moe.*` attributes the dialect registers (MoeBase.td):
/// `moe.parallel` must be a unit attribute. Other `moe.` names are markers
/// private to the lowering passes and are not checked here.
LogicalResult MoeDialect::verifyOperationAttribute(Operation *op, NamedAttribute attribute) {
  if (attribute.getName() == ParallelAttrHelper::getNameStr() &&
      !isa<UnitAttr>(attribute.getValue()))
    return op->emitError() << "'" << ParallelAttrHelper::getNameStr()
                           << "' must be a unit attribute, got " << attribute.getValue();
  return success();
}

static int64_t dimOf(Value v, unsigned i) {
  return cast<ShapedType>(v.getType()).getDimSize(i);
}

static bool mismatch(int64_t a, int64_t b) {
  return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
}

LogicalResult GroupedFfnOp::verify() {
  int64_t h = dimOf(getHidden(), 1), n = dimOf(getW1(), 0);
  if (ShapedType::isDynamic(h) || ShapedType::isDynamic(n))
    return emitOpError() << "needs a static hidden size and expert count";
  return verifyFfnWeightStorage(*this, getWeightFormat(), getActivationPrecisionOrDefault(),
                                getW1(), getW3(), getW2(), getScales(), n, h);
}

LogicalResult RemapExpertsOp::verify() {
  if (getInIds().getType() != getIds().getType() ||
      getInWeights().getType() != getWeights().getType())
    return emitOpError() << "results must have the types of the inputs";
  for (int64_t v : getMap())
    if (v < -1)
      return emitOpError() << "map entries must be >= -1, got " << v;
  return success();
}

LogicalResult TrivialCombineOp::verify() {
  int64_t numConsts = getConsts().size();
  for (int32_t k : getKinds())
    if (k < 0 || k >= 2 + numConsts)
      return emitOpError() << "kind " << k << " must be 0 (none), 1 (copy) or "
                           << "2 + a const bank index < " << 2 + numConsts;
  if (mismatch(dimOf(getHidden(), 1), dimOf(getResult(), 1)))
    return emitOpError() << "result hidden size must match 'hidden'";
  return success();
}

LogicalResult DispatchOp::verify() {
  int64_t e = getNumExperts(), s = getNumShared();
  // Bounded first, so that E + S + 1 below cannot overflow: the attributes
  // are any i64 the parser accepts.
  if (e > std::numeric_limits<int32_t>::max() || s > std::numeric_limits<int32_t>::max())
    return emitOpError() << "expert counts E = " << e << " and S = " << s
                         << " are too large (ids are i32)";
  if (e < 0 || s < 0 || e + s < 1)
    return emitOpError() << "needs at least one expert";
  if (dimOf(getOffsets(), 0) != e + s + 1)
    return emitOpError() << "'offsets' must have E + S + 1 = " << e + s + 1
                         << " entries";
  if (mismatch(dimOf(getSlotRows(), 1), dimOf(getIds(), 1) + s))
    return emitOpError() << "'slot_rows' must have K + S columns";
  return success();
}

LogicalResult CombineOp::verify() {
  if (mismatch(dimOf(getSlotRows(), 0), dimOf(getWeights(), 0)) ||
      dimOf(getSlotRows(), 1) < dimOf(getWeights(), 1))
    return emitOpError() << "'slot_rows' must be [T, K + S] for weights [T, K]";
  if (mismatch(dimOf(getSorted(), 1), dimOf(getResult(), 1)))
    return emitOpError() << "result hidden size must match 'sorted'";
  return success();
}

/// The rules both exchanges share: the rank count, one placement entry per
/// dispatched expert (offsets [N+1]), each a rank of the job or -1, and a
/// [R, N] plan.
static LogicalResult verifyExchange(Operation *op, int64_t ranks,
                                    ArrayRef<int32_t> placement, Value offsets,
                                    Value plan) {
  if (ranks < 1 || ranks > std::numeric_limits<int32_t>::max())
    return op->emitOpError() << "'ranks' must be in [1, 2^31), got " << ranks;
  int64_t offsetsSize = dimOf(offsets, 0);
  if (ShapedType::isDynamic(offsetsSize))
    return op->emitOpError() << "'offsets' must have a static size (N + 1)";
  int64_t n = offsetsSize - 1;
  if (static_cast<int64_t>(placement.size()) != n)
    return op->emitOpError() << "'placement' must have one rank per expert (N = " << n
                             << "), got " << placement.size();
  for (auto [expert, rank] : llvm::enumerate(placement))
    if (rank < -1 || rank >= ranks)
      return op->emitOpError() << "expert " << expert << " is placed on rank " << rank
                               << ", outside [-1, " << ranks << ")";
  if (mismatch(dimOf(plan, 0), ranks) || mismatch(dimOf(plan, 1), n))
    return op->emitOpError() << "'plan' must be [ranks, N] = [" << ranks << ", " << n
                             << "]";
  return success();
}

LogicalResult AllToAllOp::verify() {
  if (failed(verifyExchange(*this, getRanks(), getPlacement(), getOffsets(), getPlan())))
    return failure();
  if (getRecvOffsets().getType() != getOffsets().getType())
    return emitOpError() << "'recv_offsets' must have the type of 'offsets'";
  if (mismatch(dimOf(getHidden(), 1), dimOf(getRecvHidden(), 1)))
    return emitOpError() << "'recv_hidden' must have the hidden size of 'hidden'";
  if (mismatch(dimOf(getRecvHidden(), 0), dimOf(getRecvRows(), 0)))
    return emitOpError() << "'recv_rows' must have one entry per row of 'recv_hidden'";
  return success();
}

LogicalResult AllToAllCombineOp::verify() {
  if (failed(verifyExchange(*this, getRanks(), getPlacement(), getOffsets(), getPlan())))
    return failure();
  if (mismatch(dimOf(getExpertOut(), 1), dimOf(getResult(), 1)))
    return emitOpError() << "result hidden size must match 'expert_out'";
  if (mismatch(dimOf(getExpertOut(), 0), dimOf(getRecvRows(), 0)))
    return emitOpError() << "'expert_out' must have one row per entry of 'recv_rows'";
  return success();
}
