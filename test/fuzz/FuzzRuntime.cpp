//===- FuzzRuntime.cpp - libFuzzer target: compiled layers on odd input ---===//
//
// Compiles a few layers once (the oracle- and softmax-routed examples, two
// router-only functions and a path_select with the paths as an input), then
// decodes each fuzz input into one call: a layer, a token count T in [0, 6],
// the tensors' values (with NaN, ±Inf, ±1e4, -0 and denormals among them;
// expert and path ids in and out of range, -1 sentinels) and, for about
// half the inputs, one malformation of the call itself (wrong element type,
// rank, static dim, token count, argument or result count, result shape,
// null data pointer or tensor array).
//
// The contract checked (abort() on violation, so libFuzzer reports it):
//  * a failed call returns a nonzero status with a message, leaves every
//    output buffer byte-identical, and, for a malformed call, names the
//    argument or result at fault;
//  * a malformed call never succeeds;
//  * a well-formed call fails exactly when the reference interpreter does
//    (bad expert/path ids, non-finite router logits), and otherwise its
//    results match the reference: ids exactly, floats within a tolerance
//    relative to the token's largest value. Where the reference's own
//    ranking has a near-tie (keys within 1e-5 relative, or equal keys from
//    logits the compiled code may round differently), the two may choose
//    differently and values are not compared (docs/dialect.md §2).
//
// The fuzz input also drives moe_signature_parse (the text a .so carries).
//
//===----------------------------------------------------------------------===//

#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/InitAll.h"
#include "moe/Reference/Interpreter.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/MemoryBuffer.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

using moe::DType;
using moe::Status;
using moe::Tensor;

namespace {

const char *kSmallLayers = R"mlir(
func.func @router_softmax(%x: tensor<?x16xf32>, %gate: tensor<8x16xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.topk_router softmax %x, %gate {k = 2, renormalize}
      : tensor<?x16xf32>, tensor<8x16xf32> -> tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
func.func @router_sigmoid(%x: tensor<?x16xf32>, %gate: tensor<8x16xf32>, %bias: tensor<8xf32>)
    -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %ids, %w = moe.topk_router sigmoid %x, %gate bias %bias
      {k = 3, renormalize, scaling_factor = 2.5 : f32}
      : tensor<?x16xf32>, tensor<8x16xf32>, tensor<8xf32> -> tensor<?x3xi32>, tensor<?x3xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}
func.func @paths(%x: tensor<?x16xf32>, %paths: tensor<?xi32>,
                 %w1: tensor<8x16xf32>, %w2: tensor<16x8xf32>) -> tensor<?x16xf32> {
  %y = moe.path_select %x, %paths : tensor<?x16xf32>, tensor<?xi32> -> tensor<?x16xf32> {
  ^bb0(%xs: tensor<?x16xf32>):
    %f = moe.ffn gelu %xs w1(%w1 : tensor<8x16xf32>) w2(%w2 : tensor<16x8xf32>)
        : tensor<?x16xf32> -> tensor<?x16xf32>
    moe.yield %f : tensor<?x16xf32>
  }
  return %y : tensor<?x16xf32>
}
)mlir";

enum class Router { None, Softmax, Sigmoid };

struct Layer {
  std::string name;
  mlir::func::FuncOp func;
  std::unique_ptr<moe::CompiledFunction> fn;
  int32_t idRange = 0; // i32 arguments are decoded mostly into [-1, idRange)
  Router router = Router::None;
  int64_t k = 0;
  int xArg = 0, gateArg = 1, biasArg = -1;
};

mlir::MLIRContext *context;
std::vector<mlir::OwningOpRef<mlir::ModuleOp>> *modules;
std::vector<Layer> *layers;

bool nearTie(const Layer &layer, const std::vector<Tensor> &args, int64_t t, bool print);
/// The arguments of the failing call, for routers their ranking keys.
const std::vector<Tensor> *currentArgs = nullptr;

[[noreturn]] void violation(const Layer &layer, const std::string &what) {
  std::fprintf(stderr, "CONTRACT VIOLATION in '%s': %s\n", layer.name.c_str(), what.c_str());
  if (currentArgs && layer.router != Router::None && !currentArgs->empty())
    for (int64_t t = 0; t < (*currentArgs)[layer.xArg].dim(0); ++t)
      nearTie(layer, *currentArgs, t, true);
  std::abort();
}

