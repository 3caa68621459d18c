//===- bench.cpp - moe-bench: compiled MoE layers vs the hardware, OpenBLAS, oneDNN ===//
//
//   moe-bench [--json] [--repeat=N] [--cases=MIX-P,DS-D,...] [--formats=f32,...]
//             [--onednn-formats=f32,bf16,int8] [--probe-mib=N] [--openblas-child]
//
// One run measures, on the machine it runs on:
//  * compute peaks (register-resident loops on every core: FP32 FMA, BF16
//    vdpbf16ps, INT8 vpdpbusd; "n/a" without the instructions) and the read
//    bandwidth (a streaming sum over --probe-mib MiB), bench/Probes.cpp;
//  * per case, our compiled (prepared) layer and the baselines: the eager
//    per-expert OpenBLAS loop users run today (bench/EagerBaseline.cpp) with
//    OpenBLAS's best kernel for the CPU (bench/OpenBlasChild.h), and the
//    oneDNN per-expert loop in FP32, BF16 and INT8 weights, prepared once
//    (bench/DnnlBaseline.h; absent when built without oneDNN). Ours and
//    OpenBLAS are checked against the reference interpreter on the first
//    tokens, oneDNN against the FP32 eager loop on every token;
//  * a bandwidth probe right before each case's timing, then the median
//    time of each contender, measured in alternating blocks after warm-up
//    (see timeAlternating: OpenBLAS's spinning threads);
//  * the compile time of the full pipeline on MIX-P.
// Every figure that matters is a ratio inside this one run (the machines
// are shared and noisy): speedup = the better FP32 baseline / ours,
// pct_peak, pct_bandwidth; the per-format table (bench/BenchReport.h) adds
// GB/s of touched weight bytes per format and % of each format's peak.
// --formats runs the cases again with our weights in other formats
// (moe-quantize-weights), each timed against oneDNN in the same format.
//
#include "BenchJson.h"
#include "BenchLayers.h"
#include "BenchReport.h"
#include "EagerBaseline.h"
#include "OpenBlasChild.h"
#include "Probes.h"
#ifdef MOE_BENCH_HAVE_DNNL
#include "DnnlBaseline.h"
#endif
#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Support/Quant.h"
#include "moe/Support/Random.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <thread>

using namespace moe;
using moe::DType;
using moe::Tensor;

static llvm::cl::OptionCategory benchCategory("moe-bench options");
static llvm::cl::opt<bool> json("json", llvm::cl::cat(benchCategory), llvm::cl::desc("one JSON object per line per case"));
static llvm::cl::opt<int> repeat("repeat", llvm::cl::cat(benchCategory), llvm::cl::desc("timed runs per case (0: by size)"),
                                 llvm::cl::init(0));
static llvm::cl::opt<std::string> caseFilter("cases", llvm::cl::cat(benchCategory), llvm::cl::desc("comma-separated case names"),
                                             llvm::cl::init(""));
static llvm::cl::opt<int> checkTokens("check-tokens", llvm::cl::cat(benchCategory),
                                      llvm::cl::desc("tokens checked against the reference"),
                                      llvm::cl::init(4));

static llvm::cl::opt<bool> unprepared(
    "unprepared", llvm::cl::cat(benchCategory),
    llvm::cl::desc("time our layer with its weights passed on every call (default: prepared "
                   "once by <entry>_prepare, runs timed with the activations only)"),
    llvm::cl::init(false));
static llvm::cl::opt<bool> contention(
    "contention", llvm::cl::cat(benchCategory),
    llvm::cl::desc("layer time idle and next to CPU hogs on one and on every core, with the "
                   "whole pool and with one thread (see bench/Contention.cpp)"));

static llvm::cl::opt<std::string> formats(
    "formats", llvm::cl::cat(benchCategory),
    llvm::cl::desc("weight formats of our layers, each a full set of cases (f32,bf16,f16,int8,"
                   "q8_0,q4_0; activations bf16 for bf16, q8_0 for the 8/4-bit formats)"),
    llvm::cl::init("f32"));
static llvm::cl::opt<std::string> dnnlFormatList(
    "onednn-formats", llvm::cl::cat(benchCategory),
    llvm::cl::desc("weight formats of the oneDNN baseline (f32,bf16,int8; empty: none)"),
    llvm::cl::init("f32,bf16,int8"));
static llvm::cl::opt<int> probeMiB(
    "probe-mib", llvm::cl::cat(benchCategory),
    llvm::cl::desc("MiB the read-bandwidth probe streams (keep it well above the last-level cache)"),
    llvm::cl::init(1024));
static llvm::cl::opt<bool> openblasChild(
    "openblas-child", llvm::cl::cat(benchCategory),
    llvm::cl::desc("run the OpenBLAS loop in a re-executed child even when neither "
                   "OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE is set (it always is when one is)"));
