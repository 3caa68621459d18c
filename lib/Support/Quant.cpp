//===- Quant.cpp - low-precision weight formats ---------------------------===//

#include "moe/Support/Quant.h"
#include "moe/Support/Random.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace moe {
namespace {

uint32_t bitsOf(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

float floatOf(uint32_t u) {
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

/// Bytes of one Q8_0 block ({f16 d; int8 qs[32]}) and one Q4_0 block
/// ({f16 d; uint8 qs[16]}).
constexpr int64_t kQ8_0BlockBytes = 2 + kQuantBlock;
constexpr int64_t kQ4_0BlockBytes = 2 + kQuantBlock / 2;

void storeF16(unsigned char *p, float v) {
  uint16_t h = floatToF16(v);
  p[0] = static_cast<unsigned char>(h);
  p[1] = static_cast<unsigned char>(h >> 8);
}

float loadF16(const unsigned char *p) { return f16ToFloat(uint16_t(p[0] | (p[1] << 8))); }

float absMax(const float *x, int64_t n) {
  float m = 0.0f;
  for (int64_t j = 0; j < n; ++j)
    m = std::max(m, std::fabs(x[j]));
  return m;
}

/// ggml's quantize_row_q8_0_ref for one block.
void quantizeQ8_0Block(const float *x, unsigned char *block) {
  float d = absMax(x, kQuantBlock) / 127.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  storeF16(block, d);
  for (int64_t j = 0; j < kQuantBlock; ++j)
    block[2 + j] = static_cast<unsigned char>(int8_t(std::round(x[j] * id)));
}

/// ggml's quantize_row_q4_0_ref for one block: d = (the value of largest
/// magnitude) / -8, so that value maps to q = 0 exactly.
void quantizeQ4_0Block(const float *x, unsigned char *block) {
  float amax = 0.0f, max = 0.0f;
  for (int64_t j = 0; j < kQuantBlock; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  float d = max / -8.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  storeF16(block, d);
  constexpr int64_t half = kQuantBlock / 2;
  for (int64_t j = 0; j < half; ++j) {
    // The products are rounded before the add, as in ggml: two statements,
    // so no FMA contraction can fuse them.
    float x0 = x[j] * id;
    float x1 = x[half + j] * id;
    int lo = std::min(15, int(int8_t(x0 + 8.5f)));
    int hi = std::min(15, int(int8_t(x1 + 8.5f)));
    block[2 + j] = static_cast<unsigned char>(lo | (hi << 4));
  }
}

void quantizeRow(WeightFormat f, const float *x, int64_t k, void *dst, float *scale) {
  auto *bytes = static_cast<unsigned char *>(dst);
  auto *halves = static_cast<uint16_t *>(dst);
  switch (f) {
  case WeightFormat::F32:
    std::memcpy(dst, x, size_t(k) * 4);
    return;
  case WeightFormat::BF16:
    for (int64_t j = 0; j < k; ++j)
      halves[j] = floatToBf16(x[j]);
    return;
  case WeightFormat::F16:
    for (int64_t j = 0; j < k; ++j)
      halves[j] = floatToF16(x[j]);
    return;
  case WeightFormat::Int8: {
    float s = absMax(x, k) / 127.0f;
    float inv = s != 0.0f ? 1.0f / s : 0.0f;
    *scale = s;
    for (int64_t j = 0; j < k; ++j)
      bytes[j] = static_cast<unsigned char>(
          int8_t(std::clamp(std::round(x[j] * inv), -127.0f, 127.0f)));
    return;
  }
  case WeightFormat::Q8_0:
    for (int64_t b = 0; b < k / kQuantBlock; ++b)
      quantizeQ8_0Block(x + b * kQuantBlock, bytes + b * kQ8_0BlockBytes);
    return;
  case WeightFormat::Q4_0:
    for (int64_t b = 0; b < k / kQuantBlock; ++b)
      quantizeQ4_0Block(x + b * kQuantBlock, bytes + b * kQ4_0BlockBytes);
    return;
  }
}

} // namespace

const char *weightFormatName(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return "f32";
  case WeightFormat::BF16:
    return "bf16";
  case WeightFormat::F16:
    return "f16";
  case WeightFormat::Int8:
    return "int8";
  case WeightFormat::Q8_0:
    return "q8_0";
  case WeightFormat::Q4_0:
    return "q4_0";
  }
  return "?";
}

bool parseWeightFormat(const std::string &name, WeightFormat &out) {
  for (int v = 0; v <= int(WeightFormat::Q4_0); ++v)
    if (name == weightFormatName(WeightFormat(v))) {
      out = WeightFormat(v);
      return true;
    }
  return false;
}

const char *activationPrecisionName(ActivationPrecision p) {
  switch (p) {
  case ActivationPrecision::F32:
    return "f32";
  case ActivationPrecision::BF16:
    return "bf16";
  case ActivationPrecision::Q8_0:
    return "q8_0";
  }
  return "?";
}

bool parseActivationPrecision(const std::string &name, ActivationPrecision &out) {
  for (int v = 0; v <= int(ActivationPrecision::Q8_0); ++v)
    if (name == activationPrecisionName(ActivationPrecision(v))) {
      out = ActivationPrecision(v);
      return true;
    }
  return false;
}

DType storageDType(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return DType::F32;
  case WeightFormat::BF16:
    return DType::BF16;
  case WeightFormat::F16:
    return DType::F16;
  default:
    return DType::I8;
  }
}

int64_t storedRowElements(WeightFormat f, int64_t k) {
  if (f == WeightFormat::Q8_0)
    return k / kQuantBlock * kQ8_0BlockBytes;
  if (f == WeightFormat::Q4_0)
    return k / kQuantBlock * kQ4_0BlockBytes;
  return k;
}

bool isBlockFormat(WeightFormat f) { return f == WeightFormat::Q8_0 || f == WeightFormat::Q4_0; }

bool hasRowScales(WeightFormat f) { return f == WeightFormat::Int8; }

double quantizationErrorBound(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return 0.0;
  case WeightFormat::BF16:
    return 1.0 / 256; // half an ulp of an 8-bit significand
  case WeightFormat::F16:
    return 1.0 / 2048;
  case WeightFormat::Int8:
    return 1.0 / 254; // half a step of amax / 127
  case WeightFormat::Q8_0:
    return 1.0 / 254 + 1.0 / 2048; // plus d rounded to f16
  case WeightFormat::Q4_0:
    return 1.0 / 8 + 1.0 / 2048; // +amax clamps to 7/8 amax when the max is negative
  }
  return 0.0;
}

