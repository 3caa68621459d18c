//===- FfnPacking.cpp - x packed into row panels --------------------------===//
//
// The packed path's input layout: every group with enough rows gets
// ceil(rows / width) row panels of [K, width] (lane = row), so that the
// micro-kernel loads one vector per panel and k. x is gathered and
// transposed into them once per call, in registers.
//
//===----------------------------------------------------------------------===//

#include "BlockedFfnEmitter.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ffn;

/// log2(n) butterfly stages of n two-input shuffles each. The stage of
/// half-size h swaps the off-diagonal h x h blocks of every 2h x 2h block
/// ([[A, B], [C, D]] -> [[A, C], [B, D]]); after all of them every block is
/// transposed. 64 shuffles for 16 x 16 instead of 256 scalar loads and
/// stores.
SmallVector<Value> ffn::transposeRows(OpBuilder &b, Location loc, SmallVector<Value> rows) {
  const int64_t n = rows.size();
  for (int64_t h = n / 2; h >= 1; h /= 2) {
    SmallVector<int64_t> lowMask(n), highMask(n);
    for (int64_t j = 0; j < n; ++j) {
      lowMask[j] = (j & h) == 0 ? j : n + j - h;
      highMask[j] = (j & h) == 0 ? j + h : n + j;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (i & h)
        continue;
      Value a = rows[i], c = rows[i + h];
      rows[i] = vector::ShuffleOp::create(b, loc, a, c, lowMask);
      rows[i + h] = vector::ShuffleOp::create(b, loc, a, c, highMask);
    }
  }
  return rows;
}
