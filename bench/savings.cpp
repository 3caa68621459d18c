//===- savings.cpp - do skipped decisions save their work? ----------------===//
//
//   moe-savings [--tokens=T] [--repeat=N] [--family=all|null-skip|capacity|compressed|stacks]
//
// Six families, each timed against its own r = 0 case in the same run:
//  * null experts: 8 SwiGLU experts + 8 null experts, oracle routing, k = 2;
//    a fraction r of the (token, slot) pairs go to null experts;
//  * skip block: a Mixture-of-Depths block (capacity fraction 1 - r) around
//    a dense SwiGLU FFN; a fraction r of the tokens skip it;
//  * capacity: the null-experts layer's 8 SwiGLU experts under Zipf-skewed
//    oracle routing (k = 2), dropless vs moe.capacity_drop vs
//    moe.capacity_reroute (cf = 1); r is the fraction of pairs dropped, and
//    the expert loads' max/mean is printed before and after;
//  * compressed: 8 SwiGLU experts (I = 768) + their 8 compressed stand-ins
//    (I = 192), oracle routing k = 2, moe.compress_slots keep = 2, 1, 0; r
//    is 1 - the FFN work kept, (keep * I + (2 - keep) * 192) / (2 * I);
//  * skipdecode: a stack of 4 dense SwiGLU FFNs under SkipDecode exit
//    schedules (moe.exit_layers + path_select per layer);
//  * act-halting: the same stack as an ACT moe.halting_stack whose tokens
//    halt after 4, 3, 2 or 1 layers.
// Target (issues 5, 29): time(r) / time(0) <= (1 - r) + 0.05, r the
// fraction of the work skipped. Every compiled result is checked against
// the reference interpreter first.
//
//===----------------------------------------------------------------------===//

#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Reference/Kernels.h"
#include "moe/Support/Random.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>

using namespace moe;
using moe::DType;
using moe::Tensor;

static llvm::cl::opt<int64_t> tokens("tokens", llvm::cl::init(512));
static llvm::cl::opt<int> repeat("repeat", llvm::cl::init(15));
static llvm::cl::opt<std::string>
    family("family", llvm::cl::init("all"),
           llvm::cl::desc("all, null-skip, capacity, compressed or stacks"));
static constexpr int64_t H = 256, I = 768;

static std::string nullLayer() {
  return R"mlir(
func.func @main(%x: tensor<?x256xf32>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                %w1: tensor<8x768x256xf32>, %w3: tensor<8x768x256xf32>,
                %w2: tensor<8x256x768xf32>) -> tensor<?x256xf32> {
  %ffn = moe.ffn_experts swiglu w1(%w1 : tensor<8x768x256xf32>) w3(%w3 : tensor<8x768x256xf32>)
      w2(%w2 : tensor<8x256x768xf32>) -> !moe.experts<8, 256>
  %null = moe.zero_experts : !moe.experts<8, 256>
  %y = moe.layer %x, %ids, %w experts(%ffn, %null : !moe.experts<8, 256>, !moe.experts<8, 256>)
      : tensor<?x256xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
})mlir";
}

static std::string skipBlock(double fraction) {
  std::string f = llvm::formatv("{0:e}", fraction).str();
  return R"mlir(
func.func @main(%x: tensor<?x256xf32>, %r: tensor<256xf32>, %w1: tensor<768x256xf32>,
                %w3: tensor<768x256xf32>, %w2: tensor<256x768xf32>) -> tensor<?x256xf32> {
  %y = moe.skip_block %x, %r {capacity_fraction = )mlir" +
         f + R"mlir( : f32}
      : tensor<?x256xf32>, tensor<256xf32> -> tensor<?x256xf32> {
  ^bb0(%xs: tensor<?x256xf32>):
    %f = moe.ffn swiglu %xs w1(%w1 : tensor<768x256xf32>) w3(%w3 : tensor<768x256xf32>)
        w2(%w2 : tensor<256x768xf32>) : tensor<?x256xf32> -> tensor<?x256xf32>
    moe.yield %f : tensor<?x256xf32>
  }
  return %y : tensor<?x256xf32>
})mlir";
}

static constexpr int kStackLayers = 4;

