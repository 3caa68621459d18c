//===- Patterns.h - the moe -> GPU mapping as rewrite patterns ----*- C++ -*-===//
//
// The moe-gpu-map-* passes that lower moe ops are "populate + apply" like
// the loop lowerings (moe/Conversion/MoeToLoops/Patterns.h): one pattern per
// op kind, applied with mlir::walkAndApplyPatterns.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOGPU_PATTERNS_H
#define MOE_CONVERSION_MOETOGPU_PATTERNS_H

#include "moe/Conversion/Passes.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {

/// moe.dispatch as a device counting sort (four block/thread-mapped kernels).
void populateMoeGpuMapDispatchPatterns(RewritePatternSet &patterns,
                                       const MoeGpuMapDispatchOptions &options);

/// One pattern per expert-bank kind: moe.grouped_ffn, moe.grouped_lora and
/// the dense moe.ffn become up/down grouped-GEMM kernels; the banks'
/// tensor.empty accumulators become device buffers.
void populateMoeGpuMapGroupedExpertsPatterns(RewritePatternSet &patterns);

} // namespace mlir::moe

#endif // MOE_CONVERSION_MOETOGPU_PATTERNS_H
