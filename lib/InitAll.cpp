//===- InitAll.cpp - everything the moe tools register ---------------------===//
#include "moe/InitAll.h"

#include "moe/Conversion/Passes.h"
#include "moe/IR/MoeDialect.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"

void moe::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::moe::MoeDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
}

void moe::registerAllPasses() {
  mlir::registerAllPasses();
  mlir::moe::registerMoePasses();
  mlir::moe::registerMoeConversionPasses();
  moe::registerMoePipelines();
}
