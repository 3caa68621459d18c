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
