//===- OpenBlasChild.h - the OpenBLAS baseline with OpenBLAS's best kernel ---===//
//
// OpenBLAS picks its kernels when it is loaded, from the CPU unless
// OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE say otherwise (test setups pin them
// for reproducible numerics). A baseline measured with a pinned, older core
// understates OpenBLAS, so when either variable is set moe-bench runs its
// OpenBLAS loop in a child: itself re-executed (`--openblas-server`) with
// both variables removed from its environment, never changed for anyone
// else. The child builds the same case inputs (fixed seeds) and answers
// one JSON line per request on a pipe, so the parent still alternates
// blocks of ours and of the baseline:
//   <- {"core": "SkylakeX"}                       (on start)
//   -> {"case": "MIX-P", "check_values": 4096}    build, run once
//   <- {"out": [the first 4096 output values]}
//   -> {"block": 3}                               4 calls, the first warm-up
//   <- {"us": [t1, t2, t3]}
//   <- {"error": "..."}                           instead, on bad requests
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_OPENBLAS_CHILD_H
#define MOE_BENCH_OPENBLAS_CHILD_H

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace moe::bench {

/// "OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=..." for those set in this
/// process's environment; empty when neither is.
std::string openblasOverrides();

/// The child's side (moe-bench --openblas-server): serves requests from
/// stdin until it closes. The exit status.
int runOpenBlasServer();

/// The parent's side: a running child and its pipes.
class OpenBlasChild {
public:
  /// Re-executes this program as the server, both variables unset.
  static std::unique_ptr<OpenBlasChild> start(std::string &error);
  ~OpenBlasChild();

  /// The core OpenBLAS picked in the child.
  const std::string &core() const { return coreName; }
  /// Sets up case `name`, runs it once; `firstValues` the first values of
  /// its output (for the check against the reference).
  bool setupCase(const std::string &name, int64_t checkValues, std::vector<float> &firstValues,
                 std::string &error);
  /// calls + 1 baseline calls, the first a warm-up; `us` the timed ones.
  bool timeBlock(int calls, std::vector<double> &us, std::string &error);

private:
  OpenBlasChild() = default;
  bool exchange(const std::string &request, std::string &reply, std::string &error);
  pid_t pid = -1;
  FILE *toChild = nullptr, *fromChild = nullptr;
  std::string coreName;
};

} // namespace moe::bench

#endif // MOE_BENCH_OPENBLAS_CHILD_H
