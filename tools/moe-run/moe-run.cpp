//===- moe-run.cpp - run a moe function on .npy or generated inputs --------===//
//
//   moe-run layer.mlir [--entry=NAME] [--input=random:SEED | --input=a.npy ...]
//           [--mode=reference|compiled|both] [--target=cpu|gpu-host] [--tokens=T] [--repeat=N]
//           [--rtol=1e-4] [--output-dir=DIR] [--print-values]
//
// The entry defaults to the module's only function, else to `main`
// (tools/common/EntryFunction.h).
//
// --mode=both runs the compiled code (CPU pipeline + JIT) and the reference
// interpreter on the same inputs, prints the max absolute error and the
// max relative error (max |compiled - reference| / max |reference| per
// result), and exits 1 when the relative error is above --rtol.
//
// Inputs: one `--input` per function argument (each `random:SEED` or a .npy
// path), or a single `random:SEED` for all of them (argument i gets seed
// SEED + i). Random floats are uniform in [-a, a), a = sqrt(3 / last dim)
// for rank >= 2 and 1 otherwise; random integers are
// uniform in the argument's `moe.random_range = array<i64: lo, hi>` (half
// open), else [0, 100). Dynamic dimensions (the token count T) of generated
// inputs take --tokens, 64 when it is not given (the size the README's
// examples use: every example runs without choosing a T first); .npy inputs
// bring their own T. --output-dir is created if it does not exist.
//
//===----------------------------------------------------------------------===//

#include "common/EntryFunction.h"
#ifdef MOE_HAVE_MPI
#include "ShardedRun.h"
#endif
#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Support/Npy.h"
#include "moe/Support/Quant.h"
#include "moe/Support/Random.h"
#include "moe/IR/MoeOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using ::moe::DType;
using ::moe::Status;
using ::moe::Tensor;

// Every option is in this category, so --help lists the tool's own options
// and not the hundreds of LLVM backend flags linked in with the JIT.
static llvm::cl::OptionCategory runCategory("moe-run options");

static llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                            llvm::cl::desc("<input .mlir>"),
                                            llvm::cl::init("-"), llvm::cl::cat(runCategory));
static llvm::cl::opt<std::string>
    entry("entry",
          llvm::cl::desc("function to run (default: the module's only function, else 'main')"),
          llvm::cl::init(""), llvm::cl::cat(runCategory));
static llvm::cl::list<std::string>
    inputs("input", llvm::cl::desc("random:SEED or a .npy path, per argument"),
           llvm::cl::cat(runCategory));
static llvm::cl::opt<std::string>
    mode("mode", llvm::cl::desc("reference | compiled | both"),
         llvm::cl::init("reference"), llvm::cl::cat(runCategory));
static llvm::cl::opt<std::string>
    outputDir("output-dir", llvm::cl::desc("write result<i>.npy here (created if missing)"),
              llvm::cl::init(""), llvm::cl::cat(runCategory));
static llvm::cl::opt<std::string>
    target("target",
           llvm::cl::desc("cpu | gpu-host: compile for the CPU, or through the GPU's "
                          "block/thread-mapped kernels executed on the host"),
           llvm::cl::init("cpu"), llvm::cl::cat(runCategory));
static llvm::cl::opt<bool> printValues("print-values",
                                       llvm::cl::desc("print every value"),
                                       llvm::cl::init(false), llvm::cl::cat(runCategory));
static llvm::cl::opt<bool> unprepared(
    "unprepared",
    llvm::cl::desc("pass the weights with every call instead of preparing them once "
                   "(the default on --target=cpu: <entry>_prepare packs them, timed runs "
                   "take the activations only)"),
    llvm::cl::init(false), llvm::cl::cat(runCategory));
static llvm::cl::opt<double> rtol("rtol",
                                  llvm::cl::desc("relative error bound for --mode=both"),
                                  llvm::cl::init(1e-4), llvm::cl::cat(runCategory));
static llvm::cl::opt<unsigned> repeat("repeat",
                                      llvm::cl::desc("timed runs (median reported)"),
                                      llvm::cl::init(1), llvm::cl::cat(runCategory));
/// --tokens when it is not given.
static constexpr int64_t kDefaultTokens = 64;
/// The largest --tokens: T is an int32 grid dimension on the GPU path.
static constexpr int64_t kMaxTokens = 2147483647;
static llvm::cl::opt<int64_t> dynamicSize(
    "tokens",
    llvm::cl::desc("the token count T: the size of every dynamic dimension of a generated "
                   "argument (default 64)"),
    llvm::cl::init(kDefaultTokens), llvm::cl::cat(runCategory));

