//===- CompiledFunction.cpp - compile a moe function and run it -----------===//

#include "moe/ExecutionEngine/CompiledFunction.h"

#include "moe_runtime.h"
#include "moe/Transforms/Passes.h"

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
#include <cstring>

using namespace mlir;

namespace moe {
using ref::DType;
using ref::Status;
using ref::Tensor;

std::string statusMessage(int status) { return moe_status_message(status); }

std::string TensorSignature::describe() const {
  std::string s = "[";
  for (size_t d = 0; d < shape.size(); ++d)
    s += (d ? ", " : "") + (shape[d] < 0 ? std::string("T") : std::to_string(shape[d]));
  return s + "] " + ref::dtypeName(dtype);
}

CompiledFunction::~CompiledFunction() = default;

static Status signatureOf(Type type, TensorSignature &sig, const std::string &what) {
  auto tt = dyn_cast<RankedTensorType>(type);
  if (!tt)
    return Status::failure(what + " must be a ranked tensor");
  Type et = tt.getElementType();
  if (et.isF32())
    sig.dtype = DType::F32;
  else if (et.isInteger(32))
    sig.dtype = DType::I32;
  else if (et.isInteger(64))
    sig.dtype = DType::I64;
  else
    return Status::failure(what + ": unsupported element type");
  sig.shape.clear();
  for (int64_t d : tt.getShape())
    sig.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
  return Status::success();
}

static std::string printOp(Operation *op) {
  std::string s;
  llvm::raw_string_ostream os(s);
  op->print(os);
  return s;
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

  std::string diagnostics;
  ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &diag) {
    llvm::raw_string_ostream os(diagnostics);
    os << diag.getLocation() << ": " << diag.str() << "\n";
    for (const Diagnostic &note : diag.getNotes())
      os << note.getLocation() << ": note: " << note.str() << "\n";
    return success();
  });
  if (keepStages)
    fn->stageTexts.push_back({"moe", printOp(*copy)});

  // Three groups so each stage can be shown: moe-level rewrites, loops on
  // buffers, then the LLVM dialect.
  auto runStage = [&](const char *name, function_ref<void(OpPassManager &)> build) -> Status {
    PassManager pm(ctx);
    build(pm);
    if (failed(pm.run(*copy)))
      return Status::failure(std::string("compilation failed in stage '") + name +
                             "':\n" + diagnostics);
    if (keepStages)
      fn->stageTexts.push_back({name, printOp(*copy)});
    return Status::success();
  };
  Status s = runStage("expanded", [&](OpPassManager &pm) {
    pm.addNestedPass<func::FuncOp>(mlir::moe::createMoeFoldTrivialExperts());
    pm.addNestedPass<func::FuncOp>(mlir::moe::createMoeExpandLayers());
  });
  if (!s.ok())
    return s;
  // The moe-to-loops pipeline re-runs the two moe-level passes; they are
  // no-ops on expanded IR.
  if (!(s = runStage("loops", [&](OpPassManager &pm) { buildMoeToLoopsPipeline(pm, options); })).ok())
    return s;
  bool pipelineOk = true;
  if (!(s = runStage("llvm", [&](OpPassManager &pm) {
          pipelineOk = succeeded(buildLoopsToLlvmPipeline(pm));
        })).ok())
    return s;
  if (!pipelineOk)
    return Status::failure("cannot build the LLVM lowering pipeline:\n" + diagnostics);

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
  auto transformer = makeOptimizingTransformer(3, 0, tm->get());
  engineOptions.transformer = transformer;
  engineOptions.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  auto engine = ExecutionEngine::create(*copy, engineOptions, std::move(*tm));
  if (!engine) {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << engine.takeError();
    return Status::failure("JIT compilation failed: " + msg + "\n" + diagnostics);
  }
  fn->engine = std::move(*engine);
  fn->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out = std::move(fn);
  return Status::success();
}

Status CompiledFunction::checkShapes(const std::vector<std::vector<int64_t>> &argShapes,
                                     int64_t &tokens) const {
  if (argShapes.size() != args.size())
    return Status::failure("'" + entryName + "' takes " + std::to_string(args.size()) +
                           " arguments, got " + std::to_string(argShapes.size()));
  tokens = -1;
  for (size_t i = 0; i < args.size(); ++i) {
    const TensorSignature &sig = args[i];
    const std::vector<int64_t> &shape = argShapes[i];
    bool ok = shape.size() == sig.shape.size();
    for (size_t d = 0; ok && d < shape.size(); ++d) {
      if (shape[d] < 0)
        ok = false;
      else if (sig.shape[d] >= 0)
        ok = shape[d] == sig.shape[d];
      else if (tokens < 0)
        tokens = shape[d];
      else if (shape[d] != tokens)
        return Status::failure("argument #" + std::to_string(i) + " has token count " +
                               std::to_string(shape[d]) + " but an earlier argument has " +
                               std::to_string(tokens) + " (every dynamic dimension is T)");
    }
    if (!ok) {
      std::string got = "[";
      for (size_t d = 0; d < shape.size(); ++d)
        got += (d ? ", " : "") + std::to_string(shape[d]);
      return Status::failure("argument #" + std::to_string(i) + ": expected shape " +
                             sig.describe() + ", got " + got + "]");
    }
  }
  return Status::success();
}

