//===- CompiledFunction.cpp - compile a moe function and run it -----------===//

#include "moe/ExecutionEngine/CompiledFunction.h"
#include "StageRecorder.h"
#include "moe/ExecutionEngine/Diagnostics.h"
#include "moe/IR/MoeOps.h"

#include "moe_runtime.h"
#include "moe/Transforms/Passes.h"
#include "moe/Conversion/Passes.h"
#include "mlir/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <dlfcn.h>
#include <cstring>

using namespace mlir;

namespace moe {


CompiledFunction::~CompiledFunction() { moe_signature_free(signature); }

/// The runtime's element type of an IR element type.
std::optional<DType> elementDType(Type et) {
  if (et.isF32())
    return DType::F32;
  if (et.isInteger(32))
    return DType::I32;
  if (et.isInteger(64))
    return DType::I64;
  if (et.isBF16())
    return DType::BF16;
  if (et.isF16())
    return DType::F16;
  if (et.isInteger(8))
    return DType::I8;
  return std::nullopt;
}

std::string signatureText(func::FuncOp func) {
  std::string text;
  auto add = [&](TypeRange types) {
    for (auto [i, t] : llvm::enumerate(types)) {
      auto tt = cast<RankedTensorType>(t);
      text += i ? ";" : "";
      text += dtypeName(elementDType(tt.getElementType()).value_or(DType::I64));
      text += " " + std::to_string(tt.getRank());
      for (int64_t d : tt.getShape())
        text += " " + std::to_string(ShapedType::isDynamic(d) ? -1 : d);
    }
  };
  add(func.getArgumentTypes());
  text += "|";
  add(func.getResultTypes());
  return text;
}

Status signatureOf(Type type, TensorSignature &sig, const std::string &what) {
  auto tt = dyn_cast<RankedTensorType>(type);
  if (!tt)
    return Status::failure(what + " must be a ranked tensor");
  std::optional<DType> dtype = elementDType(tt.getElementType());
  if (!dtype)
    return Status::failure(what + ": unsupported element type");
  sig.dtype = *dtype;
  sig.shape.clear();
  for (int64_t d : tt.getShape())
    sig.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
  return Status::success();
}

/// The whole pipeline in one pass manager: moe-to-cpu, or for `gpuHost`
/// the GPU's mapped stage run on the host and the same LLVM tail. The
/// pipelines end each stage with moe-stage-end; the StageRecorder keeps
/// their texts and names the stage of a failure.
static Status runPipeline(ModuleOp module, const CpuPipelineOptions &options, bool keepStages,
                          std::vector<Stage> &stages, DiagnosticCollector &diagnostics) {
  PassManager pm(module.getContext());
  if (options.gpuHost) {
    // The caller's vector width is the mapping's (0 keeps the GPU
    // pipeline's default: the host's width means nothing to the kernels).
    GpuPipelineOptions gpuOptions;
    if (options.vectorWidth > 0)
      gpuOptions.vectorWidth = options.vectorWidth;
    buildMoeGpuHostLoopsPipeline(pm, gpuOptions);
  } else {
    buildMoeToLoopsPipeline(pm, options);
  }
  if (failed(buildLoopsToLlvmPipeline(pm)))
    return Status::failure("cannot build the LLVM lowering pipeline:\n" + diagnostics.text());
  auto recorder = std::make_unique<StageRecorder>(pm, stages, keepStages);
  StageRecorder *stagesSeen = recorder.get();
  pm.addInstrumentation(std::move(recorder));
  if (failed(pm.run(module)))
    return Status::failure("compilation failed in stage '" + stagesSeen->currentStage() +
                           "':\n" + diagnostics.text());
  return Status::success();
}

Status CompiledFunction::compile(ModuleOp module, const std::string &entry,
                                 const CpuPipelineOptions &options, bool keepStages,
                                 std::unique_ptr<CompiledFunction> &out) {
  auto start = std::chrono::steady_clock::now();
  static bool targetsReady = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)targetsReady;
  MLIRContext *ctx = module.getContext();
  {
    DialectRegistry registry;
    registerBuiltinDialectTranslation(registry);
    registerLLVMDialectTranslation(registry);
    ctx->appendDialectRegistry(registry);
  }

