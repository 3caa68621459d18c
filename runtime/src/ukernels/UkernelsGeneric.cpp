//===- UkernelsGeneric.cpp - plain C++ micro-kernels, any x86-64 ----------===//
//
// The `generic` ISA: one weight row decoded to FP32 at a time, then its dot
// product with every activation row. Straightforward on purpose (it is the
// path a CPU without AVX2 takes); the activations use libm.
//
//===----------------------------------------------------------------------===//
#include "UkernelsCommon.h"

#include <cstring>

namespace moe_uk {

Scratch &activationScratch() {
  static thread_local Scratch scratch;
  return scratch;
}
Scratch &dotScratch() {
  static thread_local Scratch scratch;
  return scratch;
}

namespace {

float activate(int32_t act, float v) {
  switch (act) {
  case MOE_UK_SWIGLU:
  case MOE_UK_SILU:
    return v / (1.0f + std::exp(-v));
  case MOE_UK_GEGLU:
  case MOE_UK_GELU:
    return 0.5f * v * std::erfc(-v * 0.70710678118654752f);
  case MOE_UK_RELU:
    return v > 0.0f ? v : 0.0f;
  default:
    return v;
  }
}

// One pass per weight row over the m prepared rows (k floats each):
// dots[r * nn + (n - n0)] = <x_r, w_n> * scale[n].
void genericDots(moe_weight_format fmt, int64_t m, const void *w, int64_t wRowBytes,
                 const float *scale, int64_t n0, int64_t n1, int64_t k, const float *xPrepared,
                 float *wRow, float *dots) {
  int64_t nn = n1 - n0;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t *row = static_cast<const uint8_t *>(w) + n * wRowBytes;
    for (int64_t j = 0; j < k; ++j)
      wRow[j] = weightValue(fmt, row, j);
    float s = scale ? scale[n] : 1.0f;
    for (int64_t r = 0; r < m; ++r) {
      const float *xr = xPrepared + r * k;
      float acc = 0.0f;
      for (int64_t j = 0; j < k; ++j)
        acc += xr[j] * wRow[j];
      dots[r * nn + (n - n0)] = acc * s;
    }
  }
}

// Scratch layout: m prepared activation rows, then one decoded weight row.
float *prepareRows(const float *x, int64_t ldx, const int32_t *rows, int64_t m, int64_t k,
                   int32_t actPrec) {
  float *buf = static_cast<float *>(activationScratch().get(size_t(m + 1) * size_t(k) * 4));
  for (int64_t r = 0; r < m; ++r) {
    const float *xr = x + (rows ? int64_t(rows[r]) : r) * ldx;
    prepareRowF32(xr, k, actPrec, buf + r * k, k);
  }
  return buf;
}

template <moe_weight_format Fmt>
void ffnUpGeneric(const float *x, int64_t ldx, const int32_t *rows, int64_t m, const void *w1,
                  const void *w3, int64_t wRowBytes, const float *s1, const float *s3, int64_t n0,
                  int64_t n1, int64_t k, int32_t act, int32_t actPrec, float *mid, int64_t ldm) {
  if (m <= 0 || n1 <= n0 || k <= 0)
    return;
  bool gated = isGated(act);
  int64_t nn = n1 - n0;
  float *xp = prepareRows(x, ldx, rows, m, k, actPrec);
  float *wRow = xp + m * k;
  float *dots = static_cast<float *>(dotScratch().get(size_t(2 * m * nn) * 4));
  genericDots(Fmt, m, w1, wRowBytes, s1, n0, n1, k, xp, wRow, dots);
  if (gated)
    genericDots(Fmt, m, w3, wRowBytes, s3, n0, n1, k, xp, wRow, dots + m * nn);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < nn; ++i) {
      float a = activate(act, dots[r * nn + i]);
      mid[r * ldm + n0 + i] = gated ? a * dots[m * nn + r * nn + i] : a;
    }
}

template <moe_weight_format Fmt>
void ffnDownGeneric(const float *a, int64_t lda, int64_t m, const void *w, int64_t wRowBytes,
                    const float *s, int64_t n0, int64_t n1, int64_t k, int32_t actPrec,
                    float *out, int64_t ldo) {
  if (m <= 0 || n1 <= n0 || k <= 0)
    return;
  int64_t nn = n1 - n0;
  float *xp = prepareRows(a, lda, nullptr, m, k, actPrec);
  float *wRow = xp + m * k;
  float *dots = static_cast<float *>(dotScratch().get(size_t(m * nn) * 4));
  genericDots(Fmt, m, w, wRowBytes, s, n0, n1, k, xp, wRow, dots);
  for (int64_t r = 0; r < m; ++r)
    std::memcpy(out + r * ldo + n0, dots + r * nn, size_t(nn) * 4);
}

} // namespace
} // namespace moe_uk

#define MOE_UK_DEFINE_GENERIC(fmt, FMT)                                                         \
  extern "C" void moe_uk_ffn_up_##fmt##_generic(                                                \
      const float *x, int64_t ldx, const int32_t *rows, int64_t m, const void *w1,              \
      const void *w3, int64_t wRowBytes, const float *s1, const float *s3, int64_t n0,          \
      int64_t n1, int64_t k, int32_t act, int32_t actPrec, float *mid, int64_t ldm) {           \
    moe_uk::ffnUpGeneric<FMT>(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, k, act,       \
                              actPrec, mid, ldm);                                               \
  }                                                                                             \
  extern "C" void moe_uk_ffn_down_##fmt##_generic(                                              \
      const float *a, int64_t lda, int64_t m, const void *w, int64_t wRowBytes, const float *s, \
      int64_t n0, int64_t n1, int64_t k, int32_t actPrec, float *out, int64_t ldo) {            \
    moe_uk::ffnDownGeneric<FMT>(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out, ldo);      \
  }
MOE_UK_DEFINE_GENERIC(bf16, MOE_WF_BF16)
MOE_UK_DEFINE_GENERIC(f16, MOE_WF_F16)
MOE_UK_DEFINE_GENERIC(int8, MOE_WF_INT8)
MOE_UK_DEFINE_GENERIC(q8_0, MOE_WF_Q8_0)
MOE_UK_DEFINE_GENERIC(q4_0, MOE_WF_Q4_0)
#undef MOE_UK_DEFINE_GENERIC

extern "C" int moe_uk_isa_supported(const char *isa) {
  if (!isa)
    return 0;
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              __builtin_cpu_supports("f16c");
  bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (!std::strcmp(isa, "generic"))
    return 1;
  if (!std::strcmp(isa, "avx2"))
    return avx2;
  if (!std::strcmp(isa, "avx512"))
    return avx512;
  if (!std::strcmp(isa, "avx512bf16"))
    return avx512 && __builtin_cpu_supports("avx512bf16");
  if (!std::strcmp(isa, "avx512vnni"))
    return avx512 && __builtin_cpu_supports("avx512vnni");
  if (!std::strcmp(isa, "amx"))
    return avx512 && __builtin_cpu_supports("avx512vnni") && moe_uk::amxUsable();
  return 0;
}