void addModule(const std::string &text, const std::string &source) {
  auto module = mlir::parseSourceString<mlir::ModuleOp>(text, context);
  if (!module) {
    std::fprintf(stderr, "cannot parse %s\n", source.c_str());
    std::abort();
  }
  modules->push_back(std::move(module));
}

void addLayer(mlir::ModuleOp module, const std::string &entry, const std::string &name,
              Layer layer) {
  layer.name = name;
  layer.func = module.lookupSymbol<mlir::func::FuncOp>(entry);
  Status s = moe::CompiledFunction::compile(module, entry, moe::CpuPipelineOptions(),
                                            /*keepStages=*/false, layer.fn);
  if (!layer.func || !s.ok()) {
    std::fprintf(stderr, "cannot compile %s: %s\n", name.c_str(), s.error.c_str());
    std::abort();
  }
  layers->push_back(std::move(layer));
}

std::string readFile(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  return (*buffer)->getBuffer().str();
}

/// Most bytes give small multiples of 1/16 (exact products and sums in
/// f32), the rest the values that break naive implementations.
float decodeFloat(uint8_t b) {
  static const float specials[] = {
      std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(), 1e4f, -1e4f, -0.0f, 1e-40f, -1e-40f,
      1e4f, -1e4f, 1e-30f, 100.0f, -100.0f, 0.5f, 1.0f, -1.0f};
  if (b >= 240)
    return specials[b - 240];
  return (float(b) - 120.0f) / 16.0f;
}

int64_t decodeId(uint8_t b, int32_t range) {
  static const int64_t specials[] = {-1, -1, -2, std::numeric_limits<int32_t>::min(),
                                     std::numeric_limits<int32_t>::max(), 1000, -1000, 0};
  if (b >= 248)
    return specials[b - 248];
  if (b >= 240)
    return range + (b - 240); // just out of range
  return int64_t(b % (range + 1)) - 1;
}

size_t elementSize(DType t) { return t == DType::I64 ? 8 : 4; }

enum Malformation {
  None = 0,
  WrongDtype,
  UnknownDtype,
  WrongRank,
  WrongStaticDim,
  NegativeDim,
  InconsistentT,
  NullArgData,
  WrongArgCount,
  WrongResultCount,
  WrongResultShape,
  WrongResultDtype,
  NullResultData,
  NullArgArray,
  NumMalformations
};

