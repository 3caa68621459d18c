//===- Patterns.h - the moe -> loops lowerings as rewrite patterns -*- C++ -*-===//
//
// Each moe-lower-* pass is "populate + apply": its populate function adds
// one rewrite pattern per op kind it lowers, and the pass applies them with
// mlir::walkAndApplyPatterns (docs/architecture.md, "Lowerings as
// patterns", says why that driver). The options are the passes' own
// (Passes.td), so a pipeline that applies the patterns itself configures
// them exactly as the pass would be.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLOOPS_PATTERNS_H
#define MOE_CONVERSION_MOETOLOOPS_PATTERNS_H

#include "moe/Conversion/Passes.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {

/// moe.skip_block and moe.path_select: compact the selected tokens, inline
/// the region(s) on them, scatter-add the result. Outermost first: the
/// patterns decline a skip op inside another one's region (the enclosing
/// op's lowering inlines it), so applying them until none is left lowers
/// one nesting level per walk.
void populateMoeLowerSkipsPatterns(RewritePatternSet &patterns,
                                   const MoeLowerSkipsOptions &options);

/// One pattern per router kind: moe.topk_router, moe.grouped_topk_router,
/// moe.topp_router, moe.relu_router, moe.expert_choice_router,
/// moe.hash_router, moe.path_router, moe.capacity_drop, moe.exit_layers and
/// moe.exit_paths.
void populateMoeLowerRoutersPatterns(RewritePatternSet &patterns,
                                     const MoeLowerRoutersOptions &options);

/// moe.dispatch as a counting sort.
void populateMoeLowerDispatchPatterns(RewritePatternSet &patterns);

/// One pattern per expert-bank kind: moe.grouped_ffn, moe.grouped_lora,
/// the dense moe.ffn, and the banks' tensor.empty accumulators.
void populateMoeLowerGroupedExpertsPatterns(
    RewritePatternSet &patterns, const MoeLowerGroupedExpertsOptions &options);

/// moe.combine, moe.trivial_combine and moe.remap_experts.
void populateMoeLowerCombinePatterns(RewritePatternSet &patterns,
                                     const MoeLowerCombineOptions &options);

} // namespace mlir::moe

#endif // MOE_CONVERSION_MOETOLOOPS_PATTERNS_H
