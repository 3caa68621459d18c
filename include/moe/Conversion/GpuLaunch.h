//===- GpuLaunch.h - the launch description of an outlined layer -*- C++ -*-===//
#ifndef MOE_CONVERSION_GPULAUNCH_H
#define MOE_CONVERSION_GPULAUNCH_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace moe {

/// Writes the launch description (docs/gpu-launch.md, version 1) of entry
/// function `entry` of `module` after moe-gpu-outline and
/// gpu-kernel-outlining: its arguments (the first `numInputs` are inputs,
/// the rest outputs), device scratch buffers and kernel launches in order. Fails with a located diagnostic when something cannot
/// be described (a grid size not affine in T, an operand of unknown origin).
mlir::LogicalResult writeLaunchDescription(mlir::ModuleOp module, llvm::StringRef entry,
                                           llvm::StringRef chip, unsigned numInputs,
                                           llvm::raw_ostream &os);

} // namespace moe

#endif // MOE_CONVERSION_GPULAUNCH_H
