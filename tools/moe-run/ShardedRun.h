//===- ShardedRun.h - moe-run --ranks: one rank of an expert-parallel job -===//
#ifndef MOE_TOOLS_MOE_RUN_SHARDEDRUN_H
#define MOE_TOOLS_MOE_RUN_SHARDEDRUN_H

#include "moe/Support/Tensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>
#include <vector>

namespace moe::tools {

struct ShardedRunRequest {
  mlir::func::FuncOp func;
  std::string entry;
  std::vector<Tensor> args; // the whole batch, identical on every rank
  std::string pipelineOptions;
  int64_t ranks = 0;
  std::vector<int64_t> rankTokens; // tokens of each rank; empty: an even split
  bool compare = true;             // rank 0 checks against the reference
  double rtol = 1e-4;
  std::string outputDir;
  unsigned repeat = 1; // layer calls; the times printed are per call
};

/// Runs this process's rank of a sharded layer (under mpirun): its slice of
/// the batch's tokens through the function compiled with ranks=R; rank 0
/// gathers the results, prints them and (with `compare`) checks them
/// against the reference interpreter on the whole batch. Every failure
/// (options, signatures that differ across ranks, compilation, a run-time
/// error on any rank, an exchange timeout) is reported on every rank.
/// Rank 0 also prints, per rank, the median call time and the time and
/// bytes of its exchanges per call. Returns the process exit code.
int runSharded(const ShardedRunRequest &request);

} // namespace moe::tools

#endif // MOE_TOOLS_MOE_RUN_SHARDEDRUN_H