/// The weights of a stack of kStackLayers dense SwiGLU FFNs, as arguments.
static std::string stackWeightArgs() {
  std::string args;
  for (int n = 0; n < kStackLayers; ++n)
    args += llvm::formatv(",\n    %w1_{0}: tensor<768x256xf32>, %w3_{0}: tensor<768x256xf32>, "
                          "%w2_{0}: tensor<256x768xf32>",
                          n)
                .str();
  return args;
}

/// Layer n's residual branch (a region body) on `arg`.
static std::string stackLayerBody(int n) {
  return llvm::formatv(R"mlir(
  ^bb0(%xs: tensor<?x256xf32>):
    %f = moe.ffn swiglu %xs w1(%w1_{0} : tensor<768x256xf32>) w3(%w3_{0} : tensor<768x256xf32>)
        w2(%w2_{0} : tensor<256x768xf32>) : tensor<?x256xf32> -> tensor<?x256xf32>
    moe.yield %f : tensor<?x256xf32>
  )mlir",
                       n)
      .str();
}

/// SkipDecode over the stack: exit layers from positions 0..T-1 falling
/// from maxExit to minExit over T positions.
static std::string skipDecodeStack(int maxExit, int minExit, int64_t decay) {
  std::string text = "func.func @main(%x: tensor<?x256xf32>, %pos: tensor<?xi32>" +
                     stackWeightArgs() + ") -> tensor<?x256xf32> {\n";
  text += llvm::formatv("  %e = moe.exit_layers %pos {{max_exit = {0}, min_exit = {1}, "
                        "decay_positions = {2}} : tensor<?xi32> -> tensor<?xi32>\n",
                        maxExit, minExit, decay)
              .str();
  std::string h = "%x";
  for (int n = 0; n < kStackLayers; ++n) {
    text += llvm::formatv("  %p{0} = moe.exit_paths %e {{layer = {0}} : tensor<?xi32> -> "
                          "tensor<?xi32>\n  %h{0} = moe.path_select {1}, %p{0} : "
                          "tensor<?x256xf32>, tensor<?xi32> -> tensor<?x256xf32> {{",
                          n, h)
                .str();
    text += stackLayerBody(n) + "}\n";
    h = "%h" + std::to_string(n);
  }
  return text + "  return " + h + " : tensor<?x256xf32>\n}\n";
}

/// ACT over the stack; the halting biases decide the layer every token
/// halts at (halt_w = 0).
static std::string haltingStack() {
  std::string text = "func.func @main(%x: tensor<?x256xf32>, %hw: tensor<4x256xf32>, "
                     "%hb: tensor<4xf32>" +
                     stackWeightArgs() +
                     ") -> (tensor<?x256xf32>, tensor<?xi32>) {\n"
                     "  %y, %n = moe.halting_stack %x, %hw, %hb {epsilon = 0.01 : f32} : "
                     "tensor<?x256xf32>, tensor<4x256xf32>, tensor<4xf32> -> "
                     "tensor<?x256xf32>, tensor<?xi32> {";
  for (int n = 0; n < kStackLayers; ++n)
    text += (n ? "}, {" : "") + stackLayerBody(n);
  return text + "}\n  return %y, %n : tensor<?x256xf32>, tensor<?xi32>\n}\n";
}

/// The stack's weights (FP32, seeded).
static std::vector<Tensor> stackWeights() {
  std::vector<Tensor> w;
  for (int n = 0; n < kStackLayers; ++n) {
    w.push_back(randomFloats({I, H}, 10 + 3 * n));
    w.push_back(randomFloats({I, H}, 11 + 3 * n));
    w.push_back(randomFloats({H, I}, 12 + 3 * n));
  }
  return w;
}

/// The capacity family's layer: `capacityOp` ("" for dropless) between the
/// oracle routing and the layer.
static std::string capacityLayer(const std::string &capacityOp) {
  std::string routing = "%ids0, %w0";
  if (capacityOp == "drop")
    routing = R"mlir(%ids, %w = moe.capacity_drop %ids0, %w0 {num_experts = 8, capacity_factor = 1.0 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  )mlir";
  else if (capacityOp == "reroute")
    routing = R"mlir(%ids, %w = moe.capacity_reroute %ids0, %w0, %scores {capacity_factor = 1.0 : f32}
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x8xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  )mlir";
  std::string use = capacityOp.empty() ? "%ids0, %w0" : "%ids, %w";
  return R"mlir(
