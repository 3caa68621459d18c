//===- UkernelsAvx512Vnni.cpp - the avx512vnni micro-kernels -------------===//
//
// int8 / Q8_0 / Q4_0 weights with activations quantized to Q8_0 (act_prec
// Q8_0): integer dot products with vpdpbusd (u8 x s8, 4 products summed per
// int32 lane), then per 32-block FP32 scaling. A 512-bit vector holds 64
// values = two blocks; lanes 0-7 belong to the first, 8-15 to the second.
//   int8, q8_0 weights (s8): the activations are stored as u8 = q + 128 and
//     each lane starts from -128 * (sum of its 4 weights), computed with one
//     more vpdpbusd per weight vector (shared by the MR rows of the tile).
//   q4_0 weights: the nibbles v (0..15) are the u8 operand, the activations
//     the s8 one; w = d (v - 8), so each lane starts from -8 * (sum of its 4
//     activations), precomputed once per activation row. Four blocks (128
//     values) are taken at once without reordering nibbles: the 128-bit
//     lanes of one vector hold the 16 bytes of blocks 0-3; their low
//     nibbles (values 0-15 of each block) and high nibbles (values 16-31)
//     are two vectors, and the activations are stored in that order.
// The integer sums are exact; only the scaling and the FP32 sums round.
// Every other (format, act_prec) forwards to the avx512 kernels.
//
//===----------------------------------------------------------------------===//
#include "UkernelsCommon.h"

#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"))), apply_to = function)

