//===- PtxCompiler.cpp - compile a moe function to PTX + launch text ------===//

#include "moe/ExecutionEngine/PtxCompiler.h"
#include "moe/ExecutionEngine/Diagnostics.h"

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

static std::string printOp(Operation *op) {
  std::string s;
  llvm::raw_string_ostream os(s);
  op->print(os);
  return s;
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
  auto keep = [&](const char *name, std::string text) {
    if (options.keepStages)
      layer.stages.push_back({name, std::move(text)});
  };
  keep("moe", printOp(*copy));

  // One pass manager per stage, so each stage's output can be printed. The
  // stages are the pieces buildMoeToPtxPipeline composes, in its order, so
  // the PTX is the same as that pipeline's.
  auto runStage = [&](const char *name,
                      function_ref<LogicalResult(OpPassManager &)> build) -> Status {
    PassManager pm(ctx);
    if (failed(build(pm)))
      return Status::failure(std::string("cannot build the pass pipeline of stage '") + name +
                             "'" + (diagnostics.empty() ? "" : ":\n" + diagnostics));
    if (failed(pm.run(*copy)))
      return Status::failure(std::string("compilation for the GPU failed in stage '") + name +
                             "':\n" + llvm::StringRef(diagnostics).rtrim().str());
    return Status::success();
  };
  Status s = runStage("expanded", [&](OpPassManager &pm) {
    pm.addPass(mlir::moe::createMoeCheckSupportedOps({"GPU"}));
    pm.addNestedPass<func::FuncOp>(mlir::moe::createMoeFoldTrivialExperts());
    pm.addNestedPass<func::FuncOp>(mlir::moe::createMoeExpandLayers());
    return success();
  });
  if (!s.ok())
    return s;
  keep("expanded", printOp(*copy));
  // The mapped pipeline starts with the two moe-level passes again; on
  // expanded IR they change nothing (the CPU path relies on the same).
  if (!(s = runStage("mapped", [&](OpPassManager &pm) {
          buildMoeGpuMappedPipeline(pm, gpuOptions);
          return success();
        })).ok())
    return s;
  keep("mapped", printOp(*copy));
  if (!(s = runStage("kernels", [&](OpPassManager &pm) {
          buildMoeGpuOutlineStage(pm);
          return success();
        })).ok())
    return s;
  keep("kernels", printOp(*copy));
  if (!(s = runStage("nvvm", [&](OpPassManager &pm) {
          return buildMoeGpuNvvmStage(pm, gpuOptions);
        })).ok())
    return s;
  keep("nvvm", printOp(*copy));
  if (!(s = runStage("ptx", [&](OpPassManager &pm) { return buildMoeGpuPtxStage(pm); })).ok())
    return s;

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
