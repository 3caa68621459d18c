//===- MoecModule.cpp - the _moec Python extension -------------------------===//
//
// The C++ half of the `moec` package: parse + verify MLIR text of the moe
// dialect (diagnostics with file:line:col become moec.CompileError), compile
// a function through moe::CompiledFunction (CPU pipeline + JIT, every stage's
// text kept; or the GPU mapping run on the host) or moe::compileToPtx (PTX +
// launch description), call it on numpy arrays without copying them (the
// PTX through the CUDA runtime, moe_runtime_cuda.h), and run the reference
// interpreter. The pure-Python half (moec/__init__.py) adds the
// DLPack conversion, the target dispatch and the layer builder.
//
// Arrays are never converted: an argument must already have the element
// type and the C-contiguous, aligned layout the compiled code reads, or the
// call raises TypeError / ValueError naming the argument.
//
//===----------------------------------------------------------------------===//

#include "DlpackBindings.h"
#include "QuantBindings.h"
#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/ExecutionEngine/PtxCompiler.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe_runtime.h"
#include "moe_runtime_cuda.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/AsmParser/AsmParserState.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <dlfcn.h>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;
using moe::DType;
using moe::Status;
using moe::Tensor;

namespace {

/// Compilation or verification failed; the message is the diagnostic text.
struct CompileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The compiled code or the reference interpreter reported an error at run
/// time (bad expert id, non-finite router logit, ...).
struct RunError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The GPU cannot run the layer: no CUDA driver or device, a device of
/// another architecture, a driver call that failed. A RunError in Python.
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

//===----------------------------------------------------------------------===//
// Parsed modules
//===----------------------------------------------------------------------===//

/// A parsed, verified module with its own context. Compiled functions keep
/// a reference to it, so the context outlives them.
struct Module {
  std::unique_ptr<mlir::MLIRContext> context;
  mutable mlir::OwningOpRef<mlir::ModuleOp> module;
  std::string filename;
  /// Serializes compile() and reference() on this module (they run without
  /// the GIL and share the context).
  std::mutex mutex;
  /// Argument names ("x", "gate", ...) of every function, from the source.
  std::map<std::string, std::vector<std::string>> argNames;

  mlir::func::FuncOp lookup(const std::string &entry) const {
    auto func = module->lookupSymbol<mlir::func::FuncOp>(entry);
    if (!func) {
      std::string names;
      for (auto f : module->getOps<mlir::func::FuncOp>())
        names += (names.empty() ? "'" : ", '") + f.getSymName().str() + "'";
      throw py::key_error("no function '" + entry + "' in the module (it has " +
                          (names.empty() ? std::string("none") : names) + ")");
    }
    return func;
  }

  std::vector<std::string> namesOf(mlir::func::FuncOp func) const {
    auto it = argNames.find(func.getSymName().str());
    std::vector<std::string> names;
    if (it != argNames.end())
      names = it->second;
    names.resize(func.getNumArguments());
    return names;
  }

  std::string print() const {
    std::string s;
    llvm::raw_string_ostream os(s);
    module->print(os);
    return s;
  }
};

std::shared_ptr<Module> parse(const std::string &text, const std::string &filename) {
  auto m = std::make_shared<Module>();
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  // One context per module; no thread pool per context.
  m->context = std::make_unique<mlir::MLIRContext>(registry,
                                                   mlir::MLIRContext::Threading::DISABLED);
  m->filename = filename;
  mlir::MLIRContext *ctx = m->context.get();

  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, filename),
                               llvm::SMLoc());
  std::string diagnostics;
  llvm::raw_string_ostream diagStream(diagnostics);
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, ctx, diagStream);

  mlir::Block block;
  mlir::AsmParserState state;
  mlir::ParserConfig config(ctx, /*verifyAfterParse=*/true);
  if (mlir::failed(mlir::parseAsmSourceFile(sourceMgr, &block, config, &state)))
    throw CompileError(diagnostics.empty() ? "cannot parse the module" : diagnostics);
  // The names of the entry blocks' arguments, as written (without the '%').
  for (mlir::Operation &op : block) {
    auto collect = [&](mlir::func::FuncOp f) {
      std::vector<std::string> names;
      if (!f.getBody().empty())
        if (const auto *def = state.getBlockDef(&f.getBody().front()))
          for (const auto &arg : def->arguments) {
            llvm::StringRef name(arg.loc.Start.getPointer(),
                                 arg.loc.End.getPointer() - arg.loc.Start.getPointer());
            names.push_back(name.ltrim('%').str());
          }
      m->argNames[f.getSymName().str()] = names;
    };
    if (auto f = llvm::dyn_cast<mlir::func::FuncOp>(op))
      collect(f);
    else if (auto inner = llvm::dyn_cast<mlir::ModuleOp>(op))
      for (auto f : inner.getOps<mlir::func::FuncOp>())
        collect(f);
  }
  auto fileLoc = mlir::FileLineColLoc::get(ctx, filename, 0, 0);
  m->module = mlir::detail::constructContainerOpForParserIfNecessary<mlir::ModuleOp>(
      &block, ctx, fileLoc);
  if (!m->module || mlir::failed(mlir::verify(*m->module)))
    throw CompileError(diagnostics.empty() ? "the module does not verify" : diagnostics);
  return m;
}