func.func @main(%x: tensor<?x256xf32>, %ids0: tensor<?x2xi32>, %w0: tensor<?x2xf32>,
                %scores: tensor<?x8xf32>, %w1: tensor<8x768x256xf32>,
                %w3: tensor<8x768x256xf32>, %w2: tensor<8x256x768xf32>) -> tensor<?x256xf32> {
  )mlir" + (capacityOp.empty() ? std::string() : routing) +
         R"mlir(%ffn = moe.ffn_experts swiglu w1(%w1 : tensor<8x768x256xf32>) w3(%w3 : tensor<8x768x256xf32>)
      w2(%w2 : tensor<8x256x768xf32>) -> !moe.experts<8, 256>
  %y = moe.layer %x, )mlir" +
         use + R"mlir( experts(%ffn : !moe.experts<8, 256>)
      : tensor<?x256xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
})mlir";
}

/// Zipf-skewed top-2 routing over 8 experts: scores = softmax(log prior +
/// Gumbel noise) with prior(e) ∝ 1 / (e + 1)^1.2, ids the top 2, weights
/// their scores.
static ref::Routing zipfRouting(int64_t t, Tensor &scores) {
  const int64_t e = 8, k = 2;
  Rng rng(7);
  ref::Routing r{Tensor::ints(DType::I32, {t, k}), Tensor::f32({t, k})};
  scores = Tensor::f32({t, e});
  for (int64_t i = 0; i < t; ++i) {
    std::vector<double> z(e);
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j < e; ++j) {
      double u = std::max(double(rng.uniform(0.0f, 1.0f)), 1e-12);
      z[j] = -1.2 * std::log(double(j + 1)) - std::log(-std::log(u));
      mx = std::max(mx, z[j]);
    }
    for (double &v : z)
      sum += (v = std::exp(v - mx));
    std::vector<int64_t> order(e);
    for (int64_t j = 0; j < e; ++j) {
      scores.f[i * e + j] = float(z[j] / sum);
      order[j] = j;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return z[a] > z[b]; });
    for (int64_t s = 0; s < k; ++s) {
      r.ids.i[i * k + s] = order[s];
      r.weights.f[i * k + s] = scores.f[i * e + order[s]];
    }
  }
  return r;
}

/// max / mean of the per-expert pair counts, and the pairs used.
static std::pair<double, int64_t> loadImbalance(const Tensor &ids, int64_t e) {
  std::vector<int64_t> load(e, 0);
  int64_t used = 0;
  for (int64_t id : ids.i)
    if (id >= 0) {
      ++load[id];
      ++used;
    }
  double mean = double(used) / double(e);
  return {mean > 0 ? double(*std::max_element(load.begin(), load.end())) / mean : 0.0, used};
}

static constexpr int64_t ICompressed = 192;

/// The compressed family's layer: slots beyond the top `keep` run the
/// stand-ins (ids 8 + e).
static std::string compressedLayer(int keep) {
  return R"mlir(
func.func @main(%x: tensor<?x256xf32>, %ids0: tensor<?x2xi32>, %w0: tensor<?x2xf32>,
                %w1: tensor<8x768x256xf32>, %w3: tensor<8x768x256xf32>,
                %w2: tensor<8x256x768xf32>, %c1: tensor<8x192x256xf32>,
                %c3: tensor<8x192x256xf32>, %c2: tensor<8x256x192xf32>) -> tensor<?x256xf32> {
  %ids, %w = moe.compress_slots %ids0, %w0 {keep = )mlir" +
         std::to_string(keep) + R"mlir(, compressed = array<i64: 0, 1, 2, 3, 4, 5, 6, 7>}
      : tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  %full = moe.ffn_experts swiglu w1(%w1 : tensor<8x768x256xf32>) w3(%w3 : tensor<8x768x256xf32>)
      w2(%w2 : tensor<8x256x768xf32>) -> !moe.experts<8, 256>
  %small = moe.ffn_experts swiglu w1(%c1 : tensor<8x192x256xf32>) w3(%c3 : tensor<8x192x256xf32>)
      w2(%c2 : tensor<8x256x192xf32>) -> !moe.experts<8, 256>
  %y = moe.layer %x, %ids, %w experts(%full, %small : !moe.experts<8, 256>, !moe.experts<8, 256>)
      : tensor<?x256xf32>, tensor<?x2xi32>, tensor<?x2xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
})mlir";
}

