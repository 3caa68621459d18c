//===- ShardedRun.cpp - moe-run --ranks: one rank of an expert-parallel job -===//
//
// Every rank builds the same whole batch (same seeds or files), keeps its
// own slice of the tokens (the arguments whose first dimension is dynamic),
// and runs the function compiled with ranks=R: routing and combine on its
// tokens, experts on the rows the exchanges bring. Around the run, control
// collectives with bounded waits: the signature check before, the status
// agreement after (so a rank's error is printed by every rank), then the
// gather of the results to rank 0, which checks them against the reference
// on the whole batch.
//
//===----------------------------------------------------------------------===//

#include "ShardedRun.h"

#include "moe/ExecutionEngine/CompiledFunction.h"
#include "moe/Reference/Interpreter.h"
#include "moe/Support/Npy.h"
#include "moe_runtime_mpi.h"
#include "moe_status_codes.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>

using namespace mlir;

namespace moe::tools {
namespace {

int rank() { return moe_mpi_rank(); }

/// Reports `message` from this rank and ends the job cleanly (or aborts it
/// when an exchange is still pending).
int failHere(const std::string &message) {
  // One write per line, so that the ranks' lines do not interleave.
  std::string line = "moe-run: rank " + std::to_string(rank()) + ": error: " + message + "\n";
  llvm::errs() << line;
  llvm::errs().flush();
  moe_mpi_finalize();
  return 1;
}

/// Every rank contributes its status; on any failure every rank prints the
/// agreed message and the job ends. Returns true when all ranks succeeded.
bool agree(const Status &local, const char *stage, int &exitCode) {
  int code = local.ok() ? MOE_OK : MOE_ERR_INVALID_ARGUMENT;
  std::string text = local.ok() ? "" : std::string(stage) + ": " + local.error;
  if (moe_mpi_agree_status(code, text.c_str()) == MOE_OK)
    return true;
  exitCode = failHere(moe_mpi_last_error());
  return false;
}

/// The batch's token count: dimension 0 of every argument whose first
/// dimension is dynamic, which must agree (they are split alike).
Status tokensOf(func::FuncOp func, const std::vector<Tensor> &args, int64_t &tokens) {
  tokens = -1;
  size_t first = 0;
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
    auto ranked = dyn_cast<RankedTensorType>(type);
    if (!ranked || ranked.getRank() == 0 || !ranked.isDynamicDim(0))
      continue;
    if (tokens < 0) {
      tokens = args[i].shape[0];
      first = i;
    } else if (args[i].shape[0] != tokens) {
      return Status::failure("argument #" + std::to_string(i) + " has " +
                             std::to_string(args[i].shape[0]) + " tokens but argument #" +
                             std::to_string(first) + " has " + std::to_string(tokens) +
                             " (give --tokens=T to match .npy inputs)");
    }
  }
  if (tokens < 0)
    return Status::failure("'" + std::string(func.getSymName()) +
                           "' has no argument with a dynamic token dimension to split over "
                           "the ranks");
  return Status::success();
}

/// Rows [begin, end) of dimension 0.
Tensor sliceRows(const Tensor &t, int64_t begin, int64_t end) {
  Tensor out = t;
  int64_t row = t.shape[0] ? t.numel() / t.shape[0] : 0;
  out.shape[0] = end - begin;
  if (t.isFloat())
    out.f.assign(t.f.begin() + begin * row, t.f.begin() + end * row);
  else
    out.i.assign(t.i.begin() + begin * row, t.i.begin() + end * row);
  return out;
}

Status splitTokens(const ShardedRunRequest &request, int64_t tokens,
                   std::vector<int64_t> &starts) {
  int64_t r = request.ranks;
  starts.assign(r + 1, 0);
  if (request.rankTokens.empty()) {
    for (int64_t k = 0; k <= r; ++k)
      starts[k] = tokens * k / r;
    return Status::success();
  }
  if (int64_t(request.rankTokens.size()) != r)
    return Status::failure("--rank-tokens has " + std::to_string(request.rankTokens.size()) +
                           " entries for " + std::to_string(r) + " ranks");
  for (int64_t k = 0; k < r; ++k) {
    if (request.rankTokens[k] < 0)
      return Status::failure("--rank-tokens: rank " + std::to_string(k) +
                             " has a negative token count");
    starts[k + 1] = starts[k] + request.rankTokens[k];
  }
  if (starts[r] != tokens)
    return Status::failure("--rank-tokens sums to " + std::to_string(starts[r]) +
                           " tokens but the batch has " + std::to_string(tokens));
  return Status::success();
}

/// Rank 0: max relative error of each result against the reference.
bool checkAgainstReference(const ShardedRunRequest &request,
                           const std::vector<Tensor> &results) {
  std::vector<Tensor> reference;
  Status s = ref::interpret(request.func, request.args, reference);
  if (!s.ok()) {
    llvm::errs() << "moe-run: reference: " << s.error << "\n";
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < reference.size(); ++i) {
    double maxAbs = 0, maxRef = 0;
    for (size_t k = 0; k < reference[i].f.size(); ++k) {
      double d = std::fabs(double(results[i].f[k]) - reference[i].f[k]);
      maxAbs = std::max(maxAbs, std::isnan(d) ? INFINITY : d);
      maxRef = std::max(maxRef, std::fabs(double(reference[i].f[k])));
    }
    double rel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
    ok &= rel <= request.rtol;
    llvm::outs() << llvm::format("check result #%zu: max abs error %.3g, max rel error %.3g "
                                 "(bound %.1g): %s\n",
                                 i, maxAbs, rel, request.rtol,
                                 rel <= request.rtol ? "PASS" : "FAIL");
  }
  return ok;
}

struct CallTiming {
  double micros;
  moe_mpi_stats stats;
};

/// Medians over the calls of {call, exchanging, waiting (us), sent, kept
/// (KiB)}, each taken on its own.
std::vector<float> medianTiming(const std::vector<CallTiming> &calls) {
  auto median = [&](auto field) {
    std::vector<double> v;
    for (const CallTiming &c : calls)
      v.push_back(field(c));
    std::sort(v.begin(), v.end());
    return float(v[v.size() / 2]);
  };
  return {median([](const CallTiming &c) { return c.micros; }),
          median([](const CallTiming &c) { return c.stats.seconds_exchanging * 1e6; }),
          median([](const CallTiming &c) { return c.stats.seconds_waiting * 1e6; }),
          median([](const CallTiming &c) { return c.stats.bytes_sent / 1024.0; }),
          median([](const CallTiming &c) { return c.stats.bytes_local / 1024.0; })};
}

/// Rank 0 receives the whole [tokens, ...] result from every rank's rows.
/// i32 results (ponder counts, paths) travel as their 4-byte patterns in
/// the f32 gather.
Status gatherResult(const Tensor &local, int64_t tokens, Tensor &all) {
  all = local;
  all.shape[0] = tokens;
  int64_t row = 1;
  for (size_t d = 1; d < local.shape.size(); ++d)
    row *= local.shape[d];
  size_t total = rank() == 0 ? size_t(tokens * row) : 0;
  if (local.isFloat()) {
    all.f.assign(total, 0.0f);
    if (moe_mpi_gather_rows(local.f.data(), local.shape[0], row, all.f.data()) != MOE_OK)
      return Status::failure(moe_mpi_last_error());
    return Status::success();
  }
  std::vector<float> bits(local.i.size()), allBits(total);
  for (size_t k = 0; k < bits.size(); ++k) {
    int32_t v = int32_t(local.i[k]);
    std::memcpy(&bits[k], &v, sizeof v);
  }
  if (moe_mpi_gather_rows(bits.data(), local.shape[0], row, allBits.data()) != MOE_OK)
    return Status::failure(moe_mpi_last_error());
  all.i.assign(total, 0);
  for (size_t k = 0; k < total; ++k) {
    int32_t v;
    std::memcpy(&v, &allBits[k], sizeof v);
    all.i[k] = v;
  }
  return Status::success();
}

} // namespace

