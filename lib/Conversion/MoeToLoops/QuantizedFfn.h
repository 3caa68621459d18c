//===- QuantizedFfn.h - FFN banks in low-precision formats ------*- C++ -*-===//
//
// A bank whose weights are not FP32 (bf16, f16, int8, q8_0, q4_0): the
// same two phases over (group, block of weight rows) work items as the
// FP32 blocked kernel, each item one call of a micro-kernel of the runtime
// (moe_ukernels.h) chosen for the format and the target's ISA.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_QUANTIZEDFFN_H
#define MOE_LIB_CONVERSION_QUANTIZEDFFN_H

#include "LoweringUtils.h"

#include <string>

namespace mlir::moe::lowering {

struct QuantizedFfnConfig {
  /// The micro-kernels' ISA suffix: generic, avx2, avx512, avx512bf16,
  /// avx512vnni, amx (microKernelIsa).
  std::string isa;
  /// Weight bytes of one work item (sized for L2).
  int64_t blockBytes = 256 * 1024;
  bool parallel = true;
};

/// The ISA whose micro-kernels run `format` best on the target: `requested`
/// when not empty, else from the host's features, no wider than
/// `vectorWidth` f32 lanes (8: avx2; below 8: generic).
std::string microKernelIsa(WeightFormat format, StringRef requested, int64_t vectorWidth);

/// The bank's operands as buffers.
struct QuantizedFfnOperands {
  Activation act;
  WeightFormat format;
  ActivationPrecision precision;
  Value x;                  // [T, H] f32
  Value rows, offsets;      // the dispatch's sorted rows and group offsets;
                            // null for a dense FFN (one group: tokens 0..T)
  int64_t firstExpert = 0;  // the bank's first global expert id
  Value w1, w3, w2;         // [N, I, stored(H)], w3 null when not gated, [N, H, stored(I)]
                            // (dense: [I, stored(H)], [H, stored(I)], N = 1)
  Value s1, s3, s2;         // int8 row scales [N, I], [N, I], [N, H] (dense: [I], [H]); else null
  Value out;                // [P, H] f32, row p of the sorted order (dense: token p)
  int64_t numGroups = 0, h = 0, inter = 0;
};

/// out[p] = FFN_n(x[rows[p]]) for the rows p of every expert n of the bank.
void emitQuantizedFfn(OpBuilder &b, Location loc, const QuantizedFfnConfig &cfg,
                      const QuantizedFfnOperands &ops);

} // namespace mlir::moe::lowering

#endif // MOE_LIB_CONVERSION_QUANTIZEDFFN_H
