/*===- moe_ukernels.h - low-precision FFN micro-kernels ---------*- C -*-===*\
|*                                                                          *|
|* The micro-kernels the compiled code calls for expert banks whose weights *|
|* are not FP32 (BF16, FP16, INT8 per channel, GGUF Q8_0 / Q4_0 blocks).    *|
|* As in IREE, the compiler keeps the loops, the blocking and the thread    *|
|* pool, and calls one small named kernel per (work item): the up/gate      *|
|* projection with its activation fused, or the down projection. The       *|
|* compiler picks the symbol from the target's features:                    *|
|*                                                                          *|
|*   moe_uk_ffn_up_<format>_<isa>, moe_uk_ffn_down_<format>_<isa>           *|
|*   format: bf16 f16 int8 q8_0 q4_0                                        *|
|*   isa:    generic     plain C++, any x86-64 (and the tests' oracle path)  *|
|*           avx2        AVX2 + FMA + F16C                                  *|
|*           avx512      AVX-512 F/BW/VL/DQ (+ F16C)                        *|
|*           avx512bf16  avx512 + AVX512_BF16 (vdpbf16ps when activations   *|
|*                       are rounded to BF16; else as avx512)               *|
|*           avx512vnni  avx512 + AVX512_VNNI (vpdpbusd when activations    *|
|*                       are quantized to Q8_0 blocks; else as avx512)      *|
|*           amx         avx512bf16 + avx512vnni + AMX-BF16 tiles           *|
|*                       (tdpbf16ps for bf16 weights with BF16 activations  *|
|*                       when an expert has >= 16 rows: "packed mid" below; *|
|*                       else as avx512bf16, other formats as avx512vnni)   *|
|* Every (format, isa) symbol exists; calling one on a CPU without its ISA  *|
|* is undefined (moe_uk_isa_supported says which the host has).             *|
|*                                                                          *|
|* Weight layouts (docs/quantization.md has the byte-exact definitions):    *|
|* an expert's matrix is `rows` rows of K values; row n starts at           *|
|* w + n * w_row_bytes (w_row_bytes >= the row's packed size; prepared      *|
|* layers pad it to avoid cache-set conflicts). Rows have no alignment      *|
|* beyond one byte (Q4_0 rows are multiples of 18 bytes).                   *|
|*   bf16, f16: K raw 16-bit values.                                        *|
|*   int8:      K int8 values q; w = scale[n] * q (scales: one f32 per row).|
|*   q8_0:      K/32 blocks of { f16 d; int8 qs[32]; } (34 bytes), w = d*q. |
|*   q4_0:      K/32 blocks of { f16 d; uint8 qs[16]; } (18 bytes); value j |
|*              of a block is qs[j] & 15 (j < 16) or qs[j-16] >> 4, and     *|
|*              w = d * (value - 8).                                        *|
|* K is a multiple of 32 for q8_0 and q4_0 (the verifier checks it).        *|
|*                                                                          *|
|* Activation precision (act_prec), part of the layer's semantics so the    *|
|* reference interpreter can apply the same rounding:                       *|
|*   MOE_UK_ACT_F32   the products use the FP32 activations as they are     *|
|*   MOE_UK_ACT_BF16  each activation value is first rounded to BF16        *|
|*                    (round to nearest even), as PyTorch's BF16 path does  *|
|*   MOE_UK_ACT_Q8_0  each K-row of activations is first quantized to Q8_0  *|
|*                    blocks (d = amax/127 of the block, q = round(x/d),    *|
|*                    ggml's quantize_row_q8_0) and dequantized, as         *|
|*                    llama.cpp does before its integer dot products.       *|
|*                    Exactly: amax = max|x|, d = amax/127 (float),         *|
|*                    id = d ? 1/d : 0, q = roundf(x * id) (ties away from  *|
|*                    zero), and the value is q * fp16(d): d is rounded to  *|
|*                    f16 (nearest even) before dequantizing, because ggml  *|
|*                    stores d as f16 (q is computed with the unrounded     *|
|*                    1/d, as ggml does). When K % 32 != 0 (bf16, f16,      *|
|*                    int8), a last partial block is quantized on its own   *|
|*                    values.                                               *|
|* Accumulation is FP32 in any order (results agree with a double-precision *|
|* reference of the same rounded operands to about 1e-5 relative).          *|
|* The SIMD kernels evaluate exp and erfc with polynomials: silu within     *|
|* 2e-7 relative, gelu within 3e-7 relative (both tails included).          *|
\*===----------------------------------------------------------------------===*/
#ifndef MOE_UKERNELS_H
#define MOE_UKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The IR's #moe.weight_format values. */
enum moe_weight_format {
  MOE_WF_F32 = 0,
  MOE_WF_BF16 = 1,
  MOE_WF_F16 = 2,
  MOE_WF_INT8 = 3,
  MOE_WF_Q8_0 = 4,
  MOE_WF_Q4_0 = 5
};

