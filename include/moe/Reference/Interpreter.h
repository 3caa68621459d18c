//===- Interpreter.h - execute moe functions on host tensors ----*- C++ -*-===//
//
// Walks a func.func of moe ops and executes each with the reference kernels
// (Kernels.h). This is the semantics every lowering is tested against.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_REFERENCE_INTERPRETER_H
#define MOE_REFERENCE_INTERPRETER_H

#include "moe/Reference/Kernels.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace moe::ref {

/// Checks that `value` can be passed where `type` is expected (element type,
/// rank, static dims). `what` names the argument in the message.
Status checkTensorType(mlir::Type type, const Tensor &value,
                       const std::string &what);

/// Runs `func` on `args` (one per function argument, checked against the
/// argument types) and returns its results. Errors carry the failing op's
/// location and name; `results` is untouched on error.
Status interpret(mlir::func::FuncOp func, const std::vector<Tensor> &args,
                 std::vector<Tensor> &results);

} // namespace moe::ref

#endif // MOE_REFERENCE_INTERPRETER_H
