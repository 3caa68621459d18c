//===- PtxCompiler.cpp - compile a moe function to PTX + launch text ------===//

#include "moe/ExecutionEngine/PtxCompiler.h"
#include "moe/ExecutionEngine/Diagnostics.h"
#include "StageRecorder.h"

#include "moe/Conversion/GpuLaunch.h"
#include "moe/Conversion/Passes.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace mlir;

namespace moe {

bool isNvidiaChip(llvm::StringRef chip) {
  if (!chip.consume_front("sm_"))
    return false;
  // sm_90a, sm_100f: architecture-specific feature sets.
  if (!chip.empty() && llvm::isAlpha(chip.back()))
    chip = chip.drop_back();
  return !chip.empty() && llvm::all_of(chip, llvm::isDigit);
}

std::string launchPathFor(llvm::StringRef ptxPath) {
  llvm::SmallString<256> path(ptxPath);
  if (llvm::sys::path::extension(path) == ".ptx")
    llvm::sys::path::replace_extension(path, ".launch");
  else
    path += ".launch";
  return std::string(path);
}


/// The kernel names of the launch description's `kernel NAME ...` lines.
static std::vector<std::string> kernelsOf(llvm::StringRef launch) {
  std::vector<std::string> kernels;
  llvm::SmallVector<llvm::StringRef> lines;
  launch.split(lines, '\n', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (llvm::StringRef line : lines) {
    auto [keyword, rest] = line.trim().split(' ');
    if (keyword != "kernel")
      continue;
    std::string name = rest.trim().split(' ').first.str();
    if (!llvm::is_contained(kernels, name))
      kernels.push_back(name);
  }
  return kernels;
}

Status compileToPtx(ModuleOp module, const std::string &entry, const PtxOptions &options,
                    PtxLayer &out) {
  auto start = std::chrono::steady_clock::now();
  if (!isNvidiaChip(options.chip))
    return Status::failure("the chip must name an NVIDIA architecture like sm_90, got '" +
                           options.chip + "'");
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return Status::failure("no function '" + entry + "' in the module");
  PtxLayer layer;
  layer.entry = entry;
  layer.chip = options.chip;
  unsigned numInputs = func.getNumArguments();

  GpuPipelineOptions gpuOptions;
  gpuOptions.chip = options.chip;
  // 0 keeps the pipeline's default; anything else is checked.
  if (options.vectorWidth != 0)
    gpuOptions.vectorWidth = options.vectorWidth;
  if (options.blockSize != 0)
    gpuOptions.blockSize = options.blockSize;
  if (std::string error = checkOptions(gpuOptions); !error.empty())
    return Status::failure(error);

  // Compile a copy holding only the entry function.
  MLIRContext *ctx = module.getContext();
  OwningOpRef<ModuleOp> copy = ModuleOp::create(module.getLoc());
  copy->getBody()->push_back(func->clone());

  // Every diagnostic of every stage ends up in the Status, none on stderr,
  // as the parser prints them (file:line:col and the source line).
  DiagnosticCollector collected(ctx);
  const std::string &diagnostics = collected.text();
  if (options.keepStages)
    layer.stages.push_back({"moe", printOp(*copy)});

  // The whole pipeline (buildMoeToPtxPipeline) in one pass manager; its
  // moe-stage-end passes close the stages the StageRecorder keeps.
  PassManager pm(ctx);
  if (failed(buildMoeToPtxPipeline(pm, gpuOptions)))
    return Status::failure("cannot build the GPU pass pipeline" +
                           (diagnostics.empty() ? std::string() : ":\n" + diagnostics));
  auto recorder = std::make_unique<StageRecorder>(pm, layer.stages, options.keepStages);
  StageRecorder *stagesSeen = recorder.get();
  pm.addInstrumentation(std::move(recorder));
  if (failed(pm.run(*copy)))
    return Status::failure("compilation for the GPU failed in stage '" +
                           stagesSeen->currentStage() + "':\n" +
                           llvm::StringRef(diagnostics).rtrim().str());
  auto keep = [&](const char *name, std::string text) {
    if (options.keepStages)
      layer.stages.push_back({name, std::move(text)});
  };
  // The "ptx" stage's text is the PTX itself, not the module holding it.
  if (options.keepStages && !layer.stages.empty() && layer.stages.back().name == "ptx")
    layer.stages.pop_back();

  copy->walk([&](gpu::BinaryOp binary) {
    for (Attribute obj : binary.getObjects())
      if (auto object = dyn_cast<gpu::ObjectAttr>(obj))
        layer.ptx += object.getObject().getValue().str();
  });
  if (layer.ptx.empty())
    return Status::failure("the GPU pipeline produced no PTX" +
                           (diagnostics.empty() ? std::string() : ":\n" + diagnostics));
  keep("ptx", layer.ptx);

  llvm::raw_string_ostream launchOs(layer.launch);
  if (failed(writeLaunchDescription(*copy, entry, options.chip, numInputs, launchOs)))
    return Status::failure("cannot describe the kernel launches of '" + entry + "':\n" +
                           diagnostics);
  keep("launch", layer.launch);
  layer.kernels = kernelsOf(layer.launch);
  layer.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out = std::move(layer);
  return Status::success();
}

Status writePtxFiles(const PtxLayer &layer, const std::string &ptxPath) {
  std::string launchPath = launchPathFor(ptxPath);
  for (auto [path, text] : {std::pair<const std::string *, const std::string *>{&ptxPath, &layer.ptx},
                            {&launchPath, &layer.launch}}) {
    std::string err;
    auto file = openOutputFile(*path, &err);
    if (!file)
      return Status::failure("cannot write " + *path + ": " + err);
    file->os() << *text;
    file->os().flush();
    if (file->os().has_error()) {
      std::string why = file->os().error().message();
      // An uncleared error aborts in raw_fd_ostream's destructor.
      file->os().clear_error();
      return Status::failure("cannot write " + *path + ": " + why);
    }
    file->keep();
  }
  return Status::success();
}

} // namespace moe
