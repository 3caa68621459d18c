//===- moe-compile.cpp - ahead-of-time compilation of moe functions -------===//
//
//   moe-compile layer.mlir -o layer.so [--entry=NAME] [--emit=so|obj|llvm]
//               [--vector-width=N] [--row-tile=N] [--rpath=DIR]
//   moe-compile layer.mlir --target=nvptx [--chip=sm_90] -o layer.ptx
//
// --target=nvptx runs the GPU pipeline (moe-to-ptx, through
// ::moe::compileToPtx) and writes the PTX of every kernel of the layer to the
// -o file and the launch description (docs/gpu-launch.md) next to it:
// layer.ptx -> layer.launch.
//
// The entry defaults to the module's only function, else to `main`
// (tools/common/EntryFunction.h).
//
// Runs the CPU pipeline, translates to LLVM IR, optimizes for the host CPU,
// and writes a shared object (linked with the system's clang) that the
// runtime loads with moe_layer_open(path, entry). It needs libmoe_runtime.so
// and records no absolute path to it (RUNPATH $ORIGIN, plus --rpath=DIR):
// see docs/install.md for where the loader finds it. The object exports:
//   int32_t _mlir_ciface_<entry>(memref descriptors..., out descriptors...)
//   void _mlir__mlir_ciface_<entry>(void **args)   packed form (runtime calls it)
//   const char *moe_signature_<entry>              argument/result signature
// and the same three for `<entry>_prepare` and `<entry>_run`, the prepared
// form (moe-hoist-weight-packing; moe_layer_prepare / moe_prepared_run)
// unless --no-prepared.
//
//===----------------------------------------------------------------------===//

#include "common/EntryFunction.h"
#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/ExecutionEngine/PtxCompiler.h"
#include "moe/InitAll.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/Passes.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"

using namespace mlir;

// Every option is in this category, so --help lists the tool's own options
// and not the hundreds of LLVM backend flags linked in for code generation.
static llvm::cl::OptionCategory compileCategory("moe-compile options");

static llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                            llvm::cl::desc("<input .mlir>"),
                                            llvm::cl::init("-"), llvm::cl::cat(compileCategory));
static llvm::cl::opt<std::string> outputFile("o", llvm::cl::desc("output file"),
                                             llvm::cl::Required, llvm::cl::cat(compileCategory));
static llvm::cl::opt<std::string>
    entry("entry",
          llvm::cl::desc("function to compile (default: the module's only function, else 'main')"),
          llvm::cl::init(""), llvm::cl::cat(compileCategory));
static llvm::cl::opt<std::string> emit("emit", llvm::cl::desc("so | obj | llvm"),
                                       llvm::cl::init("so"), llvm::cl::cat(compileCategory));
static llvm::cl::opt<std::string> pipelineOptions(
    "pipeline-options",
    llvm::cl::desc("options of the pipeline, as for moe-opt --moe-to-cpu=\"...\" (--target=cpu) "
                   "or --moe-to-ptx=\"...\" (--target=nvptx), e.g. \"row-tile=8\""),
    llvm::cl::init(""), llvm::cl::cat(compileCategory));
// Sugar for the two most used options, appended to --pipeline-options when
// given (no defaults of their own: an omitted one means the pipeline's).
static llvm::cl::opt<int64_t> vectorWidth("vector-width",
                                          llvm::cl::desc("f32 lanes (as vector-width= in --pipeline-options)"),
                                          llvm::cl::init(0), llvm::cl::cat(compileCategory));
static llvm::cl::opt<int64_t> rowTile("row-tile",
                                      llvm::cl::desc("rows per expert GEMM tile (as row-tile= in --pipeline-options)"),
                                      llvm::cl::init(0), llvm::cl::cat(compileCategory));

/// --pipeline-options with the sugar options that were given appended.
static std::string pipelineOptionsText() {
  std::string text = pipelineOptions;
  if (vectorWidth.getNumOccurrences())
    text += " vector-width=" + std::to_string(vectorWidth);
  if (rowTile.getNumOccurrences())
    text += " row-tile=" + std::to_string(rowTile);
  return text;
}