//===----------------------------------------------------------------------===//
// Argument checks (no conversion, ever)
//===----------------------------------------------------------------------===//

const char *numpyName(DType t) {
  switch (t) {
  case DType::F32:
    return "float32";
  case DType::I32:
    return "int32";
  case DType::I64:
    return "int64";
  // Low-precision weights travel as their raw storage: numpy has no
  // bfloat16, so bf16 is the uint16 bit patterns (moec.quantize(w, "bf16").data).
  case DType::BF16:
    return "uint16";
  case DType::F16:
    return "float16";
  case DType::I8:
    return "int8";
  }
  return "?";
}

py::dtype numpyDtype(DType t) {
  switch (t) {
  case DType::F32:
    return py::dtype::of<float>();
  case DType::I32:
    return py::dtype::of<int32_t>();
  case DType::I64:
    return py::dtype::of<int64_t>();
  case DType::BF16:
    return py::dtype::of<uint16_t>();
  case DType::F16:
    return py::dtype("float16");
  case DType::I8:
    return py::dtype::of<int8_t>();
  }
  throw std::logic_error("bad dtype");
}

/// Whether an array of dtype `got` holds elements of `want` as the compiled
/// code reads them: the same dtype, or uint8 for i8 (quantized bytes are
/// often handled as uint8; the bits are read as int8).
bool dtypeMatches(const py::dtype &got, DType want) {
  return got.equal(numpyDtype(want)) ||
         (want == DType::I8 && got.equal(py::dtype::of<uint8_t>()));
}

/// How to get an array of `t` from a float32 one, for error messages.
std::string conversionHint(DType t) {
  switch (t) {
  case DType::BF16:
    return "bf16 is passed as its uint16 bit patterns: use moec.quantize(w, \"bf16\").data";
  case DType::F16:
    return "use .astype(numpy.float16) or moec.quantize(w, \"f16\").data";
  case DType::I8:
    return "int8 or uint8 bytes, e.g. moec.quantize(w, FORMAT).data";
  default:
    return std::string("use .astype(numpy.") + numpyName(t) + ")";
  }
}

std::string label(const char *kind, size_t i, const std::string &name) {
  std::string s = std::string(kind) + " #" + std::to_string(i);
  if (!name.empty())
    s += " ('" + name + "')";
  return s;
}

std::string describeShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t d = 0; d < shape.size(); ++d)
    s += (d ? ", " : "") + (shape[d] < 0 ? std::string("T") : std::to_string(shape[d]));
  return s + "]";
}

std::string describeShape(const py::array &a) {
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return describeShape(shape);
}

/// Checks that `obj` is a numpy array matching `sig` (dtype, rank, static
/// dims, C-contiguous, aligned; writeable when `output`), and that its dynamic
/// dims agree with `tokens` (set by the first array with one). Returns it.
py::array checkArray(const py::handle &obj, const moe::TensorSignature &sig,
                     const std::string &what, int64_t &tokens, bool output) {
  std::string expected = "a C-contiguous " + std::string(numpyName(sig.dtype)) +
                         " array of shape " + describeShape(sig.shape);
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(what + ": expected " + expected + ", got an object of type '" +
                         std::string(py::str(obj.get_type().attr("__name__"))) + "'");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!dtypeMatches(a.dtype(), sig.dtype))
    throw py::type_error(what + ": expected dtype " + numpyName(sig.dtype) +
                         (sig.dtype == DType::BF16 || sig.dtype == DType::F16 ||
                                  sig.dtype == DType::I8
                              ? std::string(" (") + moe::dtypeName(sig.dtype) + ")"
                              : std::string()) +
                         ", got " +
                         std::string(py::str(a.dtype())) + " (arrays are never converted; " +
                         conversionHint(sig.dtype) + ")");
  bool shapeOk = size_t(a.ndim()) == sig.shape.size();
  for (size_t d = 0; shapeOk && d < sig.shape.size(); ++d) {
    int64_t got = a.shape(d);
    if (sig.shape[d] >= 0)
      shapeOk = got == sig.shape[d];
    else if (tokens >= 0 && got != tokens)
      throw py::value_error(what + ": expected shape " + describeShape(sig.shape) +
                            " with T = " + std::to_string(tokens) +
                            " (every T dimension must agree), got " + describeShape(a));
  }
  if (!shapeOk)
    throw py::value_error(what + ": expected shape " + describeShape(sig.shape) + ", got " +
                          describeShape(a));
  for (size_t d = 0; d < sig.shape.size(); ++d)
    if (sig.shape[d] < 0 && tokens < 0)
      tokens = a.shape(d);
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(what + ": expected " + expected +
                          ", got a non-contiguous array (strides " + [&] {
                            std::string s = "(";
                            for (py::ssize_t d = 0; d < a.ndim(); ++d)
                              s += (d ? ", " : "") + std::to_string(a.strides(d));
                            return s + ")";
                          }() + "); pass numpy.ascontiguousarray(...)");
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(what + ": the array's data is not aligned for " +
                          numpyName(sig.dtype) + "; pass a copy");
  if (output && !a.writeable())
    throw py::value_error(what + ": the output array is read-only");
  return a;
}

