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
/// The storage checks of an FFN bank's weights (moe.ffn_experts and
/// moe.grouped_ffn): w1/w3 [N, I, stored(H)], w2 [N, H, stored(I)] in the
/// format's element type, the int8 scales, the activation precision's
/// format and block constraints. I is w1's dimension 1. With n < 0 those of
/// a dense moe.ffn: the same without the expert dimension.
LogicalResult verifyFfnWeightStorage(Operation *op, WeightFormat format,
                                     ActivationPrecision activations, Value w1, Value w3,
                                     Value w2, ValueRange scales, int64_t numExperts,
                                     int64_t hidden);

/// A weight: a static-shaped tensor of rank >= 1 of f32 or of a weight
/// format's storage type (bf16, f16, i8). moe-hoist-weight-packing moves
/// what depends only on these into _prepare; the prepared-layer API takes
/// them once.
bool isWeightType(Type type);

/// The element type weights of `format` are stored in: f32, bf16, f16, or
/// i8 (int8 values; the bytes of Q8_0/Q4_0 blocks).
Type storageElementType(MLIRContext *ctx, WeightFormat format);

/// The Quant.h numbering of `format` (the enums agree value for value).
int64_t storedRowElements(WeightFormat format, int64_t k);

/// E of the routing a value comes from, when its defining op says so (a
/// router or capacity_drop); std::nullopt for routing from outside.
std::optional<int64_t> getRoutingNumExperts(Value ids);
} // namespace mlir::moe

#endif // MOE_IR_MOEOPS_H