static llvm::cl::opt<std::string> pipelineOptions(
    "pipeline-options",
    llvm::cl::desc("options of the CPU pipeline, as for --moe-to-cpu (e.g. \"row-tile=3 block-bytes=4096\")"),
    llvm::cl::init(""), llvm::cl::cat(runCategory));

// Spelled --stats on the command line: main() maps it here, because LLVM
// registers its own -stats (pass statistics, which Debian's LLVM compiles
// out) in every tool.
static llvm::cl::opt<bool> printStats(
    "routing-stats",
    llvm::cl::desc("(--stats) compile with routing statistics and print, per moe.layer, what the last "
                   "compiled call routed: tokens per expert, slots per token, dropped pairs, "
                   "skipped tokens, FLOPs saved (docs/routing-stats.md)"),
    llvm::cl::init(false), llvm::cl::cat(runCategory));

// Expert parallelism (ShardedRun.cpp): run under `mpirun -np R`.
static llvm::cl::opt<int64_t> ranks(
    "ranks",
    llvm::cl::desc("expert parallelism: this process is one of R MPI ranks (mpirun -np R); "
                   "each runs its share of the tokens, rank 0 gathers and (--mode=both) checks"),
    llvm::cl::init(0), llvm::cl::cat(runCategory));
static llvm::cl::list<int64_t> rankTokens(
    "rank-tokens", llvm::cl::CommaSeparated,
    llvm::cl::desc("with --ranks: the tokens of each rank, in rank order (default: even split)"),
    llvm::cl::cat(runCategory));

static int fail(const std::string &msg) {
  llvm::errs() << "moe-run: error: " << msg << "\n";
  return 1;
}

/// Prints what moe_last_stats holds for the last compiled call on this
/// thread, one block per moe.layer.
static void printRoutingStats() {
  int count = moe_last_stats_count();
  llvm::outs() << "routing stats of the last call: " << count << " layer"
               << (count == 1 ? "" : "s") << "\n";
  auto list = [](const int64_t *v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i)
      s += (i ? " " : "") + std::to_string(v[i]);
    return s;
  };
  for (int i = 0; i < count; ++i) {
    moe_layer_stats s;
    if (moe_last_stats(i, &s) != MOE_OK)
      continue;
    llvm::outs() << llvm::formatv("layer {0} (line {1}): E = {2}, K = {3}\n", s.layer, s.line,
                                  s.num_experts, s.k);
    llvm::outs() << llvm::formatv("  tokens {0}, routed {1}, skipped {2}\n", s.tokens,
                                  s.tokens_routed, s.tokens_skipped);
    llvm::outs() << "  pairs routed " << s.routed_pairs << ", dropped "
                 << (s.dropped_pairs < 0 ? std::string("- (no capacity op)")
                                         : std::to_string(s.dropped_pairs))
                 << "\n";
    llvm::outs() << "  tokens per expert: " << list(s.tokens_per_expert, s.num_experts) << "\n";
    llvm::outs() << "  slots per token (tokens with 0.." << s.k
                 << " slots): " << list(s.slots_per_token, s.k + 1) << "\n";
    llvm::outs() << llvm::format("  expert FLOPs %.6g of %.6g: saved fraction %.4f\n", s.flops,
                                 s.flops_full, s.flops_saved_fraction);
  }
}

/// Generates argument `index` of type `type` from `seed`.
/// The format and row length K of the FFN weight (or int8 scales) `use`
/// of an op with weights w1/w3 [.., I, stored(H)], w2 [.., H, stored(I)]
/// and scales [.., rows].
static std::pair<::moe::WeightFormat, int64_t>
ffnWeightOf(OpOperand &use, mlir::moe::WeightFormat format, Value w1, Value w3, Value w2,
            int64_t h, int64_t inter) {
  auto f = ::moe::WeightFormat(int(format));
  if (use.get() == w2)
    return {f, inter};
  if (use.get() == w1 || use.get() == w3)
    return {f, h};
  // Scales: rows = I for w1/w3 (K = H), H for w2 (K = I).
  int64_t rows = cast<ShapedType>(use.get().getType()).getShape().back();
  return {f, rows == inter ? h : inter};
}