/// Reference-semantics ranking keys of one token (docs/dialect.md §4.1) and
/// whether the compiled code could rank them differently.
bool nearTie(const Layer &layer, const std::vector<Tensor> &args, int64_t t,
             bool print = false) {
  const Tensor &x = args[layer.xArg], &gate = args[layer.gateArg];
  int64_t e = gate.dim(0), h = gate.dim(1);
  std::vector<double> z(e), keys(e), scores(e), bias(e, 0.0);
  std::vector<bool> exact(e, true);
  for (int64_t j = 0; j < e; ++j) {
    double sum = 0, magnitude = 0;
    for (int64_t c = 0; c < h; ++c) {
      double p = double(x.f[t * h + c]) * double(gate.f[j * h + c]);
      sum += p;
      magnitude += std::fabs(p);
      // Exact in f32 in any summation order: multiples of 1/256 whose
      // absolute sum stays below 2^24 / 256.
      if (p * 256.0 != std::floor(p * 256.0))
        exact[j] = false;
    }
    if (!(magnitude * 256.0 < 16777216.0))
      exact[j] = false;
    z[j] = double(float(sum));
  }
  if (layer.router == Router::Softmax) {
    double m = *std::max_element(z.begin(), z.end()), total = 0;
    for (int64_t j = 0; j < e; ++j)
      total += std::exp(z[j] - m);
    for (int64_t j = 0; j < e; ++j)
      keys[j] = scores[j] = double(float(std::exp(z[j] - m) / total));
  } else {
    for (int64_t j = 0; j < e; ++j) {
      double v = z[j];
      double s = v >= 0 ? 1.0 / (1.0 + std::exp(-v)) : std::exp(v) / (1.0 + std::exp(v));
      scores[j] = double(float(s));
      bias[j] = layer.biasArg >= 0 ? double(args[layer.biasArg].f[j]) : 0.0;
      keys[j] = scores[j] + bias[j];
    }
  }
  if (print)
    for (int64_t j = 0; j < e; ++j)
      std::fprintf(stderr, "  token %lld expert %lld: logit %.9g key %.9g%s\n", (long long)t,
                   (long long)j, z[j], keys[j], exact[j] ? " (exact logit)" : "");
  std::vector<int64_t> order(e);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return keys[a] > keys[b]; });
  // Any key within rounding distance of a chosen one may swap with it: the
  // compiled code rounds (s + bias) to f32, which can merge keys that differ
  // in double and so hand a slot to a lower id further down the order.
  for (int64_t i = 0; i < std::min<int64_t>(layer.k, e); ++i) {
    for (int64_t n = i + 1; n < e; ++n) {
      int64_t a = order[i], b = order[n];
      // The compiled scores carry a relative error (exp and divisions in
      // f32), sigmoid's 1 / (1 + e) near 1 an absolute one of an ulp of 1,
      // and s + bias a rounding relative to the larger term.
      double scale = std::max({std::fabs(keys[a]), std::fabs(keys[b]), scores[a], scores[b],
                               std::fabs(bias[a]), std::fabs(bias[b])});
      double slack = 1e-5 * scale + (layer.router == Router::Sigmoid ? 2.4e-7 : 0.0) + 1e-37;
      if (keys[a] - keys[b] > slack)
        break; // sorted: the rest are further away
      // Equal logits computed exactly by both sides rank identically.
      if (keys[a] == keys[b] && z[a] == z[b] && exact[a] && exact[b])
        continue;
      return true;
    }
  }
  return false;
}