namespace moe_uk {
namespace {
#include "UkernelsVecAvx512.h"
#include "UkernelsSimd.inc"

// Prepared row (kPad = K rounded up to 64, 128 for Q4_0): kPad bytes of
// quantized values (u8 = q + 128; for Q4_0 s8 q, in the nibble order of
// permuteGroupsForNibbles), kPad/4 floats: the block scale d of each int32
// lane (Q4_0: 16 per 128 values, shared by the two halves), and for Q4_0
// 16 int32 per 128 values: -8 * the sum of the q that meet one weight lane.
template <class Fmt> struct VnniPath {
  static constexpr bool kNibbles = Fmt::kFormat == MOE_WF_Q4_0;
  static constexpr int kMaxRows = 4;
  static constexpr int weightRows(int mr) { return mr == 1 ? 8 : 4; }
  static int64_t padded(int64_t k) { return roundUp(k, kNibbles ? 128 : 64); }
  static size_t rowBytes(int64_t k) { return size_t(padded(k)) * 3; }

  static void prepare(const float *x, int64_t k, int32_t, uint8_t *dst) {
    int64_t kPad = padded(k);
    auto *q = reinterpret_cast<int8_t *>(dst);
    auto *laneScale = reinterpret_cast<float *>(dst + kPad);
    const __m128i flip = _mm_set1_epi8(kNibbles ? 0 : char(0x80)); // q + 128 as u8
    int64_t j0 = quantizeFullBlocksQ8_0<Vec16>(x, k, [&](int64_t j, __m512 *qv, float d) {
      for (int i = 0; i < 2; ++i)
        _mm_storeu_si128((__m128i *)(q + j + 16 * i),
                         _mm_xor_si128(_mm512_cvtepi32_epi8(_mm512_cvtps_epi32(qv[i])), flip));
      _mm256_storeu_ps(laneScale + j / 4, _mm256_set1_ps(d));
    });
    for (; j0 < kPad; j0 += kQBlock) { // the partial block and the padding
      float d = 0.0f;
      if (j0 < k)
        d = quantizeBlockQ8_0(x + j0, k - j0, q + j0);
      else
        std::memset(q + j0, 0, kQBlock);
      if (!kNibbles)
        for (int64_t j = j0; j < j0 + kQBlock; ++j)
          dst[j] = uint8_t(q[j]) ^ 0x80u;
      _mm256_storeu_ps(laneScale + j0 / 4, _mm256_set1_ps(d));
    }
    if (kNibbles)
      permuteGroupsForNibbles(dst, kPad);
  }

  // Q4_0: each group of 4 blocks (128 values, natural order: blocks 0-1 in
  // bytes 0-63, 2-3 in 64-127) becomes [values 0-15 of blocks 0,1,2,3] then
  // [values 16-31 of blocks 0,1,2,3], matching the low and high nibbles of
  // the weights. The lane scales become 4 per block, and the correction of
  // a weight lane sums the 8 activations it meets (low and high half).
  static void permuteGroupsForNibbles(uint8_t *dst, int64_t kPad) {
    auto *laneScale = reinterpret_cast<float *>(dst + kPad);
    auto *laneCorrection = reinterpret_cast<int32_t *>(dst + 2 * kPad);
    const __m512i lowHalves = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
    const __m512i highHalves = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t g = 0; g < kPad / 128; ++g) {
      __m512i n0 = _mm512_load_si512(dst + 128 * g), n1 = _mm512_load_si512(dst + 128 * g + 64);
      __m512i lo = _mm512_permutex2var_epi64(n0, lowHalves, n1);
      __m512i hi = _mm512_permutex2var_epi64(n0, highHalves, n1);
      _mm512_store_si512(dst + 128 * g, lo);
      _mm512_store_si512(dst + 128 * g + 64, hi);
      // Natural scales: 8 per block at 32g.. (read before the write below,
      // which only reaches 16g + 15 < 32 (g + 1)).
      float d[4];
      for (int b = 0; b < 4; ++b)
        d[b] = laneScale[32 * g + 8 * b];
      _mm512_store_ps(laneScale + 16 * g,
                      _mm512_setr_ps(d[0], d[0], d[0], d[0], d[1], d[1], d[1], d[1], d[2], d[2],
                                     d[2], d[2], d[3], d[3], d[3], d[3]));
      __m512i sums = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, lo), ones, hi);
      _mm512_store_si512(laneCorrection + 16 * g, _mm512_mullo_epi32(sums, _mm512_set1_epi32(-8)));
    }
  }

  // Q4_0 weights of blocks 4g..4g+3 of a row: the low and high nibbles in
  // the prepared activations' order, and the lane scales (blocks past K: 0).
  static void loadNibbleGroup(const uint8_t *row, int64_t g, int64_t blocks, __m512i &lo,
                              __m512i &hi, __m512 &scale) {
    const uint8_t *p = row + 4 * g * kQ4_0BlockBytes;
    __m512i q;
    if (blocks - 4 * g >= 4) {
      q = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + 2)));
      q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(p + 20)), 1);
      q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(p + 38)), 2);
      q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(p + 56)), 3);
      // d of the 4 blocks: 16-bit words 0, 9, 18, 27 of the group's first
      // 64 bytes, each repeated for the block's 4 lanes.
      const __m512i pick = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27,
                                            27, 27, 18, 18, 18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
      __m512i words = _mm512_permutexvar_epi16(pick, _mm512_loadu_si512(p));
      scale = _mm512_cvtph_ps(_mm512_castsi512_si256(words));
    } else { // the last 1-3 blocks: no read past the row
      alignas(64) uint8_t qs[64] = {};
      alignas(32) uint16_t dh[16] = {};
      for (int64_t b = 0; b < blocks - 4 * g; ++b) {
        std::memcpy(qs + 16 * b, p + b * kQ4_0BlockBytes + 2, 16);
        for (int l = 0; l < 4; ++l)
          dh[4 * b + l] = load16(p + b * kQ4_0BlockBytes);
      }
      q = _mm512_load_si512(qs);
      scale = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)dh));
    }
    const __m512i low4 = _mm512_set1_epi8(15);
    lo = _mm512_and_si512(q, low4);
    hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
  }

  template <int MR, int NW>
  static void tileNibbles(const uint8_t *prep, size_t rowBytes, const uint8_t *const *w,
                          int64_t k, float *dots) {
    int64_t kPad = padded(k), blocks = k / kQBlock;
    __m512 acc[MR][NW];
#pragma unroll
    for (int r = 0; r < MR; ++r)
#pragma unroll
      for (int t = 0; t < NW; ++t)
        acc[r][t] = _mm512_setzero_ps();
    for (int64_t g = 0; g < kPad / 128; ++g) {
#pragma unroll
      for (int t = 0; t < NW; ++t) {
        _mm_prefetch(reinterpret_cast<const char *>(w[t] + 4 * g * kQ4_0BlockBytes + kPrefetchBytes),
                     _MM_HINT_T0);
        __m512i lo, hi;
        __m512 wScale;
        loadNibbleGroup(w[t], g, blocks, lo, hi, wScale);
#pragma unroll
        for (int r = 0; r < MR; ++r) {
          const uint8_t *row = prep + r * rowBytes;
          __m512i start = _mm512_load_si512(reinterpret_cast<const int32_t *>(row + 2 * kPad) + 16 * g);
          __m512i sum = _mm512_dpbusd_epi32(start, lo, _mm512_load_si512(row + 128 * g));
          sum = _mm512_dpbusd_epi32(sum, hi, _mm512_load_si512(row + 128 * g + 64));
          __m512 xScale = _mm512_load_ps(reinterpret_cast<const float *>(row + kPad) + 16 * g);
          acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(xScale, wScale), acc[r][t]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < MR; ++r)
#pragma unroll
      for (int t = 0; t < NW; ++t)
        dots[r * NW + t] = _mm512_reduce_add_ps(acc[r][t]);
  }

  // int8 / q8_0: 64 weights of a row from value 64c on (two blocks for
  // q8_0; the second may be past K, then zero), and the lane weight scales.
  static __m512i loadWeights(const uint8_t *row, int64_t c, int64_t k, __m512 &laneScale) {
    if (Fmt::kFormat == MOE_WF_INT8) {
      const uint8_t *p = row + 64 * c;
      int64_t left = k - 64 * c;
      return left >= 64 ? _mm512_loadu_si512(p)
                        : _mm512_maskz_loadu_epi8(__mmask64((1ull << left) - 1), p);
    }
    const uint8_t *b0 = row + 2 * c * Fmt::kBytes32;
    const uint8_t *b1 = b0 + Fmt::kBytes32;
    bool second = 64 * c + 32 < k;
    __m128i d0h = _mm_set1_epi16(short(load16(b0)));
    __m128i d1h = second ? _mm_set1_epi16(short(load16(b1))) : _mm_setzero_si128();
    laneScale = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(d0h), d1h, 1));
    __m256i lo = _mm256_loadu_si256((const __m256i *)(b0 + 2)), hi = _mm256_setzero_si256();
    if (second)
      hi = _mm256_loadu_si256((const __m256i *)(b1 + 2));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  }

  template <int MR, int NW>
  static void tile(const uint8_t *prep, size_t rowBytes, const uint8_t *const *w, int64_t k,
                   float *dots) {
    if constexpr (kNibbles)
      tileNibbles<MR, NW>(prep, rowBytes, w, k, dots);
    else
      tileBytes<MR, NW>(prep, rowBytes, w, k, dots);
  }

  template <int MR, int NW>
  static void tileBytes(const uint8_t *prep, size_t rowBytes, const uint8_t *const *w, int64_t k,
                        float *dots) {
    int64_t kPad = padded(k);
    __m512 acc[MR][NW];
#pragma unroll
    for (int r = 0; r < MR; ++r)
#pragma unroll
      for (int t = 0; t < NW; ++t)
        acc[r][t] = _mm512_setzero_ps();
    const __m512i u8Offset = _mm512_set1_epi8(char(0x80));
    for (int64_t c = 0; c < kPad / 64; ++c) {
#pragma unroll
      for (int t = 0; t < NW; ++t) {
        const uint8_t *ahead =
            w[t] + (Fmt::kFormat == MOE_WF_INT8 ? 64 * c : 2 * c * Fmt::kBytes32) + kPrefetchBytes;
        _mm_prefetch(reinterpret_cast<const char *>(ahead), _MM_HINT_T0);
        __m512 wScale = _mm512_setzero_ps();
        __m512i wv = loadWeights(w[t], c, k, wScale);
        // -128 * (the lane's sum of weights)
        __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), u8Offset, wv));
