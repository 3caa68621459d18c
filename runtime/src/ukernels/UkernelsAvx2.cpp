//===- UkernelsAvx2.cpp - the avx2 micro-kernels --------------------------===//
//
// AVX2 + FMA + F16C: weights decoded to FP32 in registers (8 lanes) and FMA.
// 16 ymm registers: tiles keep at most 8 accumulators (1 row x 8 weight
// rows, 2 x 4, 3-4 x 2). Only the functions below carry the AVX2 target.
//
//===----------------------------------------------------------------------===//
#include "UkernelsCommon.h"

#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

namespace moe_uk {
namespace {

// 4 doubles: the erfc argument of GELU is formed in double (see vgelu).
struct Dbl4 {
  using d = __m256d;
  static d set1(double v) { return _mm256_set1_pd(v); }
  static d add(d a, d b) { return _mm256_add_pd(a, b); }
  static d sub(d a, d b) { return _mm256_sub_pd(a, b); }
  static d mul(d a, d b) { return _mm256_mul_pd(a, b); }
  static d div(d a, d b) { return _mm256_div_pd(a, b); }
  static d fmadd(d a, d b, d c) { return _mm256_fmadd_pd(a, b, c); }
  static d abs(d a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static d roundToFloat(d a) { return _mm256_cvtps_pd(_mm256_cvtpd_ps(a)); }
};

struct Vec8 {
  using f = __m256;
  using D = Dbl4;
  static D::d lowerToDouble(f v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  static D::d upperToDouble(f v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
  static f fromDoubles(D::d lower, D::d upper) {
    return _mm256_set_m128(_mm256_cvtpd_ps(upper), _mm256_cvtpd_ps(lower));
  }
  static constexpr int W = 8;
  static f zero() { return _mm256_setzero_ps(); }
  static f set1(float v) { return _mm256_set1_ps(v); }
  static f loadu(const float *p) { return _mm256_loadu_ps(p); }
  static void storeu(float *p, f v) { _mm256_storeu_ps(p, v); }
  static __m256i maskOf(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static f loadPartial(const float *p, int64_t n) { return _mm256_maskload_ps(p, maskOf(n)); }
  static void storePartial(float *p, int64_t n, f v) { _mm256_maskstore_ps(p, maskOf(n), v); }
  static f add(f a, f b) { return _mm256_add_ps(a, b); }
  static f sub(f a, f b) { return _mm256_sub_ps(a, b); }
  static f mul(f a, f b) { return _mm256_mul_ps(a, b); }
  static f div(f a, f b) { return _mm256_div_ps(a, b); }
  static f fmadd(f a, f b, f c) { return _mm256_fmadd_ps(a, b, c); }
  static f fnmadd(f a, f b, f c) { return _mm256_fnmadd_ps(a, b, c); }
  static f fmsub(f a, f b, f c) { return _mm256_fmsub_ps(a, b, c); }
  static f max(f a, f b) { return _mm256_max_ps(a, b); }
  static f min(f a, f b) { return _mm256_min_ps(a, b); }
  static f abs(f a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static f roundNearest(f a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // a * 2^n for integral n in [-149, 129]: two factors 2^(n/2) and
  // 2^(n - n/2) built in the exponent field, each a normal float.
  static f scaleByPow2(f a, f n) {
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    f p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    f p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(a, p1), p2);
  }
  static f selectNegative(f v, f ifNeg, f otherwise) {
    return _mm256_blendv_ps(otherwise, ifNeg, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
  }
  static float reduce(f v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduceMax(f v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // roundf: to nearest, ties away from zero (|y| < 2^23).
  static f roundHalfAway(f y) {
    f t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    f away = _mm256_cmp_ps(abs(_mm256_sub_ps(y, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    f unit = _mm256_or_ps(_mm256_and_ps(y, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(away, unit));
  }
  // Round to the nearest BF16 value (ties to even), kept as FP32; NaN stays.
  static f roundToBf16(f x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    u = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    f r = _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32(int(0xffff0000u))));
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  // The f16 at p in every lane (vpbroadcastw + vcvtph2ps; _cvtsh_ss's
  // vpinsrw would chain the rows' block scales through one register).
  static f broadcastHalf(const uint8_t *p) { return _mm256_cvtph_ps(_mm_set1_epi16(short(load16(p)))); }
  static __m128i load8(const uint8_t *p) { return _mm_loadl_epi64((const __m128i *)p); }

  static void decode32(FormatBf16, const uint8_t *p, f *out) {
    for (int v = 0; v < 4; ++v) {
      __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * v)));
      out[v] = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
    }
  }
  static void decode32(FormatF16, const uint8_t *p, f *out) {
    for (int v = 0; v < 4; ++v)
      out[v] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * v)));
  }
  static void decode32(FormatInt8, const uint8_t *p, f *out) {
    for (int v = 0; v < 4; ++v)
      out[v] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(load8(p + 8 * v)));
  }
  static void decode32(FormatQ8_0, const uint8_t *p, f *out) {
    f d = broadcastHalf(p);
    for (int v = 0; v < 4; ++v)
      out[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(load8(p + 2 + 8 * v))), d);
  }
  static void decode32(FormatQ4_0, const uint8_t *p, f *out) {
    f d = broadcastHalf(p), minus8d = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
    __m256i bytes[2] = {_mm256_cvtepu8_epi32(load8(p + 2)), _mm256_cvtepu8_epi32(load8(p + 10))};
    for (int v = 0; v < 4; ++v) {
      __m256i q = v < 2 ? _mm256_and_si256(bytes[v], _mm256_set1_epi32(15))
                        : _mm256_srli_epi32(bytes[v - 2], 4);
      out[v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, minus8d);
    }
  }
  static void decode32(FormatF32, const uint8_t *p, f *out) {
    for (int v = 0; v < 4; ++v)
      out[v] = _mm256_loadu_ps((const float *)(p + 32 * v));
  }
};

#include "UkernelsSimd.inc"
} // namespace
} // namespace moe_uk

#define MOE_UK_DEFINE_AVX2(fmt, Fmt)                                                            \
  extern "C" void moe_uk_ffn_up_##fmt##_avx2(                                                   \
      const float *x, int64_t ldx, const int32_t *rows, int64_t m, const void *w1,              \
      const void *w3, int64_t wRowBytes, const float *s1, const float *s3, int64_t n0,          \
      int64_t n1, int64_t k, int32_t act, int32_t actPrec, float *mid, int64_t ldm) {           \
    using namespace moe_uk;                                                                     \
    ffnUpSimd<Fp32Path<Vec8, Fmt, 8>, Vec8>(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, \
                                            k, act, actPrec, mid, ldm);                         \
  }                                                                                             \
  extern "C" void moe_uk_ffn_down_##fmt##_avx2(                                                 \
      const float *a, int64_t lda, int64_t m, const void *w, int64_t wRowBytes, const float *s, \
      int64_t n0, int64_t n1, int64_t k, int32_t actPrec, float *out, int64_t ldo) {            \
    using namespace moe_uk;                                                                     \
    ffnDownSimd<Fp32Path<Vec8, Fmt, 8>>(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out,    \
                                        ldo);                                                   \
  }

MOE_UK_DEFINE_AVX2(bf16, FormatBf16)
MOE_UK_DEFINE_AVX2(f16, FormatF16)
MOE_UK_DEFINE_AVX2(int8, FormatInt8)
MOE_UK_DEFINE_AVX2(q8_0, FormatQ8_0)
MOE_UK_DEFINE_AVX2(q4_0, FormatQ4_0)

#pragma clang attribute pop