  if (std::string error = checkOptions(options); !error.empty())
    return Status::failure(error);
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return Status::failure("no function '" + entry + "' in the module");
  std::unique_ptr<CompiledFunction> fn(new CompiledFunction());
  fn->entryName = entry;
  for (auto [i, t] : llvm::enumerate(func.getArgumentTypes())) {
    TensorSignature sig;
    Status s = signatureOf(t, sig, "argument #" + std::to_string(i));
    if (!s.ok())
      return s;
    fn->args.push_back(sig);
  }
  for (auto [i, t] : llvm::enumerate(func.getResultTypes())) {
    TensorSignature sig;
    Status s = signatureOf(t, sig, "result #" + std::to_string(i));
    if (!s.ok())
      return s;
    fn->results.push_back(sig);
  }

  // Compile a copy holding only the entry function.
  OwningOpRef<ModuleOp> copy = ModuleOp::create(module.getLoc());
  copy->getBody()->push_back(func->clone());

  // Every stage's diagnostics, as the parser prints them (file:line:col and
  // the source line), end up in the Status.
  DiagnosticCollector diagnostics(ctx);
  if (keepStages)
    fn->stageTexts.push_back({"moe", printOp(*copy)});
  if (Status s = runPipeline(*copy, options, keepStages, fn->stageTexts, diagnostics); !s.ok())
    return s;

  if (keepStages) {
    llvm::LLVMContext llvmCtx;
    auto llvmModule = translateModuleToLLVMIR(*copy, llvmCtx);
    if (llvmModule) {
      std::string ir;
      llvm::raw_string_ostream os(ir);
      llvmModule->print(os, nullptr);
      fn->stageTexts.push_back({"llvm-ir", ir});
    }
  }

  // The host's CPU and features, so LLVM's own passes and codegen target it.
  auto tmBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!tmBuilder)
    return Status::failure("cannot detect the host target: " +
                           llvm::toString(tmBuilder.takeError()));
  auto tm = tmBuilder->createTargetMachine();
  if (!tm)
    return Status::failure("cannot create a target machine: " + llvm::toString(tm.takeError()));
  ExecutionEngineOptions engineOptions;
  // Compiled code calls the runtime (thread pool, scratch allocator). Name
  // its library explicitly: a host that loaded us with RTLD_LOCAL (Python
  // extensions) does not expose its symbols to the JIT's process lookup.
  Dl_info runtimeInfo;
  std::string runtimePath;
  if (dladdr(reinterpret_cast<void *>(&moe_rt_parallel_for), &runtimeInfo) &&
      runtimeInfo.dli_fname)
    runtimePath = runtimeInfo.dli_fname;
  llvm::SmallVector<llvm::StringRef> libs;
  if (!runtimePath.empty())
    libs.push_back(runtimePath);
  engineOptions.sharedLibPaths = libs;
  auto transformer = makeOptimizingTransformer(3, 0, tm->get());
  engineOptions.transformer = transformer;
  engineOptions.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  auto engine = ExecutionEngine::create(*copy, engineOptions, std::move(*tm));
  if (!engine) {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << engine.takeError();
    return Status::failure("JIT compilation failed: " + msg + "\n" + diagnostics.text());
  }
  fn->engine = std::move(*engine);
  auto packedFn = fn->engine->lookupPacked("_mlir_ciface_" + entry);
  if (!packedFn)
    return Status::failure("JIT: no entry point: " + llvm::toString(packedFn.takeError()));
  fn->packed = *packedFn;
  fn->signature = moe_signature_parse(signatureText(func).c_str());
  if (!fn->signature)
    return Status::failure("internal error: cannot parse the signature of '" + entry + "'");
  fn->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out = std::move(fn);
  return Status::success();
}

std::vector<std::vector<int64_t>>
resultShapesFor(const std::vector<TensorSignature> &args,
                const std::vector<TensorSignature> &results,
                const std::vector<std::vector<int64_t>> &argShapes) {
  // T is the size of the first dynamic dimension; the runtime checks that
  // every argument agrees before anything runs.
  int64_t tokens = -1;
  for (size_t i = 0; i < args.size() && i < argShapes.size() && tokens < 0; ++i)
    for (size_t d = 0; d < args[i].shape.size() && d < argShapes[i].size(); ++d)
      if (args[i].shape[d] < 0) {
        tokens = argShapes[i][d];
        break;
      }
  std::vector<std::vector<int64_t>> out;
  for (const TensorSignature &sig : results) {
    std::vector<int64_t> shape = sig.shape;
    for (int64_t &d : shape)
      if (d < 0)
        d = std::max<int64_t>(tokens, 0);
    out.push_back(shape);
  }
  return out;
}