Status CompiledFunction::resultShapesFor(const std::vector<std::vector<int64_t>> &argShapes,
                                         std::vector<std::vector<int64_t>> &out) const {
  int64_t tokens;
  Status s = checkShapes(argShapes, tokens);
  if (!s.ok())
    return s;
  out.clear();
  for (const TensorSignature &sig : results) {
    std::vector<int64_t> shape = sig.shape;
    for (int64_t &d : shape)
      if (d < 0) {
        if (tokens < 0)
          return Status::failure("a result has a dynamic dimension but no argument does");
        d = tokens;
      }
    out.push_back(shape);
  }
  return Status::success();
}

namespace {
/// A memref descriptor: {allocated, aligned, offset, sizes[R], strides[R]}.
struct Descriptor {
  std::vector<int64_t> words;
  Descriptor(const void *data, const std::vector<int64_t> &shape) {
    words.resize(3 + 2 * shape.size());
    std::memcpy(&words[0], &data, sizeof(void *));
    std::memcpy(&words[1], &data, sizeof(void *));
    words[2] = 0;
    int64_t stride = 1;
    for (size_t d = shape.size(); d-- > 0;) {
      words[3 + d] = shape[d];
      words[3 + shape.size() + d] = stride;
      stride *= shape[d];
    }
  }
};
} // namespace

Status CompiledFunction::runBuffers(const std::vector<const void *> &argData,
                                    const std::vector<std::vector<int64_t>> &argShapes,
                                    const std::vector<void *> &resultData,
                                    const std::vector<std::vector<int64_t>> &resultShapes) const {
  std::vector<std::vector<int64_t>> expected;
  Status s = resultShapesFor(argShapes, expected);
  if (!s.ok())
    return s;
  if (argData.size() != args.size() || resultData.size() != results.size() ||
      resultShapes.size() != results.size())
    return Status::failure("wrong number of argument or result buffers");
  for (size_t i = 0; i < results.size(); ++i)
    if (resultShapes[i] != expected[i])
      return Status::failure("result #" + std::to_string(i) + ": output buffer has the wrong shape");
  // Empty tensors (T = 0) may come with null data; nothing is read from them.
  auto empty = [](const std::vector<int64_t> &shape) {
    for (int64_t d : shape)
      if (d == 0)
        return true;
    return false;
  };
  for (size_t i = 0; i < argData.size(); ++i)
    if (!argData[i] && !empty(argShapes[i]))
      return Status::failure("argument #" + std::to_string(i) + " is a null pointer");
  for (size_t i = 0; i < resultData.size(); ++i)
    if (!resultData[i] && !empty(resultShapes[i]))
      return Status::failure("result #" + std::to_string(i) + " is a null pointer");

  std::vector<Descriptor> descs;
  descs.reserve(args.size() + results.size());
  for (size_t i = 0; i < args.size(); ++i)
    descs.emplace_back(argData[i], argShapes[i]);
  for (size_t i = 0; i < results.size(); ++i)
    descs.emplace_back(resultData[i], resultShapes[i]);
  std::vector<void *> descPtrs;
  for (Descriptor &d : descs)
    descPtrs.push_back(d.words.data());
  int32_t status = -1;
  std::vector<void *> packed;
  for (void *&p : descPtrs)
    packed.push_back(&p);
  packed.push_back(&status);
  if (llvm::Error err = engine->invokePacked("_mlir_ciface_" + entryName, packed)) {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << err;
    return Status::failure("invocation failed: " + msg);
  }
  if (status != MOE_OK)
    return Status::failure("compiled '" + entryName + "' failed: " + statusMessage(status));
  return Status::success();
}

Status CompiledFunction::run(const std::vector<Tensor> &inputs, std::vector<Tensor> &outputs) const {
  std::vector<std::vector<int64_t>> argShapes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i < args.size() && inputs[i].dtype != args[i].dtype)
      return Status::failure("argument #" + std::to_string(i) + ": expected element type " +
                             ref::dtypeName(args[i].dtype) + ", got " +
                             ref::dtypeName(inputs[i].dtype));
    argShapes.push_back(inputs[i].shape);
  }
  std::vector<std::vector<int64_t>> resultShapes;
  Status s = resultShapesFor(argShapes, resultShapes);
  if (!s.ok())
    return s;
  // Tensors widen integers to int64; narrow i32 ones for the call.
  std::vector<std::vector<int32_t>> narrowed(inputs.size());
  std::vector<const void *> argData;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor &t = inputs[i];
    if (t.dtype == DType::F32) {
      argData.push_back(t.f.data());
    } else if (t.dtype == DType::I64) {
      argData.push_back(t.i.data());
    } else {
      narrowed[i].assign(t.i.begin(), t.i.end());
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
  if (!(s = runBuffers(argData, argShapes, resultData, resultShapes)).ok())
    return s;
  for (size_t i = 0; i < results.size(); ++i)
    if (results[i].dtype == DType::I32)
      outs[i].i.assign(outI32[i].begin(), outI32[i].end());
  outputs = std::move(outs);
  return Status::success();
}

} // namespace moe