std::vector<int64_t> shapeOf(const py::array &a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

std::vector<moe::TensorSignature> signaturesOf(mlir::TypeRange types, const char *kind) {
  std::vector<moe::TensorSignature> sigs;
  for (auto [i, t] : llvm::enumerate(types)) {
    moe::TensorSignature sig;
    moe::Status s = moe::signatureOf(t, sig, std::string(kind) + " #" + std::to_string(i));
    if (!s.ok())
      throw CompileError(s.error);
    sigs.push_back(sig);
  }
  return sigs;
}

py::tuple signatureTuple(const moe::TensorSignature &sig) {
  py::list shape;
  for (int64_t d : sig.shape)
    shape.append(d < 0 ? py::object(py::none()) : py::object(py::int_(d)));
  return py::make_tuple(py::tuple(shape), numpyName(sig.dtype));
}

//===----------------------------------------------------------------------===//
// Compiled functions
//===----------------------------------------------------------------------===//

/// The buffers of one call, checked against the signature: the argument
/// arrays (kept alive) and the result arrays (out= or new ones).
struct CallBuffers {
  std::vector<py::array> args, results;
  std::vector<const void *> argData;
  std::vector<void *> resultData;
  std::vector<std::vector<int64_t>> argShapes, resultShapes;

  /// The runtime's descriptors of the buffers (valid while this lives).
  std::vector<moe_tensor> argTensors() const {
    std::vector<moe_tensor> t;
    for (size_t i = 0; i < args.size(); ++i)
      t.push_back({const_cast<void *>(argData[i]), moe_dtype(dtypes[i]),
                   int32_t(argShapes[i].size()), argShapes[i].data()});
    return t;
  }
  std::vector<moe_tensor> resultTensors() const {
    std::vector<moe_tensor> t;
    for (size_t i = 0; i < results.size(); ++i)
      t.push_back({resultData[i], moe_dtype(dtypes[args.size() + i]),
                   int32_t(resultShapes[i].size()), resultShapes[i].data()});
    return t;
  }
  std::vector<DType> dtypes; // arguments, then results
};

/// Checks `arrays` (and `out`, when given) against the signature of `entry`
/// and allocates the results otherwise. Raises TypeError / ValueError naming
/// the argument; nothing is written.
CallBuffers prepareCall(
    const std::string &entry, const std::vector<std::string> &names,
    const std::vector<moe::TensorSignature> &argSigs,
    const std::vector<moe::TensorSignature> &resSigs, const py::sequence &arrays,
    const py::object &out,
    const std::function<Status(const std::vector<std::vector<int64_t>> &,
                               std::vector<std::vector<int64_t>> &)> &resultShapesFor) {
  auto nameOf = [&](size_t i) { return i < names.size() ? names[i] : std::string(); };
  if (size_t(py::len(arrays)) != argSigs.size()) {
    std::string list;
    for (size_t i = 0; i < argSigs.size(); ++i)
      list += (i ? ", " : "") + (nameOf(i).empty() ? "#" + std::to_string(i) : nameOf(i)) +
              ": " + argSigs[i].describe();
    throw py::type_error("'" + entry + "' takes " + std::to_string(argSigs.size()) +
                         " arrays (" + list + "), got " + std::to_string(py::len(arrays)));
  }
  CallBuffers call;
  int64_t tokens = -1;
  for (size_t i = 0; i < argSigs.size(); ++i) {
    py::array a = checkArray(arrays[i], argSigs[i], label("argument", i, nameOf(i)), tokens,
                             false);
    call.argData.push_back(a.data());
    call.argShapes.push_back(shapeOf(a));
    call.args.push_back(a);
    call.dtypes.push_back(argSigs[i].dtype);
  }
  Status s = resultShapesFor(call.argShapes, call.resultShapes);
  if (!s.ok())
    throw py::value_error(s.error);

  if (!out.is_none()) {
    py::sequence outs = py::reinterpret_borrow<py::sequence>(out);
    if (size_t(py::len(outs)) != resSigs.size())
      throw py::type_error("out= must hold " + std::to_string(resSigs.size()) +
                           " arrays, got " + std::to_string(py::len(outs)));
    for (size_t i = 0; i < resSigs.size(); ++i) {
      moe::TensorSignature sig = resSigs[i];
      sig.shape = call.resultShapes[i];
      int64_t unused = -1;
      call.results.push_back(checkArray(outs[i], sig, label("out", i, ""), unused, true));
      // The compiled code reads the inputs while it writes the outputs.
      auto begin = [](const py::array &a) { return static_cast<const char *>(a.data()); };
      auto overlaps = [&](const py::array &a, const py::array &b) {
        return a.nbytes() > 0 && b.nbytes() > 0 && begin(a) < begin(b) + b.nbytes() &&
               begin(b) < begin(a) + a.nbytes();
      };
      for (size_t j = 0; j < call.args.size(); ++j)
        if (overlaps(call.results.back(), call.args[j]))
          throw py::value_error(label("out", i, "") + " overlaps " +
                                label("argument", j, nameOf(j)) +
                                ": outputs cannot alias inputs");
      for (size_t j = 0; j + 1 < call.results.size(); ++j)
        if (overlaps(call.results.back(), call.results[j]))
          throw py::value_error(label("out", i, "") + " overlaps out #" + std::to_string(j));
    }
  } else {
    for (size_t i = 0; i < resSigs.size(); ++i)
      call.results.push_back(py::array(numpyDtype(resSigs[i].dtype), call.resultShapes[i]));
  }
  for (size_t i = 0; i < resSigs.size(); ++i)
    call.dtypes.push_back(resSigs[i].dtype);
  for (py::array &r : call.results)
    call.resultData.push_back(r.mutable_data());
  return call;
}

py::list resultList(const CallBuffers &call) {
  py::list list;
  for (const py::array &r : call.results)
    list.append(r);
  return list;
}

struct Prepared;

struct Compiled : std::enable_shared_from_this<Compiled> {
  std::shared_ptr<Module> source; // keeps the context alive; destroyed last
  std::unique_ptr<moe::CompiledFunction> fn;
  std::string entry;
  std::vector<std::string> names;
  std::string pipelineOptions;
  std::mutex mutex; // one call at a time per compiled function
  // The prepared form, compiled by the first prepare() call.
  std::unique_ptr<moe::PreparedFunction> preparedFn;
  std::mutex prepareMutex;

  ~Compiled() {
    preparedFn.reset();
    fn.reset();
  }

  std::shared_ptr<Prepared> prepare(const py::sequence &weights);

  py::list run(const py::sequence &arrays, const py::object &out) {
    CallBuffers call = prepareCall(
        entry, names, fn->argumentSignatures(), fn->resultSignatures(), arrays, out,
        [&](const std::vector<std::vector<int64_t>> &argShapes,
            std::vector<std::vector<int64_t>> &resultShapes) {
          return fn->resultShapesFor(argShapes, resultShapes);
        });
    Status s;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex);
      s = fn->runBuffers(call.argData, call.argShapes, call.resultData, call.resultShapes);
    }
    if (!s.ok())
      throw RunError(s.error);
    return resultList(call);
  }
};

