//===- UkernelsAvx512Bf16.cpp - the avx512bf16 micro-kernels -------------===//
//
// BF16 weights with activations rounded to BF16 (act_prec BF16): the
// prepared rows hold BF16 values and a tile is vdpbf16ps (32 products per
// instruction, exact BF16 x BF16 products, FP32 sums). Every other
// (format, act_prec) forwards to the avx512 kernels, which gain nothing from
// AVX512_BF16.
//
//===----------------------------------------------------------------------===//
#include "UkernelsCommon.h"

#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c"))), apply_to = function)

namespace moe_uk {
namespace {
#include "UkernelsVecAvx512.h"
#include "UkernelsSimd.inc"

struct Bf16DotPath {
  static constexpr int kMaxRows = 4;
  static constexpr int weightRows(int mr) { return mr == 1 ? 8 : 4; }
  static size_t rowBytes(int64_t k) { return size_t(roundUp(k, 32)) * 2; }
  static void prepare(const float *x, int64_t k, int32_t, uint8_t *dst) {
    auto *h = reinterpret_cast<uint16_t *>(dst);
    int64_t kPad = roundUp(k, 32), j = 0;
    for (; j + 16 <= k; j += 16) {
      __m512i u = _mm512_castps_si512(Vec16::roundToBf16(_mm512_loadu_ps(x + j)));
      _mm256_store_si256((__m256i *)(h + j), _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
    }
    for (; j < k; ++j)
      h[j] = floatToBf16(x[j]);
    for (int64_t j = k; j < kPad; ++j)
      h[j] = 0;
  }

  template <int MR, int NW>
  static void tile(const uint8_t *prep, size_t rowBytes, const uint8_t *const *w, int64_t k,
                   float *dots) {
    __m512 acc[MR][NW];
#pragma unroll
    for (int r = 0; r < MR; ++r)
#pragma unroll
      for (int t = 0; t < NW; ++t)
        acc[r][t] = _mm512_setzero_ps();
    int64_t full = k / 32;
    int64_t chunks = roundUp(k, 32) / 32;
    for (int64_t c = 0; c < chunks; ++c) {
      __m512i wv[NW];
#pragma unroll
      for (int t = 0; t < NW; ++t) {
        const uint8_t *p = w[t] + c * 64;
        _mm_prefetch(reinterpret_cast<const char *>(p + kPrefetchBytes), _MM_HINT_T0);
        wv[t] = c < full ? _mm512_loadu_si512(p)
                         : _mm512_maskz_loadu_epi16(__mmask32((1ull << (k - c * 32)) - 1), p);
      }
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        __m512i xv = _mm512_load_si512(prep + r * rowBytes + c * 64);
#pragma unroll
        for (int t = 0; t < NW; ++t)
          acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)xv, (__m512bh)wv[t]);
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

extern "C" void moe_uk_ffn_up_bf16_avx512bf16(const float *x, int64_t ldx, const int32_t *rows,
                                              int64_t m, const void *w1, const void *w3,
                                              int64_t wRowBytes, const float *s1,
                                              const float *s3, int64_t n0, int64_t n1, int64_t k,
                                              int32_t act, int32_t actPrec, float *mid,
                                              int64_t ldm) {
  using namespace moe_uk;
  if (actPrec != MOE_UK_ACT_BF16)
    return moe_uk_ffn_up_bf16_avx512(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, k, act,
                                     actPrec, mid, ldm);
  ffnUpSimd<Bf16DotPath, Vec16>(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, k, act,
                                actPrec, mid, ldm);
}

extern "C" void moe_uk_ffn_down_bf16_avx512bf16(const float *a, int64_t lda, int64_t m,
                                                const void *w, int64_t wRowBytes, const float *s,
                                                int64_t n0, int64_t n1, int64_t k,
                                                int32_t actPrec, float *out, int64_t ldo) {
  using namespace moe_uk;
  if (actPrec != MOE_UK_ACT_BF16)
    return moe_uk_ffn_down_bf16_avx512(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out, ldo);
  ffnDownSimd<Bf16DotPath>(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out, ldo);
}

#pragma clang attribute pop

// The formats vdpbf16ps does not apply to: the avx512 kernels.
MOE_UK_FORWARD(f16, avx512bf16, avx512)
MOE_UK_FORWARD(int8, avx512bf16, avx512)
MOE_UK_FORWARD(q8_0, avx512bf16, avx512)
MOE_UK_FORWARD(q4_0, avx512bf16, avx512)
