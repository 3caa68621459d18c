//===- InitAll.cpp - everything the moe tools register ---------------------===//
#include "moe/InitAll.h"

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoeDialect.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

void moe::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::moe::MoeDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels (gpu, nvvm, llvm) to LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
}

void moe::registerAllPasses() {
  mlir::registerAllPasses();
  mlir::moe::registerMoePasses();
  mlir::moe::registerMoeConversionPasses();
  moe::registerMoePipelines();
}

mlir::OwningOpRef<mlir::ModuleOp> moe::parseMlirFile(const std::string &path,
                                                     mlir::MLIRContext &context,
                                                     llvm::SourceMgr &sourceMgr,
                                                     std::string &error) {
  auto file = mlir::openInputFile(path, &error);
  if (!file)
    return nullptr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  return mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
}
