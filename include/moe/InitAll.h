//===- InitAll.h - everything the moe tools register ------------*- C++ -*-===//
#ifndef MOE_INITALL_H
#define MOE_INITALL_H

#include "mlir/IR/DialectRegistry.h"

namespace moe {
/// The moe dialect plus every upstream dialect and extension the lowerings
/// use (all of them: the tools are mlir-opt supersets, handy for debugging).
void registerAllDialects(mlir::DialectRegistry &registry);
/// The moe passes and pipelines plus all upstream passes, for command lines
/// and textual pipelines. Safe to call more than once.
void registerAllPasses();
} // namespace moe

#endif // MOE_INITALL_H
