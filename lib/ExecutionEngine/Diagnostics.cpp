//===- Diagnostics.cpp - every stage's diagnostics in the parser's form ---===//

#include "moe/ExecutionEngine/Diagnostics.h"

namespace moe {

DiagnosticCollector::DiagnosticCollector(mlir::MLIRContext *context)
    : stream(collected), printer(sources, context, stream),
      collector(context, [this](mlir::Diagnostic &diag) {
        print(diag);
        return mlir::success();
      }) {}

void DiagnosticCollector::print(mlir::Diagnostic &diag) {
  printer.emitDiagnostic(diag.getLocation(), diag.str(), diag.getSeverity());
  for (mlir::Diagnostic &note : diag.getNotes())
    if (!llvm::StringRef(note.str()).starts_with("see current operation"))
      printer.emitDiagnostic(note.getLocation(), note.str(), note.getSeverity());
}

} // namespace moe