static llvm::cl::opt<bool> noPrepared(
    "no-prepared",
    llvm::cl::desc("do not export the prepared entries <entry>_prepare and <entry>_run"),
    llvm::cl::init(false), llvm::cl::cat(compileCategory));

static llvm::cl::list<std::string> extraRpaths(
    "rpath",
    llvm::cl::desc("add DIR to the shared object's RUNPATH (after $ORIGIN), where a host that "
                   "does not load libmoe_runtime.so itself should find it"),
    llvm::cl::value_desc("DIR"), llvm::cl::cat(compileCategory));
static llvm::cl::opt<std::string> target("target", llvm::cl::desc("cpu | nvptx"),
                                         llvm::cl::init("cpu"), llvm::cl::cat(compileCategory));
static llvm::cl::opt<std::string> chip("chip", llvm::cl::desc("NVIDIA architecture for --target=nvptx"),
                                       llvm::cl::init("sm_90"), llvm::cl::cat(compileCategory));

static int fail(const llvm::Twine &msg) {
  llvm::errs() << "moe-compile: error: " << msg << "\n";
  return 1;
}

/// void _mlir__mlir_ciface_<name>(void **args): args[i] points to argument
/// i, the last entry to the result (the ExecutionEngine's packed form).
static void addPackedWrapper(llvm::Module &m, llvm::Function *fn) {
  llvm::LLVMContext &ctx = m.getContext();
  auto *ptrTy = llvm::PointerType::getUnqual(ctx);
  auto *wrapper = llvm::Function::Create(
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptrTy}, false),
      llvm::GlobalValue::ExternalLinkage, "_mlir_" + fn->getName(), m);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", wrapper));
  llvm::Value *args = wrapper->getArg(0);
  llvm::SmallVector<llvm::Value *> callArgs;
  for (unsigned i = 0; i < fn->arg_size(); ++i) {
    llvm::Value *slot = b.CreateLoad(ptrTy, b.CreateConstGEP1_64(ptrTy, args, i));
    callArgs.push_back(b.CreateLoad(fn->getArg(i)->getType(), slot));
  }
  llvm::Value *result = b.CreateCall(fn, callArgs);
  llvm::Value *resultSlot =
      b.CreateLoad(ptrTy, b.CreateConstGEP1_64(ptrTy, args, fn->arg_size()));
  b.CreateStore(result, resultSlot);
  b.CreateRetVoid();
}

/// The directory of the libmoe_runtime.so to link against: lib/ beside this
/// executable's bin/ (<build>/lib in the build tree, <prefix>/lib in an
/// install), else the build tree's directory recorded at configure time.
static std::string runtimeLibraryDir(const char *argv0) {
  std::string exe =
      llvm::sys::fs::getMainExecutable(argv0, reinterpret_cast<void *>(&runtimeLibraryDir));
  if (!exe.empty()) {
    llvm::SmallString<256> dir(llvm::sys::path::parent_path(llvm::sys::path::parent_path(exe)));
    llvm::sys::path::append(dir, "lib");
    llvm::SmallString<256> lib(dir);
    llvm::sys::path::append(lib, "libmoe_runtime.so");
    if (llvm::sys::fs::exists(lib))
      return std::string(dir);
  }
  return MOE_RUNTIME_LIBRARY_DIR;
}

static std::string findLinker() {
  for (const char *name : {"clang-22", "clang", "cc"})
    if (auto path = llvm::sys::findProgramByName(name))
      return *path;
  if (llvm::sys::fs::exists("/usr/lib/llvm-22/bin/clang"))
    return "/usr/lib/llvm-22/bin/clang";
  return "";
}