/* The IR's activation precision values. */
enum moe_activation_precision {
  MOE_UK_ACT_F32 = 0,
  MOE_UK_ACT_BF16 = 1,
  MOE_UK_ACT_Q8_0 = 2
};

/* The IR's moe::Activation values (swiglu and geglu are gated). gelu is
 * the exact (erf) GELU; silu(v) = v / (1 + exp(-v)). */
enum moe_uk_activation {
  MOE_UK_SWIGLU = 0,
  MOE_UK_GEGLU = 1,
  MOE_UK_GELU = 2,
  MOE_UK_RELU = 3,
  MOE_UK_SILU = 4
};

/* Up/gate projection of one work item, activation fused: for the m rows r
 * (row r of x is x + rows[r] * ldx, or x + r * ldx when rows is NULL) and
 * the weight rows n in [n0, n1):
 *   gated (swiglu, geglu): mid[r * ldm + n] = act(<x_r, w1_n>) * <x_r, w3_n>
 *   plain (gelu, relu, silu): mid[r * ldm + n] = act(<x_r, w1_n>)
 * w3 and s3 are NULL for plain activations; s1/s3 are NULL unless int8. */
typedef void (*moe_uk_ffn_up_fn)(const float *x, int64_t ldx, const int32_t *rows, int64_t m,
                                 const void *w1, const void *w3, int64_t w_row_bytes,
                                 const float *s1, const float *s3, int64_t n0, int64_t n1,
                                 int64_t k, int32_t act, int32_t act_prec, float *mid,
                                 int64_t ldm);

/* Down projection of one work item: out[r * ldo + n] = <a_r, w_n> for the m
 * rows r (row r of a is a + r * lda) and the weight rows n in [n0, n1).
 * s is NULL unless int8. */
typedef void (*moe_uk_ffn_down_fn)(const float *a, int64_t lda, int64_t m, const void *w,
                                   int64_t w_row_bytes, const float *s, int64_t n0, int64_t n1,
                                   int64_t k, int32_t act_prec, float *out, int64_t ldo);

#define MOE_UK_DECLARE(fmt, isa)                                                          \
  void moe_uk_ffn_up_##fmt##_##isa(const float *x, int64_t ldx, const int32_t *rows,      \
                                   int64_t m, const void *w1, const void *w3,             \
                                   int64_t w_row_bytes, const float *s1, const float *s3, \
                                   int64_t n0, int64_t n1, int64_t k, int32_t act,        \
                                   int32_t act_prec, float *mid, int64_t ldm);            \
  void moe_uk_ffn_down_##fmt##_##isa(const float *a, int64_t lda, int64_t m, const void *w, \
                                     int64_t w_row_bytes, const float *s, int64_t n0,     \
                                     int64_t n1, int64_t k, int32_t act_prec, float *out, \
                                     int64_t ldo);
#define MOE_UK_DECLARE_ISA(isa)                                                           \
  MOE_UK_DECLARE(bf16, isa)                                                               \
  MOE_UK_DECLARE(f16, isa)                                                                \
  MOE_UK_DECLARE(int8, isa)                                                               \
  MOE_UK_DECLARE(q8_0, isa)                                                               \
  MOE_UK_DECLARE(q4_0, isa)
MOE_UK_DECLARE_ISA(generic)
MOE_UK_DECLARE_ISA(avx2)
MOE_UK_DECLARE_ISA(avx512)
MOE_UK_DECLARE_ISA(avx512bf16)
MOE_UK_DECLARE_ISA(avx512vnni)
MOE_UK_DECLARE_ISA(amx)
#undef MOE_UK_DECLARE_ISA
#undef MOE_UK_DECLARE

/* Packed mid (isa amx, bf16 weights): when act_prec is BF16, m >= 16, ldm
 * (the up kernel's) = k (the down kernel's) = inter is a multiple of 32 and
 * the OS grants the tile state, the up kernel does not write FP32 mid rows:
 * it writes the down kernel's AMX operand, the bf16 values (rounded to
 * nearest even, as act_prec BF16 rounds them anyway) in groups of 16 rows:
 * for row r and column n, the uint16 at index
 *   ((r / 16) * (inter / 2) + n / 2) * 32 + (r % 16) * 2 + n % 2
 * from `mid`, and rows m.. of the last group hold act(0)-derived zeros.
 * That is ceil(m / 16) * 16 * inter * 2 bytes, within the m * inter * 4 of
 * the FP32 rows for m >= 15. The down kernel of the same expert (same m,
 * act_prec, k = inter) reads `a` in that form. The up items must start and
 * end at even n (the compiler's blocks are multiples of 16). */

/* 1 when this CPU can run the kernels of `isa` ("generic", "avx2",
 * "avx512", "avx512bf16", "avx512vnni", "amx"), else 0 (also for unknown
 * names). For "amx" this asks Linux for the tile state (once). */
int moe_uk_isa_supported(const char *isa);

#ifdef __cplusplus
}
#endif

#endif /* MOE_UKERNELS_H */
