//===- moe-opt.cpp - the moe dialect's optimizer driver --------------------===//
//
// mlir-opt with the moe dialect, its passes and pipelines registered:
// parses, verifies, transforms and prints. Malformed input gets located
// diagnostics and a non-zero exit.
//
//===----------------------------------------------------------------------===//

#include "moe/InitAll.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  moe::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "moe optimizer driver\n", registry));
}