/// The GPU path: PTX to the -o file, the launch description beside it.
static int compileNvptx(ModuleOp module) {
  if (!::moe::isNvidiaChip(chip))
    return fail("--chip must name an NVIDIA architecture like sm_90, got '" + chip + "'");
  if (rowTile.getNumOccurrences())
    return fail("--row-tile is an option of the CPU pipeline, not of --target=nvptx");
  auto gpuOptions = ::moe::GpuPipelineOptions::createFromString(pipelineOptionsText());
  if (!gpuOptions)
    return fail("bad --pipeline-options '" + pipelineOptions + "' for the GPU pipeline");
  ::moe::PtxOptions options;
  options.chip = chip;
  options.vectorWidth = gpuOptions->vectorWidth;
  options.blockSize = gpuOptions->blockSize;
  options.keepStages = false;
  ::moe::PtxLayer layer;
  ::moe::Status s = ::moe::compileToPtx(module, entry, options, layer);
  if (!s.ok())
    return fail(s.error);
  if (!(s = ::moe::writePtxFiles(layer, outputFile)).ok())
    return fail(s.error);
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::cl::HideUnrelatedOptions(compileCategory);
  llvm::cl::ParseCommandLineOptions(argc, argv, "moe-compile: ahead-of-time compiler\n");
  if (emit != "so" && emit != "obj" && emit != "llvm")
    return fail("--emit must be so, obj or llvm");
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();

  DialectRegistry registry;
  ::moe::registerAllDialects(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  MLIRContext context(registry);
  std::string err;
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagHandler(sourceMgr, &context);
  OwningOpRef<ModuleOp> module = ::moe::parseMlirFile(inputFile, context, sourceMgr, err);
  if (!module)
    return err.empty() ? 1 : fail(err); // parse errors were printed with locations
  auto func = ::moe::tools::resolveEntry(*module, entry, inputFile, err);
  if (!func)
    return fail(err);
  entry = func.getSymName().str();
  if (target == "nvptx")
    return compileNvptx(*module);
  if (target != "cpu")
    return fail("--target must be cpu or nvptx, got '" + target + "'");
  // Compile only the entry function (and its prepared form).
  OwningOpRef<ModuleOp> copy = ModuleOp::create(module->getLoc());
  copy->getBody()->push_back(func->clone());
  std::vector<std::string> entries{entry};
  if (!noPrepared) {
    PassManager hoist(&context);
    mlir::moe::MoeHoistWeightPackingOptions hoistOptions;
    hoistOptions.entry = entry;
    hoistOptions.keepUnprepared = true;
    hoist.addPass(mlir::moe::createMoeHoistWeightPacking(hoistOptions));
    if (failed(hoist.run(*copy)))
      return 1;
    entries.push_back(entry + "_prepare");
    entries.push_back(entry + "_run");
  }
  std::vector<std::string> signatures;
  for (const std::string &name : entries)
    signatures.push_back(::moe::signatureText(copy->lookupSymbol<func::FuncOp>(name)));

  auto options = ::moe::CpuPipelineOptions::createFromString(pipelineOptionsText());
  if (!options)
    return fail("bad --pipeline-options '" + pipelineOptions + "' for the CPU pipeline");
  // A sharded layer (ranks=R) calls the MPI exchanges of libmoe_runtime_mpi.
  bool sharded = options->ranks > 0;
#ifndef MOE_HAVE_MPI
  if (sharded)
    return fail("ranks=" + std::to_string(options->ranks) +
                ": a sharded layer needs libmoe_runtime_mpi, which was not built (MPI was "
                "not found when moe-compile was configured)");
#endif
  PassManager pm(&context);
  ::moe::buildMoeToCpuPipeline(pm, *options);
  if (failed(pm.run(*copy)))
    return 1;

  llvm::LLVMContext llvmCtx;
  auto llvmModule = translateModuleToLLVMIR(*copy, llvmCtx, "moe-layer");
  if (!llvmModule)
    return fail("translation to LLVM IR failed");
  for (auto [name, signature] : llvm::zip(entries, signatures)) {
    llvm::Function *ciface = llvmModule->getFunction("_mlir_ciface_" + name);
    if (!ciface)
      return fail("no C interface for '" + name + "'");
    addPackedWrapper(*llvmModule, ciface);
    auto *sigInit = llvm::ConstantDataArray::getString(llvmCtx, signature);
    auto *sigStr = new llvm::GlobalVariable(*llvmModule, sigInit->getType(), true,
                                            llvm::GlobalValue::PrivateLinkage, sigInit,
                                            "moe_signature_text_" + name);
    new llvm::GlobalVariable(*llvmModule, llvm::PointerType::getUnqual(llvmCtx), true,
                             llvm::GlobalValue::ExternalLinkage, sigStr,
                             "moe_signature_" + name);
  }

  auto tmBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!tmBuilder)
    return fail(llvm::toString(tmBuilder.takeError()));
  tmBuilder->setRelocationModel(llvm::Reloc::PIC_);
  tmBuilder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto tm = tmBuilder->createTargetMachine();
  if (!tm)
    return fail(llvm::toString(tm.takeError()));
  llvmModule->setDataLayout((*tm)->createDataLayout());
  llvmModule->setTargetTriple((*tm)->getTargetTriple());
  if (llvm::Error e = makeOptimizingTransformer(3, 0, tm->get())(llvmModule.get()))
    return fail(llvm::toString(std::move(e)));

  if (emit == "llvm") {
    auto out = openOutputFile(outputFile, &err);
    if (!out)
      return fail(err);
    llvmModule->print(out->os(), nullptr);
    out->keep();
    return 0;
  }

  std::string objPath = outputFile;
  llvm::SmallString<128> tmp;
  if (emit == "so") {
    if (auto ec = llvm::sys::fs::createTemporaryFile("moe-layer", "o", tmp))
      return fail("cannot create a temporary file: " + ec.message());
    objPath = std::string(tmp);
  }
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objPath, ec, llvm::sys::fs::OF_None);
    if (ec)
      return fail("cannot write '" + objPath + "': " + ec.message());
    llvm::legacy::PassManager codegen;
    if ((*tm)->addPassesToEmitFile(codegen, os, nullptr, llvm::CodeGenFileType::ObjectFile))
      return fail("the target cannot emit object files");
    codegen.run(*llvmModule);
  }
  if (emit == "obj")
    return 0;

  std::string linker = findLinker();
  if (linker.empty())
    return fail("no C compiler found to link the shared object (install clang-22)");
  // The scratch allocator and the rest of the runtime come from
  // libmoe_runtime.so (NEEDED by its soname). At load time the dynamic
  // loader finds it (docs/install.md): already loaded by the host, which
  // calls moe_layer_open from it (the usual case; it matches by soname);
  // else next to the layer ($ORIGIN: ship the two together); else
  // through --rpath directories, LD_LIBRARY_PATH and the system's paths.
  // No path into the build tree or an install prefix is recorded, so the
  // object stays valid when either moves.
  std::string runtimeDir = runtimeLibraryDir(argv[0]);
  std::vector<std::string> argvStore = {linker, "-shared", "-o", outputFile, objPath,
                                        "-L" + runtimeDir, "-lmoe_runtime",
                                        "-Wl,-rpath,$ORIGIN", "-lm"};
  for (const std::string &dir : extraRpaths)
    argvStore.push_back("-Wl,-rpath," + dir);
  if (sharded)
    argvStore.push_back("-lmoe_runtime_mpi"); // next to libmoe_runtime
  std::vector<llvm::StringRef> linkArgs(argvStore.begin(), argvStore.end());
  std::string linkErr;
  int rc = llvm::sys::ExecuteAndWait(linker, linkArgs, std::nullopt, {}, 0, 0, &linkErr);
  llvm::sys::fs::remove(objPath);
  if (rc != 0)
    return fail("linking '" + outputFile + "' with " + linker + " failed" +
                (linkErr.empty() ? "" : ": " + linkErr));
  return 0;
}
