//===- Passes.td - moe dialect transformation passes --------*- tablegen -*-===//
#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

#endif // MOE_TRANSFORMS_PASSES_TD