static llvm::cl::opt<bool> openblasServer("openblas-server", llvm::cl::Hidden,
                                          llvm::cl::desc("internal: the OpenBLAS child"));

static llvm::cl::opt<std::string> pipelineOptions(
    llvm::cl::cat(benchCategory),
    "pipeline-options", llvm::cl::desc("CPU pipeline options (as for --moe-to-cpu)"),
    llvm::cl::init(""));

extern "C" char *openblas_get_corename(void);
extern "C" void openblas_set_num_threads(int);

using Clock = std::chrono::steady_clock;
static double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

static int numThreads() { return moe_get_num_threads(); }

//===----------------------------------------------------------------------===//
// The cases.
//===----------------------------------------------------------------------===//

std::string layerText(const Shape &s) {
  auto ty = [](std::initializer_list<int64_t> dims) {
    std::string r = "tensor<";
    for (int64_t d : dims)
      r += (d < 0 ? std::string("?") : std::to_string(d)) + "x";
    return r + "f32>";
  };
  std::string x = ty({-1, s.h}), w13 = ty({s.e, s.inter, s.h}), w2 = ty({s.e, s.h, s.inter});
  std::string idsT = llvm::formatv("tensor<?x{0}xi32>", s.k).str();
  std::string wT = llvm::formatv("tensor<?x{0}xf32>", s.k).str();
  std::string experts = llvm::formatv("!moe.experts<{0}, {1}>", s.e, s.h).str();
  std::string head, routing;
  if (s.zipf) {
    head = "%x: " + x + ", %ids: " + idsT + ", %w: " + wT;
  } else {
    head = "%x: " + x + ", %gate: " + ty({s.e, s.h});
    routing = "  %ids, %w = moe.topk_router softmax %x, %gate {k = " + std::to_string(s.k) +
              ", renormalize} : " + x + ", " + ty({s.e, s.h}) + " -> " + idsT + ", " + wT + "\n";
  }
  return "func.func @main(" + head + ", %w1: " + w13 + ", %w3: " + w13 + ", %w2: " + w2 +
         ") -> " + x + " {\n" + routing + "  %experts = moe.ffn_experts swiglu w1(%w1 : " + w13 +
         ") w3(%w3 : " + w13 + ") w2(%w2 : " + w2 + ") -> " + experts + "\n" +
         "  %y = moe.layer %x, %ids, %w experts(%experts : " + experts + ") : " + x + ", " + idsT +
         ", " + wT + " -> " + x + "\n  return %y : " + x + "\n}\n";
}

/// What the products of a `format` bank see of the activations in the
/// format cases: bf16 for bf16 weights (vdpbf16ps), Q8_0 blocks for the
/// 8- and 4-bit formats (vpdpbusd, as llama.cpp), f32 otherwise.
static const char *caseActivations(bench::WeightFormat format) {
  switch (format) {
  case bench::WeightFormat::BF16:
    return "bf16";
  case bench::WeightFormat::Int8:
  case bench::WeightFormat::Q8_0:
  case bench::WeightFormat::Q4_0:
    return "q8_0";
  default:
    return "f32";
  }
}

/// The case's FP32 layer turned into one of `format` by the compiler's own
/// moe-quantize-weights (weights become [E, rows, stored(K)] arguments;
/// int8 appends the scales of w1, w3, w2).
static bool quantizeLayer(mlir::ModuleOp module, bench::WeightFormat format) {
  if (format == bench::WeightFormat::F32)
    return true;
  mlir::PassManager pm(module->getContext());
  std::string pipeline = llvm::formatv("moe-quantize-weights{{format={0} activations={1}}",
                                       weightFormatName(format), caseActivations(format))
                             .str();
  if (mlir::failed(mlir::parsePassPipeline(pipeline, pm)) || mlir::failed(pm.run(module))) {
    llvm::errs() << "moe-bench: " << pipeline << " failed\n";
    return false;
  }
  return true;
}

/// A bank's FP32 weights [E, rows, K] stored in `format` as Quant.h does
/// (integers widened as Tensor holds them; int8 row scales into `scales`).
static Tensor storedWeights(bench::WeightFormat format, const Tensor &w, Tensor *scales) {
  int64_t e = w.shape[0], rows = w.shape[1], k = w.shape[2];
  int64_t len = storedRowElements(format, k);
  DType dt = storageDType(format);
  std::vector<uint8_t> raw(size_t(e * rows * len) * dtypeSize(dt));
  std::vector<float> rowScales(e * rows, 0.0f);
  quantizeRows(format, w.f.data(), e * rows, k, raw.data(), rowScales.data());
  Tensor t = Tensor::ints(dt, {e, rows, len});
  for (int64_t i = 0; i < int64_t(t.i.size()); ++i)
    t.i[i] = loadIntElement(dt, raw.data(), i);
  if (scales)
    *scales = Tensor::f32({e, rows}, rowScales);
  return t;
}