/// A layer whose weights were packed once (moe_prepared): called with the
/// activations only. Calls may run concurrently (the GIL is released and
/// the prepared object is read-only).
struct Prepared {
  std::shared_ptr<Compiled> compiled; // keeps the JIT code alive
  moe_prepared *prepared = nullptr;
  std::vector<std::string> names;     // the activations'
  std::vector<moe::TensorSignature> argSigs;

  ~Prepared() { moe_prepared_free(prepared); }

  py::list run(const py::sequence &arrays, const py::object &out) {
    const moe::PreparedFunction &pf = *compiled->preparedFn;
    const auto &resSigs = pf.runFunction().resultSignatures();
    CallBuffers call = prepareCall(
        compiled->entry, names, argSigs, resSigs, arrays, out,
        [&](const std::vector<std::vector<int64_t>> &argShapes,
            std::vector<std::vector<int64_t>> &resultShapes) {
          resultShapes = moe::resultShapesFor(argSigs, resSigs, argShapes);
          return Status::success();
        });
    std::vector<moe_tensor> in = call.argTensors(), res = call.resultTensors();
    Status s;
    {
      py::gil_scoped_release release;
      s = pf.runTensors(prepared, in.data(), in.size(), res.data(), res.size());
    }
    if (!s.ok())
      throw RunError(s.error);
    return resultList(call);
  }
};

