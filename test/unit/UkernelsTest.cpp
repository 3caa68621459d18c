//===- UkernelsTest.cpp - the micro-kernels against a double reference ----===//
//
// Every (format, isa) pair of moe_ukernels.h, for every activation
// precision and activation, odd n ranges, permuted rows, padded weight rows
// and row counts that exercise full and partial row tiles, against a scalar
// double-precision reference written here from the byte layouts in the
// header (its own bf16/f16 conversions, dequantizers and Q8_0 activation
// quantization). The reference uses the same rounded operands (activations
// rounded as act_prec says), so the only differences are FP32 accumulation
// and the kernels' exp/erfc approximations.
//
//===----------------------------------------------------------------------===//
#include "moe_ukernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

struct KernelPair {
  moe_uk_ffn_up_fn up;
  moe_uk_ffn_down_fn down;
};

#define KERNELS_OF(fmt)                                                                      \
  {{moe_uk_ffn_up_##fmt##_generic, moe_uk_ffn_down_##fmt##_generic},                         \
   {moe_uk_ffn_up_##fmt##_avx2, moe_uk_ffn_down_##fmt##_avx2},                               \
   {moe_uk_ffn_up_##fmt##_avx512, moe_uk_ffn_down_##fmt##_avx512},                           \
   {moe_uk_ffn_up_##fmt##_avx512bf16, moe_uk_ffn_down_##fmt##_avx512bf16},                   \
   {moe_uk_ffn_up_##fmt##_avx512vnni, moe_uk_ffn_down_##fmt##_avx512vnni},                   \
   {moe_uk_ffn_up_##fmt##_amx, moe_uk_ffn_down_##fmt##_amx}}
constexpr int kNumIsas = 6;
const KernelPair kKernels[5][kNumIsas] = {KERNELS_OF(bf16), KERNELS_OF(f16), KERNELS_OF(int8),
                                   KERNELS_OF(q8_0), KERNELS_OF(q4_0)};
#undef KERNELS_OF
const char *const kIsaNames[kNumIsas] = {"generic",    "avx2",       "avx512",
                                         "avx512bf16", "avx512vnni", "amx"};
const char *const kFormatNames[5] = {"bf16", "f16", "int8", "q8_0", "q4_0"};
const moe_weight_format kFormats[5] = {MOE_WF_BF16, MOE_WF_F16, MOE_WF_INT8, MOE_WF_Q8_0,
                                       MOE_WF_Q4_0};

// ---- The reference's own conversions ------------------------------------

double halfToDouble(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  double v = exp == 0 ? std::ldexp(double(man), -24) : std::ldexp(double(1024 + man), exp - 25);
  return sign ? -v : v;
}

// Nearest half (ties to even), for finite |v| < 65504.
uint16_t doubleToHalf(double v) {
  uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  double a = std::fabs(v);
  if (a < std::ldexp(1.0, -14)) // subnormal: multiples of 2^-24
    return uint16_t(sign | uint16_t(std::nearbyint(std::ldexp(a, 24))));
  int e;
  std::frexp(a, &e); // a = f * 2^e, f in [0.5, 1)
  double units = std::nearbyint(std::ldexp(a, 11 - e)); // 11 significant bits
  if (units == 2048) {
    units = 1024;
    ++e;
  }
  return uint16_t(sign | uint16_t((e + 14) << 10) | uint16_t(int(units) - 1024));
}

double bf16ToDouble(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Nearest bf16 of a float (ties to even), by comparing the two neighbours.
float roundBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t down = u & 0xffff0000u, up = down + 0x10000u;
  float fd, fu;
  std::memcpy(&fd, &down, 4);
  std::memcpy(&fu, &up, 4);
  double dd = std::fabs(double(f) - fd), du = std::fabs(double(fu) - f);
  if (dd < du || (dd == du && ((down >> 16) & 1) == 0))
    return fd;
  return fu;
}

// ggml's quantize_row_q8_0_ref on a row (last block may be partial), then
// dequantized with d rounded to half.
std::vector<double> q8_0RoundTrip(const float *x, int64_t k) {
  std::vector<double> out(k);
  for (int64_t j0 = 0; j0 < k; j0 += 32) {
    int64_t n = std::min<int64_t>(32, k - j0);
    float amax = 0;
    for (int64_t j = 0; j < n; ++j)
      amax = std::max(amax, std::fabs(x[j0 + j]));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    double dh = halfToDouble(doubleToHalf(d));
    for (int64_t j = 0; j < n; ++j)
      out[j0 + j] = double(std::roundf(x[j0 + j] * id)) * dh;
  }
  return out;
}

std::vector<double> roundActivations(const float *x, int64_t k, int32_t actPrec) {
  if (actPrec == MOE_UK_ACT_Q8_0)
    return q8_0RoundTrip(x, k);
  std::vector<double> out(k);
  for (int64_t j = 0; j < k; ++j)
    out[j] = actPrec == MOE_UK_ACT_BF16 ? double(roundBf16(x[j])) : double(x[j]);
  return out;
}

double weightAt(moe_weight_format fmt, const uint8_t *row, int64_t j) {
  switch (fmt) {
  case MOE_WF_BF16:
    return bf16ToDouble(uint16_t(row[2 * j] | row[2 * j + 1] << 8));
  case MOE_WF_F16:
    return halfToDouble(uint16_t(row[2 * j] | row[2 * j + 1] << 8));
  case MOE_WF_INT8:
    return double(int8_t(row[j]));
  case MOE_WF_Q8_0: {
    const uint8_t *b = row + (j / 32) * 34;
    return halfToDouble(uint16_t(b[0] | b[1] << 8)) * int8_t(b[2 + j % 32]);
  }
  case MOE_WF_Q4_0: {
    const uint8_t *b = row + (j / 32) * 18;
    int i = int(j % 32);
    int v = i < 16 ? (b[2 + i] & 15) : (b[2 + i - 16] >> 4);
    return halfToDouble(uint16_t(b[0] | b[1] << 8)) * (v - 8);
  }
  default:
    return 0;
  }
}

int64_t packedRowBytes(moe_weight_format fmt, int64_t k) {
  switch (fmt) {
  case MOE_WF_BF16:
  case MOE_WF_F16:
    return 2 * k;
  case MOE_WF_INT8:
    return k;
  case MOE_WF_Q8_0:
    return k / 32 * 34;
  default:
    return k / 32 * 18;
  }
}

double activation(int32_t act, double v) {
  switch (act) {
  case MOE_UK_SWIGLU:
  case MOE_UK_SILU:
    return v / (1 + std::exp(-v));
  case MOE_UK_GEGLU:
  case MOE_UK_GELU:
    return 0.5 * v * std::erfc(-v / std::sqrt(2.0));
  default:
    return v > 0 ? v : 0;
  }
}

// ---- Test data ----------------------------------------------------------

// A weight matrix of `rows` rows with w_row_bytes = packed + 37 (so rows are
// unaligned); the padding holds 0xAB so that a kernel reading it is caught.
struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  int64_t rowBytes;
};

Weights makeWeights(moe_weight_format fmt, int64_t rows, int64_t k, std::mt19937 &rng) {
  Weights w;
  w.rowBytes = packedRowBytes(fmt, k) + 37;
  w.bytes.assign(size_t(rows * w.rowBytes), 0xAB);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f), dist(0.002f, 0.05f);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int64_t n = 0; n < rows; ++n) {
    uint8_t *row = w.bytes.data() + n * w.rowBytes;
    if (fmt == MOE_WF_BF16 || fmt == MOE_WF_F16) {
      for (int64_t j = 0; j < k; ++j) {
        float v = val(rng) * 0.3f;
        uint16_t h;
        if (fmt == MOE_WF_F16) {
          h = doubleToHalf(v);
        } else {
          float r = roundBf16(v);
          uint32_t u;
          std::memcpy(&u, &r, 4);
          h = uint16_t(u >> 16);
        }
        row[2 * j] = uint8_t(h);
        row[2 * j + 1] = uint8_t(h >> 8);
      }
    } else if (fmt == MOE_WF_INT8) {
      for (int64_t j = 0; j < k; ++j)
        row[j] = uint8_t(byte(rng)); // -128..127
    } else {
      int64_t blockBytes = fmt == MOE_WF_Q8_0 ? 34 : 18;
      for (int64_t b = 0; b < k / 32; ++b) {
        uint8_t *blk = row + b * blockBytes;
        uint16_t d = doubleToHalf(dist(rng));
        blk[0] = uint8_t(d);
        blk[1] = uint8_t(d >> 8);
        for (int64_t i = 2; i < blockBytes; ++i)
          blk[i] = uint8_t(byte(rng));
        if (fmt == MOE_WF_Q8_0)
          for (int64_t i = 2; i < blockBytes; ++i)
            if (blk[i] == 0x80) // ggml's q8_0 holds -127..127
              blk[i] = 0x81;
      }
    }
  }
  for (int64_t n = 0; n < rows; ++n)
    w.scales.push_back(dist(rng) * 2);
  return w;
}

std::vector<float> makeActivations(int64_t rows, int64_t ld, std::mt19937 &rng) {
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  std::vector<float> x(size_t(rows * ld), 1e30f); // the gaps are never read
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < ld - 3; ++j)
      x[r * ld + j] = val(rng) * (j % 17 == 0 ? 4.0f : 1.0f);
  return x;
}

// 0..n-1 in random order: the rows an expert's tokens come from.
std::vector<int32_t> shuffledRows(int64_t n, std::mt19937 &rng) {
  std::vector<int32_t> rows(n);
  for (int64_t i = 0; i < n; ++i)
    rows[i] = int32_t(i);
  std::shuffle(rows.begin(), rows.end(), rng);
  return rows;
}

// <x, w_n> * scale and sum |x| |w_n| * scale, in double.
struct RefDot {
  double dot = 0, magnitude = 0;
};
RefDot refDot(moe_weight_format fmt, const std::vector<double> &x, const Weights &w, int64_t n,
              int64_t k) {
  RefDot d;
  const uint8_t *row = w.bytes.data() + n * w.rowBytes;
  double s = fmt == MOE_WF_INT8 ? w.scales[n] : 1.0;
  for (int64_t j = 0; j < k; ++j) {
    double p = x[j] * weightAt(fmt, row, j) * s;
    d.dot += p;
    d.magnitude += std::fabs(p);
  }
  return d;
}

constexpr float kSentinel = -12345.5f;
constexpr double kRelTol = 1e-5;
// FP32 sums of K terms: the error grows with the terms' magnitude sum|x w|,
// not with the (possibly cancelled) result. About sqrt(K/16) u per lane
// for K <= 1024; 1e-6 leaves a 2x margin and still catches a 2e-5 relative
// slip in a dot product.
constexpr double kSumTol = 1e-6;

struct Case {
  moe_weight_format fmt;
  int64_t m, k, n0, n1;
  int32_t actPrec;
};

std::string describe(const Case &c, const char *what) {
  return std::string(what) + " m=" + std::to_string(c.m) + " k=" + std::to_string(c.k) +
         " n=[" + std::to_string(c.n0) + "," + std::to_string(c.n1) +
         ") act_prec=" + std::to_string(c.actPrec);
}

// The error allowed for one output: relative to the output and to the size
// of the terms it sums (an FP32 sum of cancelling terms cannot do better
// than its terms' magnitude times the unit roundoff).
void checkUp(const KernelPair &kp, const Case &c, int32_t act, std::mt19937 &rng) {
  bool gated = act == MOE_UK_SWIGLU || act == MOE_UK_GEGLU;
  int64_t xRows = c.m + 5, ldx = c.k + 3, ldm = c.n1 + 4;
  std::vector<float> x = makeActivations(xRows, ldx, rng);
  std::vector<int32_t> rows = shuffledRows(xRows, rng);
  Weights w1 = makeWeights(c.fmt, c.n1 + 2, c.k, rng);
  Weights w3 = makeWeights(c.fmt, c.n1 + 2, c.k, rng);
  bool int8 = c.fmt == MOE_WF_INT8;
  std::vector<float> mid(size_t(c.m * ldm), kSentinel);
  kp.up(x.data(), ldx, rows.data(), c.m, w1.bytes.data(), gated ? w3.bytes.data() : nullptr,
        w1.rowBytes, int8 ? w1.scales.data() : nullptr,
        gated && int8 ? w3.scales.data() : nullptr, c.n0, c.n1, c.k, act, c.actPrec, mid.data(),
        ldm);
  std::string what = describe(c, "up") + " act=" + std::to_string(act);
  int failures = 0;
  for (int64_t r = 0; r < c.m; ++r) {
    std::vector<double> xr = roundActivations(x.data() + rows[r] * ldx, c.k, c.actPrec);
    for (int64_t n = 0; n < ldm; ++n) {
      float got = mid[r * ldm + n];
      if (n < c.n0 || n >= c.n1) {
        if (got != kSentinel && failures++ < 5)
          ADD_FAILURE() << what << ": wrote outside [n0,n1) at row " << r << " n " << n;
        continue;
      }
      RefDot a = refDot(c.fmt, xr, w1, n, c.k);
      double want = activation(act, a.dot), bound = a.magnitude * 1.2;
      if (gated) {
        RefDot b = refDot(c.fmt, xr, w3, n, c.k);
        bound = bound * std::fabs(b.dot) + std::fabs(want) * b.magnitude;
        want *= b.dot;
      }
      double tol = kRelTol * std::fabs(want) + kSumTol * bound + 1e-30;
      if (!(std::fabs(got - want) <= tol) && failures++ < 5)
        ADD_FAILURE() << what << ": row " << r << " n " << n << " got " << got << " want "
                      << want << " tol " << tol;
    }
  }
}

// An expert's mid rows in the amx kernels' packed form (moe_ukernels.h,
// "packed mid"), written from the header's formula: the FP32 rows a (lda
// apart) of k = inter values, rounded to bf16.
std::vector<float> packedMidOf(const std::vector<float> &a, int64_t lda, int64_t m, int64_t k) {
  std::vector<float> packed(size_t(m * k), kSentinel);
  auto *h = reinterpret_cast<uint16_t *>(packed.data());
  for (int64_t r = 0; r < (m + 15) / 16 * 16; ++r)
    for (int64_t n = 0; n < k; ++n) {
      float v = r < m ? roundBf16(a[r * lda + n]) : 0.0f;
      uint32_t u;
      std::memcpy(&u, &v, 4);
      h[((r / 16) * (k / 2) + n / 2) * 32 + (r % 16) * 2 + n % 2] = uint16_t(u >> 16);
    }
  return packed;
}

// packed: the down kernel reads its activations in packed-mid form.
void checkDown(const KernelPair &kp, const Case &c, std::mt19937 &rng, bool packed = false) {
  int64_t lda = c.k + 3, ldo = c.n1 + 4;
  std::vector<float> a = makeActivations(c.m, lda, rng);
  Weights w = makeWeights(c.fmt, c.n1 + 2, c.k, rng);
  std::vector<float> out(size_t(c.m * ldo), kSentinel);
  std::vector<float> packedA = packed ? packedMidOf(a, lda, c.m, c.k) : std::vector<float>();
  kp.down(packed ? packedA.data() : a.data(), lda, c.m, w.bytes.data(), w.rowBytes,
          c.fmt == MOE_WF_INT8 ? w.scales.data() : nullptr, c.n0, c.n1, c.k, c.actPrec,
          out.data(), ldo);
  std::string what = describe(c, "down");
  int failures = 0;
  for (int64_t r = 0; r < c.m; ++r) {
    std::vector<double> ar = roundActivations(a.data() + r * lda, c.k, c.actPrec);
    for (int64_t n = 0; n < ldo; ++n) {
      float got = out[r * ldo + n];
      if (n < c.n0 || n >= c.n1) {
        if (got != kSentinel && failures++ < 5)
          ADD_FAILURE() << what << ": wrote outside [n0,n1) at row " << r << " n " << n;
        continue;
      }
      RefDot d = refDot(c.fmt, ar, w, n, c.k);
      double tol = kRelTol * std::fabs(d.dot) + kSumTol * d.magnitude + 1e-30;
      if (!(std::fabs(got - d.dot) <= tol) && failures++ < 5)
        ADD_FAILURE() << what << ": row " << r << " n " << n << " got " << got << " want "
                      << d.dot << " tol " << tol;
    }
  }
}

class UkernelsTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(UkernelsTest, MatchesDoubleReference) {
  auto [fmtIndex, isaIndex] = GetParam();
  if (!moe_uk_isa_supported(kIsaNames[isaIndex]))
    GTEST_SKIP() << "this CPU lacks isa " << kIsaNames[isaIndex];
  const KernelPair &kp = kKernels[fmtIndex][isaIndex];
  moe_weight_format fmt = kFormats[fmtIndex];
  bool blocked = fmt == MOE_WF_Q8_0 || fmt == MOE_WF_Q4_0;
  std::vector<int64_t> ks = {32, 96, 1024};
  if (!blocked)
    ks.push_back(100); // K needs no multiple of 32 outside the Q formats
  else
    ks.push_back(160); // 5 blocks: a full group of 4 and a partial one (vnni q4_0)
  std::mt19937 rng(1234u + 7u * unsigned(fmtIndex) + 101u * unsigned(isaIndex));
  for (int32_t actPrec : {MOE_UK_ACT_F32, MOE_UK_ACT_BF16, MOE_UK_ACT_Q8_0})
    for (int64_t m : {1, 3, 8, 37})
      for (int64_t k : ks) {
        // 19 and 6 rows: neither a multiple of any tile width (8, 4, 2+2).
        Case c{fmt, m, k, 3, 3 + (m == 37 ? 6 : 19), actPrec};
        for (int32_t act : {MOE_UK_SWIGLU, MOE_UK_GEGLU, MOE_UK_GELU, MOE_UK_RELU, MOE_UK_SILU})
          checkUp(kp, c, act, rng);
        // The amx kernels exchange mid in packed form on experts of >= 16
        // rows with bf16 activations and inter % 32 == 0 (the up kernel's
        // ldm here never is; the down kernel's k may be).
        bool packedMid = std::string(kIsaNames[isaIndex]) == "amx" && fmt == MOE_WF_BF16 &&
                         actPrec == MOE_UK_ACT_BF16 && m >= 16 && k % 32 == 0;
        checkDown(kp, c, rng, packedMid);
      }
}

INSTANTIATE_TEST_SUITE_P(AllFormatsAndIsas, UkernelsTest,
                         ::testing::Combine(::testing::Range(0, 5), ::testing::Range(0, kNumIsas)),
                         [](const ::testing::TestParamInfo<std::tuple<int, int>> &info) {
                           return std::string(kFormatNames[std::get<0>(info.param)]) + "_" +
                                  kIsaNames[std::get<1>(info.param)];
                         });

// Large activations through the vectorized exp/erfc: both tails, the
// clamps, and 0.
TEST(UkernelsActivations, TailsMatchReference) {
  const char *isas[] = {"avx2", "avx512"};
  const KernelPair kps[] = {kKernels[1][1], kKernels[1][2]};
  for (int i = 0; i < 2; ++i) {
    if (!moe_uk_isa_supported(isas[i]))
      continue;
    // k = 1, weight 1.0 (f16 0x3C00): mid = act(x).
    const uint8_t one[2] = {0x00, 0x3C};
    std::vector<float> xs = {0.0f, -1e30f, 1e30f};
    for (float v = -120.0f; v <= 120.0f; v += 0.37f)
      xs.push_back(v);
    for (float v = -12.0f; v <= 12.0f; v += 0.0013f)
      xs.push_back(v);
    for (int32_t act : {MOE_UK_GELU, MOE_UK_SILU, MOE_UK_RELU})
      for (float v : xs) {
        float got = kSentinel;
        kps[i].up(&v, 1, nullptr, 1, one, nullptr, 2, nullptr, nullptr, 0, 1, 1, act,
                  MOE_UK_ACT_F32, &got, 1);
        double want = activation(act, v);
        // erfcc's fit (1.2e-7) plus t, two exps and the products: 3e-7.
        double rel = act == MOE_UK_GELU ? 3e-7 : 2e-7;
        EXPECT_LE(std::fabs(got - want), rel * std::fabs(want) + 1e-36)
            << isas[i] << " act " << act << " at " << v;
      }
  }
}

// The amx pair on experts that exchange mid in packed form: the up kernel's
// items (blocks of rows that are not multiples of 16 or 32 included, so
// staged partial tiles run) write mid, which is decoded with the header's
// formula and checked against a double reference (one bf16 step: mid is
// rounded to bf16); the down kernel's items then read that mid, checked
// against the double dot products of the decoded values.
struct PackedCase {
  int64_t m, h, inter;
  std::vector<int64_t> upCuts, downCuts; // item boundaries inside (0, inter) / (0, h)
};

std::vector<int64_t> itemBounds(int64_t total, const std::vector<int64_t> &cuts) {
  std::vector<int64_t> b = {0};
  b.insert(b.end(), cuts.begin(), cuts.end());
  b.push_back(total);
  return b;
}

void checkPackedPair(const PackedCase &c, int32_t act, std::mt19937 &rng) {
  bool gated = act == MOE_UK_SWIGLU || act == MOE_UK_GEGLU;
  int64_t xRows = c.m + 3, ldx = c.h + 5, ldo = c.h + 7;
  std::vector<float> x = makeActivations(xRows, ldx, rng);
  std::vector<int32_t> rows = shuffledRows(xRows, rng);
  Weights w1 = makeWeights(MOE_WF_BF16, c.inter, c.h, rng);
  Weights w3 = makeWeights(MOE_WF_BF16, c.inter, c.h, rng);
  Weights w2 = makeWeights(MOE_WF_BF16, c.h, c.inter, rng);
  // Room for the FP32 rows plus a guard the packed form must not reach.
  std::vector<float> mid(size_t(c.m * c.inter + 64), kSentinel);
  std::vector<int64_t> up = itemBounds(c.inter, c.upCuts);
  for (size_t i = 0; i + 1 < up.size(); ++i)
    moe_uk_ffn_up_bf16_amx(x.data(), ldx, rows.data(), c.m, w1.bytes.data(),
                           gated ? w3.bytes.data() : nullptr, w1.rowBytes, nullptr, nullptr, up[i],
                           up[i + 1], c.h, act, MOE_UK_ACT_BF16, mid.data(), c.inter);
  std::string what = "packed m=" + std::to_string(c.m) + " h=" + std::to_string(c.h) +
                     " inter=" + std::to_string(c.inter) + " act=" + std::to_string(act);
  for (size_t i = size_t(c.m * c.inter); i < mid.size(); ++i)
    ASSERT_EQ(mid[i], kSentinel) << what << ": wrote past the expert's mid rows";
  const auto *h = reinterpret_cast<const uint16_t *>(mid.data());
  std::vector<double> midValues(size_t(c.m * c.inter));
  int failures = 0;
  for (int64_t r = 0; r < c.m; ++r) {
    std::vector<double> xr = roundActivations(x.data() + rows[r] * ldx, c.h, MOE_UK_ACT_BF16);
    for (int64_t n = 0; n < c.inter; ++n) {
      double got =
          bf16ToDouble(h[((r / 16) * (c.inter / 2) + n / 2) * 32 + (r % 16) * 2 + n % 2]);
      midValues[r * c.inter + n] = got;
      RefDot a = refDot(MOE_WF_BF16, xr, w1, n, c.h);
      double want = activation(act, a.dot), bound = a.magnitude * 1.2;
      if (gated) {
        RefDot b = refDot(MOE_WF_BF16, xr, w3, n, c.h);
        bound = bound * std::fabs(b.dot) + std::fabs(want) * b.magnitude;
        want *= b.dot;
      }
      // The FP32 sums' error, then one rounding to bf16 (2^-8 relative).
      double tol = (kRelTol * std::fabs(want) + kSumTol * bound) * 1.01 +
                   std::ldexp(std::fabs(want) + kSumTol * bound, -8) + 1e-30;
      if (!(std::fabs(got - want) <= tol) && failures++ < 5)
        ADD_FAILURE() << what << ": mid row " << r << " n " << n << " got " << got << " want "
                      << want;
    }
  }
  std::vector<float> out(size_t(c.m * ldo), kSentinel);
  std::vector<int64_t> down = itemBounds(c.h, c.downCuts);
  for (size_t i = 0; i + 1 < down.size(); ++i)
    moe_uk_ffn_down_bf16_amx(mid.data(), c.inter, c.m, w2.bytes.data(), w2.rowBytes, nullptr,
                             down[i], down[i + 1], c.inter, MOE_UK_ACT_BF16, out.data(), ldo);
  for (int64_t r = 0; r < c.m; ++r) {
    std::vector<double> ar(midValues.begin() + r * c.inter, midValues.begin() + (r + 1) * c.inter);
    for (int64_t n = 0; n < ldo; ++n) {
      float got = out[r * ldo + n];
      if (n >= c.h) {
        if (got != kSentinel && failures++ < 5)
          ADD_FAILURE() << what << ": down wrote past h at row " << r << " n " << n;
        continue;
      }
      RefDot d = refDot(MOE_WF_BF16, ar, w2, n, c.inter);
      double tol = kRelTol * std::fabs(d.dot) + kSumTol * d.magnitude + 1e-30;
      if (!(std::fabs(got - d.dot) <= tol) && failures++ < 5)
        ADD_FAILURE() << what << ": out row " << r << " n " << n << " got " << got << " want "
                      << d.dot;
    }
  }
}

TEST(UkernelsAmx, PackedMidPairMatchesDoubleReference) {
  if (!moe_uk_isa_supported("amx"))
    GTEST_SKIP() << "this CPU (or OS) has no AMX-BF16";
  std::mt19937 rng(77);
  // m: one group, a partial second group, an even number of groups.
  // h = 100: a K tail for up and a partial 16-row block for down.
  std::vector<PackedCase> cases = {
      {16, 32, 32, {}, {}},
      {37, 100, 96, {40}, {24, 56}},
      {64, 1024, 128, {16, 48}, {512}},
      {50, 64, 64, {}, {8, 40}},
  };
  for (const PackedCase &c : cases)
    for (int32_t act : {MOE_UK_SWIGLU, MOE_UK_GEGLU, MOE_UK_GELU, MOE_UK_RELU, MOE_UK_SILU})
      checkPackedPair(c, act, rng);
}

TEST(UkernelsIsa, NamesAreChecked) {
  EXPECT_EQ(moe_uk_isa_supported("generic"), 1);
  EXPECT_EQ(moe_uk_isa_supported("avx1024"), 0);
  EXPECT_EQ(moe_uk_isa_supported(nullptr), 0);
  // avx512bf16 / avx512vnni imply avx512, which implies avx2.
  if (moe_uk_isa_supported("avx512bf16") || moe_uk_isa_supported("avx512vnni"))
    EXPECT_EQ(moe_uk_isa_supported("avx512"), 1);
  if (moe_uk_isa_supported("avx512"))
    EXPECT_EQ(moe_uk_isa_supported("avx2"), 1);
  if (moe_uk_isa_supported("amx")) {
    EXPECT_EQ(moe_uk_isa_supported("avx512bf16"), 1);
    EXPECT_EQ(moe_uk_isa_supported("avx512vnni"), 1);
  }
}

} // namespace
