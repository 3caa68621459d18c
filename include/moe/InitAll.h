//===- InitAll.h - everything the moe tools register ------------*- C++ -*-===//
#ifndef MOE_INITALL_H
#define MOE_INITALL_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/SourceMgr.h"

#include <string>

namespace moe {
/// The moe dialect plus every upstream dialect and extension the lowerings
/// use (all of them: the tools are mlir-opt supersets, handy for debugging).
void registerAllDialects(mlir::DialectRegistry &registry);
/// The moe passes and pipelines plus all upstream passes, for command lines
/// and textual pipelines. Safe to call more than once.
void registerAllPasses();
/// Parses `path` ("-" = stdin) into a module, reporting errors with their
/// file:line:col through `sourceMgr` (which must outlive diagnostics about
/// the module). Returns null on failure; `error` is set when the file could
/// not be read (parse errors are reported as diagnostics).
mlir::OwningOpRef<mlir::ModuleOp> parseMlirFile(const std::string &path,
                                                mlir::MLIRContext &context,
                                                llvm::SourceMgr &sourceMgr,
                                                std::string &error);
} // namespace moe

#endif // MOE_INITALL_H
