//===- Pipelines.h - named moe pass pipelines -------------------*- C++ -*-===//
#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace moe {

struct CpuPipelineOptions : public mlir::PassPipelineOptions<CpuPipelineOptions> {
  Option<int64_t> vectorWidth{*this, "vector-width",
                              llvm::cl::desc("f32 lanes per vector (0: host CPU)"),
                              llvm::cl::init(0)};
  Option<int64_t> rowTile{*this, "row-tile",
                          llvm::cl::desc("rows per expert GEMM tile (0: host)"),
                          llvm::cl::init(0)};
  Option<bool> parallel{*this, "parallel",
                        llvm::cl::desc("run expert tiles on the runtime's thread pool"),
                        llvm::cl::init(true)};
  Option<int64_t> blockBytes{*this, "block-bytes",
                             llvm::cl::desc("FFN experts: weight bytes per work item (0: 256 KiB)"),
                             llvm::cl::init(0)};
  Option<int64_t> sliceBytes{*this, "slice-bytes",
                             llvm::cl::desc("FFN experts: K-slice bytes of a row tile (0: 16 KiB)"),
                             llvm::cl::init(0)};
};

/// moe (tensors) -> scf/memref/vector loops on buffers, entry functions
/// with the C buffer ABI (status-returning, out-parameters).
void buildMoeToLoopsPipeline(mlir::OpPassManager &pm, const CpuPipelineOptions &options);
/// The full CPU pipeline: moe -> LLVM dialect, ready to translate to LLVM IR.
void buildMoeToCpuPipeline(mlir::OpPassManager &pm, const CpuPipelineOptions &options);
/// The LLVM-dialect tail alone (loops on buffers -> llvm).
mlir::LogicalResult buildLoopsToLlvmPipeline(mlir::OpPassManager &pm);

/// Registers `moe-to-loops` and `moe-to-cpu` for command lines.
void registerMoePipelines();

} // namespace moe

#endif // MOE_PIPELINES_PIPELINES_H
