//===- Quant.h - low-precision weight formats -------------------*- C++ -*-===//
//
// The weight formats an FFN expert bank may hold (docs/quantization.md has
// the byte layouts), their conversions and quantizers. Plain C++ in
// MoeSupport: the reference interpreter dequantizes through dequantizeRow,
// and moe-quantize, moec.quantize and moe-bench quantize through
// quantizeRows, so there is one definition of every format.
//
// Q8_0 and Q4_0 are bit-compatible with ggml's blocks of the same names
// (quantize_row_q8_0_ref / quantize_row_q4_0_ref), so a GGUF tensor's data
// for a [rows, K] weight is a valid moe weight as it is.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SUPPORT_QUANT_H
#define MOE_SUPPORT_QUANT_H

#include "moe/Support/Tensor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

/// Numbered as the IR's #moe weight_format and moe_ukernels.h.
enum class WeightFormat { F32 = 0, BF16 = 1, F16 = 2, Int8 = 3, Q8_0 = 4, Q4_0 = 5 };

/// What the expert products see of the activations (moe_ukernels.h):
/// exact FP32, rounded to BF16, or quantized to Q8_0 blocks.
enum class ActivationPrecision { F32 = 0, BF16 = 1, Q8_0 = 2 };

/// Values per block of the Q8_0 and Q4_0 formats.
constexpr int64_t kQuantBlock = 32;

/// "f32" "bf16" "f16" "int8" "q8_0" "q4_0"; "?" otherwise.
const char *weightFormatName(WeightFormat f);
bool parseWeightFormat(const std::string &name, WeightFormat &out);
/// "f32" "bf16" "q8_0".
const char *activationPrecisionName(ActivationPrecision p);
bool parseActivationPrecision(const std::string &name, ActivationPrecision &out);

/// The element type a weight of format `f` is stored in: F32, BF16, F16, or
/// I8 (bytes) for int8, q8_0 and q4_0.
DType storageDType(WeightFormat f);
/// Stored elements of one row of K values: K, or the bytes of K/32 blocks
/// (34 per Q8_0 block, 18 per Q4_0 block).
int64_t storedRowElements(WeightFormat f, int64_t k);
/// Whether K must be a multiple of kQuantBlock.
bool isBlockFormat(WeightFormat f);
/// int8 carries one f32 scale per row.
bool hasRowScales(WeightFormat f);
/// Largest relative error of a dequantized weight against the value it was
/// quantized from, relative to the row's (or block's) largest magnitude.
double quantizationErrorBound(WeightFormat f);

uint16_t floatToBf16(float v); // round to nearest even; NaN stays NaN
float bf16ToFloat(uint16_t bits);
uint16_t floatToF16(float v);  // round to nearest even, IEEE half
float f16ToFloat(uint16_t bits);

/// Quantizes `rows` rows of `k` floats into rows * storedRowElements(f, k)
/// elements of storageDType(f), raw (16-bit patterns, bytes), and for int8
/// one scale per row into `scales`.
void quantizeRows(WeightFormat f, const float *src, int64_t rows, int64_t k, void *dst,
                  float *scales);
/// The k values of one stored row (`scale`: the row's int8 scale, else unused).
void dequantizeRow(WeightFormat f, const void *row, float scale, int64_t k, float *dst);

/// Random weights of logical shape [..., K] stored in `f` (a Tensor of
/// storageDType(f), last dimension storedRowElements): the documented random
/// FP32 weights (Random.h's randomFloats) quantized, except int8, whose q
/// are uniform in [-127, 127] (its scales come from randomRowScales).
Tensor randomStoredWeights(WeightFormat f, const std::vector<int64_t> &logicalShape,
                           uint64_t seed);
/// Random int8 row scales for rows of k values: uniform in [0.5, 1) times
/// sqrt(3 / k) / 127, so q * scale has randomFloats' magnitude.
Tensor randomRowScales(const std::vector<int64_t> &shape, int64_t k, uint64_t seed);

/// What the products see of k activations under precision `p` (F32: x).
void roundActivations(ActivationPrecision p, const float *x, int64_t k, float *dst);

} // namespace moe

#endif // MOE_SUPPORT_QUANT_H
