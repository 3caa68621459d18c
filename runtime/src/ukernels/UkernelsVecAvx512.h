//===- UkernelsVecAvx512.h - 16-wide FP32 vector operations -----*- C++ -*-===//
//
// Included by the AVX-512 files inside their
// `#pragma clang attribute push(target(...))` region and inside an
// anonymous namespace: every function here is compiled for AVX-512 and has
// internal linkage, so no AVX-512 code can be merged into a generic caller.
//
//===----------------------------------------------------------------------===//

// 8 doubles: the erfc argument of GELU is formed in double (see vgelu).
struct Dbl8 {
  using d = __m512d;
  static d set1(double v) { return _mm512_set1_pd(v); }
  static d add(d a, d b) { return _mm512_add_pd(a, b); }
  static d sub(d a, d b) { return _mm512_sub_pd(a, b); }
  static d mul(d a, d b) { return _mm512_mul_pd(a, b); }
  static d div(d a, d b) { return _mm512_div_pd(a, b); }
  static d fmadd(d a, d b, d c) { return _mm512_fmadd_pd(a, b, c); }
  static d abs(d a) { return _mm512_abs_pd(a); }
  static d roundToFloat(d a) { return _mm512_cvtps_pd(_mm512_cvtpd_ps(a)); }
};

struct Vec16 {
  using f = __m512;
  using D = Dbl8;
  static D::d lowerToDouble(f v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
  static D::d upperToDouble(f v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }
  static f fromDoubles(D::d lower, D::d upper) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lower)), _mm512_cvtpd_ps(upper), 1);
  }
  static constexpr int W = 16;
  static f zero() { return _mm512_setzero_ps(); }
  static f set1(float v) { return _mm512_set1_ps(v); }
  static f loadu(const float *p) { return _mm512_loadu_ps(p); }
  static void storeu(float *p, f v) { _mm512_storeu_ps(p, v); }
  static __mmask16 maskOf(int64_t n) { return __mmask16((1u << n) - 1u); }
  static f loadPartial(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(maskOf(n), p); }
  static void storePartial(float *p, int64_t n, f v) { _mm512_mask_storeu_ps(p, maskOf(n), v); }
  static f add(f a, f b) { return _mm512_add_ps(a, b); }
  static f sub(f a, f b) { return _mm512_sub_ps(a, b); }
  static f mul(f a, f b) { return _mm512_mul_ps(a, b); }
  static f div(f a, f b) { return _mm512_div_ps(a, b); }
  static f fmadd(f a, f b, f c) { return _mm512_fmadd_ps(a, b, c); }
  static f fnmadd(f a, f b, f c) { return _mm512_fnmadd_ps(a, b, c); }
  static f fmsub(f a, f b, f c) { return _mm512_fmsub_ps(a, b, c); }
  static f max(f a, f b) { return _mm512_max_ps(a, b); }
  static f min(f a, f b) { return _mm512_min_ps(a, b); }
  static f abs(f a) { return _mm512_abs_ps(a); }
  static f roundNearest(f a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // a * 2^n for integral n (vscalefps: overflow to inf, gradual underflow).
  static f scaleByPow2(f a, f n) { return _mm512_scalef_ps(a, n); }
  // v < 0 ? ifNeg : otherwise
  static f selectNegative(f v, f ifNeg, f otherwise) {
    __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(neg, otherwise, ifNeg);
  }
  static float reduce(f v) { return _mm512_reduce_add_ps(v); }
  static float reduceMax(f v) { return _mm512_reduce_max_ps(v); }
  // roundf: to nearest, ties away from zero (|y| < 2^23).
  static f roundHalfAway(f y) {
    f t = _mm512_roundscale_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __mmask16 away = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(y, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    f unit = _mm512_or_ps(_mm512_and_ps(y, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return _mm512_mask_add_ps(t, away, t, unit);
  }
  // Round to the nearest BF16 value (ties to even), kept as FP32; NaN stays.
  static f roundToBf16(f x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    u = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    f r = _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32(int(0xffff0000u))));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), r, x);
  }

  // The f16 at p in every lane: vpbroadcastw + vcvtph2ps. (_cvtsh_ss
  // compiles to vpinsrw, which merges into a live register and chains every
  // weight row's block scale behind the previous row's arithmetic.)
  static f broadcastHalf(const uint8_t *p) {
    return _mm512_cvtph_ps(_mm256_set1_epi16(short(load16(p))));
  }

  // Decoders for the FP32 path: 32 consecutive weights of a row (one Q
  // block) as two vectors; Q formats include d.
  static void decode32(FormatBf16, const uint8_t *p, f *out) {
    for (int v = 0; v < 2; ++v) {
      __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + 32 * v)));
      out[v] = _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
    }
  }
  static void decode32(FormatF16, const uint8_t *p, f *out) {
    for (int v = 0; v < 2; ++v)
      out[v] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32 * v)));
  }
  static void decode32(FormatInt8, const uint8_t *p, f *out) {
    for (int v = 0; v < 2; ++v)
      out[v] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 16 * v))));
  }
  static void decode32(FormatQ8_0, const uint8_t *p, f *out) {
    f d = broadcastHalf(p);
    for (int v = 0; v < 2; ++v) {
      __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2 + 16 * v)));
      out[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(q), d);
    }
  }
  static void decode32(FormatQ4_0, const uint8_t *p, f *out) {
    f d = broadcastHalf(p), minus8d = _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
    __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 2)));
    __m512i lo = _mm512_and_si512(bytes, _mm512_set1_epi32(15));
    __m512i hi = _mm512_srli_epi32(bytes, 4);
    out[0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), d, minus8d);
    out[1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), d, minus8d);
  }
  static void decode32(FormatF32, const uint8_t *p, f *out) {
    for (int v = 0; v < 2; ++v)
      out[v] = _mm512_loadu_ps((const float *)(p + 64 * v));
  }
};
