//===- PtxCompiler.h - compile a moe function to PTX + launch text -*- C++ -*-===//
//
// The GPU path as a library call: one entry function of a module through
// the GPU pipelines, stage by stage, to the PTX of its kernels and the
// launch description the CUDA runtime reads (docs/gpu-launch.md). moe-compile
// --target=nvptx and the Python module (moec.compile(target="nvptx")) both
// go through compileToPtx.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_EXECUTIONENGINE_PTXCOMPILER_H
#define MOE_EXECUTIONENGINE_PTXCOMPILER_H

#include "moe/ExecutionEngine/CompiledFunction.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace moe {

struct PtxOptions {
  /// NVIDIA architecture, "sm_" followed by digits (sm_80, sm_90, sm_90a).
  std::string chip = "sm_90";
  /// f32 lanes in a thread's dot products; 0 keeps GpuPipelineOptions' default.
  int64_t vectorWidth = 0;
  /// Threads per block of the token-parallel kernels; 0 keeps the default.
  int64_t blockSize = 0;
  /// Keep the text of every stage (PtxLayer::stages); the PTX and the launch
  /// description are kept either way.
  bool keepStages = true;
};

/// The stages compileToPtx keeps, in order: the input function, after the
/// moe-level rewrites, the block/thread-mapped loops, the gpu.module kernels
/// with the host's gpu.launch_func sequence, the kernels in the NVVM dialect,
/// the PTX text, the launch description.
inline constexpr const char *kPtxStageNames[] = {"moe",  "expanded", "mapped", "kernels",
                                                 "nvvm", "ptx",      "launch"};

/// One entry function compiled for an NVIDIA GPU.
struct PtxLayer {
  std::string entry;
  std::string chip;
  std::string ptx;
  std::string launch;
  /// The kernels of the launch description's `kernel` lines, in launch order
  /// (a kernel launched twice is listed once).
  std::vector<std::string> kernels;
  std::vector<Stage> stages;
  double seconds = 0.0;
};

/// True for an architecture name the NVPTX path takes ("sm_" + digits, an
/// optional letter suffix).
bool isNvidiaChip(llvm::StringRef chip);

/// Compiles function `entry` of `module` (moe dialect; the module is left
/// unchanged, a copy holding only the entry is compiled) to PTX and its
/// launch description. The context must have moe::registerAllDialects'
/// dialects and translations. On failure the Status names the stage and
/// holds every diagnostic (file:line:col: error: ...); nothing aborts.
Status compileToPtx(mlir::ModuleOp module, const std::string &entry,
                         const PtxOptions &options, PtxLayer &out);

/// Where the launch description of `ptxPath` goes: layer.ptx -> layer.launch,
/// any other name gets ".launch" appended.
std::string launchPathFor(llvm::StringRef ptxPath);

/// Writes layer.ptx to `ptxPath` and layer.launch to launchPathFor(ptxPath).
Status writePtxFiles(const PtxLayer &layer, const std::string &ptxPath);

} // namespace moe

#endif // MOE_EXECUTIONENGINE_PTXCOMPILER_H
