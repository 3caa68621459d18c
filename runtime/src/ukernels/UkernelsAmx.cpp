//===- UkernelsAmx.cpp - the amx micro-kernels (AMX-BF16 tiles) -----------===//
//
// BF16 weights with activations rounded to BF16, on the AMX tile unit
// (Sapphire Rapids and later): one tdpbf16ps multiplies a 16 x 32 bf16 tile
// by a 32 x 16 one into 16 x 16 f32 sums, 16 times the products of a zmm
// vdpbf16ps, which is what oneDNN (and so PyTorch's BF16 path) runs on such
// CPUs.
//
// Orientation: the weights are the A operand, read in place: 16 weight rows
// x 32 values of K are 16 rows of 64 bytes at the prepared row stride, which
// is how tileloadd reads (any stride), so weights are never repacked. The
// activations are the B operand, which AMX wants pair-interleaved ("VNNI"):
// row p of a B tile holds, for each of 16 tokens, the bf16 pair (2p, 2p+1)
// of K. The up kernel packs its tokens that way (round to bf16, then a
// 16 x 16 dword transpose per 32 values of K), so a result tile is
// [16 weight rows][16 tokens].
//
// The mid activations in packed form: the down kernel's B operand is the
// up kernel's output, so when both run on tiles the up kernel writes mid
// directly as the down kernel's B tiles, rounded to bf16 (which the down
// kernel's act_prec BF16 does anyway: same values), and the down kernel
// reads them with no conversion. The two agree on when that happens from
// values both see (packedMid: act_prec BF16, m >= 16, inter % 32 == 0, AMX
// usable); moe_ukernels.h documents the layout and why it fits in the f32
// mid rows the compiler allocates. Otherwise both forward to the
// avx512bf16 kernels with the usual f32 mid.
//
// Tails: weight rows past n1 (a block that is not a multiple of 16) and K
// values past the last full 32 are staged, zero-padded, into per-thread
// scratch and loaded from there; tokens past m are zero columns of B whose
// results are never stored.
//
//===----------------------------------------------------------------------===//
#include "UkernelsCommon.h"

#include <algorithm>
#include <immintrin.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace moe_uk {

bool amxUsable() {
  static const bool usable = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16") ||
        !__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
      return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    // Linux hands out the tile state only on request, once per process
    // (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); without it tile
    // instructions fault.
    const long archReqXcompPerm = 0x1023, xfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, archReqXcompPerm, xfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return usable;
}

namespace {

constexpr int64_t kAmxMinRows = 16; // below one B tile of tokens: vdpbf16ps
constexpr int64_t kTileBytes = 16 * 64;

// Whether the up and down kernels of one expert exchange mid in packed bf16
// form (see the file comment). `inter` is the up kernel's ldm and the down
// kernel's k.
bool packedMid(int64_t m, int64_t inter, int32_t actPrec) {
  return actPrec == MOE_UK_ACT_BF16 && m >= kAmxMinRows && inter > 0 && inter % 32 == 0 &&
         amxUsable();
}

// Per-thread staging for tiles whose rows or K run past the matrix.
Scratch &stagingScratch() {
  static thread_local Scratch scratch;
  return scratch;
}

} // namespace
} // namespace moe_uk

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c,amx-tile,amx-bf16"))), apply_to = function)

