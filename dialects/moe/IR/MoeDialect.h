//===- MoeDialect.h - moe dialect, enums, attributes, types -----*- C++ -*-===//
#ifndef MOE_IR_MOEDIALECT_H
#define MOE_IR_MOEDIALECT_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include "moe/IR/MoeDialect.h.inc"
#include "moe/IR/MoeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/IR/MoeAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "moe/IR/MoeTypes.h.inc"

namespace mlir::moe {
/// True for activations whose FFN has a gate projection (w3).
inline bool isGated(Activation act) {
  return act == Activation::swiglu || act == Activation::geglu;
}
} // namespace mlir::moe

#endif // MOE_IR_MOEDIALECT_H