/// Our compiled (by default prepared) layer for one case, with its
/// arguments bound; `run` is one timed call. Not movable: the argument
/// pointers point into `args`.
struct OursLayer {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::unique_ptr<CompiledFunction> fn;
  std::unique_ptr<PreparedFunction> prep;
  std::unique_ptr<moe_prepared, void (*)(moe_prepared *)> prepared{nullptr, moe_prepared_free};
  std::vector<Tensor> args;
  std::vector<const void *> argData;
  std::vector<std::vector<int64_t>> argShapes;
  std::vector<moe_tensor> weightTensors, activationTensors;
  std::vector<std::vector<uint8_t>> rawArgs; // non-f32 arguments as stored
  std::vector<float> out;
  int64_t outShape[2] = {0, 0};
  moe_tensor outTensor{};
  double compileS = 0, prepareMs = 0, packedBytes = 0;
  std::string name;

  OursLayer() = default;
  OursLayer(const OursLayer &) = delete;
  bench::WeightFormat format = bench::WeightFormat::F32;
  bool compile(mlir::MLIRContext &ctx, const Shape &s, bench::WeightFormat f);
  void bindArguments(const Shape &s, const bench::CaseInputs &in);
  bool prepareWeights();
  bool run() {
    Status r = prep ? prep->runTensors(prepared.get(), activationTensors.data(),
                                       activationTensors.size(), &outTensor, 1)
                    : fn->runBuffers(argData, argShapes, {out.data()}, {{outShape[0], outShape[1]}});
    if (!r.ok())
      llvm::errs() << name << ": " << r.error << "\n";
    return r.ok();
  }
};

bool OursLayer::compile(mlir::MLIRContext &ctx, const Shape &s, bench::WeightFormat f) {
  name = s.name;
  format = f;
  module = mlir::parseSourceString<mlir::ModuleOp>(layerText(s), &ctx);
  if (!module || !quantizeLayer(*module, f))
    return false;
  auto options = CpuPipelineOptions::createFromString(pipelineOptions);
  if (!options) {
    llvm::errs() << "bad --pipeline-options\n";
    return false;
  }
  auto start = Clock::now();
  Status st = unprepared ? CompiledFunction::compile(*module, "main", *options, false, fn)
                         : PreparedFunction::compile(*module, "main", *options, false, prep);
  compileS = secondsSince(start);
  if (!st.ok())
    llvm::errs() << s.name << ": " << st.error << "\n";
  return st.ok();
}

void OursLayer::bindArguments(const Shape &s, const bench::CaseInputs &in) {
  args = s.zipf ? std::vector<Tensor>{in.x, in.ids, in.w} : std::vector<Tensor>{in.x, in.gate};
  if (format == bench::WeightFormat::F32) {
    args.insert(args.end(), {in.w1, in.w3, in.w2});
  } else { // the same FP32 weights every baseline uses, stored in the format
    Tensor s1, s3, s2;
    bool int8 = format == bench::WeightFormat::Int8;
    args.push_back(storedWeights(format, in.w1, &s1));
    args.push_back(storedWeights(format, in.w3, &s3));
    args.push_back(storedWeights(format, in.w2, &s2));
    if (int8)
      args.insert(args.end(), {s1, s3, s2});
  }
  rawArgs.resize(args.size());
  for (size_t a = 0; a < args.size(); ++a) {
    const Tensor &t = args[a];
    argShapes.push_back(t.shape);
    if (t.dtype == DType::F32) {
      argData.push_back(t.f.data());
      continue;
    }
    rawArgs[a].resize(t.i.size() * dtypeSize(t.dtype));
    for (size_t k = 0; k < t.i.size(); ++k)
      storeIntElement(t.dtype, rawArgs[a].data(), int64_t(k), t.i[k]);
    argData.push_back(rawArgs[a].data());
  }
  out.assign(s.t * s.h, 0.0f);
  outShape[0] = s.t;
  outShape[1] = s.h;
  outTensor = moe_tensor{out.data(), MOE_F32, 2, outShape};
}

