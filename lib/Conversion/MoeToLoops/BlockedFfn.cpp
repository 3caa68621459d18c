//===- BlockedFfn.cpp - cache-blocked grouped FFN GEMMs -------------------===//
//
// Why two phases instead of one fused tile loop: a tile that runs the whole
// FFN for a few rows streams every weight of the expert once per tile, so a
// prefill batch with many rows per expert re-reads tens of MB per tile from
// memory. Here a work item owns one L2-sized block of weight rows and runs
// every row of its group against it, so each weight is read from memory
// once per call; the [P, I] intermediate (activation already applied) is
// the price, and it is read back tile by tile from cache-sized K slices.
//
// The register block: `rowTile` rows x n weight rows (n chosen so the
// accumulators fill the vector register budget), each loaded vector used by
// the whole block, one horizontal reduction per accumulator per K slice.
// Items are (group, output block) pairs claimed one at a time by the pool,
// so a skewed routing still spreads over every core.
//
// This file derives the blockings and emits the pieces in order; the
// pieces are BlockedFfnEmitter's units (BlockedFfnEmitter.h lists where
// each lives).
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

namespace {

int64_t roundDown(int64_t v, int64_t m) { return std::max(m, v - v % m); }

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// The block of an extent `n` split into blocks of at most about `maxBlock`
/// (a multiple of `m`): as many blocks as `maxBlock` needs, made equal
/// (rounded up to a multiple of `m`, capped at n). Equal blocks keep the
/// last one from being a sliver: the packed kernel's row tile is capped by
/// the smallest block, and DS-P's phase B (H = 1024 in blocks of 255) had a
/// last block of 4 rows, so every tile was 4 rows instead of 12.
int64_t balancedBlock(int64_t n, int64_t maxBlock, int64_t m) {
  int64_t blocks = ceilDiv(n, std::max<int64_t>(1, maxBlock));
  return std::min(n, ceilDiv(ceilDiv(n, blocks), m) * m);
}

} // namespace

BlockedFfnEmitter::BlockedFfnEmitter(OpBuilder &b, const BlockedFfnConfig &cfg,
                                     const BlockedFfnOperands &ops, GroupRangeFn groupRange,
                                     TokenOfFn tokenOf)
    : cfg(cfg), ops(ops), groupRange(groupRange), tokenOf(tokenOf) {
  gated = ops.w3 != nullptr;
  h = ops.h;
  inter = ops.inter;
  mr = cfg.rowTile;
  width = cfg.width;
  numGroups = ops.numGroups;
  f32 = b.getF32Type();
  vecType = VectorType::get({width}, f32);
  inFunc = b.getInsertionBlock()->getParentOp();

  packing = cfg.packMinRows > 0;
  // Panels per register tile: `packTiles`, and with `packTilesWide` a
  // second kernel body with that many, which groups of enough panels take
  // (emitTileVariants). Buffers and K slices are sized for the wider.
  nvNarrow = std::max<int64_t>(1, cfg.packTiles);
  nvWide = cfg.packTilesWide > nvNarrow ? cfg.packTilesWide : 0;
  nvMax = std::max(nvNarrow, nvWide);
  matsA = gated ? 2 : 1;
  auto sliceLen = [&](int64_t k) {
    int64_t kc = std::min(k, std::max<int64_t>(1, cfg.packSliceBytes / (nvMax * width * 4)));
    return ceilDiv(k, ceilDiv(k, kc)); // equal slices
  };
  kcA = sliceLen(h);
  slicesA = ceilDiv(h, kcA);
  kcB = sliceLen(inter);
  slicesB = ceilDiv(inter, kcB);

  // Phase A: items (group, block of I rows of w1/w3).
  nrA = std::max<int64_t>(1, cfg.accumulators / (mr * matsA));
  blockA = balancedBlock(inter, roundDown(cfg.blockBytes / (4 * h * matsA), nrA), nrA);
  blocksA = (inter + blockA - 1) / blockA;
  extentsA = {blockA, inter - (blocksA - 1) * blockA};

  // Phase B: items (group, block of H rows of w2); the dot tiles go over K
  // slices of `kc` elements.
  nrB = std::max<int64_t>(1, cfg.accumulators / mr);
  kc = std::max<int64_t>(width, cfg.sliceBytes / (4 * mr));
  const int64_t slices = (inter + kc - 1) / kc;
  kc = std::min(inter, ((inter + slices - 1) / slices + width - 1) / width * width);
  fullSlices = inter / kc;
  tail = inter - fullSlices * kc;
  blockB = balancedBlock(h, roundDown(cfg.blockBytes / (4 * kc), nrB), nrB);
  blocksB = (h + blockB - 1) / blockB;
  extentsB = {blockB, h - (blocksB - 1) * blockB};
  rowsB = std::max(packedRows(1, nvNarrow, extentsB), nvWide ? packedRows(1, nvWide, extentsB) : 0);
  // With power-of-two lanes and tiles of at most `width` rows, phase B's
  // results go out transposed in registers (no tmp).
  transposedB = llvm::isPowerOf2_64(width) && rowsB <= width;
}

int64_t BlockedFfnEmitter::packedRows(int64_t mats, int64_t nv, ArrayRef<int64_t> extents) const {
  int64_t rows = std::min<int64_t>(12, std::max<int64_t>(1, cfg.accumulators / (mats * nv)));
  return std::min(rows, *llvm::min_element(extents));
}

Value BlockedFfnEmitter::panelRow0(OpBuilder &b, Location loc, Value start, Value t, Value tb) const {
  return arith::AddIOp::create(
      b, loc, start,
      arith::MulIOp::create(b, loc, arith::SubIOp::create(b, loc, t, tb), cIndex(b, loc, width)));
}

Value BlockedFfnEmitter::zeroVector(OpBuilder &b, Location loc) const {
  return arith::ConstantOp::create(b, loc, vecType,
                                   DenseElementsAttr::get(vecType, b.getF32FloatAttr(0.0f)));
}

void BlockedFfnEmitter::emit(OpBuilder &b, Location loc) {
  // The intermediate, at the function level (moe-buffer-abi frees it).
  auto midType = MemRefType::get({ShapedType::kDynamic, inter}, f32);
  mid = memref::AllocOp::create(b, loc, midType, ValueRange{ops.numRows}, b.getI64IntegerAttr(64));
  if (packing) {
    emitPanelLayout(b, loc);
    emitPackX(b, loc);
  }
  emitPhaseA(b, loc);
  emitPhaseB(b, loc);
}

void mlir::moe::lowering::emitBlockedFfn(
    OpBuilder &b, Location loc, const BlockedFfnConfig &cfg, const BlockedFfnOperands &ops,
    function_ref<std::pair<Value, Value>(OpBuilder &, Location, Value)> groupRange,
    function_ref<Value(OpBuilder &, Location, Value)> tokenOf) {
  BlockedFfnEmitter(b, cfg, ops, groupRange, tokenOf).emit(b, loc);
}
