//===- UkernelsAvx512.cpp - the avx512 micro-kernels ----------------------===//
//
// AVX-512 F/BW/VL/DQ + F16C: weights decoded to FP32 in registers (16 lanes)
// and FMA, for every activation precision (the activations are rounded as
// act_prec says when a row tile is prepared). Row tiles of up to 4 rows;
// one row streams 8 weight rows at once.
//
// Only the functions below carry the AVX-512 target (the pragma), the file
// is compiled with the project's baseline flags.
//
//===----------------------------------------------------------------------===//
#include "UkernelsCommon.h"

#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)

namespace moe_uk {
namespace {
#include "UkernelsVecAvx512.h"
#include "UkernelsSimd.inc"
} // namespace
} // namespace moe_uk

#define MOE_UK_DEFINE_AVX512(fmt, Fmt)                                     \
  extern "C" void moe_uk_ffn_up_##fmt##_avx512(                                                  \
      const float *x, int64_t ldx, const int32_t *rows, int64_t m, const void *w1,              \
      const void *w3, int64_t wRowBytes, const float *s1, const float *s3, int64_t n0,          \
      int64_t n1, int64_t k, int32_t act, int32_t actPrec, float *mid, int64_t ldm) {           \
    using namespace moe_uk;                                                                     \
    ffnUpSimd<Fp32Path<Vec16, Fmt, 16>, Vec16>(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, \
                                            k, act, actPrec, mid, ldm);                         \
  }                                                                                             \
  extern "C" void moe_uk_ffn_down_##fmt##_avx512(                                                \
      const float *a, int64_t lda, int64_t m, const void *w, int64_t wRowBytes, const float *s, \
      int64_t n0, int64_t n1, int64_t k, int32_t actPrec, float *out, int64_t ldo) {            \
    using namespace moe_uk;                                                                     \
    ffnDownSimd<Fp32Path<Vec16, Fmt, 16>>(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out, \
                                           ldo);                                                \
  }

MOE_UK_DEFINE_AVX512(bf16, FormatBf16)
MOE_UK_DEFINE_AVX512(f16, FormatF16)
MOE_UK_DEFINE_AVX512(int8, FormatInt8)
MOE_UK_DEFINE_AVX512(q8_0, FormatQ8_0)
MOE_UK_DEFINE_AVX512(q4_0, FormatQ4_0)

#pragma clang attribute pop
