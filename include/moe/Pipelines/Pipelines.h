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
  Option<int64_t> packMinRows{*this, "pack-min-rows",
                              llvm::cl::desc("FFN experts: rows from which an expert uses the packed "
                                             "outer-product kernel (0: never; -1: from the vector width)"),
                              llvm::cl::init(-1)};
  Option<int64_t> packTiles{*this, "pack-tiles",
                            llvm::cl::desc("FFN experts, packed kernel: row panels per register block (0: host)"),
                            llvm::cl::init(0)};
  Option<int64_t> packSliceBytes{*this, "pack-slice-bytes",
                                 llvm::cl::desc("FFN experts, packed kernel: K-slice bytes of the panels (0: 32 KiB)"),
                                 llvm::cl::init(0)};
  Option<bool> packRowsOuter{*this, "pack-rows-outer",
                             llvm::cl::desc("FFN experts, packed kernel: weight-row tiles outside "
                                            "the panel tiles"),
                             llvm::cl::init(true)};
  Option<std::string> microKernelIsa{
      *this, "ukernel-isa",
      llvm::cl::desc("FFN banks in low-precision formats: the micro-kernels' ISA (generic, avx2, "
                     "avx512, avx512bf16, avx512vnni, amx; empty: the host's best per format)"),
      llvm::cl::init("")};
  Option<bool> gpuHost{*this, "gpu-host",
                       llvm::cl::desc("compile through the GPU's block/thread-mapped stage and run "
                                      "that on the host (tests the GPU mapping without a GPU)"),
                       llvm::cl::init(false)};
  // Routing statistics (moe-record-routing-stats): each call hands its
  // per-layer counts to the runtime (moe_last_stats; docs/routing-stats.md).
  Option<bool> stats{*this, "stats",
                     llvm::cl::desc("record per-layer routing statistics of every call "
                                    "(moe_last_stats; CPU pipeline only)"),
                     llvm::cl::init(false)};
  // Expert parallelism (moe-shard-experts, docs/dialect.md 4.19): the
  // compiled function is the per-rank program of a job of `ranks` MPI ranks
  // and calls libmoe_runtime_mpi; 0 keeps the single-process pipeline.
  Option<int64_t> ranks{*this, "ranks",
                        llvm::cl::desc("expert parallelism: shard the experts over this many "
                                       "MPI ranks (0: one process)"),
                        llvm::cl::init(0)};
  ListOption<int64_t> placement{*this, "placement",
                                llvm::cl::desc("expert parallelism: the rank of each routed "
                                               "expert (default: contiguous blocks)")};
};

struct GpuPipelineOptions : public mlir::PassPipelineOptions<GpuPipelineOptions> {
  Option<int64_t> vectorWidth{*this, "vector-width",
                              llvm::cl::desc("f32 lanes per vector in a thread's dot products"),
                              llvm::cl::init(4)};
  Option<int64_t> blockSize{*this, "block-size",
                            llvm::cl::desc("threads per block of the token-parallel kernels"),
                            llvm::cl::init(256)};
  Option<std::string> chip{*this, "chip", llvm::cl::desc("NVIDIA GPU architecture (sm_XX)"),
                           llvm::cl::init("sm_90")};
};

/// Why these options cannot be compiled, naming the option and its range
/// ("row-tile must be in [1, 64] (or 0: from the host CPU), got -1"), or ""
/// when every value is in range. The build functions below add a failing
/// pass with this message instead of their passes; the registered
/// pipelines, CompiledFunction::compile and compileToPtx report it first.
std::string checkOptions(const CpuPipelineOptions &options);
std::string checkOptions(const GpuPipelineOptions &options);

/// moe (tensors) -> scf/memref/vector loops on buffers, entry functions
/// with the C buffer ABI (status-returning, out-parameters).
void buildMoeToLoopsPipeline(mlir::OpPassManager &pm, const CpuPipelineOptions &options);
/// The full CPU pipeline: moe -> LLVM dialect, ready to translate to LLVM IR.
void buildMoeToCpuPipeline(mlir::OpPassManager &pm, const CpuPipelineOptions &options);
/// The LLVM-dialect tail alone (loops on buffers -> llvm).
mlir::LogicalResult buildLoopsToLlvmPipeline(mlir::OpPassManager &pm);

/// moe -> the GPU's block/thread-mapped stage: kernels as scf.forall nests
/// with #gpu.block / #gpu.thread mappings (lib/Conversion/MoeToGpu/GpuMapping.h).
void buildMoeGpuMappedPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options);
/// The mapped stage executed on the host: loops on buffers, ready for the
/// CPU's LLVM tail (buildLoopsToLlvmPipeline).
void buildMoeGpuHostLoopsPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options);

/// The mapped stage outlined into gpu.module kernels (gpu.launch_func on the host).
void buildMoeGpuKernelsPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options);
/// Kernels in the NVVM dialect with the NVPTX target attached.
mlir::LogicalResult buildMoeToNvvmPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options);
/// Kernels assembled to PTX (a gpu.binary holding the PTX text).
mlir::LogicalResult buildMoeToPtxPipeline(mlir::OpPassManager &pm, const GpuPipelineOptions &options);

/// The stages of buildMoeToPtxPipeline one by one, each applied to the
/// previous one's output (mapped stage -> kernels -> NVVM -> PTX); run in
/// sequence they make the same passes as the composed pipelines.
/// The mapped stage outlined into gpu.module kernels + gpu.launch_func.
void buildMoeGpuOutlineStage(mlir::OpPassManager &pm);
/// Outlined kernels -> NVVM dialect, NVPTX target (options.chip) attached.
mlir::LogicalResult buildMoeGpuNvvmStage(mlir::OpPassManager &pm, const GpuPipelineOptions &options);
/// NVVM kernels -> gpu.binary holding the PTX text.
mlir::LogicalResult buildMoeGpuPtxStage(mlir::OpPassManager &pm);

/// Registers `moe-to-loops`, `moe-to-cpu`, `moe-gpu-mapped`, `moe-gpu-host`
/// for command lines.
void registerMoePipelines();
void registerMoeGpuPipelines();

} // namespace moe

#endif // MOE_PIPELINES_PIPELINES_H
