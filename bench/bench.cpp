//===- bench.cpp - moe-bench: compiled MoE layers vs the hardware and OpenBLAS ===//
//
//   moe-bench [--json] [--repeat=N] [--cases=MIX-P,DS-D,...] [--quick]
//
// One run measures, on the machine it runs on:
//  * the FP32 FMA peak (register-resident FMA chains on every core) and the
//    read bandwidth (a streaming sum over 1 GiB on every core);
//  * per case, our compiled layer and, in the same process, the eager
//    per-expert loop users run today (router GEMM, softmax, top-k, then per
//    expert: gather, three cblas_sgemm calls, SwiGLU, weighted scatter-add),
//    both checked against the reference interpreter on the first tokens;
//  * the median time of each, measured in alternating blocks after warm-up
//    (see runCase: OpenBLAS's spinning threads);
//  * the compile time of the full pipeline on MIX-P.
// Every figure that matters is a ratio inside this one run (the machines
// are shared and noisy): speedup = baseline / ours, pct_peak, pct_bandwidth.
//
// OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment;
// run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` for its best
// kernel (the core it picked is printed).
//
//===----------------------------------------------------------------------===//

#include "BenchJson.h"
#include "BenchLayers.h"
#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Support/Random.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <numeric>
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

//===----------------------------------------------------------------------===//
// The machine: FMA peak and read bandwidth, all cores.
//===----------------------------------------------------------------------===//

static int numThreads() { return moe_get_num_threads(); }

template <typename Fn> static void onEveryCore(Fn fn) {
  std::vector<std::thread> threads;
  for (int t = 0; t < numThreads(); ++t)
    threads.emplace_back(fn, t);
  for (auto &th : threads)
    th.join();
}

// 12 independent chains of 8-lane FMAs: enough to cover the FMA latency on
// every x86 core we know; the compiler keeps them in registers.
__attribute__((target("avx2,fma"), noinline)) static float fmaChains(int64_t iters, float seed) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i)
    acc[i] = _mm256_set1_ps(seed + float(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i)
    s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx512f"), noinline)) static float fmaChains512(int64_t iters, float seed) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i)
    acc[i] = _mm512_set1_ps(seed + float(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

/// GFLOP/s of the machine's FP32 FMA units (best of 5).
static double measurePeakGflops() {
  bool avx512 = __builtin_cpu_supports("avx512f");
  int lanes = avx512 ? 16 : 8;
  const int64_t iters = 40'000'000;
  double best = 0;
  std::atomic<float> sink{0};
  for (int rep = 0; rep < 5; ++rep) {
    auto start = Clock::now();
    onEveryCore([&](int t) {
      float r = avx512 ? fmaChains512(iters, float(t)) : fmaChains(iters, float(t));
      sink = sink + r;
    });
    double s = secondsSince(start);
    best = std::max(best, 2.0 * 12 * lanes * double(iters) * numThreads() / s / 1e9);
  }
  return best;
}

__attribute__((target("avx2"), noinline)) static float streamSum(const float *p, int64_t n) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t i = 0; i + 32 <= n; i += 32)
    for (int j = 0; j < 4; ++j)
      acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(p + i + 8 * j));
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  return out[0];
}

/// GB/s reading 1 GiB split over every core (best of 5, pages touched first).
static double measureReadGBps() {
  const int64_t n = (int64_t(1) << 30) / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  int nt = numThreads();
  double best = 0;
  std::atomic<float> sink{0};
  for (int rep = 0; rep < 5; ++rep) {
    auto start = Clock::now();
    onEveryCore([&](int t) {
      int64_t chunk = n / nt;
      sink = sink + streamSum(buf.data() + t * chunk, chunk);
    });
    best = std::max(best, double(n) * sizeof(float) / secondsSince(start) / 1e9);
  }
  return best;
}

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

