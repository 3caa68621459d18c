//===- ApproximateVectorMath.cpp - vector exp/erf without libm calls ------===//
//
// Why: LLVM scalarizes a vector `llvm.exp`/`erf` into one libm call per
// lane when no vector math library is configured, and every call clobbers
// the vector registers, so the fused activation in the FFN kernels'
// epilogue spilled and called `expf` 16 times per accumulator. Upstream's
// polynomial approximations keep it in vector registers. Only vector-typed
// ops are rewritten: scalar code keeps libm's correctly rounded results.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEAPPROXIMATEVECTORMATH
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
bool isApproximated(StringRef name) {
  name.consume_front("math.");
  return name == "exp" || name == "erf";
}

struct ApproximateVectorMathPass
    : public mlir::moe::impl::MoeApproximateVectorMathBase<ApproximateVectorMathPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<math::ExpOp, math::ErfOp>(op) && isa<VectorType>(op->getResult(0).getType()))
        ops.push_back(op);
    });
    if (ops.empty())
      return;
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, isApproximated);
    // Strictly the collected ops (and what their rewrites create, e.g. the
    // exp inside erf's expansion): scalar math elsewhere is not touched.
    GreedyRewriteConfig config;
    config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
    bool changed = false;
    if (failed(applyOpPatternsGreedily(ops, std::move(patterns), config, &changed))) {
      getOperation().emitError("moe-approximate-vector-math: the rewrite did not converge");
      return signalPassFailure();
    }
    // Count what is gone: an op still there was not approximable (not f32).
    int64_t left = 0;
    getOperation().walk([&](Operation *op) {
      if (isa<math::ExpOp, math::ErfOp>(op) && isa<VectorType>(op->getResult(0).getType()))
        ++left;
    });
    numApproximated += int64_t(ops.size()) - left;
  }
};
} // namespace