/// The prepared layer: the weights packed once (not timed as a run).
bool OursLayer::prepareWeights() {
  if (!prep)
    return true;
  auto tensorOf = [&](size_t i) {
    return moe_tensor{const_cast<void *>(argData[i]), moe_dtype(args[i].dtype),
                      int32_t(argShapes[i].size()), argShapes[i].data()};
  };
  for (size_t i : prep->weightIndices())
    weightTensors.push_back(tensorOf(i));
  for (size_t i : prep->activationIndices())
    activationTensors.push_back(tensorOf(i));
  moe_prepared *p = nullptr;
  Status st = prep->prepareTensors(weightTensors.data(), weightTensors.size(), &p);
  if (!st.ok()) {
    llvm::errs() << name << ": " << st.error << "\n";
    return false;
  }
  prepared.reset(p);
  prepareMs = 1e3 * moe_prepared_seconds(p);
  packedBytes = double(moe_prepared_bytes(p));
  return true;
}

static double median(std::vector<double> v) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// max |got - want| / max |want| over the first n values.
static double relError(const float *got, const float *want, int64_t n) {
  double err = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    mx = std::max(mx, double(std::fabs(want[i])));
  }
  return mx > 0 ? err / mx : err;
}

/// The reference interpreter's output on the first `tc` tokens (every
/// token's output depends only on its own row for these layers).
static bool referenceRows(OursLayer &ours, const Shape &s, int64_t tc, std::vector<float> &want) {
  std::vector<Tensor> refArgs = ours.args;
  for (size_t a = 0; a < refArgs.size(); ++a) {
    if (refArgs[a].shape[0] != s.t || a >= (s.zipf ? 3u : 1u))
      continue;
    refArgs[a].shape[0] = tc;
    refArgs[a].f.resize(refArgs[a].f.empty() ? 0 : tc * refArgs[a].shape[1]);
    refArgs[a].i.resize(refArgs[a].i.empty() ? 0 : tc * refArgs[a].shape[1]);
  }
  std::vector<Tensor> results;
  Status st = ref::interpret(ours.module->lookupSymbol<mlir::func::FuncOp>("main"), refArgs, results);
  if (!st.ok()) {
    llvm::errs() << s.name << ": " << st.error << "\n";
    return false;
  }
  want = results[0].f;
  return true;
}

/// One side of the comparison. `block(calls, us)` makes calls + 1 calls,
/// the first a warm-up, and appends the times (µs) of the others.
struct Contender {
  std::string name;
  std::function<bool(int, std::vector<double> &)> block;
  int pauseMs = 100; // before each block
  std::vector<double> us;
};

/// A block function for an in-process call.
template <typename Call> static std::function<bool(int, std::vector<double> &)> timedCalls(Call call) {
  return [call](int calls, std::vector<double> &us) {
    for (int i = 0; i <= calls; ++i) {
      auto t0 = Clock::now();
      if (!call())
        return false;
      if (i > 0)
        us.push_back(secondsSince(t0) * 1e6);
    }
    return true;
  };
}

/// Timing in alternating blocks (each contender in turn, three rounds).
/// Not run-by-run round-robin: OpenBLAS's worker threads busy-wait for
/// ~2^28 cycles (~0.1 s) after each call, so a run of ours right after a
/// baseline call shares the cores with spinning threads (MIX-D measured
/// 1.9x slower that way). The pause before each block (400 ms before ours,
/// the first) lets them go to sleep; oneDNN's OpenMP threads spin far less.
static bool timeAlternating(std::vector<Contender> &contenders, int reps) {
  const int rounds = 3;
  int perBlock = std::max(1, (reps + rounds - 1) / rounds);
  for (int r = 0; r < rounds; ++r)
    for (Contender &c : contenders) {
      std::this_thread::sleep_for(std::chrono::milliseconds(c.pauseMs));
      if (!c.block(perBlock, c.us)) {
        llvm::errs() << c.name << ": a timed call failed\n";
        return false;
      }
    }
  return true;
}

/// One oneDNN loop measured on a case.
struct DnnlResult {
  bench::WeightFormat format;
  double us = 0, errVsEager = 0, prepareMs = 0, preparedBytes = 0;
};

struct CaseResult {
  Shape shape;
  bench::WeightFormat format = bench::WeightFormat::F32; // of our layer
  double oursUs = 0, openblasUs = 0, oursErr = 0, openblasErr = 0, compileS = 0;
  double flops = 0, probeGbps = 0;
  // The prepared layer (0 with --unprepared): packing time and bytes.
  double prepareMs = 0, packedBytes = 0;
  std::vector<DnnlResult> dnnl;
  std::vector<int32_t> routedIds; // the routing of the timed calls
  const DnnlResult *dnnlIn(bench::WeightFormat f) const {
    for (const DnnlResult &d : dnnl)
      if (d.format == f)
        return &d;
    return nullptr;
  }
};

