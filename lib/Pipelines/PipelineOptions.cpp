//===- PipelineOptions.cpp - range checks of the pipelines' options --------===//
//
// Every way into a pipeline (moe-opt's --moe-to-cpu=..., moe-run's
// --pipeline-options, moe-compile's flags, the Python module's keywords)
// ends in these checks, so a value the lowerings cannot use (a negative row
// tile, an absurd vector width) is one error naming the option and its
// range, not a crash or a silently different kernel.
//
//===----------------------------------------------------------------------===//

#include "PipelineOptions.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/Pass.h"

#include <climits>

namespace moe {

namespace {
/// One numeric option: valid in [min, max], or one of the special values
/// from `specialMin` up to min - 1 whose meaning `special` gives.
struct OptionRange {
  llvm::StringRef name;
  int64_t value;
  int64_t min, max;
  int64_t specialMin;
  llvm::StringRef special;
};

/// Bytes options (cache block sizes): up to 1 GiB.
constexpr int64_t kMaxBytes = int64_t(1) << 30;

std::string checkRanges(llvm::ArrayRef<OptionRange> ranges) {
  for (const OptionRange &r : ranges) {
    bool special = r.value >= r.specialMin && r.value < r.min;
    if (special || (r.value >= r.min && r.value <= r.max))
      continue;
    std::string message = (r.name + " must be in [" + llvm::Twine(r.min) + ", " +
                           llvm::Twine(r.max) + "]")
                              .str();
    if (!r.special.empty())
      message += (" (or " + r.special + ")").str();
    return message + ", got " + std::to_string(r.value);
  }
  return "";
}

/// Stands for a pipeline whose options are out of range when it is built by
/// a caller that cannot report the error itself (buildMoeToCpuPipeline
/// returns nothing): the pipeline then fails at once with the message.
struct RejectOptionsPass
    : public mlir::PassWrapper<RejectOptionsPass, mlir::OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RejectOptionsPass)
  explicit RejectOptionsPass(std::string message) : message(std::move(message)) {}
  llvm::StringRef getArgument() const override { return "moe-reject-options"; }
  void runOnOperation() override {
    mlir::emitError(mlir::UnknownLoc::get(&getContext())) << message;
    signalPassFailure();
  }
  std::string message;
};
} // namespace

std::string checkOptions(const CpuPipelineOptions &options) {
  const OptionRange ranges[] = {
      {"vector-width", options.vectorWidth, 1, 64, 0, "0: from the host CPU"},
      {"row-tile", options.rowTile, 1, 64, 0, "0: from the host CPU"},
      {"block-bytes", options.blockBytes, 1, kMaxBytes, 0, "0: 256 KiB"},
      {"slice-bytes", options.sliceBytes, 1, kMaxBytes, 0, "0: 16 KiB"},
      {"pack-min-rows", options.packMinRows, 1, INT32_MAX, -1,
       "0: never; -1: from the vector width"},
      {"pack-tiles", options.packTiles, 1, 16, 0, "0: from the host CPU"},
      {"pack-slice-bytes", options.packSliceBytes, 1, kMaxBytes, 0, "0: 32 KiB"},
      {"ranks", options.ranks, 1, 1 << 20, 0, "0: one process"},
  };
  std::string error = checkRanges(ranges);
  if (error.empty() && !options.placement.empty() && options.ranks == 0)
    error = "placement needs ranks (expert parallelism)";
  if (error.empty() && options.stats && options.gpuHost)
    error = "stats: routing statistics are recorded by the CPU pipeline only, not with gpu-host";
  if (error.empty() && options.stats && options.ranks > 0)
    error = "stats: routing statistics are not recorded by sharded (ranks > 0) layers";
  if (error.empty() && options.gpuHost && options.ranks > 0)
    error = "ranks (expert parallelism) is not supported with gpu-host";
  return error;
}

std::string checkOptions(const GpuPipelineOptions &options) {
  const OptionRange ranges[] = {
      {"vector-width", options.vectorWidth, 1, 64, 1, ""},
      // CUDA's limit on the threads of one block.
      {"block-size", options.blockSize, 1, 1024, 1, ""},
  };
  return checkRanges(ranges);
}

bool addOptionsCheck(mlir::OpPassManager &pm, const std::string &error) {
  if (error.empty())
    return true;
  pm.addPass(std::make_unique<RejectOptionsPass>(error));
  return false;
}

} // namespace moe
