//===- BlockedFfnEmitter.h - emitBlockedFfn's units -------------*- C++ -*-===//
//
// Private to the blocked FFN's files. emitBlockedFfn (BlockedFfn.cpp) builds
// one BlockedFfnEmitter: the config, the shapes and blockings derived from
// it, and the buffers every phase uses, so that each unit is a member
// function instead of a lambda capturing all of it. The units live in files
// named after what they emit:
//   BlockedFfn.cpp      the blockings, and the order of the pieces
//   FfnLoops.cpp        work-item, tiled, K-slice and packed-tile loops
//   FfnPacking.cpp      the panel layout and x packed into panels
//   FfnPackedKernel.cpp the packed outer-product micro-kernel
//   FfnPhaseA.cpp       phase A: the up projections on packed panels
//   FfnPhaseB.cpp       phase B: the down projection on packed panels
//   FfnEpilogues.cpp    the packed tiles' stores (activation, transposed
//                       stores, scatter, partial sums)
//   FfnDotTiles.cpp     the dot-product tiles (decode and unpacked groups)
// The order in which the units create ops is the order of the single
// function they came from: the generated IR is the same op for op.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_BLOCKEDFFNEMITTER_H
#define MOE_LIB_CONVERSION_BLOCKEDFFNEMITTER_H

#include "BlockedFfn.h"

namespace mlir::moe::lowering::ffn {

/// f32 elements per 64-byte cache line (the packed kernel's prefetch step).
constexpr int64_t kLineFloats = 16;

using GroupRangeFn = function_ref<std::pair<Value, Value>(OpBuilder &, Location, Value)>;
using TokenOfFn = function_ref<Value(OpBuilder &, Location, Value)>;
using BodyFn = function_ref<void(OpBuilder &, Location)>;

//===----------------------------------------------------------------------===//
// Loop and vector helpers (FfnLoops.cpp, FfnPacking.cpp)
//===----------------------------------------------------------------------===//

/// The transpose of an n x n block held as n row vectors (n a power of two).
SmallVector<Value> transposeRows(OpBuilder &b, Location loc, SmallVector<Value> rows);

/// `for (i = lb; i + step <= ub; i += step) body(i)` then, for the rest,
/// tiles of decreasing powers of two below `step`: body gets (start, size).
/// `extents`, when given, are all the values ub - lb can take (static
/// blockings): only the remainder tiles those can need are emitted, since
/// every unrolled tile costs compile time.
void emitTiled(OpBuilder &b, Location loc, Value lb, Value ub, int64_t step,
               function_ref<void(OpBuilder &, Location, Value, int64_t)> body,
               ArrayRef<int64_t> extents = {});

/// The work-item loop: `for item < groups * blocks`, (group, block) =
/// divmod(item, blocks), marked for the pool when `parallel`.
void emitItems(OpBuilder &b, Location loc, int64_t groups, int64_t blocks, bool parallel,
               function_ref<void(OpBuilder &, Location, Value, Value)> body);

/// `fn` under `cond` (directly when it is null).
void emitWhen(OpBuilder &b, Location loc, Value cond, BodyFn fn);
/// `fn` under `a && b` (either may be null).
void emitWhen2(OpBuilder &b, Location loc, Value a, Value c, BodyFn fn);

/// One register tile of a packed phase. Its ids stay consecutive, so the
/// kernel's weight rows are one base plus constant offsets (separately
/// clamped ids would each take a pointer register and spill):
///  - the last weight-row tile is shifted back to end at the block's end
///    (the block is never shorter than a tile); the rows it shares with the
///    tile before are recomputed but not stored (`rowValid[r]` false);
///  - the last panel tile may run past the group's panels into the next
///    group's (the panel buffers are padded by a tile's panels at the end);
///    those results are not stored (`tileValid[v]` false).
/// A null condition means always valid. `prefetchNext` says when the kernel
/// prefetches the next weight-row tile: with weight tiles outside, only on
/// the first panel tile (the later ones reuse the weights from L1); null
/// (always) otherwise.
struct PackedTile {
  SmallVector<Value> tiles, tileValid, rowIds, rowValid;
  Value prefetchNext;
};

/// The packed phases' tile loops: weight rows [r0, r1) in tiles of `rows`
/// (r1 - r0 >= rows), panels [t0, t1) in tiles of `nv`; `rowsOuter` picks
/// which loop is outside.
void emitPackedTiles(OpBuilder &b, Location loc, Value r0, Value r1, int64_t rows, Value t0, Value t1,
                     int64_t nv, bool rowsOuter,
                     function_ref<void(OpBuilder &, Location, const PackedTile &)> body);

//===----------------------------------------------------------------------===//
// The packed micro-kernel (FfnPackedKernel.cpp)
//===----------------------------------------------------------------------===//

/// The packed outer-product micro-kernel shared by both phases:
///   acc[m][r][v] (+)= sum_{k in slice} W_m[rowIds[r], k] * panel[tiles[v], k, :]
/// for `rows` weight rows x `nv` row panels (each panel `width` rows of the
/// group, lane = row), every weight element broadcast once and used by all
/// `nv` panels, every panel vector used by all `rows x mats` accumulators.
/// `first` zeroes the accumulators (else `init` loads them); `finish` gets
/// them after the slice. There are no remainder tiles (one unrolled body per
/// phase keeps compile time down): see PackedTile for how the last tiles
/// are handled.
struct PackedKernel {
  int64_t width;
  VectorType vecType;
  SmallVector<Value> weights;  // mats, each [G?, rows, K]
  SmallVector<Value> prefix;   // the group index (empty for a dense FFN)
  Value panels;                // [tiles, K, width]