Status CompiledFunction::resultShapesFor(const std::vector<std::vector<int64_t>> &argShapes,
                                         std::vector<std::vector<int64_t>> &out) const {
  out = ::moe::resultShapesFor(args, results, argShapes);
  return Status::success();
}

Status CompiledFunction::runBuffers(const std::vector<const void *> &argData,
                                    const std::vector<std::vector<int64_t>> &argShapes,
                                    const std::vector<void *> &resultData,
                                    const std::vector<std::vector<int64_t>> &resultShapes) const {
  if (argData.size() != argShapes.size() || resultData.size() != resultShapes.size())
    return Status::failure("one shape per buffer is needed");
  std::vector<moe_tensor> in, out;
  for (size_t i = 0; i < argData.size(); ++i)
    in.push_back({const_cast<void *>(argData[i]),
                  i < args.size() ? moe_dtype(args[i].dtype) : MOE_F32,
                  int32_t(argShapes[i].size()), argShapes[i].data()});
  for (size_t i = 0; i < resultData.size(); ++i)
    out.push_back({resultData[i], i < results.size() ? moe_dtype(results[i].dtype) : MOE_F32,
                   int32_t(resultShapes[i].size()), resultShapes[i].data()});
  return runTensors(in.data(), in.size(), out.data(), out.size());
}

Status CompiledFunction::runTensors(const moe_tensor *in, size_t numIn, moe_tensor *out,
                                    size_t numOut) const {
  int status = moe_run_packed(packed, signature, entryName.c_str(), in, int(numIn), out,
                              int(numOut));
  if (status != MOE_OK)
    return Status::failure(moe_last_error());
  return Status::success();
}

Status CompiledFunction::run(const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs) const {
  return runOnHostTensors(args, results, inputs, outputs,
                          [&](const moe_tensor *in, size_t numIn, moe_tensor *out, size_t numOut) {
                            return runTensors(in, numIn, out, numOut);
                          });
}

Status runOnHostTensors(const std::vector<TensorSignature> &args,
                        const std::vector<TensorSignature> &results,
                        const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs,
                        const std::function<Status(const moe_tensor *, size_t, moe_tensor *, size_t)> &call) {
  std::vector<std::vector<int64_t>> argShapes;
  for (const Tensor &t : inputs)
    argShapes.push_back(t.shape);
  std::vector<std::vector<int64_t>> resultShapes = ::moe::resultShapesFor(args, results, argShapes);
  Status s;
  // Tensors widen integers (and 16-bit patterns) to int64; narrow them to
  // their stored size for the call.
  std::vector<std::vector<unsigned char>> narrowed(inputs.size());
  std::vector<const void *> argData;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor &t = inputs[i];
    if (t.dtype == DType::F32) {
      argData.push_back(t.f.data());
    } else if (t.dtype == DType::I64) {
      argData.push_back(t.i.data());
    } else {
      narrowed[i].resize(t.i.size() * dtypeSize(t.dtype));
      for (size_t k = 0; k < t.i.size(); ++k)
        storeIntElement(t.dtype, narrowed[i].data(), int64_t(k), t.i[k]);
      argData.push_back(narrowed[i].data());
    }
  }
  std::vector<Tensor> outs;
  std::vector<std::vector<int32_t>> outI32(results.size());
  std::vector<void *> resultData;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].dtype == DType::F32) {
      outs.push_back(Tensor::f32(resultShapes[i]));
    } else {
      outs.push_back(Tensor::ints(results[i].dtype, resultShapes[i]));
    }
  }
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].dtype == DType::F32) {
      resultData.push_back(outs[i].f.data());
    } else if (results[i].dtype == DType::I64) {
      resultData.push_back(outs[i].i.data());
    } else {
      outI32[i].resize(outs[i].numel());
      resultData.push_back(outI32[i].data());
    }
  }
  std::vector<moe_tensor> in, out;
  for (size_t i = 0; i < inputs.size(); ++i)
    in.push_back({const_cast<void *>(argData[i]), moe_dtype(inputs[i].dtype),
                  int32_t(argShapes[i].size()), argShapes[i].data()});
  for (size_t i = 0; i < results.size(); ++i)
    out.push_back({resultData[i], moe_dtype(results[i].dtype), int32_t(resultShapes[i].size()),
                   resultShapes[i].data()});
  if (!(s = call(in.data(), in.size(), out.data(), out.size())).ok())
    return s;
  for (size_t i = 0; i < results.size(); ++i)
    if (results[i].dtype == DType::I32)
      outs[i].i.assign(outI32[i].begin(), outI32[i].end());
  outputs = std::move(outs);
  return Status::success();
}