/// The format and row length K of an FFN weight (or int8 scales) argument:
/// what the moe.ffn_experts or dense moe.ffn using it says of it.
static std::optional<std::pair<::moe::WeightFormat, int64_t>> bankWeightOf(BlockArgument arg) {
  for (OpOperand &use : arg.getUses()) {
    if (auto dense = dyn_cast<mlir::moe::FfnOp>(use.getOwner())) {
      if (use.get() == dense.getHidden())
        continue;
      return ffnWeightOf(use, dense.getWeightFormat(), dense.getW1(), dense.getW3(),
                         dense.getW2(),
                         cast<ShapedType>(dense.getHidden().getType()).getDimSize(1),
                         cast<ShapedType>(dense.getW1().getType()).getDimSize(0));
    }
    if (auto bank = dyn_cast<mlir::moe::FfnExpertsOp>(use.getOwner()))
      return ffnWeightOf(use, bank.getWeightFormat(), bank.getW1(), bank.getW3(), bank.getW2(),
                         bank.getExperts().getType().getHidden(),
                         cast<ShapedType>(bank.getW1().getType()).getDimSize(1));
  }
  return std::nullopt;
}

/// Random weights stored in their bank's format: quantized random FP32
/// weights, or for int8 random q and row scales (Quant.h).
static Status generateStoredWeight(BlockArgument arg, const std::vector<int64_t> &shape,
                                   uint64_t seed, const std::string &what, Tensor &out) {
  auto bank = bankWeightOf(arg);
  if (!bank)
    return Status::failure(what + ": cannot generate it (a bf16, f16 or i8 argument must be "
                                  "an FFN bank weight, an f32 one with moe.scales_of its scales)");
  auto [format, k] = *bank;
  if (cast<ShapedType>(arg.getType()).getElementType().isF32()) {
    out = ::moe::randomRowScales(shape, k, seed);
    return Status::success();
  }
  std::vector<int64_t> logical = shape;
  logical.back() = k;
  out = ::moe::randomStoredWeights(format, logical, seed);
  return Status::success();
}

static Status generate(BlockArgument arg, func::FuncOp func, uint64_t seed,
                       Tensor &out) {
  auto type = dyn_cast<RankedTensorType>(arg.getType());
  std::string what = "argument #" + std::to_string(arg.getArgNumber());
  if (!type)
    return Status::failure(what + " is not a ranked tensor");
  std::vector<int64_t> shape;
  for (int64_t d : type.getShape()) {
    if (ShapedType::isDynamic(d))
      d = dynamicSize; // checked in main()
    shape.push_back(d);
  }
  Type et = type.getElementType();
  if (et.isBF16() || et.isF16() || et.isInteger(8) ||
      func.getArgAttr(arg.getArgNumber(), "moe.scales_of"))
    return generateStoredWeight(arg, shape, seed, what, out);
  if (et.isF32()) {
    out = ::moe::randomFloats(shape, seed);
    return Status::success();
  }
  if (!et.isInteger(32) && !et.isInteger(64))
    return Status::failure(what + ": cannot generate element type");
  int64_t lo = 0, hi = 100;
  if (auto range = func.getArgAttrOfType<DenseI64ArrayAttr>(arg.getArgNumber(),
                                                           "moe.random_range")) {
    if (range.size() != 2 || range[0] >= range[1])
      return Status::failure(what + ": moe.random_range must be [lo, hi) with lo < hi");
    lo = range[0];
    hi = range[1];
  }
  out = ::moe::randomInts(et.isInteger(32) ? DType::I32 : DType::I64, shape, seed,
                        lo, hi);
  return Status::success();
}

static void printSummary(unsigned index, const Tensor &t) {
  llvm::outs() << "result #" << index << ": " << t.describe();
  if (t.isFloat() && !t.f.empty()) {
    double mn = INFINITY, mx = -INFINITY, sum = 0.0, sq = 0.0;
    for (float v : t.f) {
      mn = std::min(mn, double(v));
      mx = std::max(mx, double(v));
      sum += v;
      sq += double(v) * v;
    }
    llvm::outs() << llvm::format("  min %.6g  max %.6g  mean %.6g  l2 %.6g", mn,
                                 mx, sum / t.f.size(), std::sqrt(sq));
  }
  llvm::outs() << "\n";
  size_t n = t.isFloat() ? t.f.size() : t.i.size();
  size_t shown = printValues ? n : std::min<size_t>(n, 8);
  llvm::outs() << "  values:";
  for (size_t k = 0; k < shown; ++k) {
    if (t.isFloat())
      llvm::outs() << llvm::format(" %.6g", t.f[k]);
    else
      llvm::outs() << " " << t.i[k];
  }
  llvm::outs() << (shown < n ? " ..." : "") << "\n";
}