/// Zipf(s = 1.2) routing: k distinct experts per token, the probability of
/// expert e proportional to 1 / (e + 1)^1.2; weights positive, summing to 1.
static void zipfRouting(const Shape &s, Tensor &ids, Tensor &w) {
  Rng rng(7);
  std::vector<double> p(s.e);
  for (int64_t e = 0; e < s.e; ++e)
    p[e] = 1.0 / std::pow(double(e + 1), 1.2);
  ids = Tensor::ints(DType::I32, {s.t, s.k});
  w = Tensor::f32({s.t, s.k});
  for (int64_t t = 0; t < s.t; ++t) {
    std::vector<double> q = p;
    double sum = 0;
    for (int64_t j = 0; j < s.k; ++j) {
      double total = std::accumulate(q.begin(), q.end(), 0.0), u = rng.uniform(0.0f, 1.0f) * total;
      int64_t e = 0;
      while (e + 1 < s.e && (u -= q[e]) > 0)
        ++e;
      while (q[e] == 0) // rounding landed on a taken expert
        e = (e + 1) % s.e;
      q[e] = 0;
      ids.i[t * s.k + j] = e;
      double v = 0.5 + rng.uniform(0.0f, 1.0f);
      w.f[t * s.k + j] = float(v);
      sum += v;
    }
    for (int64_t j = 0; j < s.k; ++j)
      w.f[t * s.k + j] = float(w.f[t * s.k + j] / sum);
  }
}

/// The eager per-expert loop with OpenBLAS: what users run today.
struct Baseline {
  const Shape &s;
  std::vector<float> logits, xe, g, u, ye;
  std::vector<int32_t> ids;
  std::vector<float> wts;
  std::vector<std::vector<int64_t>> tokensOf;
  std::vector<std::vector<float>> weightOf;

  explicit Baseline(const Shape &shape) : s(shape) {}

  void route(const float *x, const float *gate) {
    logits.resize(s.t * s.e);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.t), int(s.e), int(s.h), 1.0f, x,
                int(s.h), gate, int(s.h), 0.0f, logits.data(), int(s.e));
    ids.resize(s.t * s.k);
    wts.resize(s.t * s.k);
    std::vector<int32_t> order(s.e);
    for (int64_t t = 0; t < s.t; ++t) {
      float *l = &logits[t * s.e];
      float mx = *std::max_element(l, l + s.e), sum = 0;
      for (int64_t e = 0; e < s.e; ++e)
        sum += (l[e] = std::exp(l[e] - mx));
      for (int64_t e = 0; e < s.e; ++e)
        l[e] /= sum;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + s.k, order.end(),
                        [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
      float top = 0;
      for (int64_t j = 0; j < s.k; ++j)
        top += l[order[j]];
      for (int64_t j = 0; j < s.k; ++j) {
        ids[t * s.k + j] = order[j];
        wts[t * s.k + j] = l[order[j]] / top;
      }
    }
  }

  void run(const float *x, const float *gate, const int32_t *givenIds, const float *givenW,
           const float *w1, const float *w3, const float *w2, float *out) {
    if (gate)
      route(x, gate);
    const int32_t *id = gate ? ids.data() : givenIds;
    const float *wt = gate ? wts.data() : givenW;
    tokensOf.assign(s.e, {});
    weightOf.assign(s.e, {});
    for (int64_t t = 0; t < s.t; ++t)
      for (int64_t j = 0; j < s.k; ++j) {
        tokensOf[id[t * s.k + j]].push_back(t);
        weightOf[id[t * s.k + j]].push_back(wt[t * s.k + j]);
      }
    std::fill(out, out + s.t * s.h, 0.0f);
    for (int64_t e = 0; e < s.e; ++e) {
      int64_t n = int64_t(tokensOf[e].size());
      if (n == 0)
        continue;
      xe.resize(n * s.h);
      g.resize(n * s.inter);
      u.resize(n * s.inter);
      ye.resize(n * s.h);
      for (int64_t r = 0; r < n; ++r)
        std::copy_n(x + tokensOf[e][r] * s.h, s.h, &xe[r * s.h]);
      const float *e1 = w1 + e * s.inter * s.h, *e3 = w3 + e * s.inter * s.h,
                  *e2 = w2 + e * s.h * s.inter;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(s.inter), int(s.h), 1.0f,
                  xe.data(), int(s.h), e1, int(s.h), 0.0f, g.data(), int(s.inter));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(s.inter), int(s.h), 1.0f,
                  xe.data(), int(s.h), e3, int(s.h), 0.0f, u.data(), int(s.inter));
      for (int64_t i = 0; i < n * s.inter; ++i)
        g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(s.h), int(s.inter), 1.0f,
                  g.data(), int(s.inter), e2, int(s.inter), 0.0f, ye.data(), int(s.h));
      for (int64_t r = 0; r < n; ++r) {
        float wr = weightOf[e][r];
        float *o = out + tokensOf[e][r] * s.h;
        for (int64_t c = 0; c < s.h; ++c)
          o[c] += wr * ye[r * s.h + c];
      }
    }
  }
};

