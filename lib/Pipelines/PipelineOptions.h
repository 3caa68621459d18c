//===- PipelineOptions.h - registering pipelines with checked options -----===//
#ifndef MOE_LIB_PIPELINES_PIPELINEOPTIONS_H
#define MOE_LIB_PIPELINES_PIPELINEOPTIONS_H

#include "moe/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"

namespace moe {

/// One-shot-bufferize (function boundaries with identity layouts) of the
/// lowered layers and the upstream tensor ops around them, then
/// moe-buffer-abi and the remaining linalg ops as loops.
void addBufferizationStage(mlir::OpPassManager &pm);

/// With a non-empty `error`, adds a pass that fails with it and returns
/// false: the build functions (which return nothing) stop there, and
/// running the pipeline reports the bad option.
bool addOptionsCheck(mlir::OpPassManager &pm, const std::string &error);

/// Registers a command-line pipeline whose options are range-checked
/// (checkOptions) when it is parsed: `--moe-to-cpu=row-tile=-1` is an error
/// naming the option and its range.
template <typename Options>
void registerCheckedPipeline(llvm::StringRef arg, llvm::StringRef description,
                             std::function<void(mlir::OpPassManager &, const Options &)> build) {
  mlir::registerPassPipeline(
      arg, description,
      [build](mlir::OpPassManager &pm, llvm::StringRef text,
              llvm::function_ref<mlir::LogicalResult(const llvm::Twine &)> errorHandler) {
        Options options;
        if (mlir::failed(options.parseFromString(text)))
          return mlir::failure();
        if (std::string error = checkOptions(options); !error.empty())
          return errorHandler(error);
        build(pm, options);
        return mlir::success();
      },
      [](llvm::function_ref<void(const mlir::detail::PassOptions &)> optionsHandler) {
        optionsHandler(Options());
      });
}

} // namespace moe

#endif // MOE_LIB_PIPELINES_PIPELINEOPTIONS_H