std::shared_ptr<Prepared> Compiled::prepare(const py::sequence &weights) {
  Status s;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(prepareMutex);
    if (!preparedFn) {
      auto options = std::make_unique<moe::CpuPipelineOptions>();
      std::string errors;
      llvm::raw_string_ostream errs(errors);
      if (mlir::failed(options->parseFromString(pipelineOptions, errs)))
        s = Status::failure(errors);
      else if (options->gpuHost)
        s = Status::failure("prepare() needs a function compiled for target='cpu'");
      else {
        std::lock_guard<std::mutex> sourceLock(source->mutex);
        s = moe::PreparedFunction::compile(*source->module, entry, *options, /*keepStages=*/false,
                                           preparedFn);
      }
    }
  }
  if (!s.ok())
    throw CompileError(s.error);
  auto p = std::make_shared<Prepared>();
  p->compiled = shared_from_this();
  std::vector<std::string> weightNames;
  std::vector<moe::TensorSignature> weightSigs;
  for (size_t i : preparedFn->weightIndices()) {
    weightNames.push_back(i < names.size() ? names[i] : "");
    weightSigs.push_back(fn->argumentSignatures()[i]);
  }
  for (size_t i : preparedFn->activationIndices()) {
    p->names.push_back(i < names.size() ? names[i] : "");
    p->argSigs.push_back(fn->argumentSignatures()[i]);
  }
  CallBuffers call = prepareCall(entry + " weights", weightNames, weightSigs, {}, weights,
                                 py::none(),
                                 [](const std::vector<std::vector<int64_t>> &,
                                    std::vector<std::vector<int64_t>> &r) {
                                   r.clear();
                                   return Status::success();
                                 });
  std::vector<moe_tensor> in = call.argTensors();
  {
    py::gil_scoped_release release;
    s = preparedFn->prepareTensors(in.data(), in.size(), &p->prepared);
  }
  if (!s.ok())
    throw RunError(s.error);
  return p;
}

/// Pipeline options from the same text the tools take (--pipeline-options,
/// moe-opt --moe-to-cpu="..."), so Python has no defaults of its own.
template <typename Options>
std::unique_ptr<Options> parsePipelineOptions(const std::string &text, const char *pipeline) {
  std::string parseErrors;
  llvm::raw_string_ostream errs(parseErrors);
  auto options = std::make_unique<Options>();
  if (mlir::failed(options->parseFromString(text, errs)))
    throw py::value_error("pipeline_options '" + text + "' are not options of the " + pipeline +
                          " pipeline (see moe-opt --help): " + parseErrors);
  return options;
}

std::shared_ptr<Compiled> compile(std::shared_ptr<Module> source, const std::string &entry,
                                  const std::string &pipelineOptions) {
  auto func = source->lookup(entry);
  std::unique_ptr<moe::CpuPipelineOptions> parsed =
      parsePipelineOptions<moe::CpuPipelineOptions>(pipelineOptions, "CPU");
  const moe::CpuPipelineOptions &options = *parsed;
  auto c = std::make_shared<Compiled>();
  c->source = source;
  c->entry = entry;
  c->names = source->namesOf(func);
  c->pipelineOptions = pipelineOptions;
  Status s;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(source->mutex);
    s = moe::CompiledFunction::compile(*source->module, entry, options, /*keepStages=*/true,
                                       c->fn);
  }
  if (!s.ok())
    throw CompileError(s.error);
  return c;
}

//===----------------------------------------------------------------------===//
// PTX (moe::compileToPtx) run through the CUDA runtime
//===----------------------------------------------------------------------===//

[[noreturn]] void raiseOSError(const std::string &message) {
  PyErr_SetString(PyExc_OSError, message.c_str());
  throw py::error_already_set();
}

struct CompiledPtx {
  std::shared_ptr<Module> source;
  moe::PtxLayer layer;
  std::vector<std::string> names;
  std::vector<moe::TensorSignature> argSigs, resSigs;
  /// Opened on the first call (the driver loads the PTX then) and reused:
  /// it keeps its device buffers between calls.
  moe_gpu_layer *gpu = nullptr;
  std::mutex mutex; // a moe_gpu_layer runs one call at a time

  ~CompiledPtx() { moe_gpu_layer_close(gpu); }

  /// Writes the PTX and the launch description; returns their paths.
  std::pair<std::string, std::string> write(const std::string &ptxPath) const {
    Status s = moe::writePtxFiles(layer, ptxPath);
    if (!s.ok())
      raiseOSError(s.error);
    return {ptxPath, moe::launchPathFor(ptxPath)};
  }

  /// Opens the layer on the device (called with `mutex` held, without the
  /// GIL). moe_gpu_layer_open reads files, so the PTX and the launch text go
  /// through a private temporary directory, removed once it has read them.
  Status open() {
    if (gpu)
      return Status::success();
    if (!moe_cuda_available())
      return Status::failure("cannot run '" + layer.entry + "' on the GPU: " +
                             moe_last_error());
    llvm::SmallString<128> dir;
    if (std::error_code ec = llvm::sys::fs::createUniqueDirectory("moec-ptx", dir))
      return Status::failure("cannot create a temporary directory for the PTX: " +
                             ec.message());
    llvm::SmallString<128> ptxPath(dir);
    llvm::sys::path::append(ptxPath, layer.entry + ".ptx");
    std::string launchPath = moe::launchPathFor(ptxPath);
    Status s = moe::writePtxFiles(layer, std::string(ptxPath));
    if (s.ok() && moe_gpu_layer_open(ptxPath.c_str(), launchPath.c_str(), &gpu) != MOE_OK)
      s = Status::failure("cannot run '" + layer.entry + "' on the GPU: " + moe_last_error());
    llvm::sys::fs::remove(ptxPath);
    llvm::sys::fs::remove(launchPath);
    llvm::sys::fs::remove(dir);
    return s;
  }