/// One case: its compiled function, inputs, accuracy and timings.
struct Case {
  std::unique_ptr<CompiledFunction> fn;
  std::vector<Tensor> args;
  double relError = 0;
  std::vector<double> times;
  double median() {
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }
};

/// Compiles `text` and checks it against the reference on `args`.
static bool prepare(mlir::MLIRContext &ctx, const std::string &text, std::vector<Tensor> args,
                    Case &c) {
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, &ctx);
  if (!module)
    return false;
  Status s = CompiledFunction::compile(*module, "main", CpuPipelineOptions(), false, c.fn);
  std::vector<Tensor> got, want;
  if (!s.ok() || !(s = c.fn->run(args, got)).ok() ||
      !(s = ref::interpret(module->lookupSymbol<mlir::func::FuncOp>("main"), args, want)).ok()) {
    llvm::errs() << s.error << "\n";
    return false;
  }
  double err = 0, mx = 0;
  for (size_t i = 0; i < got[0].f.size(); ++i) {
    err = std::max(err, double(std::fabs(got[0].f[i] - want[0].f[i])));
    mx = std::max(mx, double(std::fabs(want[0].f[i])));
  }
  c.relError = mx > 0 ? err / mx : err;
  c.args = std::move(args);
  return true;
}

/// Times the cases round-robin (one run of each per round), so that a
/// machine whose speed drifts over seconds affects every case alike.
static bool timeInterleaved(std::vector<Case> &cases) {
  std::vector<Tensor> out;
  for (int round = 0; round < repeat + 2; ++round)
    for (Case &c : cases) {
      auto start = std::chrono::steady_clock::now();
      if (!c.fn->run(c.args, out).ok())
        return false;
      if (round >= 2) // warm-up rounds
        c.times.push_back(std::chrono::duration<double, std::micro>(
                              std::chrono::steady_clock::now() - start)
                              .count());
    }
  return true;
}

/// The two stack families: SkipDecode (exit schedules whose mean exit is
/// 4, 3, 2, 1 layers of 4: (max, min) exit = (4, 4), (4, 2), (3, 1),
/// (2, 0) over positions 0..T-1) and ACT (every token halts after 4, 3, 2
/// or 1 layers). r is the fraction of (token, layer) work skipped, counted
/// from the schedule.
template <typename Report>
static bool measureStacks(mlir::MLIRContext &ctx, int64_t t, Report report) {
  const int exitRange[4][2] = {{4, 4}, {4, 2}, {3, 1}, {2, 0}};
  std::vector<Case> exitCases(4), haltCases(4);
  double exitSkipped[4], haltSkipped[4];
  Tensor positions = Tensor::ints(DType::I32, {t});
  for (int64_t i = 0; i < t; ++i)
    positions.i[i] = int32_t(i);
  for (int c = 0; c < 4; ++c) {
    auto [maxExit, minExit] = exitRange[c];
    double layersRun = 0;
    for (int64_t i = 0; i < t; ++i)
      layersRun += double(maxExit - (maxExit - minExit) * i / t);
    exitSkipped[c] = 1.0 - layersRun / double(kStackLayers * t);
    std::vector<Tensor> args = {randomFloats({t, H}, 1), positions};
    for (Tensor &w : stackWeights())
      args.push_back(std::move(w));
    if (!prepare(ctx, skipDecodeStack(maxExit, minExit, t), std::move(args), exitCases[c]))
      return false;
    int haltAfter = kStackLayers - c;
    Tensor bias = Tensor::f32({kStackLayers});
    for (int n = 0; n < kStackLayers; ++n)
      bias.f[n] = n + 1 < haltAfter ? -30.0f : 30.0f;
    haltSkipped[c] = 1.0 - double(haltAfter) / kStackLayers;
    args = {randomFloats({t, H}, 1), Tensor::f32({kStackLayers, H}), bias};
    for (Tensor &w : stackWeights())
      args.push_back(std::move(w));
    if (!prepare(ctx, haltingStack(), std::move(args), haltCases[c]))
      return false;
  }
  if (!timeInterleaved(exitCases) || !timeInterleaved(haltCases))
    return false;
  for (int c = 0; c < 4; ++c)
    report("skipdecode", exitSkipped[c], {exitCases[c].median(), exitCases[c].relError},
           exitCases[0].median());
  for (int c = 0; c < 4; ++c)
    report("act-halting", haltSkipped[c], {haltCases[c].median(), haltCases[c].relError},
           haltCases[0].median());
  return true;
}