int runSharded(const ShardedRunRequest &request) {
  func::FuncOp func = request.func;
  if (moe_mpi_init(nullptr, nullptr) != MOE_OK)
    return failHere(moe_mpi_last_error());
  int exitCode = 1;
  if (moe_mpi_size() != request.ranks)
    // Every rank sees the same world size: all of them stop here.
    return failHere("--ranks=" + std::to_string(request.ranks) + " but the job has " +
                    std::to_string(moe_mpi_size()) + " ranks (run it with mpirun -np " +
                    std::to_string(request.ranks) + ")");
  std::string options = request.pipelineOptions + " ranks=" + std::to_string(request.ranks);
  std::string signature = request.entry + signatureText(request.func) + " {" + options + "}";
  if (moe_mpi_check_signature(signature.c_str()) != MOE_OK)
    return failHere(moe_mpi_last_error());

  int64_t tokens = -1;
  std::vector<int64_t> starts;
  Status split = tokensOf(func, request.args, tokens);
  if (split.ok())
    split = splitTokens(request, tokens, starts);
  if (!agree(split, "splitting the batch", exitCode))
    return exitCode;
  int64_t begin = starts[rank()], end = starts[rank() + 1];
  std::vector<Tensor> local;
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
    auto ranked = cast<RankedTensorType>(type);
    local.push_back(ranked.getRank() > 0 && ranked.isDynamicDim(0)
                        ? sliceRows(request.args[i], begin, end)
                        : request.args[i]);
  }

  std::unique_ptr<CompiledFunction> compiled;
  auto parsed = CpuPipelineOptions::createFromString(options);
  Status compile = parsed ? CompiledFunction::compile(request.func->getParentOfType<ModuleOp>(),
                                                      request.entry, *parsed,
                                                      /*keepStages=*/false, compiled)
                          : Status::failure("bad --pipeline-options '" +
                                            request.pipelineOptions + "'");
  if (!agree(compile, "compiling", exitCode))
    return exitCode;
  for (auto type : func.getResultTypes()) {
    auto ranked = dyn_cast<RankedTensorType>(type);
    if (!ranked || ranked.getRank() == 0 || !ranked.isDynamicDim(0) ||
        !(ranked.getElementType().isF32() || ranked.getElementType().isInteger(32)))
      return failHere("sharded runs gather f32 or i32 results with a dynamic token dimension; '" +
                      request.entry + "' returns another kind");
  }

  // Every call is followed by a status agreement (untimed), so that no rank
  // starts another call's exchanges after a failure elsewhere.
  std::vector<Tensor> results;
  std::vector<CallTiming> calls;
  for (unsigned call = 0; call < std::max(1u, request.repeat); ++call) {
    moe_mpi_reset_stats();
    auto start = std::chrono::steady_clock::now();
    Status run = compiled->run(local, results);
    double micros =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count();
    moe_mpi_stats stats;
    moe_mpi_get_stats(&stats);
    calls.push_back({micros, stats});
    if (!run.ok() && *moe_mpi_last_error())
      run.error += std::string(" (") + moe_mpi_last_error() + ")";
    if (!agree(run, "running", exitCode))
      return exitCode;
  }
  std::vector<float> timing = medianTiming(calls);
  std::vector<float> allTimings(rank() == 0 ? 5 * request.ranks : 0);
  if (moe_mpi_gather_rows(timing.data(), 1, 5, allTimings.data()) != MOE_OK)
    return failHere(moe_mpi_last_error());

  std::vector<Tensor> whole;
  for (const Tensor &r : results) {
    Tensor all;
    if (Status s = gatherResult(r, tokens, all); !s.ok())
      return failHere(s.error);
    whole.push_back(std::move(all));
  }

  bool ok = true;
  if (rank() == 0) {
    llvm::outs() << "ran '" << request.entry << "' sharded over " << request.ranks
                 << " ranks, tokens per rank:";
    for (int64_t k = 0; k < request.ranks; ++k)
      llvm::outs() << " " << starts[k + 1] - starts[k];
    llvm::outs() << "\n";
    for (auto [i, r] : llvm::enumerate(whole)) {
      llvm::outs() << "result #" << i << ": " << r.describe() << "\n";
      if (!request.outputDir.empty()) {
        Status w = writeNpy(request.outputDir + "/result" + std::to_string(i) + ".npy", r);
        if (!w.ok()) {
          llvm::errs() << "moe-run: " << w.error << "\n";
          ok = false;
        }
      }
    }
    for (int64_t k = 0; k < request.ranks; ++k) {
      const float *t = &allTimings[5 * k];
      llvm::outs() << llvm::format("rank %lld: medians of %u calls: call %.1f us, exchanges %.1f "
                                   "us (waiting %.1f), sent %.1f KiB, kept %.1f KiB\n",
                                   (long long)k, std::max(1u, request.repeat), t[0], t[1], t[2],
                                   t[3], t[4]);
    }
    if (request.compare)
      ok &= checkAgainstReference(request, whole);
    llvm::outs().flush();
  }
  moe_mpi_finalize();
  return ok ? 0 : 1;
}

} // namespace moe::tools
