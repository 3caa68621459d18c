//===- BlockedFfn.h - cache-blocked grouped FFN GEMMs -----------*- C++ -*-===//
//
// The FFN experts' two GEMMs as two passes over (group, output block) work
// items, blocked for the caches: see BlockedFfn.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_BLOCKEDFFN_H
#define MOE_LIB_CONVERSION_BLOCKEDFFN_H

#include "LoweringUtils.h"

namespace mlir::moe::lowering {

struct BlockedFfnConfig {
  int64_t width = 8;         // f32 lanes per vector
  int64_t rowTile = 4;       // rows sharing each loaded weight vector
  int64_t accumulators = 12; // vector accumulators in a register block
  int64_t blockBytes = 256 * 1024; // weights of one work item (sized for L2)
  int64_t sliceBytes = 16 * 1024;    // a row tile's reduction slice (sized for L1)
  bool parallel = true;
  // The packed outer-product path (PackedKernel in BlockedFfnEmitter.h):
  // groups with at least `packMinRows` rows use it (0: never); `packTiles`
  // row panels of `width` rows share each broadcast weight; the K slice is
  // sized so those panels' slice takes `packSliceBytes` (L1).
  int64_t packMinRows = 8;
  int64_t packTiles = 2;
  // When > packTiles: a second packed body with this many panels per tile,
  // taken by groups with enough panels (0: none).
  int64_t packTilesWide = 0;
  int64_t packSliceBytes = 32 * 1024;
  // Weight-row tiles outside the panel tiles: one weight tile (from DRAM)
  // is reused from L1 across all of the group's panels, which stream from
  // L2; else each panel tile stays in L1 across the weight tiles.
  bool packRowsOuter = true;
};

/// One bank of FFN experts (or a dense FFN: one group, unprefixed weights).
struct BlockedFfnOperands {
  Activation act;
  Value x;           // [T, H], rows gathered through tokenOf
  Value w1, w3, w2;  // [G?, I, H], [G?, I, H] (null when not gated), [G?, H, I]
  bool perGroupWeights = true;
  Value out;         // [P, H], row p of the sorted order
  Value numRows;     // P (index)
  int64_t numGroups = 1, h = 0, inter = 0;
};

/// out[p] = w2 · act(w1 · x[token(p)]) (* w3 · x[token(p)]) for the rows p
/// of every group, in two phases with a [P, I] intermediate:
///  A: items (group, block of I) compute the activation-fused up/gate
///     projections of all the group's rows against one L2-sized block of
///     w1/w3 rows;
///  B: items (group, block of H) compute the down projection, K-blocked
///     so a row tile's slice of the intermediate stays in L1.
/// Each phase's item loop is marked `moe.parallel` when cfg.parallel.
void emitBlockedFfn(
    OpBuilder &b, Location loc, const BlockedFfnConfig &cfg, const BlockedFfnOperands &ops,
    function_ref<std::pair<Value, Value>(OpBuilder &, Location, Value)> groupRange,
    function_ref<Value(OpBuilder &, Location, Value)> tokenOf);

} // namespace mlir::moe::lowering

#endif // MOE_LIB_CONVERSION_BLOCKEDFFN_H