void compareResults(const Layer &layer, const std::vector<Tensor> &got,
                    const std::vector<Tensor> &want) {
  for (size_t r = 0; r < want.size(); ++r) {
    const Tensor &g = got[r], &w = want[r];
    if (g.shape != w.shape)
      violation(layer, "result #" + std::to_string(r) + " has shape " + g.describe() +
                           ", the reference " + w.describe());
    if (w.dtype != DType::F32) {
      for (size_t i = 0; i < w.i.size(); ++i)
        if (g.i[i] != w.i[i])
          violation(layer, "result #" + std::to_string(r) + "[" + std::to_string(i) +
                               "] = " + std::to_string(g.i[i]) + ", the reference says " +
                               std::to_string(w.i[i]));
      continue;
    }
    int64_t row = w.rank() ? w.shape.back() : 1;
    for (size_t start = 0; start < w.f.size(); start += size_t(row)) {
      double scale = 0;
      for (int64_t c = 0; c < row; ++c)
        if (std::isfinite(w.f[start + c]))
          scale = std::max(scale, double(std::fabs(w.f[start + c])));
      for (int64_t c = 0; c < row; ++c) {
        float a = g.f[start + c], b = w.f[start + c];
        bool ok = std::isfinite(b) ? std::fabs(double(a) - double(b)) <= 1e-4 * scale + 1e-6
                                   : !std::isfinite(a);
        if (!ok)
          violation(layer, "result #" + std::to_string(r) + "[" + std::to_string(start + c) +
                               "] = " + std::to_string(a) + ", the reference says " +
                               std::to_string(b));
      }
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  mlir::DialectRegistry registry;
  moe::registerAllDialects(registry);
  context = new mlir::MLIRContext(registry);
  modules = new std::vector<mlir::OwningOpRef<mlir::ModuleOp>>();
  layers = new std::vector<Layer>();
  const std::string examples = MOE_EXAMPLES_DIR;
  addModule(readFile(examples + "/oracle.mlir"), "oracle.mlir");
  addModule(readFile(examples + "/mixtral.mlir"), "mixtral.mlir");
  addModule(kSmallLayers, "the small layers");
  Layer oracle;
  oracle.idRange = 8;
  addLayer(*(*modules)[0], "main", "examples/oracle.mlir", std::move(oracle));
  Layer mixtral;
  mixtral.router = Router::Softmax;
  mixtral.k = 2;
  addLayer(*(*modules)[1], "main", "examples/mixtral.mlir", std::move(mixtral));
  Layer softmax;
  softmax.router = Router::Softmax;
  softmax.k = 2;
  addLayer(*(*modules)[2], "router_softmax", "router_softmax", std::move(softmax));
  Layer sigmoid;
  sigmoid.router = Router::Sigmoid;
  sigmoid.k = 3;
  sigmoid.biasArg = 2;
  addLayer(*(*modules)[2], "router_sigmoid", "router_sigmoid", std::move(sigmoid));
  Layer paths;
  // P = 1: path ids in [0, 1]; decodeId gives -1 (bad here), 0 and 1, and
  // the out-of-range specials from 2 on.
  paths.idRange = 2;
  addLayer(*(*modules)[2], "paths", "paths", std::move(paths));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider in(data, size);
  uint8_t selector = in.ConsumeIntegral<uint8_t>();
  if (selector >= 250) {
    // The signature parser reads text from a shared object.
    std::string text = in.ConsumeRemainingBytesAsString();
    moe_signature_free(moe_signature_parse(text.c_str()));
    return 0;
  }
  const Layer &layer = (*layers)[selector % layers->size()];
  const auto &argSigs = layer.fn->argumentSignatures();
  const auto &resultSigs = layer.fn->resultSignatures();
  int64_t tokens = in.ConsumeIntegralInRange<int64_t>(0, 6);
  // About half the calls are well formed.
  int malformation = in.ConsumeIntegralInRange<int>(0, 2 * NumMalformations - 1);
  if (malformation >= NumMalformations)
    malformation = None;
  uint32_t pick = in.ConsumeIntegral<uint32_t>();
  uint8_t poison = in.ConsumeIntegral<uint8_t>();
  uint8_t fill = in.ConsumeIntegral<uint8_t>();

  // The arguments: small tensors from the input, big (weights) from a
  // fixed pattern, optionally with one non-finite element.
  std::vector<Tensor> args;
  for (size_t a = 0; a < argSigs.size(); ++a) {
    std::vector<int64_t> shape = argSigs[a].shape;
    for (int64_t &d : shape)
      if (d < 0)
        d = tokens;
    Tensor t = argSigs[a].dtype == DType::F32 ? Tensor::f32(shape)
                                              : Tensor::ints(argSigs[a].dtype, shape);
    int64_t n = t.numel();
    if (t.isFloat()) {
      bool fromInput = n <= 512;
      for (int64_t j = 0; j < n; ++j)
        t.f[j] = fromInput ? decodeFloat(in.ConsumeIntegral<uint8_t>())
                           : float(int64_t((j * 2654435761u + a * 97) % 33) - 16) / 256.0f;
      if (!fromInput && n > 0 && poison >= 240)
        t.f[(pick + a) % n] = decodeFloat(poison);
    } else {
      for (int64_t j = 0; j < n; ++j)
        t.i[j] = decodeId(in.ConsumeIntegral<uint8_t>(), layer.idRange);
    }
    args.push_back(std::move(t));
  }

  currentArgs = &args;
  // What the runtime sees: buffers in the argument's element type.
  std::vector<std::vector<uint8_t>> argBytes(args.size());
  std::vector<std::vector<int64_t>> argShapes;
  std::vector<moe_tensor> argTensors;
  for (size_t a = 0; a < args.size(); ++a) {
    const Tensor &t = args[a];
    argBytes[a].resize(size_t(t.numel()) * elementSize(t.dtype) + 1);
    for (int64_t j = 0; j < t.numel(); ++j) {
      if (t.dtype == DType::F32)
        std::memcpy(&argBytes[a][4 * j], &t.f[j], 4);
      else if (t.dtype == DType::I32) {
        int32_t v = int32_t(t.i[j]);
        std::memcpy(&argBytes[a][4 * j], &v, 4);
      } else {
        std::memcpy(&argBytes[a][8 * j], &t.i[j], 8);
      }
    }
    argShapes.push_back(t.shape);
  }
  std::vector<std::vector<int64_t>> resultShapes;
  for (const auto &sig : resultSigs) {
    std::vector<int64_t> shape = sig.shape;
    for (int64_t &d : shape)
      if (d < 0)
        d = tokens;
    resultShapes.push_back(shape);
  }

  // One malformation; `expected` is what the message must name.
  std::string expected;
  bool expectError = malformation != None;
  size_t argIndex = pick % args.size(), resultIndex = pick % resultShapes.size();
  // Element types as the C caller's 32-bit integers: an unknown value is
  // written as bytes (a C++ enum holding it would be undefined behaviour).
  std::vector<int32_t> argDtypes, resultDtypes;
  for (const auto &sig : argSigs)
    argDtypes.push_back(int32_t(moe_dtype(sig.dtype)));
  for (const auto &sig : resultSigs)
    resultDtypes.push_back(int32_t(moe_dtype(sig.dtype)));
  int numArgs = int(args.size()), numResults = int(resultShapes.size());
  bool nullArgArray = false;
  std::vector<bool> nullArg(args.size()), nullResult(resultShapes.size());
  auto argName = [](size_t i) { return "argument #" + std::to_string(i); };
  auto resultName = [](size_t i) { return "result #" + std::to_string(i); };
  // Indices of arguments with a static / dynamic dimension.
  std::vector<std::pair<size_t, size_t>> staticDims, dynamicDims;
  for (size_t a = 0; a < argSigs.size(); ++a)
    for (size_t d = 0; d < argSigs[a].shape.size(); ++d)
      (argSigs[a].shape[d] < 0 ? dynamicDims : staticDims).push_back({a, d});
  switch (malformation) {
  case WrongDtype:
    argDtypes[argIndex] = argDtypes[argIndex] == MOE_F32 ? MOE_I32 : MOE_F32;
    expected = argName(argIndex);
    break;
  case UnknownDtype:
    argDtypes[argIndex] = 42;
    expected = argName(argIndex);
    break;
  case WrongRank:
    if (pick & 1 && !argShapes[argIndex].empty())
      argShapes[argIndex].pop_back();
    else
      argShapes[argIndex].push_back(1);
    expected = argName(argIndex);
    break;
  case WrongStaticDim: {
    auto [a, d] = staticDims[pick % staticDims.size()];
    argShapes[a][d] = (pick >> 8) & 1 ? argShapes[a][d] + 1 : 0;
    expected = argName(a);
    break;
  }
  case NegativeDim: {
    auto [a, d] = dynamicDims[pick % dynamicDims.size()];
    argShapes[a][d] = -1 - int64_t((pick >> 8) & 3);
    expected = "argument #";
    break;
  }
  case InconsistentT:
    if (dynamicDims.size() < 2) {
      expectError = false;
      break;
    }
    {
      auto [a, d] = dynamicDims[1 + pick % (dynamicDims.size() - 1)];
      if (argShapes[a][d] == tokens)
        argShapes[a][d] = tokens + 1 + int64_t((pick >> 8) & 3);
      // The first argument with the token count sets T; the message names
      // the first one that disagrees.
      expected = "argument #";
    }
    break;
  case NullArgData:
    if (args[argIndex].numel() == 0) {
      expectError = false; // an empty tensor may have a null pointer
      nullArg[argIndex] = true;
      break;
    }
    nullArg[argIndex] = true;
    expected = argName(argIndex);
    break;
  case WrongArgCount:
    numArgs += (pick & 1) ? 1 : -1;
    expected = "arguments, got";
    break;
  case WrongResultCount:
    numResults += (pick & 1) ? 1 : -1;
    expected = "results, got";
    break;
  case WrongResultShape:
    if (pick & 1 || resultShapes[resultIndex].empty())
      resultShapes[resultIndex].push_back(1);
    else
      resultShapes[resultIndex].back() += 1;
    expected = resultName(resultIndex);
    break;
  case WrongResultDtype:
    resultDtypes[resultIndex] = resultDtypes[resultIndex] == MOE_F32 ? MOE_I32 : MOE_F32;
    expected = resultName(resultIndex);
    break;
  case NullResultData: {
    int64_t n = 1;
    for (int64_t d : resultShapes[resultIndex])
      n *= d;
    nullResult[resultIndex] = true;
    if (n == 0) {
      expectError = false;
      break;
    }
    expected = resultName(resultIndex);
    break;
  }
  case NullArgArray:
    nullArgArray = true;
    expected = "null tensor array";
    break;
  default:
    break;
  }

  auto setDtype = [](moe_tensor &t, int32_t dtype) { std::memcpy(&t.dtype, &dtype, sizeof dtype); };
  for (size_t a = 0; a < args.size(); ++a) {
    argTensors.push_back({nullArg[a] ? nullptr : argBytes[a].data(), MOE_F32,
                          int32_t(argShapes[a].size()), argShapes[a].data()});
    setDtype(argTensors.back(), argDtypes[a]);
  }
  // One spare slot for a wrong (larger) count.
  argTensors.push_back(argTensors.front());

  // Output buffers sized for the correct shapes (a wrong shape only
  // shrinks or grows the description), filled with a pattern that must
  // survive a failed call.
  std::vector<std::vector<uint8_t>> resultBytes;
  std::vector<moe_tensor> resultTensors;
  for (size_t r = 0; r < resultSigs.size(); ++r) {
    int64_t n = 1;
    for (int64_t d : resultSigs[r].shape)
      n *= d < 0 ? tokens : d;
    resultBytes.emplace_back(size_t(n) * elementSize(resultSigs[r].dtype) + 16, fill);
  }
  for (size_t r = 0; r < resultSigs.size(); ++r) {
    resultTensors.push_back({nullResult[r] ? nullptr : resultBytes[r].data(), MOE_F32,
                             int32_t(resultShapes[r].size()), resultShapes[r].data()});
    setDtype(resultTensors.back(), resultDtypes[r]);
  }
  resultTensors.push_back(resultTensors.front());
  std::vector<std::vector<uint8_t>> before = resultBytes;

  Status s = layer.fn->runTensors(nullArgArray ? nullptr : argTensors.data(), size_t(numArgs),
                                  resultTensors.data(), size_t(numResults));

  if (!s.ok()) {
    if (s.error.empty())
      violation(layer, "failed without a message");
    if (resultBytes != before)
      violation(layer, "failed (" + s.error + ") but wrote to an output buffer");
    if (expectError) {
      if (s.error.find(expected) == std::string::npos)
        violation(layer, "malformation " + std::to_string(malformation) + ": message '" +
                             s.error + "' does not name '" + expected + "'");
      return 0;
    }
    // A well-formed call: only the run-time checks may fail, and only when
    // the reference fails too.
    std::vector<Tensor> refResults;
    Status r = moe::ref::interpret(layer.func, args, refResults);
    if (r.ok())
      violation(layer, "compiled code failed (" + s.error + ") where the reference succeeds");
    return 0;
  }
  if (expectError)
    violation(layer, "malformation " + std::to_string(malformation) + " (" + expected +
                         ") was accepted");

  std::vector<Tensor> refResults;
  Status r = moe::ref::interpret(layer.func, args, refResults);
  if (!r.ok())
    violation(layer, "compiled code succeeded where the reference fails: " + r.error);
  // The compiled results, widened like the reference's.
  std::vector<Tensor> got;
  for (size_t i = 0; i < resultSigs.size(); ++i) {
    const std::vector<int64_t> &shape = resultShapes[i];
    Tensor t = resultSigs[i].dtype == DType::F32 ? Tensor::f32(shape)
                                                 : Tensor::ints(resultSigs[i].dtype, shape);
    for (int64_t j = 0; j < t.numel(); ++j) {
      if (t.dtype == DType::F32) {
        std::memcpy(&t.f[j], &resultBytes[i][4 * j], 4);
      } else if (t.dtype == DType::I32) {
        int32_t v;
        std::memcpy(&v, &resultBytes[i][4 * j], 4);
        t.i[j] = v;
      } else {
        std::memcpy(&t.i[j], &resultBytes[i][8 * j], 8);
      }
    }
    got.push_back(std::move(t));
  }
  if (layer.router != Router::None)
    for (int64_t t = 0; t < tokens; ++t)
      if (nearTie(layer, args, t))
        return 0;
  compareResults(layer, got, refResults);
  return 0;
}
