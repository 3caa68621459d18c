//===- MoeOps.h - moe dialect operations ------------------------*- C++ -*-===//
#ifndef MOE_IR_MOEOPS_H
#define MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moe/IR/MoeDialect.h"

namespace mlir::moe {
/// Fails, naming the attribute and the closest name the op defines, when
/// `op` carries an attribute it does not define and whose name has no
/// dialect prefix (no '.').
LogicalResult verifyKnownAttributes(Operation *op);

/// The trait behind Moe_KnownAttributesOnly (MoeBase.td).
template <typename ConcreteType>
class KnownAttributesOnly : public OpTrait::TraitBase<ConcreteType, KnownAttributesOnly> {
public:
  static LogicalResult verifyTrait(Operation *op) { return verifyKnownAttributes(op); }
};
} // namespace mlir::moe

#define GET_OP_CLASSES
#include "moe/IR/MoeOps.h.inc"
#define GET_OP_CLASSES
#include "moe/IR/MoeLoweringOps.h.inc"

namespace mlir::moe {
/// E of the routing a value comes from, when its defining op says so (a
/// router or capacity_drop); std::nullopt for routing from outside.
std::optional<int64_t> getRoutingNumExperts(Value ids);
} // namespace mlir::moe

#endif // MOE_IR_MOEOPS_H