/// Everything a case compares against besides ours, set up and checked.
struct CaseBaselines {
  bench::OpenBlasBaseline openblas;
  std::vector<float> openblasOut;
#ifdef MOE_BENCH_HAVE_DNNL
  std::vector<std::unique_ptr<bench::DnnlBaseline>> dnnl;
  std::vector<std::vector<float>> dnnlOut;
#endif
  explicit CaseBaselines(const Shape &s) : openblas(s), openblasOut(s.t * s.h) {}
};

/// Creates the oneDNN loops of `formats` (weights reordered, untimed), runs
/// each once (creating its primitives) and checks it against the FP32
/// eager output `eager`.
static bool setUpDnnl(const Shape &s, const bench::CaseInputs &in,
                      llvm::ArrayRef<bench::WeightFormat> formats, const std::vector<float> &eager,
                      CaseBaselines &b, CaseResult &res) {
#ifdef MOE_BENCH_HAVE_DNNL
  for (bench::WeightFormat f : formats) {
    std::string error;
    auto loop = bench::DnnlBaseline::create(s, f, in, error);
    std::vector<float> out(s.t * s.h);
    if (!loop || !loop->run(in, out.data(), error)) {
      llvm::errs() << s.name << ": " << error << "\n";
      return false;
    }
    res.dnnl.push_back({f, 0, relError(out.data(), eager.data(), s.t * s.h), loop->prepareMs(),
                        loop->preparedBytes()});
    b.dnnl.push_back(std::move(loop));
    b.dnnlOut.push_back(std::move(out));
  }
#endif
  return true;
}

/// The contenders of a case in timing order: ours, the oneDNN loops, then
/// OpenBLAS (in the child when its environment had to be cleaned).
static std::vector<Contender> contendersOf(const bench::CaseInputs &in, OursLayer &ours,
                                           CaseBaselines &b, bool withOpenBlas,
                                           bench::OpenBlasChild *child) {
  std::vector<Contender> cs;
  // Pointers, not references, into the caller's objects (they outlive cs).
  OursLayer *o = &ours;
  CaseBaselines *bb = &b;
  const bench::CaseInputs *inp = &in;
  cs.push_back({"ours", timedCalls([o] { return o->run(); }), 400, {}});
#ifdef MOE_BENCH_HAVE_DNNL
  for (size_t i = 0; i < b.dnnl.size(); ++i)
    cs.push_back({"onednn", timedCalls([bb, inp, i] {
                    std::string error;
                    bool ok = bb->dnnl[i]->run(*inp, bb->dnnlOut[i].data(), error);
                    if (!ok)
                      llvm::errs() << error << "\n";
                    return ok;
                  }), 100, {}});
#endif
  if (!withOpenBlas)
    return cs;
  if (child)
    cs.push_back({"openblas", [child](int calls, std::vector<double> &us) {
                    std::string error;
                    bool ok = child->timeBlock(calls, us, error);
                    if (!ok)
                      llvm::errs() << error << "\n";
                    return ok;
                  }, 100, {}});
  else
    cs.push_back({"openblas", timedCalls([bb, inp] {
                    bb->openblas.run(*inp, bb->openblasOut.data());
                    return true;
                  }), 100, {}});
  return cs;
}

/// The OpenBLAS loop's error against the reference's first `n` values.
static bool checkOpenBlas(const Shape &s, int64_t n, const std::vector<float> &want,
                          const std::vector<float> &inProcess, bench::OpenBlasChild *child,
                          double &err) {
  if (!child) {
    err = relError(inProcess.data(), want.data(), n);
    return true;
  }
  std::vector<float> first;
  std::string error;
  if (!child->setupCase(s.name, n, first, error) || int64_t(first.size()) != n) {
    llvm::errs() << s.name << ": " << (error.empty() ? "short output from the child" : error)
                 << "\n";
    return false;
  }
  err = relError(first.data(), want.data(), n);
  return true;
}