/// The prepared path: <entry>_prepare packs the weights once (not timed),
/// then the timed runs take the activations only.
static Status runPrepared(ModuleOp module, const ::moe::CpuPipelineOptions &options,
                          const std::vector<Tensor> &args, std::vector<Tensor> &results,
                          double &micros,
                          llvm::function_ref<Status(llvm::function_ref<Status()>, double &)> timed) {
  std::unique_ptr<::moe::PreparedFunction> prepared;
  Status s = ::moe::PreparedFunction::compile(module, entry, options, /*keepStages=*/false, prepared);
  if (!s.ok())
    return s;
  llvm::outs() << llvm::format("compiled '%s' for the host CPU in %.3f s\n", entry.c_str(),
                               prepared->compileSeconds());
  std::vector<Tensor> weights, activations;
  for (size_t i : prepared->weightIndices())
    weights.push_back(args[i]);
  for (size_t i : prepared->activationIndices())
    activations.push_back(args[i]);
  if (!(s = prepared->prepare(weights)).ok())
    return s;
  llvm::outs() << llvm::format("prepared %zu weights: %llu packed bytes in %.3f ms\n",
                               weights.size(),
                               (unsigned long long)moe_prepared_bytes(prepared->prepared()),
                               1e3 * moe_prepared_seconds(prepared->prepared()));
  return timed([&] { return prepared->run(activations, results); }, micros);
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::cl::HideUnrelatedOptions(runCategory);
  std::vector<const char *> arguments(argv, argv + argc);
  for (const char *&a : arguments)
    if (llvm::StringRef(a) == "--stats" || llvm::StringRef(a) == "-stats")
      a = "--routing-stats";
  llvm::cl::ParseCommandLineOptions(int(arguments.size()), arguments.data(),
                                    "moe-run: execute a moe function\n");

  if (mode != "reference" && mode != "compiled" && mode != "both")
    return fail("--mode must be reference, compiled or both, got '" + mode + "'");
  if (target != "cpu" && target != "gpu-host")
    return fail("--target must be cpu or gpu-host, got '" + target + "'");
  if (dynamicSize < 0 || dynamicSize > kMaxTokens)
    return fail("--tokens=" + std::to_string(dynamicSize) +
                " is invalid: the token count must be in [0, " + std::to_string(kMaxTokens) +
                "]");
  if (printStats && mode == "reference")
    return fail("--stats reports what compiled code routed: use --mode=compiled or --mode=both");
  if (printStats && target != "cpu")
    return fail("--stats needs --target=cpu (the gpu-host pipeline does not record statistics)");
  if (printStats && ranks != 0)
    return fail("--stats is not supported with --ranks");
  // Before any work: a directory that cannot be made should not cost a run.
  if (!outputDir.empty())
    if (std::error_code ec = llvm::sys::fs::create_directories(outputDir))
      return fail("cannot create --output-dir '" + outputDir + "': " + ec.message());

  DialectRegistry registry;
  ::moe::registerAllDialects(registry);
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

  unsigned numArgs = func.getNumArguments();
  std::vector<std::string> specs(inputs.begin(), inputs.end());
  if (specs.empty())
    specs.push_back("random:0");
  bool oneRandomForAll = specs.size() == 1 && numArgs != 1 &&
                         llvm::StringRef(specs[0]).starts_with("random:");
  if (!oneRandomForAll && specs.size() != numArgs)
    return fail("'" + entry + "' takes " + std::to_string(numArgs) +
                " arguments but " + std::to_string(specs.size()) +
                " --input were given");
  std::vector<Tensor> args(numArgs);
  for (unsigned i = 0; i < numArgs; ++i) {
    llvm::StringRef spec = oneRandomForAll ? specs[0] : specs[i];
    Status s;
    if (spec.consume_front("random:")) {
      uint64_t seed;
      if (spec.getAsInteger(10, seed))
        return fail("bad seed in 'random:" + spec.str() + "'");
      s = generate(func.getArgument(i), func, seed + (oneRandomForAll ? i : 0), args[i]);
    } else {
      s = ::moe::readNpy(spec.str(), args[i]);
    }
    if (!s.ok())
      return fail(s.error);
  }

  if (ranks != 0) {
#ifdef MOE_HAVE_MPI
    if (ranks < 1)
      return fail("--ranks must be at least 1, got " + std::to_string(ranks));
    if (target != "cpu")
      return fail("--ranks runs the CPU pipeline only (--target=cpu)");
    ::moe::tools::ShardedRunRequest request{func, entry, std::move(args), pipelineOptions, ranks,
                                          std::vector<int64_t>(rankTokens.begin(),
                                                               rankTokens.end()),
                                          mode == "both", rtol, outputDir, repeat};
    return ::moe::tools::runSharded(request);
#else
    return fail("--ranks needs MPI, which was not found when moe-run was built "
                "(install libopenmpi-dev and reconfigure)");
#endif
  }

  // Median wall time of `repeat` runs of `body`, in microseconds.
  auto timed = [&](llvm::function_ref<Status()> body, double &micros) -> Status {
    std::vector<double> times;
    for (unsigned r = 0; r < std::max(1u, unsigned(repeat)); ++r) {
      auto start = std::chrono::steady_clock::now();
      Status st = body();
      if (!st.ok())
        return st;
      times.push_back(std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - start)
                          .count());
    }
    std::sort(times.begin(), times.end());
    micros = times[times.size() / 2];
    return Status::success();
  };

  std::vector<Tensor> refResults, compiledResults;
  double refMicros = 0, compiledMicros = 0;
  if (mode != "compiled") {
    Status s = timed([&] { return ::moe::ref::interpret(func, args, refResults); }, refMicros);
    if (!s.ok())
      return fail("reference: " + s.error);
  }
  if (mode != "reference") {
    std::unique_ptr<::moe::CompiledFunction> compiled;
    auto options = ::moe::CpuPipelineOptions::createFromString(pipelineOptions);
    if (!options)
      return fail("bad --pipeline-options '" + pipelineOptions + "'");
    options->gpuHost = target == "gpu-host";
    options->stats = options->stats || printStats;
    if (!unprepared && target == "cpu") {
      Status s = runPrepared(*module, *options, args, compiledResults, compiledMicros, timed);
      if (!s.ok())
        return fail(s.error);
    } else {
    Status s = ::moe::CompiledFunction::compile(*module, entry, *options,
                                              /*keepStages=*/false, compiled);
    if (!s.ok())
      return fail(s.error);
    llvm::outs() << llvm::format("compiled '%s' for the host CPU%s in %.3f s\n", entry.c_str(),
                                 target == "gpu-host" ? " (GPU kernels run on the host)" : "",
                                 compiled->compileSeconds());
    s = timed([&] { return compiled->run(args, compiledResults); }, compiledMicros);
    if (!s.ok())
      return fail(s.error);
    }
  }

  if (printStats)
    printRoutingStats();
  const std::vector<Tensor> &shown = mode == "reference" ? refResults : compiledResults;
  llvm::outs() << "ran '" << entry << "' ("
               << (mode == "both" ? "compiled and reference" : mode.getValue()) << ")\n";
  for (auto [i, r] : llvm::enumerate(shown)) {
    printSummary(i, r);
    if (!outputDir.empty()) {
      Status w = ::moe::writeNpy(outputDir + "/result" + std::to_string(i) + ".npy", r);
      if (!w.ok())
        return fail(w.error);
    }
  }
  if (mode != "reference" && repeat > 1)
    llvm::outs() << llvm::format("time: compiled %.1f us (median of %u)", compiledMicros,
                                 unsigned(repeat))
                 << (mode == "both" ? llvm::formatv(", reference {0:f1} us, speedup {1:f1}x",
                                                    refMicros, refMicros / compiledMicros)
                                          .str()
                                    : std::string())
                 << "\n";
  if (mode == "both") {
    bool ok = true;
    for (size_t i = 0; i < refResults.size(); ++i) {
      const Tensor &a = compiledResults[i], &b = refResults[i];
      double maxAbs = 0, maxRef = 0;
      size_t n = b.isFloat() ? b.f.size() : b.i.size();
      for (size_t k = 0; k < n; ++k) {
        double x = a.isFloat() ? a.f[k] : double(a.i[k]);
        double y = b.isFloat() ? b.f[k] : double(b.i[k]);
        double d = std::fabs(x - y);
        if (std::isnan(d))
          d = INFINITY;
        maxAbs = std::max(maxAbs, d);
        maxRef = std::max(maxRef, std::fabs(y));
      }
      double rel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
      bool pass = rel <= rtol;
      ok &= pass;
      llvm::outs() << llvm::format("check result #%zu: max abs error %.3g, max rel error %.3g "
                                   "(bound %.1g): %s\n",
                                   i, maxAbs, rel, double(rtol), pass ? "PASS" : "FAIL");
    }
    if (!ok)
      return 1;
  }
  return 0;
}
