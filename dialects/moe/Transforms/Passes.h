//===- Passes.h - moe dialect transformation passes -------------*- C++ -*-===//
#ifndef MOE_TRANSFORMS_PASSES_H
#define MOE_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

#include <optional>
#include <string>

namespace mlir::moe {
#define GEN_PASS_DECL
#include "moe/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "moe/Transforms/Passes.h.inc"

/// Appends `moe-stage-end{stage=<stage>}` to `pm` (top level).
void addStageEnd(OpPassManager &pm, llvm::StringRef stage);
/// The stage a `moe-stage-end` pass ends, or nothing for any other pass.
std::optional<std::string> stageEndName(const Pass &pass);
} // namespace mlir::moe

#endif // MOE_TRANSFORMS_PASSES_H