  using InitFn = function_ref<Value(OpBuilder &, Location, int64_t m, Value t, Value row)>;
  using FinishFn = function_ref<void(OpBuilder &, Location, ArrayRef<Value> accs)>;

  void emit(OpBuilder &b, Location loc, ArrayRef<Value> tiles, ArrayRef<Value> rowIds, Value k0,
            Value k1, Value first, Value prefetchNext, InitFn init, FinishFn finish) const;

  /// `prefetchNext` (i1; null: always) says whether to prefetch the next
  /// weight-row tile.
  void emitAccumulate(OpBuilder &b, Location loc, ArrayRef<Value> tiles, ArrayRef<Value> rowIds,
                      SmallVector<Value> accs, Value k0, Value k1, Value prefetchNext,
                      FinishFn finish) const;

private:
  /// Prefetches row k of the weight-row tile after this one (its first row
  /// per matrix in `nextBase`) into L2.
  void emitPrefetch(OpBuilder &b, Location loc, ArrayRef<Value> nextBase, int64_t rows, Value k) const;
};

//===----------------------------------------------------------------------===//
// The emitter
//===----------------------------------------------------------------------===//

/// A work item: group `g`'s rows [start, end) against the block [lo, hi) of
/// the phase's output columns (weight rows: w1/w3 in phase A, w2 in B).
struct WorkItem {
  Value g, start, end, lo, hi;
};

/// One K slice of a packed phase: [k0, k1), first / last (i1).
struct KSlice {
  Value k0, k1, first, last;
};

/// What a packed phase-B tile's epilogue stores: the kernel's accumulators
/// (accs[r * nv + v]: w2 row rowIds[r], panel tiles[v]) for `item`, whose
/// panels start at `tb`. `tmp` is the scatter buffer (null when the results
/// are transposed in registers), `zero` the tile's index 0.
struct PackedBResult {
  const WorkItem &item;
  Value tb;
  const PackedTile &tile;
  ArrayRef<Value> accs;
  Value tmp, zero;
};

class BlockedFfnEmitter {
public:
  /// Derives the blockings; `b`'s insertion point is where the FFN goes.
  BlockedFfnEmitter(OpBuilder &b, const BlockedFfnConfig &cfg, const BlockedFfnOperands &ops,
                    GroupRangeFn groupRange, TokenOfFn tokenOf);

  /// The whole FFN: the intermediate, the panels (packing), phase A, phase B.
  void emit(OpBuilder &b, Location loc);

private:
  using TileVariantFn = function_ref<void(OpBuilder &, Location, int64_t nv)>;
  using PackedBodyFn =
      function_ref<void(OpBuilder &, Location, const KSlice &, const PackedTile &)>;
  using DotRowsFn =
      function_ref<void(OpBuilder &, Location, Value, int64_t, SmallVector<Value>)>;

  //--- FfnLoops.cpp: the loop structure shared by the phases.
  WorkItem emitWorkItem(OpBuilder &b, Location loc, Value g, Value blk, int64_t block,
                        int64_t extent) const;
  void emitSlices(OpBuilder &b, Location loc, int64_t k, int64_t kc, int64_t slices,
                  function_ref<void(OpBuilder &, Location, const KSlice &)> body) const;
  void emitTileVariants(OpBuilder &b, Location loc, Value tb, Value te, TileVariantFn fn) const;
  void emitPackedLoops(OpBuilder &b, Location loc, const WorkItem &item, Value tb, Value te,
                       int64_t k, int64_t kc, int64_t slices, int64_t mats,
                       ArrayRef<int64_t> extents, PackedBodyFn body) const;
  void byLayout(OpBuilder &b, Location loc, Value g,
                function_ref<void(OpBuilder &, Location, Value, Value)> then,
                BodyFn otherwise) const;

  //--- FfnPacking.cpp
  void emitPanelLayout(OpBuilder &b, Location loc);
  void emitPackX(OpBuilder &b, Location loc) const;
  void emitPackPanel(OpBuilder &b, Location loc, Value start, Value end, Value tb, Value t) const;

