//===- Random.h - deterministic input generation ----------------*- C++ -*-===//
//
// splitmix64: the same seed gives the same inputs on every platform and
// compiler (std::*_distribution does not promise that), so `random:SEED`
// inputs are reproducible across moe-run, moe-gpu-run, the tests and the
// benchmarks.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_RANDOM_H
#define MOE_SUPPORT_RANDOM_H

#include "moe/Support/Tensor.h"
#include <cstdint>

namespace moe {
class Rng {
public:
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next();
  /// Uniform in [lo, hi).
  float uniform(float lo, float hi) { return uniformFromDraw(next(), lo, hi); }
  /// Uniform in [lo, hi) from the top 24 bits of one draw, for callers that
  /// use the same draw for an integer too (moe-gpu-run).
  static float uniformFromDraw(uint64_t draw, float lo, float hi);
  /// Uniform integer in [lo, hi).
  int64_t integer(int64_t lo, int64_t hi);

private:
  uint64_t state;
};

/// The documented random inputs: floats uniform in [-a, a) with
/// a = sqrt(3 / last dim) for rank >= 2 (a weight's fan-in: unit-variance
/// preserving, so activations keep their scale through a layer) and a = 1 for
/// rank <= 1.
Tensor randomFloats(std::vector<int64_t> shape, uint64_t seed);
/// Integers uniform in [lo, hi).
Tensor randomInts(DType dtype, std::vector<int64_t> shape,
                       uint64_t seed, int64_t lo, int64_t hi);
} // namespace moe

#endif // MOE_SUPPORT_RANDOM_H
