//===- FuzzPipeline.cpp - libFuzzer target: MLIR text -> LLVM IR ----------===//
//
// Input: MLIR text. Parses it (which verifies), runs the CPU pipeline
// (`moe-to-cpu`) and translates the result to LLVM IR, the path of
// `moe-compile`. Any of these may fail with diagnostics (they are captured and
// dropped); none may crash, trip ASan/UBSan or hang.
//
// Inputs outside the compiler's input language (docs/dialect.md §1.6: moe
// ops, arith.constant, func.func/func.return, moe.yield, in a module) are
// skipped after parsing: the pipeline's upstream tail would otherwise be
// fuzzed on arbitrary upstream dialects, whose bugs are LLVM's, not ours.
// Parsing and verification still see every input.
//
// Each input gets a fresh MLIRContext, so a finding replays on its own.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdint>
#include <cstdlib>

namespace {
mlir::DialectRegistry *registry = nullptr;

/// docs/dialect.md §1.6: what the compiler takes as input.
bool inInputLanguage(mlir::ModuleOp module) {
  bool ok = true;
  module->walk([&](mlir::Operation *op) {
    if (op == module.getOperation())
      return mlir::WalkResult::advance();
    llvm::StringRef dialect = op->getName().getDialectNamespace();
    if (dialect == "moe" || mlir::isa<mlir::func::FuncOp, mlir::func::ReturnOp,
                                      mlir::arith::ConstantOp>(op))
      return mlir::WalkResult::advance();
    ok = false;
    return mlir::WalkResult::interrupt();
  });
  return ok;
}
} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  registry = new mlir::DialectRegistry();
  moe::registerAllDialects(*registry);
  mlir::registerBuiltinDialectTranslation(*registry);
  mlir::registerLLVMDialectTranslation(*registry);
  moe::registerAllPasses();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Single-threaded: the pass manager's thread pool would make a finding
  // depend on scheduling.
  mlir::MLIRContext context(*registry, mlir::MLIRContext::Threading::DISABLED);
  // Errors are an expected outcome; keep the fuzzer's output readable.
  mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &) {
    return mlir::success();
  });
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz-input"),
      llvm::SMLoc());
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
  if (!module)
    return 0;
  if (!inInputLanguage(*module))
    return -1; // not added to the corpus
  mlir::PassManager pm(&context);
  moe::buildMoeToCpuPipeline(pm, moe::CpuPipelineOptions());
  if (mlir::failed(pm.run(*module)))
    return 0;
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(*module, llvmContext);
  (void)llvmModule;
  return 0;
}