namespace moe_uk {
namespace {
#include "UkernelsVecAvx512.h"
#include "UkernelsSimd.inc"

// Tiles 0-3 accumulate, 4-5 hold A (weights), 6-7 hold B (tokens); every
// tile is 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void configureTiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// In place: r[i] lane j becomes r[j] lane i (16 x 16 dwords).
void transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // s[4i + j], 128-bit lane L: column 4L + j of rows 4i..4i+3.
  __m512i s[16];
  for (int i = 0; i < 4; ++i) {
    s[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    s[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    s[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    s[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // Row 4L + j gathers lane L of s[j], s[4 + j], s[8 + j], s[12 + j].
  for (int j = 0; j < 4; ++j) {
    __m512i u0 = _mm512_shuffle_i32x4(s[j], s[4 + j], 0x44);
    __m512i u1 = _mm512_shuffle_i32x4(s[j], s[4 + j], 0xEE);
    __m512i u2 = _mm512_shuffle_i32x4(s[8 + j], s[12 + j], 0x44);
    __m512i u3 = _mm512_shuffle_i32x4(s[8 + j], s[12 + j], 0xEE);
    r[j] = _mm512_shuffle_i32x4(u0, u2, 0x88);
    r[4 + j] = _mm512_shuffle_i32x4(u0, u2, 0xDD);
    r[8 + j] = _mm512_shuffle_i32x4(u1, u3, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(u1, u3, 0xDD);
  }
}

// 32 floats rounded to bf16 (nearest even, as floatToBf16), as 16 dwords
// holding the pairs (x[2i], x[2i + 1]), the lower value in the low half.
__m512i bf16Pairs(__m512 lo, __m512 hi) {
  const __m512i odd = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35,
                                       33, 31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3,
                                       1);
  return _mm512_permutex2var_epi16(_mm512_castps_si512(Vec16::roundToBf16(lo)), odd,
                                   _mm512_castps_si512(Vec16::roundToBf16(hi)));
}

// Two rows of 16 values (weight rows n and n + 1, 16 tokens) as 16 dwords
// of bf16 pairs: one row of a B tile.
__m512i bf16PairsOfRows(__m512 even, __m512 odd) {
  __m512i e = _mm512_castps_si512(Vec16::roundToBf16(even));
  __m512i o = _mm512_castps_si512(Vec16::roundToBf16(odd));
  return _mm512_or_si512(_mm512_srli_epi32(e, 16),
                         _mm512_and_si512(o, _mm512_set1_epi32(int(0xffff0000u))));
}

// The B tiles of one group of 16 tokens (a null row is a zero token):
// out + c * kTileBytes is the tile of K values [32c, 32c + 32).
void packTokenGroup(const float *const *src, int64_t k, uint8_t *out) {
  int64_t chunks = roundUp(k, 32) / 32;
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t j = c * 32, n = k - j < 32 ? k - j : 32;
    __m512i r[16];
    for (int i = 0; i < 16; ++i) {
      if (!src[i]) {
        r[i] = _mm512_setzero_si512();
        continue;
      }
      __m512 lo = n >= 16 ? _mm512_loadu_ps(src[i] + j) : Vec16::loadPartial(src[i] + j, n);
      __m512 hi = n >= 32   ? _mm512_loadu_ps(src[i] + j + 16)
                  : n > 16 ? Vec16::loadPartial(src[i] + j + 16, n - 16)
                           : _mm512_setzero_ps();
      r[i] = bf16Pairs(lo, hi);
    }
    transpose16x16(r);
    for (int p = 0; p < 16; ++p)
      _mm512_store_si512(out + c * kTileBytes + p * 64, r[p]);
  }
}

// Where the A tiles of 16 weight rows come from: chunk c < full is read in
// place (rows at `stride`), later chunks from a zero-padded staged copy.
struct WeightTiles {
  const uint8_t *rows;
  int64_t stride;
  int64_t full;
  const uint8_t *staged; // rows of stagedStride bytes, from chunk `full` on
  int64_t stagedStride;

  const uint8_t *chunk(int64_t c) const {
    return c < full ? rows + c * 64 : staged + (c - full) * 64;
  }
  int64_t strideOf(int64_t c) const { return c < full ? stride : stagedStride; }
};

// Weight rows [nb, ne) (ne - nb <= 16) of bf16 rows of k values. `stage`
// has room for 16 rows of roundUp(k, 32) values.
WeightTiles weightTiles(const uint8_t *w, int64_t wRowBytes, int64_t nb, int64_t ne, int64_t k,
                        uint16_t *stage) {
  int64_t kp = roundUp(k, 32), full = k / 32;
  WeightTiles t{w + nb * wRowBytes, wRowBytes, full, nullptr, 0};
  bool fullRows = ne - nb == 16;
  if (fullRows && full * 32 == k)
    return t;
  // Stage what cannot be read in place: every chunk of a partial block of
  // rows, else only the last partial chunk.
  int64_t from = fullRows ? full * 32 : 0, width = kp - from;
  for (int64_t i = 0; i < 16; ++i) {
    uint16_t *dst = stage + i * width;
    int64_t have = nb + i < ne ? k - from : 0;
    if (have > 0)
      std::memcpy(dst, w + (nb + i) * wRowBytes + from * 2, size_t(have) * 2);
    std::memset(dst + (have > 0 ? have : 0), 0, size_t(width - (have > 0 ? have : 0)) * 2);
  }
  t.full = fullRows ? full : 0;
  t.staged = reinterpret_cast<const uint8_t *>(stage);
  t.stagedStride = width * 2;
  return t;
}

// c[a * 2 + b] (+)= A tiles a x B tiles b over `chunks` chunks of K; the
// four 16 x 16 f32 results are stored to cbuf (tile i at cbuf + 256 i).
template <int NA, int NB>
void tileProducts(const WeightTiles *a, const uint8_t *b0, const uint8_t *b1, int64_t chunks,
                  float *cbuf) {
  _tile_zero(0);
  if (NB == 2)
    _tile_zero(1);
  if (NA == 2)
    _tile_zero(2);
  if (NA == 2 && NB == 2)
    _tile_zero(3);
  for (int64_t c = 0; c < chunks; ++c) {
    _tile_loadd(4, a[0].chunk(c), a[0].strideOf(c));
    if (NA == 2)
      _tile_loadd(5, a[1].chunk(c), a[1].strideOf(c));
    _tile_loadd(6, b0 + c * kTileBytes, 64);
    if (NB == 2)
      _tile_loadd(7, b1 + c * kTileBytes, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (NB == 2)
      _tile_dpbf16ps(1, 4, 7);
    if (NA == 2)
      _tile_dpbf16ps(2, 5, 6);
    if (NA == 2 && NB == 2)
      _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, cbuf, 64);
  if (NB == 2)
    _tile_stored(1, cbuf + 256, 64);
  if (NA == 2)
    _tile_stored(2, cbuf + 512, 64);
  if (NA == 2 && NB == 2)
    _tile_stored(3, cbuf + 768, 64);
}

void tileProductsAny(int na, int nb, const WeightTiles *a, const uint8_t *b0, const uint8_t *b1,
                     int64_t chunks, float *cbuf) {
  if (na == 2)
    return nb == 2 ? tileProducts<2, 2>(a, b0, b1, chunks, cbuf)
                   : tileProducts<2, 1>(a, b0, b1, chunks, cbuf);
  return nb == 2 ? tileProducts<1, 2>(a, b0, b1, chunks, cbuf)
                 : tileProducts<1, 1>(a, b0, b1, chunks, cbuf);
}

// Byte offset of the B tiles of token group g in a packed operand of k
// values per token (k a multiple of 32).
int64_t groupOffset(int64_t g, int64_t k) { return g * (k / 2) * 64; }

struct UpArgs {
  const float *x;
  int64_t ldx;
  const int32_t *rows;
  int64_t m;
  const uint8_t *w1, *w3;
  int64_t wRowBytes, n0, n1, k;
  int32_t act;
  uint8_t *mid; // packed
  int64_t inter;
};

// One result block: rows [nb, ne) of mid (from the gate tile, times the up
// tile when gated) for the 16 tokens of group g, activated, rounded to
// bf16 and stored as pair rows of mid's B tiles.
void storeMidPairs(const UpArgs &u, const float *gate, const float *up, int64_t nb, int64_t ne,
                   int64_t g) {
  uint8_t *dst = u.mid + groupOffset(g, u.inter);
  for (int64_t r = 0; r + nb < ne; r += 2) {
    __m512 v0 = vactivate<Vec16>(u.act, _mm512_loadu_ps(gate + r * 16));
    __m512 v1 = vactivate<Vec16>(u.act, _mm512_loadu_ps(gate + (r + 1) * 16));
    if (up) {
      v0 = _mm512_mul_ps(v0, _mm512_loadu_ps(up + r * 16));
      v1 = _mm512_mul_ps(v1, _mm512_loadu_ps(up + (r + 1) * 16));
    }
    _mm512_storeu_si512(dst + (nb + r) / 2 * 64, bf16PairsOfRows(v0, v1));
  }
}

void amxUp(const UpArgs &u) {
  int64_t kp = roundUp(u.k, 32), chunks = kp / 32, groups = (u.m + 15) / 16;
  auto *bx = static_cast<uint8_t *>(activationScratch().get(size_t(groups * (kp / 2) * 64)));
  for (int64_t g = 0; g < groups; ++g) {
    const float *src[16];
    for (int64_t i = 0; i < 16; ++i) {
      int64_t t = g * 16 + i;
      src[i] = t < u.m ? u.x + (u.rows ? int64_t(u.rows[t]) : t) * u.ldx : nullptr;
    }
    packTokenGroup(src, u.k, bx + groupOffset(g, kp));
  }
  auto *stage = static_cast<uint16_t *>(stagingScratch().get(size_t(2 * 16 * kp) * 2));
  auto *cbuf = static_cast<float *>(dotScratch().get(4 * 256 * sizeof(float)));
  bool gated = u.w3 != nullptr;
  configureTiles();
  for (int64_t n = u.n0; n < u.n1; n += gated ? 16 : 32) {
    int64_t e0 = std::min(n + 16, u.n1), e1 = std::min(n + 32, u.n1);
    WeightTiles a[2];
    a[0] = weightTiles(u.w1, u.wRowBytes, n, e0, u.k, stage);
    int na = 1;
    if (gated) {
      a[1] = weightTiles(u.w3, u.wRowBytes, n, e0, u.k, stage + 16 * kp), na = 2;
    } else if (e0 < u.n1) {
      a[1] = weightTiles(u.w1, u.wRowBytes, e0, e1, u.k, stage + 16 * kp), na = 2;
    }
    for (int64_t g = 0; g < groups; g += 2) {
      int nb = g + 1 < groups ? 2 : 1;
      const uint8_t *b0 = bx + groupOffset(g, kp), *b1 = bx + groupOffset(g + 1, kp);
      tileProductsAny(na, nb, a, b0, nb == 2 ? b1 : b0, chunks, cbuf);
      for (int gi = 0; gi < nb; ++gi) {
        if (gated) {
          storeMidPairs(u, cbuf + 256 * gi, cbuf + 256 * (2 + gi), n, e0, g + gi);
          continue;
        }
        storeMidPairs(u, cbuf + 256 * gi, nullptr, n, e0, g + gi);
        if (na == 2)
          storeMidPairs(u, cbuf + 256 * (2 + gi), nullptr, e0, e1, g + gi);
      }
    }
  }
  _tile_release();
}

// One result tile [weight rows nb..ne][tokens of group g] to out rows
// (tokens) as columns [nb, ne).
void storeOutTile(const float *tile, int64_t nb, int64_t ne, int64_t g, int64_t m, float *out,
                  int64_t ldo) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i)
    r[i] = _mm512_loadu_si512(tile + i * 16);
  transpose16x16(r);
  __mmask16 cols = Vec16::maskOf(ne - nb);
  for (int64_t t = 0; t < 16 && g * 16 + t < m; ++t)
    _mm512_mask_storeu_ps(out + (g * 16 + t) * ldo + nb, cols, _mm512_castsi512_ps(r[t]));
}

void amxDown(const uint8_t *mid, int64_t m, const uint8_t *w, int64_t wRowBytes, int64_t n0,
             int64_t n1, int64_t k, float *out, int64_t ldo) {
  int64_t chunks = k / 32, groups = (m + 15) / 16;
  auto *stage = static_cast<uint16_t *>(stagingScratch().get(size_t(2 * 16 * k) * 2));
  auto *cbuf = static_cast<float *>(dotScratch().get(4 * 256 * sizeof(float)));
  configureTiles();
  for (int64_t n = n0; n < n1; n += 32) {
    int64_t e0 = std::min(n + 16, n1), e1 = std::min(n + 32, n1);
    WeightTiles a[2];
    a[0] = weightTiles(w, wRowBytes, n, e0, k, stage);
    int na = e0 < n1 ? 2 : 1;
    if (na == 2)
      a[1] = weightTiles(w, wRowBytes, e0, e1, k, stage + 16 * k);
    for (int64_t g = 0; g < groups; g += 2) {
      int nb = g + 1 < groups ? 2 : 1;
      const uint8_t *b0 = mid + groupOffset(g, k), *b1 = mid + groupOffset(g + 1, k);
      tileProductsAny(na, nb, a, b0, nb == 2 ? b1 : b0, chunks, cbuf);
      for (int gi = 0; gi < nb; ++gi) {
        storeOutTile(cbuf + 256 * gi, n, e0, g + gi, m, out, ldo);
        if (na == 2)
          storeOutTile(cbuf + 256 * (2 + gi), e0, e1, g + gi, m, out, ldo);
      }
    }
  }
  _tile_release();
}

} // namespace
} // namespace moe_uk

extern "C" void moe_uk_ffn_up_bf16_amx(const float *x, int64_t ldx, const int32_t *rows, int64_t m,
                                       const void *w1, const void *w3, int64_t wRowBytes,
                                       const float *s1, const float *s3, int64_t n0, int64_t n1,
                                       int64_t k, int32_t act, int32_t actPrec, float *mid,
                                       int64_t ldm) {
  using namespace moe_uk;
  if (m <= 0 || n1 <= n0 || k <= 0)
    return;
  if (!packedMid(m, ldm, actPrec))
    return moe_uk_ffn_up_bf16_avx512bf16(x, ldx, rows, m, w1, w3, wRowBytes, s1, s3, n0, n1, k,
                                         act, actPrec, mid, ldm);
  UpArgs u{x,
           ldx,
           rows,
           m,
           static_cast<const uint8_t *>(w1),
           isGated(act) ? static_cast<const uint8_t *>(w3) : nullptr,
           wRowBytes,
           n0,
           n1,
           k,
           act,
           reinterpret_cast<uint8_t *>(mid),
           ldm};
  amxUp(u);
}

extern "C" void moe_uk_ffn_down_bf16_amx(const float *a, int64_t lda, int64_t m, const void *w,
                                         int64_t wRowBytes, const float *s, int64_t n0, int64_t n1,
                                         int64_t k, int32_t actPrec, float *out, int64_t ldo) {
  using namespace moe_uk;
  if (m <= 0 || n1 <= n0 || k <= 0)
    return;
  if (!packedMid(m, k, actPrec))
    return moe_uk_ffn_down_bf16_avx512bf16(a, lda, m, w, wRowBytes, s, n0, n1, k, actPrec, out,
                                           ldo);
  amxDown(reinterpret_cast<const uint8_t *>(a), m, static_cast<const uint8_t *>(w), wRowBytes, n0,
          n1, k, out, ldo);
}

#pragma clang attribute pop

// The formats AMX-BF16 does not apply to: the avx512vnni kernels (which
// forward f16 to avx512).
MOE_UK_FORWARD(f16, amx, avx512vnni)
MOE_UK_FORWARD(int8, amx, avx512vnni)
MOE_UK_FORWARD(q8_0, amx, avx512vnni)
MOE_UK_FORWARD(q4_0, amx, avx512vnni)
