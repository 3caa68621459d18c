//===- Diagnostics.h - every stage's diagnostics in the parser's form -----===//
//
// The parser and the verifier report "file:14:8: error: ..." with the source
// line and a caret (MLIR's SourceMgrDiagnosticHandler). The later stages
// (pipeline passes, translation to LLVM IR, the JIT) run inside
// CompiledFunction::compile and compileToPtx, which collect diagnostics into
// a Status; this class gives them the same form there.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_DIAGNOSTICS_H
#define MOE_SUPPORT_DIAGNOSTICS_H

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace moe {

/// While alive, takes every diagnostic of `context` (none reaches stderr)
/// and appends it to text() as the parser prints it: "file:line:col:
/// error: message", then the source line and a caret when the file can be
/// read (from disk: the compiler no longer holds the parsed buffer), then
/// its notes the same way. A location without a file keeps MLIR's form.
/// The "see current operation" notes (a lowered op in generic form, not the
/// user's IR) are dropped.
class DiagnosticCollector {
public:
  explicit DiagnosticCollector(mlir::MLIRContext *context);

  const std::string &text() const { return collected; }
  bool empty() const { return collected.empty(); }

private:
  void print(mlir::Diagnostic &diag);

  llvm::SourceMgr sources;
  std::string collected;
  llvm::raw_string_ostream stream;
  /// Formats one diagnostic (registered first, so it never sees one).
  mlir::SourceMgrDiagnosticHandler printer;
  /// Registered last, so it sees every diagnostic first.
  mlir::ScopedDiagnosticHandler collector;
};

} // namespace moe

#endif // MOE_SUPPORT_DIAGNOSTICS_H