/// One case with our layer's weights in `format`. The OpenBLAS loop (FP32
/// only) is timed in the FP32 cases; `dnnlFormats` are the oneDNN loops.
static bool runCase(mlir::MLIRContext &ctx, const Shape &s, bench::WeightFormat format,
                    llvm::ArrayRef<bench::WeightFormat> dnnlFormats, bench::OpenBlasChild *child,
                    CaseResult &res) {
  res.shape = s;
  res.format = format;
  bool f32 = format == bench::WeightFormat::F32;
  bench::CaseInputs in = bench::makeCaseInputs(s);
  OursLayer ours;
  if (!ours.compile(ctx, s, format))
    return false;
  ours.bindArguments(s, in);
  if (!ours.prepareWeights())
    return false;
  res.compileS = ours.compileS;
  res.prepareMs = ours.prepareMs;
  res.packedBytes = ours.packedBytes;

  // Checks: ours and OpenBLAS against the reference on the first tokens,
  // oneDNN against the FP32 eager loop on every token.
  CaseBaselines b(s);
  b.openblas.run(in, b.openblasOut.data()); // routing and the FP32 eager output
  res.routedIds = s.zipf ? in.ids32 : b.openblas.ids;
  int64_t tc = std::min<int64_t>(s.t, checkTokens);
  std::vector<float> want;
  if (!referenceRows(ours, s, tc, want) || !ours.run())
    return false;
  res.oursErr = relError(ours.out.data(), want.data(), tc * s.h);
  if ((f32 && !checkOpenBlas(s, tc * s.h, want, b.openblasOut, child, res.openblasErr)) ||
      !setUpDnnl(s, in, dnnlFormats, b.openblasOut, b, res))
    return false;

  // The bandwidth probe right before this case's timing.
  res.probeGbps = bench::measureReadGBps(numThreads(), int64_t(probeMiB) << 20);
  std::vector<Contender> cs = contendersOf(in, ours, b, f32, child);
  if (!timeAlternating(cs, repeat > 0 ? int(repeat) : (s.decode() ? 200 : 9)))
    return false;
  res.oursUs = median(cs.front().us);
  res.openblasUs = f32 ? median(cs.back().us) : 0;
  for (size_t i = 0; i < res.dnnl.size(); ++i)
    res.dnnl[i].us = median(cs[1 + i].us);
  // FLOPs as the issue defines them.
  res.flops = 2.0 * s.t * s.h * s.e + 6.0 * s.t * s.k * s.h * s.inter;
  return true;
}

//===----------------------------------------------------------------------===//
// Reporting.
//===----------------------------------------------------------------------===//

/// Bytes of the FP32 router gate a softmax case reads per call.
static double routerBytes(const Shape &s) { return s.zipf ? 0 : 4.0 * s.e * s.h; }

/// The per-format rows of a case: ours (FP32 today) and every baseline.
static std::vector<bench::FormatRow> formatRows(const CaseResult &r, const bench::ComputePeaks &peaks) {
  const Shape &s = r.shape;
  auto row = [&](bench::WeightFormat f, const char *impl, double us, double err,
                 const char *against) {
    bench::FormatRow fr;
    fr.caseName = s.name;
    fr.tokens = s.t;
    fr.decode = s.decode();
    fr.format = f;
    fr.impl = impl;
    fr.us = us;
    fr.touchedBytes = bench::touchedWeightBytes(r.routedIds, s.e, s.h, s.inter, f, routerBytes(s));
    fr.flops = r.flops;
    fr.probeGbps = r.probeGbps;
    fr.peak = bench::formatPeak(f, peaks);
    fr.maxRelErr = err;
    fr.errReference = against;
    return fr;
  };
  std::vector<bench::FormatRow> rows;
  rows.push_back(row(r.format, "ours", r.oursUs, r.oursErr, "reference"));
  rows.back().prepareMs = r.prepareMs;
  rows.back().preparedBytes = r.packedBytes;
  if (r.format == bench::WeightFormat::F32)
    rows.push_back(row(bench::WeightFormat::F32, "openblas", r.openblasUs, r.openblasErr, "reference"));
  for (const DnnlResult &d : r.dnnl) {
    rows.push_back(row(d.format, "onednn", d.us, d.errVsEager, "f32 eager"));
    rows.back().prepareMs = d.prepareMs;
    rows.back().preparedBytes = d.preparedBytes;
  }
  bench::compareWithBestBaseline(rows);
  return rows;
}