uint16_t floatToBf16(float v) {
  uint32_t u = bitsOf(v);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((u >> 16) | 0x40); // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float bf16ToFloat(uint16_t bits) { return floatOf(uint32_t(bits) << 16); }

// The two conversions below are the branch-free IEEE half conversions of
// Marat Dukhan's FP16 library (MIT): round to nearest even, subnormals,
// infinities and NaN included.
uint16_t floatToF16(float v) {
  const float scaleToInf = 0x1.0p+112f;
  const float scaleToZero = 0x1.0p-110f;
  float base = (std::fabs(v) * scaleToInf) * scaleToZero;
  const uint32_t w = bitsOf(v);
  const uint32_t shl1W = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1W & 0xFF000000u;
  if (bias < 0x71000000u)
    bias = 0x71000000u;
  base = floatOf((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = bitsOf(base);
  const uint32_t expBits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissaBits = bits & 0x00000FFFu;
  const uint32_t nonsign = expBits + mantissaBits;
  return uint16_t((sign >> 16) | (shl1W > 0xFF000000u ? 0x7E00u : nonsign));
}

float f16ToFloat(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t twoW = w + w;
  const float normalized = floatOf((twoW >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = floatOf((twoW >> 17) | (126u << 23)) - 0.5f;
  const uint32_t cutoff = 1u << 27;
  return floatOf(sign | (twoW < cutoff ? bitsOf(denormalized) : bitsOf(normalized)));
}

void quantizeRows(WeightFormat f, const float *src, int64_t rows, int64_t k, void *dst,
                  float *scales) {
  const int64_t rowBytes = storedRowElements(f, k) * int64_t(dtypeSize(storageDType(f)));
  for (int64_t r = 0; r < rows; ++r)
    quantizeRow(f, src + r * k, k, static_cast<unsigned char *>(dst) + r * rowBytes,
                scales ? scales + r : nullptr);
}

void dequantizeRow(WeightFormat f, const void *row, float scale, int64_t k, float *dst) {
  const auto *bytes = static_cast<const unsigned char *>(row);
  const auto *halves = static_cast<const uint16_t *>(row);
  switch (f) {
  case WeightFormat::F32:
    std::memcpy(dst, row, size_t(k) * 4);
    return;
  case WeightFormat::BF16:
    for (int64_t j = 0; j < k; ++j)
      dst[j] = bf16ToFloat(halves[j]);
    return;
  case WeightFormat::F16:
    for (int64_t j = 0; j < k; ++j)
      dst[j] = f16ToFloat(halves[j]);
    return;
  case WeightFormat::Int8:
    for (int64_t j = 0; j < k; ++j)
      dst[j] = scale * float(int8_t(bytes[j]));
    return;
  case WeightFormat::Q8_0:
    for (int64_t b = 0; b < k / kQuantBlock; ++b) {
      const unsigned char *block = bytes + b * kQ8_0BlockBytes;
      float d = loadF16(block);
      for (int64_t j = 0; j < kQuantBlock; ++j)
        dst[b * kQuantBlock + j] = d * float(int8_t(block[2 + j]));
    }
    return;
  case WeightFormat::Q4_0:
    for (int64_t b = 0; b < k / kQuantBlock; ++b) {
      const unsigned char *block = bytes + b * kQ4_0BlockBytes;
      float d = loadF16(block);
      for (int64_t j = 0; j < kQuantBlock / 2; ++j) {
        dst[b * kQuantBlock + j] = d * float(int(block[2 + j] & 15) - 8);
        dst[b * kQuantBlock + kQuantBlock / 2 + j] = d * float(int(block[2 + j] >> 4) - 8);
      }
    }
    return;
  }
}

Tensor randomStoredWeights(WeightFormat f, const std::vector<int64_t> &logicalShape,
                           uint64_t seed) {
  int64_t k = logicalShape.back(), rows = numElements(logicalShape) / std::max<int64_t>(k, 1);
  std::vector<int64_t> stored = logicalShape;
  stored.back() = storedRowElements(f, k);
  Tensor w = randomFloats(logicalShape, seed);
  if (f == WeightFormat::F32)
    return w;
  Tensor out = Tensor::ints(storageDType(f), stored);
  if (f == WeightFormat::Int8) {
    Rng rng(seed);
    for (int64_t &v : out.i)
      v = rng.integer(-127, 128);
    return out;
  }
  std::vector<unsigned char> bytes(size_t(out.numel()) * dtypeSize(out.dtype));
  quantizeRows(f, w.f.data(), rows, k, bytes.data(), nullptr);
  for (int64_t j = 0; j < out.numel(); ++j)
    out.i[j] = loadIntElement(out.dtype, bytes.data(), j);
  return out;
}

Tensor randomRowScales(const std::vector<int64_t> &shape, int64_t k, uint64_t seed) {
  Tensor s = Tensor::f32(shape);
  Rng rng(seed);
  float a = std::sqrt(3.0f / float(std::max<int64_t>(k, 1))) / 127.0f;
  for (float &v : s.f)
    v = a * rng.uniform(0.5f, 1.0f);
  return s;
}

void roundActivations(ActivationPrecision p, const float *x, int64_t k, float *dst) {
  switch (p) {
  case ActivationPrecision::F32:
    std::memcpy(dst, x, size_t(k) * 4);
    return;
  case ActivationPrecision::BF16:
    for (int64_t j = 0; j < k; ++j)
      dst[j] = bf16ToFloat(floatToBf16(x[j]));
    return;
  case ActivationPrecision::Q8_0:
    // As a Q8_0 weight row, dequantized: q from the unrounded 1/d, values
    // from d rounded to f16. A partial last block (k not a multiple of 32)
    // is quantized on its own values, as the micro-kernels do.
    for (int64_t b0 = 0; b0 < k; b0 += kQuantBlock) {
      int64_t n = std::min(kQuantBlock, k - b0);
      float d = absMax(x + b0, n) / 127.0f;
      float id = d != 0.0f ? 1.0f / d : 0.0f;
      float dRounded = f16ToFloat(floatToF16(d));
      for (int64_t j = 0; j < n; ++j)
        dst[b0 + j] = dRounded * std::round(x[b0 + j] * id);
    }
    return;
  }
}

} // namespace moe
