//===- EntryFunction.h - which function of a module a tool runs -----------===//
//
// moe-run and moe-compile take `--entry=NAME`. Without it a user who wrote
// one function should not have to name it, so the entry is:
//   1. --entry, when given;
//   2. else the module's only func.func;
//   3. else the one called `main` (the documented default before 2, kept so
//      modules with helpers beside `main` still run);
//   4. else an error that lists the functions, so the user can pick one.
// moec.compile() follows the same rules (python-bindings/moec/__init__.py).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_COMMON_ENTRYFUNCTION_H
#define MOE_TOOLS_COMMON_ENTRYFUNCTION_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace moe::tools {

/// The quoted names of the module's functions: "'a', 'b'" (or "none").
inline std::string functionNames(mlir::ModuleOp module) {
  std::string names;
  for (auto f : module.getOps<mlir::func::FuncOp>())
    names += (names.empty() ? "'" : ", '") + f.getSymName().str() + "'";
  return names.empty() ? "none" : names;
}

/// Resolves the entry function by the rules above. `requested` is the
/// --entry value, empty when the option was not given. On failure returns a
/// null op and sets `error` (which names `file` and lists the functions).
inline mlir::func::FuncOp resolveEntry(mlir::ModuleOp module, const std::string &requested,
                                       const std::string &file, std::string &error) {
  if (!requested.empty()) {
    if (auto f = module.lookupSymbol<mlir::func::FuncOp>(requested))
      return f;
    error = "no function '" + requested + "' in " + file + " (its functions: " +
            functionNames(module) + ")";
    return {};
  }
  auto funcs = module.getOps<mlir::func::FuncOp>();
  if (!funcs.empty() && std::next(funcs.begin()) == funcs.end())
    return *funcs.begin();
  if (auto f = module.lookupSymbol<mlir::func::FuncOp>("main"))
    return f;
  if (funcs.empty())
    error = "no function in " + file;
  else
    error = file + " has several functions (" + functionNames(module) +
            ") and none is 'main': pass --entry=NAME";
  return {};
}

} // namespace moe::tools

#endif // MOE_TOOLS_COMMON_ENTRYFUNCTION_H
