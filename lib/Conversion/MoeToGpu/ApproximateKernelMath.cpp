//===- ApproximateKernelMath.cpp - kernel math without libdevice calls ----===//
//
// Why: kernels must not call libdevice (__nv_expf, __nv_erff...). It is
// linked only when the CUDA toolkit is found at compile time, and an
// unresolved call makes ptxas reject the PTX. So every math op the kernels
// use becomes code NVPTX selects directly: upstream's polynomial
// approximations (f32 accuracy) for exp, erf and the like, and arith ops for
// the floor inside the exp approximation, ceil (capacity limits), abs and
// scalar fma. The host execution of the mapped stage runs the same pass, so
// the tests against the reference check the math the GPU computes.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUAPPROXIMATEMATH
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// floor(x) of an f32 by a round trip through i32, corrected for negative
/// non-integers. Exact for |x| < 2^31: the exp approximation floors a
/// clamped, small argument.
LogicalResult floorByTruncation(math::FloorOp op, PatternRewriter &r) {
  if (!op.getType().isF32())
    return failure();
  Location loc = op.getLoc();
  Value x = op.getOperand();
  Value truncated = arith::SIToFPOp::create(
      r, loc, r.getF32Type(), arith::FPToSIOp::create(r, loc, r.getI32Type(), x));
  Value above = arith::CmpFOp::create(r, loc, arith::CmpFPredicate::OGT, truncated, x);
  Value one = arith::ConstantOp::create(r, loc, r.getF32FloatAttr(1.0f));
  Value lower = arith::SubFOp::create(r, loc, truncated, one);
  r.replaceOpWithNewOp<arith::SelectOp>(op, above, lower, truncated);
  return success();
}

/// ceil(x) by a round trip through i64, corrected for positive
/// non-integers: the capacity limits, ceil(cf * T * K / E) in f64, are far
/// inside i64's range.
LogicalResult ceilByTruncation(math::CeilOp op, PatternRewriter &r) {
  Type type = op.getType();
  if (!type.isF32() && !type.isF64())
    return failure();
  Location loc = op.getLoc();
  Value x = op.getOperand();
  Value truncated = arith::SIToFPOp::create(
      r, loc, type, arith::FPToSIOp::create(r, loc, r.getI64Type(), x));
  Value below = arith::CmpFOp::create(r, loc, arith::CmpFPredicate::OLT, truncated, x);
  Value one = arith::ConstantOp::create(r, loc, r.getFloatAttr(type, 1.0));
  Value upper = arith::AddFOp::create(r, loc, truncated, one);
  r.replaceOpWithNewOp<arith::SelectOp>(op, below, upper, truncated);
  return success();
}

/// |x| of an f32: clear the sign bit.
LogicalResult absBySignBit(math::AbsFOp op, PatternRewriter &r) {
  if (!op.getType().isF32())
    return failure();
  Location loc = op.getLoc();
  Value bits = arith::BitcastOp::create(r, loc, r.getI32Type(), op.getOperand());
  Value mask = arith::ConstantOp::create(r, loc, r.getI32IntegerAttr(0x7fffffff));
  Value cleared = arith::AndIOp::create(r, loc, bits, mask);
  r.replaceOpWithNewOp<arith::BitcastOp>(op, op.getType(), cleared);
  return success();
}

/// Scalar fma(a, b, c) = a * b + c, which NVPTX contracts back into one
/// fma.rn (its default fp-contract is fast).
LogicalResult fmaByMulAdd(math::FmaOp op, PatternRewriter &r) {
  if (isa<VectorType>(op.getType()))
    return failure();
  Value product = arith::MulFOp::create(r, op.getLoc(), op.getA(), op.getB());
  r.replaceOpWithNewOp<arith::AddFOp>(op, product, op.getC());
  return success();
}

struct ApproximateKernelMathPass
    : public mlir::moe::impl::MoeGpuApproximateMathBase<ApproximateKernelMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef) { return true; });
    patterns.add(floorByTruncation);
    patterns.add(ceilByTruncation);
    patterns.add(absBySignBit);
    patterns.add(fmaByMulAdd);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
