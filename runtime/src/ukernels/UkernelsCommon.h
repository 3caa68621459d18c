//===- UkernelsCommon.h - scalar pieces shared by every micro-kernel ISA --===//
//
// The scalar conversions, the activation-precision rounding of one K-row and
// the per-call scratch. Everything here is plain C++ compiled for baseline
// x86-64: the ISA files include it *before* they switch their functions to
// a wider target, so these inline functions are never compiled for AVX-512
// in one object and called from generic code through another (ODR).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_RUNTIME_UKERNELS_COMMON_H
#define MOE_RUNTIME_UKERNELS_COMMON_H

#include "moe_ukernels.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace moe_uk {

inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t floatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16ToFloat(uint16_t h) { return bitsToFloat(uint32_t(h) << 16); }

// Round to nearest even; NaN stays NaN (quiet bit set so rounding cannot
// turn it into an infinity).
inline uint16_t floatToBf16(float f) {
  uint32_t u = floatToBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float roundToBf16(float f) { return bf16ToFloat(floatToBf16(f)); }

inline float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: man * 2^-24 is exact in float.
    float v = float(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31)
    return bitsToFloat(sign | 0x7f800000u | (man << 13));
  return bitsToFloat(sign | ((exp + 112u) << 23) | (man << 13));
}

// Round to nearest even (as F16C's vcvtps2ph with rounding mode 0).
inline uint16_t floatToF16(float f) {
  uint32_t u = floatToBits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u)
    return uint16_t(sign | 0x7e00u);
  if (au >= 0x477ff000u) // rounds to >= 65520: infinity
    return uint16_t(sign | 0x7c00u);
  if (au < 0x38800000u) { // below the smallest normal half (2^-14)
    // Subnormal half: value / 2^-24 rounded to nearest even integer.
    float a = bitsToFloat(au) * 16777216.0f;
    float r = std::nearbyint(a); // default rounding mode: nearest even
    return uint16_t(sign | uint16_t(r));
  }
  uint32_t rounded = au + 0xfffu + ((au >> 13) & 1u);
  return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

inline float roundToF16(float f) { return f16ToFloat(floatToF16(f)); }

inline uint16_t load16(const uint8_t *p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

constexpr int64_t kQBlock = 32;          // elements of a Q8_0/Q4_0 block
constexpr int64_t kQ8_0BlockBytes = 34;  // f16 d + 32 int8
constexpr int64_t kQ4_0BlockBytes = 18;  // f16 d + 16 bytes of nibbles

inline int64_t roundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// ggml's quantize_row_q8_0_ref for one block of n <= 32 values (a partial
// last block when K is not a multiple of 32 is quantized on its own values):
// amax = max|x|, d = amax/127, id = d ? 1/d : 0, q = roundf(x * id). The scale
// used to dequantize is d rounded to f16, since ggml stores d as f16.
// q[n..32) are set to 0.
inline float quantizeBlockQ8_0(const float *x, int64_t n, int8_t *q) {
  float amax = 0.0f;
  for (int64_t j = 0; j < n; ++j)
    amax = std::fmax(amax, std::fabs(x[j]));
  float d = amax / 127.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int64_t j = 0; j < n; ++j)
    q[j] = int8_t(std::roundf(x[j] * id));
  for (int64_t j = n; j < kQBlock; ++j)
    q[j] = 0;
  return roundToF16(d);
}

// One K-row of activations rounded as act_prec says, as FP32, zero-padded
// to kPad (>= k).
inline void prepareRowF32(const float *x, int64_t k, int32_t actPrec, float *out, int64_t kPad) {
  if (actPrec == MOE_UK_ACT_BF16) {
    for (int64_t j = 0; j < k; ++j)
      out[j] = roundToBf16(x[j]);
  } else if (actPrec == MOE_UK_ACT_Q8_0) {
    int8_t q[kQBlock];
    for (int64_t j0 = 0; j0 < k; j0 += kQBlock) {
      int64_t n = k - j0 < kQBlock ? k - j0 : kQBlock;
      float d = quantizeBlockQ8_0(x + j0, n, q);
      for (int64_t j = 0; j < n; ++j)
        out[j0 + j] = float(q[j]) * d;
    }
  } else {
    std::memcpy(out, x, size_t(k) * sizeof(float));
  }
  for (int64_t j = k; j < kPad; ++j)
    out[j] = 0.0f;
}