struct Result {
  Shape shape;
  double oursUs = 0, baselineUs = 0, oursErr = 0, baselineErr = 0, compileS = 0;
  double flops = 0, bytes = 0;
  // The prepared layer (0 with --unprepared): packing time and bytes.
  double prepareMs = 0, packedBytes = 0;
};

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// max |got - want| / max |want| over the first `rows` rows.
static double relError(const float *got, const std::vector<float> &want, int64_t n) {
  double err = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    mx = std::max(mx, double(std::fabs(want[i])));
  }
  return mx > 0 ? err / mx : err;
}

static bool runCase(mlir::MLIRContext &ctx, const Shape &s, Result &res) {
  res.shape = s;
  std::string text = layerText(s);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &ctx);
  if (!module)
    return false;
  std::unique_ptr<CompiledFunction> fn;
  std::unique_ptr<PreparedFunction> prep;
  auto start = Clock::now();
  auto options = CpuPipelineOptions::createFromString(pipelineOptions);
  if (!options) {
    llvm::errs() << "bad --pipeline-options\n";
    return false;
  }
  Status st = unprepared ? CompiledFunction::compile(*module, "main", *options, false, fn)
                         : PreparedFunction::compile(*module, "main", *options, false, prep);
  res.compileS = secondsSince(start);
  if (!st.ok()) {
    llvm::errs() << s.name << ": " << st.error << "\n";
    return false;
  }

  // Inputs.
  Tensor x = randomFloats({s.t, s.h}, 1), gate = randomFloats({s.e, s.h}, 2);
  Tensor w1 = randomFloats({s.e, s.inter, s.h}, 3), w3 = randomFloats({s.e, s.inter, s.h}, 4),
         w2 = randomFloats({s.e, s.h, s.inter}, 5);
  Tensor ids, w;
  if (s.zipf)
    zipfRouting(s, ids, w);
  std::vector<int32_t> ids32(ids.i.begin(), ids.i.end());
  std::vector<Tensor> args = s.zipf ? std::vector<Tensor>{x, ids, w, w1, w3, w2}
                                    : std::vector<Tensor>{x, gate, w1, w3, w2};
  std::vector<const void *> argData;
  std::vector<std::vector<int64_t>> argShapes;
  for (const Tensor &a : args) {
    argShapes.push_back(a.shape);
    argData.push_back(a.dtype == DType::F32 ? static_cast<const void *>(a.f.data())
                                            : static_cast<const void *>(nullptr));
  }
  if (s.zipf)
    argData[1] = ids32.data();
  std::vector<float> ours(s.t * s.h), base(s.t * s.h);
  // The prepared layer: the weights packed once (not timed as a run).
  std::vector<moe_tensor> weightTensors, activationTensors;
  std::unique_ptr<moe_prepared, void (*)(moe_prepared *)> prepared(nullptr, moe_prepared_free);
  if (prep) {
    auto tensorOf = [&](size_t i) {
      return moe_tensor{const_cast<void *>(argData[i]), moe_dtype(args[i].dtype),
                        int32_t(argShapes[i].size()), argShapes[i].data()};
    };
    for (size_t i : prep->weightIndices())
      weightTensors.push_back(tensorOf(i));
    for (size_t i : prep->activationIndices())
      activationTensors.push_back(tensorOf(i));
    moe_prepared *p = nullptr;
    st = prep->prepareTensors(weightTensors.data(), weightTensors.size(), &p);
    if (!st.ok()) {
      llvm::errs() << s.name << ": " << st.error << "\n";
      return false;
    }
    prepared.reset(p);
    res.prepareMs = 1e3 * moe_prepared_seconds(p);
    res.packedBytes = double(moe_prepared_bytes(p));
  }
  int64_t outShape[2] = {s.t, s.h};
  moe_tensor outTensor{ours.data(), MOE_F32, 2, outShape};
  auto runOurs = [&]() -> bool {
    Status r = prep ? prep->runTensors(prepared.get(), activationTensors.data(),
                                       activationTensors.size(), &outTensor, 1)
                    : fn->runBuffers(argData, argShapes, {ours.data()}, {{s.t, s.h}});
    if (!r.ok())
      llvm::errs() << s.name << ": " << r.error << "\n";
    return r.ok();
  };
  Baseline baseline(s);
  auto runBase = [&]() {
    baseline.run(x.f.data(), s.zipf ? nullptr : gate.f.data(), ids32.data(), w.f.data(),
                 w1.f.data(), w3.f.data(), w2.f.data(), base.data());
  };

  // Check both against the reference on the first tokens (every token's
  // output depends only on its own row for these layers).
  int64_t tc = std::min<int64_t>(s.t, checkTokens);
  std::vector<Tensor> refArgs = args;
  for (size_t a = 0; a < refArgs.size(); ++a) {
    if (refArgs[a].shape[0] != s.t || a >= (s.zipf ? 3u : 1u))
      continue;
    refArgs[a].shape[0] = tc;
    refArgs[a].f.resize(refArgs[a].f.empty() ? 0 : tc * refArgs[a].shape[1]);
    refArgs[a].i.resize(refArgs[a].i.empty() ? 0 : tc * refArgs[a].shape[1]);
  }
  std::vector<Tensor> want;
  st = ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("main"), refArgs, want);
  if (!st.ok() || !runOurs()) {
    llvm::errs() << s.name << ": " << st.error << "\n";
    return false;
  }
  runBase();
  res.oursErr = relError(ours.data(), want[0].f, tc * s.h);
  res.baselineErr = relError(base.data(), want[0].f, tc * s.h);

  // Timing in alternating blocks (ours, then the baseline), three rounds,
  // the first run of each block a warm-up. Not run-by-run round-robin:
  // OpenBLAS's worker threads busy-wait for ~2^28 cycles (~0.1 s) after
  // each call, so a run of ours right after a baseline call shares the
  // cores with spinning threads (MIX-D measured 1.9x slower that way). The
  // pause before each block of ours lets them go to sleep; our pool sleeps
  // on a condition variable and does not disturb the baseline.
  int reps = repeat > 0 ? int(repeat) : (s.decode() ? 200 : 9);
  const int rounds = 3;
  int perBlock = std::max(1, (reps + rounds - 1) / rounds);
  std::vector<double> tOurs, tBase;
  for (int r = 0; r < rounds; ++r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    for (int i = 0; i <= perBlock; ++i) {
      auto t0 = Clock::now();
      if (!runOurs())
        return false;
      if (i > 0)
        tOurs.push_back(secondsSince(t0) * 1e6);
    }
    for (int i = 0; i <= perBlock; ++i) {
      auto t0 = Clock::now();
      runBase();
      if (i > 0)
        tBase.push_back(secondsSince(t0) * 1e6);
    }
  }
  res.oursUs = median(tOurs);
  res.baselineUs = median(tBase);

  // FLOPs as the issue defines them; bytes: the expert weights actually
  // touched (experts with at least one token) plus the router's.
  res.flops = 2.0 * s.t * s.h * s.e + 6.0 * s.t * s.k * s.h * s.inter;
  std::vector<bool> used(s.e, false);
  const std::vector<int32_t> &routed = s.zipf ? ids32 : baseline.ids;
  for (int32_t e : routed)
    if (e >= 0)
      used[e] = true;
  int64_t touched = std::count(used.begin(), used.end(), true);
  res.bytes = 4.0 * (3.0 * touched * s.h * s.inter + (s.zipf ? 0 : s.e * s.h));
  return true;
}

