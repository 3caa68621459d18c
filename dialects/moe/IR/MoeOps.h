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