/// The compressed family: keep = 2 (every slot in full), 1, 0 on one
/// oracle routing whose two slots name different experts. r is 1 - the FFN
/// work kept per token, (keep * I + (2 - keep) * ICompressed) / (2 * I).
template <typename Report>
static bool measureCompressed(mlir::MLIRContext &ctx, int64_t t, Report report) {
  std::vector<Case> cases(3);
  Tensor ids = Tensor::ints(DType::I32, {t, 2});
  Rng rng(11);
  for (int64_t i = 0; i < t; ++i) {
    ids.i[2 * i] = rng.integer(0, 8);
    ids.i[2 * i + 1] = (ids.i[2 * i] + 1 + rng.integer(0, 7)) % 8; // another expert
  }
  for (int c = 0; c < 3; ++c)
    if (!prepare(ctx, compressedLayer(2 - c),
                 {randomFloats({t, H}, 1), ids, randomFloats({t, 2}, 2),
                  randomFloats({8, I, H}, 3), randomFloats({8, I, H}, 4),
                  randomFloats({8, H, I}, 5), randomFloats({8, ICompressed, H}, 6),
                  randomFloats({8, ICompressed, H}, 7), randomFloats({8, H, ICompressed}, 8)},
                 cases[c]))
      return false;
  if (!timeInterleaved(cases))
    return false;
  for (int c = 0; c < 3; ++c) {
    int keep = 2 - c;
    double kept = double(keep * I + (2 - keep) * ICompressed) / double(2 * I);
    std::string name = "compress-k" + std::to_string(keep);
    report(name.c_str(), 1.0 - kept, {cases[c].median(), cases[c].relError}, cases[0].median());
  }
  return true;
}

/// The null-experts and skip-block families: a fraction r in {0, 0.25,
/// 0.5, 0.75} of the slots on null experts, of the tokens skipping the block.
template <typename Report>
static bool measureNullAndSkip(mlir::MLIRContext &ctx, int64_t t, Report report) {
  const double rates[] = {0.0, 0.25, 0.5, 0.75};
  // Null experts: fraction r of the slots routed to experts 8..15 (null).
  std::vector<Case> nullCases(4), skipCases(4);
  for (int c = 0; c < 4; ++c) {
    double r = rates[c];
    Tensor ids = Tensor::ints(DType::I32, {t, 2});
    Rng rng(42);
    int64_t nullSlots = int64_t(std::llround(r * double(2 * t)));
    std::vector<int64_t> order(2 * t);
    for (int64_t i = 0; i < 2 * t; ++i)
      order[i] = i;
    for (int64_t i = 2 * t - 1; i > 0; --i)
      std::swap(order[i], order[rng.integer(0, i + 1)]);
    for (int64_t i = 0; i < 2 * t; ++i)
      ids.i[order[i]] = i < nullSlots ? 8 + rng.integer(0, 8) : rng.integer(0, 8);
    if (!prepare(ctx, nullLayer(),
                 {randomFloats({t, H}, 1), ids, randomFloats({t, 2}, 2), randomFloats({8, I, H}, 3),
                  randomFloats({8, I, H}, 4), randomFloats({8, H, I}, 5)},
                 nullCases[c]))
      return false;
    // Skip block: capacity fraction 1 - r.
    if (!prepare(ctx, skipBlock(1.0 - r),
                 {randomFloats({t, H}, 1), randomFloats({H}, 2), randomFloats({I, H}, 3),
                  randomFloats({I, H}, 4), randomFloats({H, I}, 5)},
                 skipCases[c]))
      return false;
  }
  if (!timeInterleaved(nullCases) || !timeInterleaved(skipCases))
    return false;
  for (auto [name, cases] : {std::make_pair("null-experts", &nullCases),
                             std::make_pair("skip-block", &skipCases)}) {
    double base = (*cases)[0].median();
    for (int c = 0; c < 4; ++c)
      report(name, rates[c], {(*cases)[c].median(), (*cases)[c].relError}, base);
  }
  return true;
}

