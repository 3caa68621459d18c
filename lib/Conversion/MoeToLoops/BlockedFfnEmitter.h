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

} // namespace mlir::moe::lowering::ffn

#endif // MOE_LIB_CONVERSION_BLOCKEDFFNEMITTER_H