/// The case's line of the main (FP32) table, or its JSON record.
static void printCase(const CaseResult &r, const bench::ComputePeaks &peaks) {
  const Shape &s = r.shape;
  const DnnlResult *dnnlF32 = r.dnnlIn(bench::WeightFormat::F32);
  double bestUs = dnnlF32 ? std::min(r.openblasUs, dnnlF32->us) : r.openblasUs;
  std::string best = dnnlF32 && dnnlF32->us < r.openblasUs ? "onednn" : "openblas";
  double gflops = r.flops / (r.oursUs * 1e3);
  double gbps = bench::touchedWeightBytes(r.routedIds, s.e, s.h, s.inter, bench::WeightFormat::F32,
                                          routerBytes(s)) /
                (r.oursUs * 1e3);
  if (json) {
    bench::CaseFigures f;
    f.name = s.name;
    f.tokens = s.t;
    f.oursUs = r.oursUs;
    f.baselineUs = r.openblasUs;
    f.speedup = bestUs / r.oursUs;
    f.bestBaseline = best;
    f.gflops = gflops;
    f.pctPeak = 100 * gflops / peaks.fp32Gflops;
    if (s.decode()) {
      f.gbps = gbps;
      f.pctBandwidth = 100 * gbps / r.probeGbps;
    }
    f.oursMaxRelErr = r.oursErr;
    f.baselineMaxRelErr = r.openblasErr;
    if (dnnlF32)
      f.onednnUs = dnnlF32->us;
    f.probeGbps = r.probeGbps;
    if (!unprepared) {
      f.prepareMs = r.prepareMs;
      f.packedBytes = r.packedBytes;
    }
    llvm::outs() << bench::jsonLine(bench::caseRecord(f));
    return;
  }
  llvm::outs() << llvm::format("%-11s %5lld %10.1f %11.1f", s.name.c_str(), (long long)s.t,
                               r.oursUs, r.openblasUs);
  if (dnnlF32)
    llvm::outs() << llvm::format(" %10.1f", dnnlF32->us);
  else
    llvm::outs() << "          -";
  llvm::outs() << llvm::format(" %6.2fx %-8s %7.1f %6.1f", bestUs / r.oursUs, best.c_str(), gflops,
                               100 * gflops / peaks.fp32Gflops);
  if (s.decode())
    llvm::outs() << llvm::format(" %6.1f %5.1f", gbps, 100 * gbps / r.probeGbps);
  else
    llvm::outs() << "      -     -";
  llvm::outs() << llvm::format("  %.1e %.1e", r.oursErr, r.openblasErr);
  if (!unprepared)
    llvm::outs() << llvm::format("   prepare %.1f ms, %.1f MiB packed", r.prepareMs,
                                 r.packedBytes / (1 << 20));
  llvm::outs() << "\n";
}

/// Largest error each oneDNN format may show against the FP32 eager loop:
/// bf16 rounds activations and weights to 8 mantissa bits, int8 to 7 bits
/// plus sign per row/channel.
static double dnnlTolerance(bench::WeightFormat f) {
  return f == bench::WeightFormat::F32 ? 1e-4 : f == bench::WeightFormat::BF16 ? 2e-2 : 6e-2;
}

static bool checkErrors(const CaseResult &r) {
  bool ok = true;
  // The reference rounds the activations as the kernels do; low-precision
  // cases accumulate in another order over rounded values: 1e-3.
  double oursTolerance = r.format == bench::WeightFormat::F32 ? 1e-4 : 1e-3;
  if (!(r.oursErr <= oursTolerance) || r.openblasErr > 1e-4) {
    llvm::errs() << r.shape.name << ": result differs from the reference\n";
    ok = false;
  }
  for (const DnnlResult &d : r.dnnl)
    if (!(d.errVsEager <= dnnlTolerance(d.format))) {
      llvm::errs() << llvm::formatv("{0}: the oneDNN {1} loop differs from the FP32 eager loop by "
                                    "{2:e} (tolerance {3:e})\n",
                                    r.shape.name, bench::formatName(d.format), d.errVsEager,
                                    dnnlTolerance(d.format));
      ok = false;
    }
  return ok;
}

static std::string orNa(const std::optional<double> &v) {
  return v ? llvm::formatv("{0:f1}", *v).str() : std::string("n/a");
}

/// Starts the OpenBLAS child when the environment pins OpenBLAS's kernel
/// (or --openblas-child asks for it). Null: the loop runs in-process.
static std::unique_ptr<bench::OpenBlasChild> startOpenBlasChild(bool &ok) {
  ok = true;
  if (bench::openblasOverrides().empty() && !openblasChild)
    return nullptr;
  std::string error;
  auto child = bench::OpenBlasChild::start(error);
  if (!child) {
    llvm::errs() << error << "\n";
    ok = false;
  }
  return child;
}

static void printMachine(const bench::ComputePeaks &peaks, double bw, const std::string &core,
                         const std::string &onednn) {
  std::string overrides = bench::openblasOverrides();
  if (json) {
    bench::MachineExtras extras;
    extras.bf16PeakGflops = peaks.bf16Gflops;
    extras.int8PeakGops = peaks.int8Gops;
    extras.amxBf16Gflops = peaks.amxBf16Gflops;
    extras.amxInt8Gops = peaks.amxInt8Gops;
    extras.onednn = onednn;
    extras.openblasOverrides = overrides;
    llvm::outs() << bench::jsonLine(
        bench::machineRecord(numThreads(), peaks.fp32Gflops, bw, core, extras));
    return;
  }
  llvm::outs() << llvm::formatv(
      "moe-bench: {0} threads; peaks: FP32 FMA {1:f1} GFLOP/s, BF16 vdpbf16ps {2} GFLOP/s, "
      "INT8 vpdpbusd {3} GOP/s (AMX tiles: BF16 {4} GFLOP/s, INT8 {5} GOP/s); read bandwidth "
      "{6:f1} GB/s ({7} MiB probe)\n",
      numThreads(), peaks.fp32Gflops, orNa(peaks.bf16Gflops), orNa(peaks.int8Gops),
      orNa(peaks.amxBf16Gflops), orNa(peaks.amxInt8Gops), bw, int(probeMiB));
  llvm::outs() << "OpenBLAS core " << core
               << (overrides.empty() && !openblasChild ? "" : " (baseline re-executed without " +
                                                                  (overrides.empty() ? std::string("overrides") : overrides) + ")")
               << "; " << (onednn.empty() ? "oneDNN baseline skipped (built without oneDNN)" : onednn)
               << "\n\n";
}