  //--- FfnPhaseA.cpp
  void emitPhaseA(OpBuilder &b, Location loc) const;
  void emitPackedA(OpBuilder &b, Location loc, const WorkItem &item, Value tb, Value te) const;
  void emitPackedATile(OpBuilder &b, Location loc, const PackedKernel &kernel, const KSlice &slice,
                       const PackedTile &tile) const;

  //--- FfnPhaseB.cpp
  void emitPhaseB(OpBuilder &b, Location loc) const;
  void emitPackedB(OpBuilder &b, Location loc, const WorkItem &item, Value tb, Value te) const;
  void emitPackedBTile(OpBuilder &b, Location loc, const PackedKernel &kernel, const WorkItem &item,
                       Value tb, const KSlice &slice, const PackedTile &tile, Value tmp) const;

  //--- FfnEpilogues.cpp
  void storePackedA(OpBuilder &b, Location loc, const PackedTile &tile, ArrayRef<Value> accs,
                    Value zero, bool final) const;
  void finishPackedB(OpBuilder &b, Location loc, const PackedBResult &res, Value last) const;
  void storeTransposedB(OpBuilder &b, Location loc, const PackedBResult &res) const;
  void scatterB(OpBuilder &b, Location loc, const PackedBResult &res) const;
  void parkPartialSumsB(OpBuilder &b, Location loc, const PackedBResult &res) const;
  Value rowOkB(const PackedTile &tile, int64_t r) const;

  //--- FfnDotTiles.cpp
  void dotRows(OpBuilder &b, Location loc, Value start, Value end, DotRowsFn body) const;
  void emitDotA(OpBuilder &b, Location loc, const WorkItem &item) const;
  void emitDotATile(OpBuilder &b, Location loc, Value g, ArrayRef<RowRef> xRows,
                    ArrayRef<Value> ps, Value c0, int64_t cols) const;
  void emitDotB(OpBuilder &b, Location loc, const WorkItem &item) const;
  void emitDotBSlice(OpBuilder &b, Location loc, const WorkItem &item, Value k0, int64_t len,
                     Value first) const;
  void emitDotBTile(OpBuilder &b, Location loc, Value g, ArrayRef<RowRef> midRows,
                    ArrayRef<Value> ps, Value cStart, int64_t cols, Value k0, int64_t len,
                    Value first) const;

  //--- Small shared pieces.
  /// The weights' group index (none for a dense FFN).
  SmallVector<Value> prefixOf(Value g) const {
    return ops.perGroupWeights ? SmallVector<Value>{g} : SmallVector<Value>{};
  }
  RowRef weightRow(Value w, Value g, Value row) const {
    SmallVector<Value> idx = prefixOf(g);
    idx.push_back(row);
    return RowRef{w, idx};
  }
  /// Weight rows of a packed tile of `nv` panels over `mats` matrices: as
  /// many as the accumulators allow, at most 12, and never more than a
  /// block (PackedTile shifts the last tile back inside the block).
  int64_t packedRows(int64_t mats, int64_t nv, ArrayRef<int64_t> extents) const;
  /// The first row of the group whose panel `t` is (its panels start at `tb`).
  Value panelRow0(OpBuilder &b, Location loc, Value start, Value t, Value tb) const;
  Value zeroVector(OpBuilder &b, Location loc) const;

  const BlockedFfnConfig &cfg;
  const BlockedFfnOperands &ops;
  GroupRangeFn groupRange;
  TokenOfFn tokenOf;

  bool gated;
  int64_t h, inter, mr, width, numGroups;
  Type f32;
  VectorType vecType;
  /// Inside builder callbacks the enclosing ops are not attached yet, so the
  /// function is found from the insertion point emitBlockedFfn was given.
  Operation *inFunc;

  // The packed path (FfnPacking.cpp has the layout).
  bool packing;
  int64_t nvNarrow, nvWide, nvMax, matsA;
  int64_t kcA, slicesA, kcB, slicesB;
  // Phase A's blocking (dot tiles and packed).
  int64_t nrA, blockA, blocksA;
  SmallVector<int64_t> extentsA;
  // Phase B's blocking: the dot tiles' K slices of `kc` (fullSlices, then a
  // tail), the items' blocks of H.
  int64_t nrB, kc, fullSlices, tail, blockB, blocksB;
  SmallVector<int64_t> extentsB;
  int64_t rowsB;
  bool transposedB;

  // The buffers (null when unused).
  Value mid, tileOff, panelsX, panelsMid, panelsGate, panelsAcc;
};

} // namespace mlir::moe::lowering::ffn

#endif // MOE_LIB_CONVERSION_BLOCKEDFFNEMITTER_H