/// The capacity family: dropless, capacity_drop and capacity_reroute (cf =
/// 1) on one Zipf-skewed routing, with the expert loads' max/mean.
template <typename Report>
static bool measureCapacity(mlir::MLIRContext &ctx, int64_t t, Report report) {
  // Capacity: dropless, drop, reroute on one Zipf-skewed routing.
  const char *capacityNames[] = {"dropless", "cap-drop", "cap-reroute"};
  const char *capacityOps[] = {"", "drop", "reroute"};
  std::vector<Case> capacityCases(3);
  Tensor scores;
  ref::Routing zipf = zipfRouting(t, scores);
  ref::Routing dropped, rerouted;
  if (!ref::capacityDrop(zipf, 8, 1.0f, dropped).ok() ||
      !ref::capacityReroute(zipf, scores, 1.0f, rerouted).ok())
    return false;
  const Tensor *capacityIds[] = {&zipf.ids, &dropped.ids, &rerouted.ids};
  for (int c = 0; c < 3; ++c)
    if (!prepare(ctx, capacityLayer(capacityOps[c]),
                 {randomFloats({t, H}, 1), zipf.ids, zipf.weights, scores,
                  randomFloats({8, I, H}, 3), randomFloats({8, I, H}, 4),
                  randomFloats({8, H, I}, 5)},
                 capacityCases[c]))
      return false;
  if (!timeInterleaved(capacityCases))
    return false;
  // r = the fraction of the dropless routing's pairs a capacity op drops.
  int64_t allPairs = loadImbalance(zipf.ids, 8).second;
  for (int c = 0; c < 3; ++c) {
    auto [imbalance, used] = loadImbalance(*capacityIds[c], 8);
    double r = 1.0 - double(used) / double(allPairs);
    report(capacityNames[c], r, {capacityCases[c].median(), capacityCases[c].relError},
           capacityCases[0].median());
    llvm::outs() << llvm::format("  %-12s expert load max/mean %.2f, pairs %lld of %lld\n",
                                 capacityNames[c], imbalance, (long long)used,
                                 (long long)allPairs);
  }
  return true;
}

int main(int argc, char **argv) {
  llvm::cl::ParseCommandLineOptions(argc, argv, "moe-savings\n");
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  const int64_t t = tokens;
  bool allMet = true;
  if (!llvm::is_contained({"all", "null-skip", "capacity", "compressed", "stacks"},
                          llvm::StringRef(family))) {
    llvm::errs() << "moe-savings: --family must be all, null-skip, capacity, compressed or "
                    "stacks, got '"
                 << family << "'\n";
    return 1;
  }

  llvm::outs() << llvm::format("moe-savings: T = %lld, H = %lld, I = %lld, %d threads, "
                               "median of %d runs\n",
                               (long long)t, (long long)H, (long long)I, moe_get_num_threads(),
                               int(repeat));
  llvm::outs() << "case          r     time_us   rel_to_r0   bound   met   max_rel_err\n";
  struct Measured {
    double micros, relError;
  };
  auto report = [&](const char *name, double r, const Measured &m, double base) {
    double rel = m.micros / base, bound = (1.0 - r) + 0.05;
    bool met = rel <= bound;
    allMet &= met;
    llvm::outs() << llvm::format("%-12s %5.2f %11.1f %11.3f %7.2f   %-4s  %.2g\n", name, r,
                                 m.micros, rel, bound, met ? "yes" : "NO", m.relError);
  };

  // --family: one family's rows only (a shorter run next to other load).
  auto wanted = [&](llvm::StringRef name) { return family == "all" || family == name; };
  if ((wanted("null-skip") && !measureNullAndSkip(ctx, t, report)) ||
      (wanted("capacity") && !measureCapacity(ctx, t, report)) ||
      (wanted("compressed") && !measureCompressed(ctx, t, report)) ||
      (wanted("stacks") && !measureStacks(ctx, t, report)))
    return 1;
  llvm::outs() << (allMet ? "all savings bounds met\n" : "some savings bounds NOT met\n");
  return 0;
}