int main(int argc, char **argv) {
  // Only our options in --help, not every LLVM backend flag linked in.
  llvm::cl::HideUnrelatedOptions(benchCategory);
  llvm::cl::ParseCommandLineOptions(argc, argv, "moe-bench: compiled MoE layers vs OpenBLAS and oneDNN\n");
  if (openblasServer)
    return bench::runOpenBlasServer();
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  if (contention)
    return runContentionBench(ctx, pipelineOptions);
  openblas_set_num_threads(numThreads());

  std::vector<Shape> shapes = bench::benchShapes();
  if (!caseFilter.empty()) {
    llvm::SmallVector<llvm::StringRef> wanted;
    llvm::StringRef(caseFilter).split(wanted, ',');
    llvm::erase_if(shapes, [&](const Shape &s) { return !llvm::is_contained(wanted, s.name); });
  }
  std::vector<bench::WeightFormat> oursFormats, dnnlFormats;
  std::string error;
  if (!bench::parseFormatList(formats, oursFormats, error) ||
      !bench::parseFormatList(dnnlFormatList, dnnlFormats, error)) {
    llvm::errs() << "moe-bench: " << error << "\n";
    return 2;
  }
  moe::registerAllPasses(); // moe-quantize-weights for the format cases
  std::string onednn;
#ifdef MOE_BENCH_HAVE_DNNL
  onednn = bench::DnnlBaseline::describe();
  llvm::erase_if(dnnlFormats, [](bench::WeightFormat f) {
    if (bench::DnnlBaseline::supports(f))
      return false;
    llvm::errs() << "moe-bench: oneDNN baseline: no " << bench::formatName(f) << " weights: skipped\n";
    return true;
  });
#else
  dnnlFormats.clear();
#endif
  bool ok = true;
  std::unique_ptr<bench::OpenBlasChild> child = startOpenBlasChild(ok);
  if (!ok)
    return 1;

  bench::ComputePeaks peaks = bench::measureComputePeaks(numThreads());
  double bw = bench::measureReadGBps(numThreads(), int64_t(probeMiB) << 20);
  printMachine(peaks, bw, child ? child->core() : std::string(openblas_get_corename()), onednn);
  if (!json)
    llvm::outs() << "case          T    ours_us openblas_us  onednn_us speedup (vs)     GFLOP/s "
                    "%peak   GB/s   %bw  err_ours err_oblas\n";
  double mixCompile = -1;
  std::vector<bench::FormatRow> rows;
  for (bench::WeightFormat format : oursFormats)
    for (const Shape &s : shapes) {
      bool f32 = format == bench::WeightFormat::F32;
      // FP32 cases time every oneDNN format; the others the same format.
      std::vector<bench::WeightFormat> dnnlHere = dnnlFormats;
      if (!f32)
        llvm::erase_if(dnnlHere, [&](bench::WeightFormat d) { return d != format; });
      CaseResult r;
      if (!runCase(ctx, s, format, dnnlHere, f32 ? child.get() : nullptr, r)) {
        ok = false;
        continue;
      }
      if (s.name == "MIX-P" && f32)
        mixCompile = r.compileS;
      if (f32)
        printCase(r, peaks);
      ok &= checkErrors(r);
      for (bench::FormatRow &fr : formatRows(r, peaks))
        rows.push_back(std::move(fr));
    }
  if (json) {
    for (const bench::FormatRow &fr : rows)
      llvm::outs() << bench::jsonLine(bench::formatRowRecord(fr));
  } else if (!rows.empty()) {
    llvm::outs() << "\nper weight format (GB/s: weight bytes the routing touches, in the format; "
                    "%bw of the probe before the case; %peak of the format's peak):\n"
                 << bench::formatTableHeader();
    for (const bench::FormatRow &fr : rows)
      llvm::outs() << bench::formatTableLine(fr);
  }
  if (mixCompile >= 0) {
    if (json)
      llvm::outs() << bench::jsonLine(bench::compileRecord("MIX-P", mixCompile));
    else
      llvm::outs() << llvm::formatv("\ncompile time, full pipeline, MIX-P: {0:f3} s\n",
                                    mixCompile);
  }
  return ok ? 0 : 1;
}