int main(int argc, char **argv) {
  // Only our options in --help, not every LLVM backend flag linked in.
  llvm::cl::HideUnrelatedOptions(benchCategory);
  llvm::cl::ParseCommandLineOptions(argc, argv, "moe-bench: compiled MoE layers vs OpenBLAS\n");
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  if (contention)
    return runContentionBench(ctx, pipelineOptions);
  openblas_set_num_threads(numThreads());

  std::vector<Shape> shapes = {
      {"MIX-P", 8, 2, 1024, 3584, 512, false},    {"MIX-P-zipf", 8, 2, 1024, 3584, 512, true},
      {"MIX-D", 8, 2, 1024, 3584, 8, false},      {"DS-P", 64, 6, 1024, 256, 1024, false},
      {"DS-P-zipf", 64, 6, 1024, 256, 1024, true}, {"DS-D", 64, 6, 1024, 256, 8, false},
      {"QW-P", 128, 8, 512, 192, 512, false},     {"QW-P-zipf", 128, 8, 512, 192, 512, true},
      {"QW-D", 128, 8, 512, 192, 1, false},
  };
  if (!caseFilter.empty()) {
    llvm::SmallVector<llvm::StringRef> wanted;
    llvm::StringRef(caseFilter).split(wanted, ',');
    llvm::erase_if(shapes, [&](const Shape &s) { return !llvm::is_contained(wanted, s.name); });
  }

  double peak = measurePeakGflops(), bw = measureReadGBps();
  if (json)
    llvm::outs() << bench::jsonLine(
        bench::machineRecord(numThreads(), peak, bw, openblas_get_corename()));
  else
    llvm::outs() << llvm::formatv("moe-bench: {0} threads, FP32 FMA peak {1:f1} GFLOP/s, read "
                                  "bandwidth {2:f1} GB/s, OpenBLAS core {3}\n\n",
                                  numThreads(), peak, bw, openblas_get_corename());
  if (!json)
    llvm::outs() << "case          T     ours_us  baseline_us  speedup  GFLOP/s  %peak   GB/s  "
                    "%bw   err_ours  err_base\n";
  double mixCompile = -1;
  bool ok = true;
  for (const Shape &s : shapes) {
    Result r;
    if (!runCase(ctx, s, r)) {
      ok = false;
      continue;
    }
    if (s.name == "MIX-P")
      mixCompile = r.compileS;
    double gflops = r.flops / (r.oursUs * 1e3), gbps = r.bytes / (r.oursUs * 1e3);
    double speedup = r.baselineUs / r.oursUs;
    if (json) {
      bench::CaseFigures figures;
      figures.name = s.name;
      figures.tokens = s.t;
      figures.oursUs = r.oursUs;
      figures.baselineUs = r.baselineUs;
      figures.speedup = speedup;
      figures.gflops = gflops;
      figures.pctPeak = 100 * gflops / peak;
      if (s.decode()) {
        figures.gbps = gbps;
        figures.pctBandwidth = 100 * gbps / bw;
      }
      figures.oursMaxRelErr = r.oursErr;
      figures.baselineMaxRelErr = r.baselineErr;
      llvm::outs() << bench::jsonLine(bench::caseRecord(figures));
    } else {
      llvm::outs() << llvm::format("%-11s %5lld %11.1f %12.1f %8.2f %8.1f %6.1f", s.name.c_str(),
                                   (long long)s.t, r.oursUs, r.baselineUs, speedup, gflops,
                                   100 * gflops / peak);
      if (s.decode())
        llvm::outs() << llvm::format(" %6.1f %5.1f", gbps, 100 * gbps / bw);
      else
        llvm::outs() << "      -     -";
      llvm::outs() << llvm::format("   %.1e   %.1e", r.oursErr, r.baselineErr);
      if (!unprepared)
        llvm::outs() << llvm::format("   prepare %.1f ms, %.1f MiB packed", r.prepareMs,
                                     r.packedBytes / (1 << 20));
      llvm::outs() << "\n";
    }
    if (r.oursErr > 1e-4 || r.baselineErr > 1e-4) {
      llvm::errs() << s.name << ": result differs from the reference\n";
      ok = false;
    }
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