  py::list run(const py::sequence &arrays, const py::object &out) {
    CallBuffers call = prepareCall(
        layer.entry, names, argSigs, resSigs, arrays, out,
        [&](const std::vector<std::vector<int64_t>> &argShapes,
            std::vector<std::vector<int64_t>> &resultShapes) {
          resultShapes = moe::resultShapesFor(argSigs, resSigs, argShapes);
          return Status::success();
        });
    Status s;
    int status = MOE_OK;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex);
      s = open();
      if (s.ok()) {
        std::vector<moe_tensor> in = call.argTensors(), outs = call.resultTensors();
        status = moe_gpu_layer_run(gpu, in.data(), int(in.size()), outs.data(),
                                   int(outs.size()));
        if (status != MOE_OK)
          s = Status::failure(moe_last_error());
      }
    }
    if (!s.ok()) {
      // Bad ids or scores found by the kernels are the layer's run-time
      // errors, as on the CPU; the rest is about the device.
      if (status == MOE_OK || status == MOE_ERR_DEVICE || status == MOE_ERR_LOAD)
        throw DeviceError(s.error);
      throw RunError(s.error);
    }
    return resultList(call);
  }
};

std::shared_ptr<CompiledPtx> compilePtx(std::shared_ptr<Module> source, const std::string &entry,
                                        const std::string &pipelineOptions) {
  std::unique_ptr<moe::GpuPipelineOptions> parsed =
      parsePipelineOptions<moe::GpuPipelineOptions>(pipelineOptions, "GPU");
  const std::string chip = parsed->chip;
  if (!moe::isNvidiaChip(chip))
    throw py::value_error("chip must name an NVIDIA architecture like sm_90 (sm_<digits>), got '" +
                          chip + "'");
  auto func = source->lookup(entry);
  auto c = std::make_shared<CompiledPtx>();
  c->source = source;
  c->names = source->namesOf(func);
  c->argSigs = signaturesOf(func.getArgumentTypes(), "argument");
  c->resSigs = signaturesOf(func.getResultTypes(), "result");
  moe::PtxOptions options;
  options.chip = chip;
  options.vectorWidth = parsed->vectorWidth;
  options.blockSize = parsed->blockSize;
  Status s;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(source->mutex);
    s = moe::compileToPtx(*source->module, entry, options, c->layer);
  }
  if (!s.ok())
    throw CompileError(s.error);
  return c;
}

//===----------------------------------------------------------------------===//
// The reference interpreter
//===----------------------------------------------------------------------===//

py::list reference(const std::shared_ptr<Module> &source, const std::string &entry,
                   const py::sequence &arrays) {
  auto func = source->lookup(entry);
  std::vector<moe::TensorSignature> argSigs =
      signaturesOf(func.getArgumentTypes(), "argument");
  std::vector<std::string> names = source->namesOf(func);
  if (size_t(py::len(arrays)) != argSigs.size())
    throw py::type_error("'" + entry + "' takes " + std::to_string(argSigs.size()) +
                         " arrays, got " + std::to_string(py::len(arrays)));
  int64_t tokens = -1;
  std::vector<Tensor> args;
  for (size_t i = 0; i < argSigs.size(); ++i) {
    py::array a = checkArray(arrays[i], argSigs[i], label("argument", i, names[i]), tokens,
                             false);
    std::vector<int64_t> shape = shapeOf(a);
    size_t n = size_t(a.size());
    if (argSigs[i].dtype == DType::F32) {
      const float *p = static_cast<const float *>(a.data());
      args.push_back(Tensor::f32(shape, std::vector<float>(p, p + n)));
    } else {
      // Integers, and the bit patterns / bytes of bf16, f16 and i8 weights,
      // widened as Tensor holds them.
      Tensor t = Tensor::ints(argSigs[i].dtype, shape);
      for (size_t k = 0; k < n; ++k)
        t.i[k] = moe::loadIntElement(argSigs[i].dtype, a.data(), int64_t(k));
      args.push_back(std::move(t));
    }
  }
  std::vector<Tensor> results;
  Status s;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(source->mutex);
    s = moe::ref::interpret(func, args, results);
  }
  if (!s.ok())
    throw RunError(s.error);
  py::list list;
  for (const Tensor &t : results) {
    py::array a(numpyDtype(t.dtype), t.shape);
    size_t n = size_t(t.numel());
    if (t.dtype == DType::F32) {
      std::copy(t.f.begin(), t.f.begin() + n, static_cast<float *>(a.mutable_data()));
    } else if (t.dtype == DType::I32) {
      int32_t *p = static_cast<int32_t *>(a.mutable_data());
      for (size_t k = 0; k < n; ++k)
        p[k] = int32_t(t.i[k]);
    } else if (t.dtype != DType::I64) {
      throw RunError(std::string("the reference interpreter returned a ") +
                     moe::dtypeName(t.dtype) + " result, which moec.reference cannot convert");
    } else {
      std::copy(t.i.begin(), t.i.begin() + n, static_cast<int64_t *>(a.mutable_data()));
    }
    list.append(a);
  }
  return list;
}

} // namespace

