//===- Bufferization.cpp - tensors to buffers, shared by both pipelines ---===//
//
// After the moe lowerings, a layer function is tensor IR whose moe parts are
// loops on buffers behind bufferization.to_buffer / to_tensor bridges, and
// whose other parts are whatever upstream tensor ops the user wrote around
// the layers (a residual arith.addf, an RMSNorm in linalg, a slice). One-Shot
// Bufferize turns all of it, function boundaries included, into buffers;
// moe-buffer-abi then gives the entry functions their C signature.
//
//===----------------------------------------------------------------------===//

#include "PipelineOptions.h"

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"

namespace moe {

void addBufferizationStage(mlir::OpPassManager &pm) {
  using mlir::func::FuncOp;
  // Elementwise arith/math on tensors has no bufferization model; as
  // linalg.generic it has one (and becomes loops below).
  pm.addNestedPass<FuncOp>(mlir::createConvertElementwiseToLinalgPass());
  pm.addNestedPass<FuncOp>(mlir::bufferization::createEmptyTensorToAllocTensorPass());
  pm.addPass(mlir::moe::createMoeOneShotBufferize());
  pm.addPass(mlir::moe::createMoeBufferAbi());
  pm.addNestedPass<FuncOp>(mlir::createConvertLinalgToLoopsPass());
}

} // namespace moe