#pragma unroll
        for (int r = 0; r < MR; ++r) {
          const uint8_t *row = prep + r * rowBytes;
          __m512i xv = _mm512_load_si512(row + 64 * c);
          __m512 xScale = _mm512_load_ps(reinterpret_cast<const float *>(row + kPad) + 16 * c);
          __m512i sum = _mm512_dpbusd_epi32(start, xv, wv);
          __m512 scale = Fmt::kFormat == MOE_WF_INT8 ? xScale : _mm512_mul_ps(xScale, wScale);
          acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r][t]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < MR; ++r)
#pragma unroll
      for (int t = 0; t < NW; ++t)
        dots[r * NW + t] = _mm512_reduce_add_ps(acc[r][t]);
  }
};

} // namespace
} // namespace moe_uk

#define MOE_UK_DEFINE_VNNI(fmt, Fmt)                                                            \
  extern "C" void moe_uk_ffn_up_##fmt##_avx512vnni(                                             \
      const float *x, int64_t ldx, const int32_t *rows, int64_t m, const void *w1,              \
      const void *w3, int64_t wRowBytes, const float *s1, const float *s3, int64_t n0,          \
      int64_t n1, int64_t k, int32_t act, int32_t actPrec, float *mid, int64_t ldm) {           \
    using namespace moe_uk;                                                                     \
    if (actPrec != MOE_UK_ACT_Q8_0)                                                             \
      return moe_uk_ffn_up_##fmt##_avx512(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1,   \
                                          k, act, actPrec, mid, ldm);                           \
    ffnUpSimd<VnniPath<Fmt>, Vec16>(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, k, act, \
                                    actPrec, mid, ldm);                                         \
  }                                                                                             \
  extern "C" void moe_uk_ffn_down_##fmt##_avx512vnni(                                           \
      const float *a, int64_t lda, int64_t m, const void *w, int64_t wRowBytes, const float *s, \
      int64_t n0, int64_t n1, int64_t k, int32_t actPrec, float *out, int64_t ldo) {            \
    using namespace moe_uk;                                                                     \
    if (actPrec != MOE_UK_ACT_Q8_0)                                                             \
      return moe_uk_ffn_down_##fmt##_avx512(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec,     \
                                            out, ldo);                                          \
    ffnDownSimd<VnniPath<Fmt>>(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out, ldo);       \
  }
MOE_UK_DEFINE_VNNI(int8, FormatInt8)
MOE_UK_DEFINE_VNNI(q8_0, FormatQ8_0)
MOE_UK_DEFINE_VNNI(q4_0, FormatQ4_0)
#undef MOE_UK_DEFINE_VNNI

#pragma clang attribute pop

// The 16-bit formats gain nothing from VNNI: the avx512 kernels.
MOE_UK_FORWARD(bf16, avx512vnni, avx512)
MOE_UK_FORWARD(f16, avx512vnni, avx512)