//===----------------------------------------------------------------------===//
// PreparedFunction
//===----------------------------------------------------------------------===//

bool isWeightArgument(mlir::Type type) { return mlir::moe::isWeightType(type); }

PreparedFunction::~PreparedFunction() { moe_prepared_free(held); }

Status PreparedFunction::compile(ModuleOp module, const std::string &entry,
                                 const CpuPipelineOptions &options, bool keepStages,
                                 std::unique_ptr<PreparedFunction> &out) {
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return Status::failure("no function '" + entry + "' in the module");
  std::unique_ptr<PreparedFunction> fn(new PreparedFunction());
  for (auto [i, t] : llvm::enumerate(func.getArgumentTypes()))
    (isWeightArgument(t) ? fn->weights : fn->activations).push_back(i);
  for (auto [i, t] : llvm::enumerate(func.getArgumentTypes())) {
    TensorSignature sig;
    Status s = signatureOf(t, sig, "argument #" + std::to_string(i));
    if (!s.ok())
      return s;
    fn->argSigs.push_back(sig);
  }
  OwningOpRef<ModuleOp> split = ModuleOp::create(module.getLoc());
  split->getBody()->push_back(func->clone());
  {
    DiagnosticCollector diagnostics(module.getContext());
    PassManager pm(module.getContext());
    mlir::moe::MoeHoistWeightPackingOptions hoist;
    hoist.entry = entry;
    pm.addPass(mlir::moe::createMoeHoistWeightPacking(hoist));
    if (failed(pm.run(*split)))
      return Status::failure("moe-hoist-weight-packing failed:\n" + diagnostics.text());
  }
  Status s = CompiledFunction::compile(*split, entry + "_prepare", options, false, fn->prepareFn);
  if (!s.ok())
    return s;
  if (!(s = CompiledFunction::compile(*split, entry, options, keepStages, fn->runFn)).ok())
    return s;
  fn->name = entry;
  out = std::move(fn);
  return Status::success();
}

double PreparedFunction::compileSeconds() const {
  return prepareFn->compileSeconds() + runFn->compileSeconds();
}

Status PreparedFunction::prepareTensors(const moe_tensor *w, size_t n, moe_prepared **out) const {
  int status = moe_prepare_packed(prepareFn->packed, prepareFn->signature, runFn->packed,
                                  runFn->signature, name.c_str(), w, int(n), out);
  if (status != MOE_OK)
    return Status::failure(moe_last_error());
  return Status::success();
}

Status PreparedFunction::prepare(const std::vector<Tensor> &weightTensors) {
  std::vector<TensorSignature> sigs;
  for (size_t i : weights)
    sigs.push_back(argSigs[i]);
  moe_prepared *fresh = nullptr;
  std::vector<Tensor> none;
  Status s = runOnHostTensors(sigs, {}, weightTensors, none,
                              [&](const moe_tensor *in, size_t numIn, moe_tensor *, size_t) {
                                return prepareTensors(in, numIn, &fresh);
                              });
  if (!s.ok())
    return s;
  moe_prepared_free(held);
  held = fresh;
  return Status::success();
}

Status PreparedFunction::run(const std::vector<Tensor> &activationTensors,
                             std::vector<Tensor> &results) const {
  if (!held)
    return Status::failure("'" + name + "' is not prepared: call prepare(weights) first");
  std::vector<TensorSignature> sigs;
  for (size_t i : activations)
    sigs.push_back(argSigs[i]);
  return runOnHostTensors(sigs, runFn->resultSignatures(), activationTensors, results,
                          [&](const moe_tensor *in, size_t numIn, moe_tensor *out, size_t numOut) {
                            return runTensors(held, in, numIn, out, numOut);
                          });
}

Status PreparedFunction::runTensors(moe_prepared *prepared, const moe_tensor *in, size_t numIn,
                                    moe_tensor *out, size_t numOut) const {
  if (moe_prepared_run(prepared, in, int(numIn), out, int(numOut)) != MOE_OK)
    return Status::failure(moe_last_error());
  return Status::success();
}

} // namespace moe