inline bool isGated(int32_t act) { return act == MOE_UK_SWIGLU || act == MOE_UK_GEGLU; }

// Per-thread scratch that only grows: the kernels run inside the compiler's
// thread pool, one work item at a time per thread. 64-byte aligned.
class Scratch {
public:
  ~Scratch() { std::free(data_); }
  void *get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = roundUp(int64_t(bytes), 4096);
      data_ = std::aligned_alloc(64, size_);
      if (!data_) {
        size_ = 0;
        throw std::bad_alloc();
      }
    }
    return data_;
  }

private:
  void *data_ = nullptr;
  size_t size_ = 0;
};

// Two independent scratch areas per thread: prepared activations, and the
// gate/up dot products awaiting the activation.
Scratch &activationScratch();
Scratch &dotScratch();

// Whether this CPU has AMX-BF16 (with AVX512_BF16) and the OS granted this
// process the tile state (asked once, on the first call).
bool amxUsable();

// Scalar weight value j of a packed row (Q formats include d; int8 is the
// raw integer, the per-row scale is applied to the dot product).
inline float weightValue(moe_weight_format fmt, const uint8_t *row, int64_t j) {
  switch (fmt) {
  case MOE_WF_BF16:
    return bf16ToFloat(load16(row + 2 * j));
  case MOE_WF_F16:
    return f16ToFloat(load16(row + 2 * j));
  case MOE_WF_INT8:
    return float(int8_t(row[j]));
  case MOE_WF_Q8_0: {
    const uint8_t *b = row + (j / kQBlock) * kQ8_0BlockBytes;
    return f16ToFloat(load16(b)) * float(int8_t(b[2 + j % kQBlock]));
  }
  case MOE_WF_Q4_0: {
    const uint8_t *b = row + (j / kQBlock) * kQ4_0BlockBytes;
    int64_t i = j % kQBlock;
    int v = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
    return f16ToFloat(load16(b)) * float(v - 8);
  }
  default:
    return 0.0f;
  }
}

// Format tags of the SIMD templates: the bytes that hold 32 consecutive
// weights of a row (one block for Q formats).
struct FormatBf16 {
  static constexpr moe_weight_format kFormat = MOE_WF_BF16;
  static constexpr int64_t kBytes32 = 64;
};
struct FormatF16 {
  static constexpr moe_weight_format kFormat = MOE_WF_F16;
  static constexpr int64_t kBytes32 = 64;
};
struct FormatInt8 {
  static constexpr moe_weight_format kFormat = MOE_WF_INT8;
  static constexpr int64_t kBytes32 = 32;
};
struct FormatQ8_0 {
  static constexpr moe_weight_format kFormat = MOE_WF_Q8_0;
  static constexpr int64_t kBytes32 = kQ8_0BlockBytes;
};
struct FormatQ4_0 {
  static constexpr moe_weight_format kFormat = MOE_WF_Q4_0;
  static constexpr int64_t kBytes32 = kQ4_0BlockBytes;
};
// The zero-padded FP32 copy of a row's last partial 32 (bf16, f16, int8).
struct FormatF32 {
  static constexpr moe_weight_format kFormat = MOE_WF_F32;
  static constexpr int64_t kBytes32 = 128;
};

} // namespace moe_uk

// Defines the (fmt, isa) kernels as the (fmt, to) ones: for the formats an
// ISA's instructions do not speed up (every (format, isa) symbol exists).
#define MOE_UK_FORWARD(fmt, isa, to)                                                            \
  extern "C" void moe_uk_ffn_up_##fmt##_##isa(                                                  \
      const float *x, int64_t ldx, const int32_t *rows, int64_t m, const void *w1,              \
      const void *w3, int64_t wRowBytes, const float *s1, const float *s3, int64_t n0,          \
      int64_t n1, int64_t k, int32_t act, int32_t actPrec, float *mid, int64_t ldm) {           \
    moe_uk_ffn_up_##fmt##_##to(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, k, act,      \
                               actPrec, mid, ldm);                                              \
  }                                                                                             \
  extern "C" void moe_uk_ffn_down_##fmt##_##isa(                                                \
      const float *a, int64_t lda, int64_t m, const void *w, int64_t wRowBytes, const float *s, \
      int64_t n0, int64_t n1, int64_t k, int32_t actPrec, float *out, int64_t ldo) {            \
    moe_uk_ffn_down_##fmt##_##to(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out, ldo);     \
  }

#endif // MOE_RUNTIME_UKERNELS_COMMON_H