PYBIND11_MODULE(_moec, m) {
  m.doc() = "C++ core of the moec package (see moec/__init__.py for the API).";

  // Compiled code calls the runtime (libmoe_runtime.so: scratch allocation,
  // _mlir_memref_to_llvm_alloc/free), and the JIT resolves those names in
  // the process's global symbol scope. Python loads extensions and their
  // dependencies with RTLD_LOCAL, so promote the runtime library (only it)
  // to the global scope; the handle is kept for the life of the process.
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&moe_status_message), &info) && info.dli_fname)
    if (!dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
      throw std::runtime_error(std::string("cannot make the moe runtime's symbols global: ") +
                               dlerror());

  py::register_exception<CompileError>(m, "CompileError", PyExc_Exception);
  auto &runError = py::register_exception<RunError>(m, "RuntimeError", PyExc_RuntimeError);
  py::register_exception<DeviceError>(m, "DeviceError", runError.ptr());
  m.attr("DeviceError").attr("__doc__") =
      "The GPU cannot run the layer (no CUDA driver or device, a device of another "
      "architecture, a failed driver call); the message says which. A moec.RuntimeError.";
  m.attr("CompileError").attr("__doc__") =
      "The module does not parse, verify or compile; the message holds the "
      "compiler's diagnostics (file:line:col: ...).";
  m.attr("RuntimeError").attr("__doc__") =
      "The compiled code or the reference interpreter failed at run time (bad "
      "expert or path id, non-finite router logit, ...); no output was written.";

  py::class_<Module, std::shared_ptr<Module>>(m, "Module",
                                              "A parsed and verified MLIR module.")
      .def("__str__", &Module::print)
      .def_readonly("filename", &Module::filename)
      .def("functions",
           [](const Module &self) {
             std::vector<std::string> names;
             for (auto f : self.module->getOps<mlir::func::FuncOp>())
               names.push_back(f.getSymName().str());
             return names;
           })
      .def("argument_names",
           [](const Module &self, const std::string &entry) {
             return self.namesOf(self.lookup(entry));
           })
      .def("signature", [](const Module &self, const std::string &entry) {
        auto func = self.lookup(entry);
        py::list args, results;
        for (const auto &s : signaturesOf(func.getArgumentTypes(), "argument"))
          args.append(signatureTuple(s));
        for (const auto &s : signaturesOf(func.getResultTypes(), "result"))
          results.append(signatureTuple(s));
        return py::make_tuple(args, results);
      });

  m.def("parse", &parse, py::arg("text"), py::arg("filename") = "<string>",
        "Parses and verifies MLIR text; raises CompileError with the diagnostics.");

  py::class_<Compiled, std::shared_ptr<Compiled>>(m, "CompiledFunction")
      .def_readonly("entry", &Compiled::entry)
      .def_readonly("argument_names", &Compiled::names)
      .def_property_readonly("stages",
                             [](const Compiled &self) {
                               py::list list;
                               for (const moe::Stage &s : self.fn->stages())
                                 list.append(py::make_tuple(s.name, s.text));
                               return list;
                             })
      .def_property_readonly("compile_seconds",
                             [](const Compiled &self) { return self.fn->compileSeconds(); })
      .def_property_readonly("signature",
                             [](const Compiled &self) {
                               py::list args, results;
                               for (const auto &s : self.fn->argumentSignatures())
                                 args.append(signatureTuple(s));
                               for (const auto &s : self.fn->resultSignatures())
                                 results.append(signatureTuple(s));
                               return py::make_tuple(args, results);
                             })
      .def("prepare", &Compiled::prepare, py::arg("weights"),
           "Packs the weights once; returns a Prepared layer called with the activations")
      .def("run", &Compiled::run, py::arg("arrays"), py::arg("out") = py::none(),
           "Runs on numpy arrays (no copies); returns the list of results.");

  py::class_<Prepared, std::shared_ptr<Prepared>>(m, "Prepared")
      .def_readonly("argument_names", &Prepared::names)
      .def_property_readonly("packed_bytes",
                             [](const Prepared &self) { return moe_prepared_bytes(self.prepared); })
      .def_property_readonly("prepare_seconds",
                             [](const Prepared &self) { return moe_prepared_seconds(self.prepared); })
      .def_property_readonly("signature",
                             [](const Prepared &self) {
                               py::list args, results;
                               for (const auto &sig : self.argSigs)
                                 args.append(signatureTuple(sig));
                               for (const auto &sig :
                                    self.compiled->preparedFn->runFunction().resultSignatures())
                                 results.append(signatureTuple(sig));
                               return py::make_tuple(args, results);
                             })
      .def("run", &Prepared::run, py::arg("arrays"), py::arg("out") = py::none());
  m.def("compile", &compile, py::arg("module"), py::arg("entry"), py::arg("pipeline_options"),
        "Compiles `entry` for the host CPU with the CPU pipeline's options text (as "
        "moe-opt --moe-to-cpu=\"...\"; gpu-host=true: through the GPU's block/thread "
        "mapping); raises CompileError on failure, ValueError for bad options.");

  py::class_<CompiledPtx, std::shared_ptr<CompiledPtx>>(m, "CompiledPtx")
      .def_property_readonly("entry", [](const CompiledPtx &self) { return self.layer.entry; })
      .def_property_readonly("chip", [](const CompiledPtx &self) { return self.layer.chip; })
      .def_property_readonly("ptx", [](const CompiledPtx &self) { return self.layer.ptx; })
      .def_property_readonly("launch",
                             [](const CompiledPtx &self) { return self.layer.launch; })
      .def_property_readonly("kernels",
                             [](const CompiledPtx &self) { return self.layer.kernels; })
      .def_readonly("argument_names", &CompiledPtx::names)
      .def_property_readonly("stages",
                             [](const CompiledPtx &self) {
                               py::list list;
                               for (const moe::Stage &s : self.layer.stages)
                                 list.append(py::make_tuple(s.name, s.text));
                               return list;
                             })
      .def_property_readonly("compile_seconds",
                             [](const CompiledPtx &self) { return self.layer.seconds; })
      .def_property_readonly("signature",
                             [](const CompiledPtx &self) {
                               py::list args, results;
                               for (const auto &s : self.argSigs)
                                 args.append(signatureTuple(s));
                               for (const auto &s : self.resSigs)
                                 results.append(signatureTuple(s));
                               return py::make_tuple(args, results);
                             })
      .def("write", &CompiledPtx::write, py::arg("ptx_path"),
           "Writes the PTX to ptx_path and the launch description beside it "
           "(x.ptx -> x.launch); returns both paths.")
      .def("run", &CompiledPtx::run, py::arg("arrays"), py::arg("out") = py::none(),
           "Runs on the GPU through the CUDA runtime; returns the list of results.");

  m.def("compile_ptx", &compilePtx, py::arg("module"), py::arg("entry"),
        py::arg("pipeline_options"),
        "Compiles `entry` to PTX + launch description with the GPU pipeline's options text "
        "(as moe-opt --moe-to-ptx=\"...\"); raises CompileError on failure, ValueError "
        "for bad options.");
  m.def("launch_path_for", [](const std::string &ptxPath) { return moe::launchPathFor(ptxPath); },
        py::arg("ptx_path"), "Where write() puts the launch description of ptx_path.");
  m.def(
      "cuda_available",
      [] {
        bool ok = moe_cuda_available();
        return py::make_tuple(ok, ok ? std::string() : std::string(moe_last_error()));
      },
      "(True, '') when the CUDA driver loads and has a device, else (False, why).");
  m.def(
      "last_stats",
      [] {
        // The runtime's copy for this thread: the call just made from Python.
        py::list layers;
        for (int i = 0, n = moe_last_stats_count(); i < n; ++i) {
          moe_layer_stats s;
          if (moe_last_stats(i, &s) != MOE_OK)
            throw std::runtime_error(moe_last_error());
          auto ints = [](const int64_t *v, int64_t count) {
            py::array_t<int64_t> a(count);
            std::copy(v, v + count, a.mutable_data());
            return a;
          };
          py::dict d;
          d["layer"] = s.layer;
          d["line"] = s.line;
          d["num_experts"] = s.num_experts;
          d["k"] = s.k;
          d["tokens"] = s.tokens;
          d["tokens_routed"] = s.tokens_routed;
          d["tokens_skipped"] = s.tokens_skipped;
          d["routed_pairs"] = s.routed_pairs;
          d["dropped_pairs"] = s.dropped_pairs;
          d["tokens_per_expert"] = ints(s.tokens_per_expert, s.num_experts);
          d["slots_per_token"] = ints(s.slots_per_token, int64_t(s.k) + 1);
          d["expert_flops"] = ints(s.expert_flops, s.num_experts);
          d["shared_flops"] = s.shared_flops;
          d["flops"] = s.flops;
          d["flops_full"] = s.flops_full;
          d["flops_saved_fraction"] = s.flops_saved_fraction;
          layers.append(d);
        }
        return layers;
      },
      "The routing statistics the last compiled call on this thread recorded (one dict per "
      "moe.layer; empty without the stats pipeline option).");
  m.def("reference", &reference, py::arg("module"), py::arg("entry"), py::arg("arrays"),
        "Runs `entry` with the reference interpreter; returns the list of results.");
  bindQuantization(m);
  bindDlpack(m);
}
