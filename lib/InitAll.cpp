//===- InitAll.cpp - everything the moe tools register ---------------------===//
#include "moe/InitAll.h"

#include "moe/IR/MoeDialect.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"

void moe::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::moe::MoeDialect>();
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
}

void moe::registerAllPasses() { mlir::registerAllPasses(); }
