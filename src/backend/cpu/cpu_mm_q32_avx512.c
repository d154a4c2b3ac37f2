/* The AVX-512 matmul kernels for the 32-element block formats (cpu_mm_q32_impl.h), plus
 * 512-bit decode kernels (one activation row) for Q4_0, Q5_0 and Q8_0, bit-identical to
 * the 256-bit ones (the same float steps per output; exact integer sums formed otherwise).
 *
 * Q4_0 decode keeps decode_per_block's float chain, per weight row
 *     sum = fma(float(isum) * d, y.d, sum)   over the blocks in order,
 * but runs it for four weight rows at once (one float lane each). The exact block sums
 * come from 512-bit VNNI dots over four blocks of one row (a 128-bit lane per block, the
 * activation's halves regrouped to match), the -8 offset taken off as 8 * sum(y.q), and
 * a transposing reduction that leaves, for each of the four blocks, the four rows' sums
 * side by side; the weights' fp16 scales are picked out of one 64-byte load per row. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx2.h"
#include "backend/cpu/cpu_simd_avx512.h"

#define Q40_DR 4 /* weight rows per pass */
#define Q40_BYTES 18

/* One row's four blocks: 128-bit lane k = the 16 quant bytes of block k. */
static inline __m512i q40_quants(const uint8_t *b) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(b + 2)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(b + 2 + Q40_BYTES)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(b + 2 + 2 * Q40_BYTES)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(b + 2 + 3 * Q40_BYTES)), 3);
}

static void q40_decode_pass(const mm_job *j, int64_t o, int nr) {
    const int64_t nb = j->n_in / 32;
    const uint8_t *w[Q40_DR];
    qr_pass_rows(j->w, j->row_bytes, o, nr, Q40_DR, w);
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i bcast = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    /* fp16 scales of blocks 0-3 sit at words 0, 9, 18, 27 of a row's 64 bytes: word 4k + r
     * of the result = row r's block k (rows 0, 1 from the first pair, 2, 3 from the second) */
    const __m512i pick01 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 59, 27, 0, 0, 50,
                                            18, 0, 0, 41, 9, 0, 0, 32, 0);
    const __m512i pick23 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 59, 27, 0, 0, 50, 18, 0,
                                            0, 41, 9, 0, 0, 32, 0, 0, 0);
    __m128 sum = _mm_setzero_ps();
    const int8_t *a = j->xq.q;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const __m512i a0 = _mm512_loadu_si512((const void *)(a + 32 * b));
        const __m512i a1 = _mm512_loadu_si512((const void *)(a + 32 * b + 64));
        const __m512i alo = _mm512_shuffle_i64x2(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
        const __m512i ahi = _mm512_shuffle_i64x2(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
        __m512i dot[Q40_DR], hd[Q40_DR];
        for (int k = 0; k < Q40_DR; k++) {
            const uint8_t *blk = w[k] + (size_t)b * Q40_BYTES;
            qr_prefetch_l2(blk + (size_t)(2 * Q40_DR) * j->row_bytes, 4 * Q40_BYTES);
            const __m512i q = q40_quants(blk);
            hd[k] = _mm512_loadu_si512((const void *)blk);
            dot[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(q, m4), alo);
            dot[k] = _mm512_dpbusd_epi32(dot[k], _mm512_and_si512(_mm512_srli_epi16(q, 4), m4), ahi);
        }
        /* lane k, dword r: row r's block b + k */
        const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(dot[0], dot[1]), _mm512_unpackhi_epi32(dot[0], dot[1]));
        const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(dot[2], dot[3]), _mm512_unpackhi_epi32(dot[2], dot[3]));
        __m512i is = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
        const __m512i off = _mm512_permutexvar_epi32(bcast, _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(j->xq.sum + b))));
        is = _mm512_sub_epi32(is, _mm512_slli_epi32(off, 3));
        const __m512i dh = _mm512_mask_blend_epi16(0xCCCCCCCC, _mm512_permutex2var_epi16(hd[0], pick01, hd[1]),
                                                   _mm512_permutex2var_epi16(hd[2], pick23, hd[3]));
        const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(is), _mm512_cvtph_ps(_mm512_castsi512_si256(dh)));
        sum = _mm_fmadd_ps(_mm512_castps512_ps128(t), _mm_set1_ps(j->xq.d[b]), sum);
        sum = _mm_fmadd_ps(_mm512_extractf32x4_ps(t, 1), _mm_set1_ps(j->xq.d[b + 1]), sum);
        sum = _mm_fmadd_ps(_mm512_extractf32x4_ps(t, 2), _mm_set1_ps(j->xq.d[b + 2]), sum);
        sum = _mm_fmadd_ps(_mm512_extractf32x4_ps(t, 3), _mm_set1_ps(j->xq.d[b + 3]), sum);
    }
    float out[4];
    _mm_storeu_ps(out, sum);
    for (; b < nb; b++) { /* the last blocks of a row that is not a multiple of 128 */
        for (int k = 0; k < nr; k++) {
            const uint8_t *blk = w[k] + (size_t)b * Q40_BYTES;
            int32_t is = 0;
            for (int e = 0; e < 16; e++) {
                is += ((blk[2 + e] & 15) - 8) * a[32 * b + e] + ((blk[2 + e] >> 4) - 8) * a[32 * b + 16 + e];
            }
            out[k] = fmaf((float)is * qr_f16_load(blk), j->xq.d[b], out[k]);
        }
    }
    for (int k = 0; k < nr; k++) j->y[o + k] = out[k];
}

static void q40_decode_512(const mm_job *j, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o += Q40_DR) q40_decode_pass(j, o, o1 - o < Q40_DR ? (int)(o1 - o) : Q40_DR);
}

/* ---- Q8_0 / Q5_0 decode ------------------------------------------------------------------
 * decode_lanes' float order: per weight row 8 float lanes, acc = fma(d * y.d, float(lanes),
 * acc) over the blocks, lane l = the exact sum of elements 4l..4l+3; one hsum8 at the end.
 * Two rows share a 512-bit accumulator. The signed quants are met as unsigned bytes
 * (q + 128 for Q8_0, the 5-bit value for Q5_0) in one VNNI dot; the offset times the
 * activation's 4-element sums comes off after. */
#define LANES_DR 4 /* weight rows per pass, in pairs */

static inline uint16_t qr_u16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static inline __m512i lanes_quants(qr_type t, const uint8_t *b0, const uint8_t *b1) {
    if (t == QR_TYPE_Q8_0) {
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
                                             _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
        return _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
    }
    /* Q5_0: lanes 0-1 row 0's low / high nibbles, 2-3 row 1's; the fifth bits from qh */
    __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b0 + 6)));
    q = _mm512_mask_broadcast_i32x4(q, 0xFF00, _mm_loadu_si128((const __m128i *)(b1 + 6)));
    q = _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(15));
    uint32_t h0, h1;
    memcpy(&h0, b0 + 2, 4);
    memcpy(&h1, b1 + 2, 4);
    return _mm512_mask_add_epi8(q, _cvtu64_mask64((uint64_t)h0 | (uint64_t)h1 << 32), q, _mm512_set1_epi8(0x10));
}

static inline void lanes_decode_pass(qr_type t, const mm_job *j, int64_t o, int nr) {
    const size_t bytes = t == QR_TYPE_Q8_0 ? 34 : 22;
    const int shift = t == QR_TYPE_Q8_0 ? 7 : 4; /* offset 128 or 16 */
    const int64_t nb = j->n_in / 32;
    const uint8_t *w[LANES_DR];
    qr_pass_rows(j->w, j->row_bytes, o, nr, LANES_DR, w);
    __m512 acc[LANES_DR / 2];
    for (int p = 0; p < LANES_DR / 2; p++) acc[p] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m512i a = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(j->xq.q + 32 * b)));
        const __m512i off = _mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), a), shift);
        /* d * y.d of the four rows (the same products as the scalar chain's) */
        const __m128i dh = _mm_setr_epi16((short)qr_u16_at(w[0] + (size_t)b * bytes), (short)qr_u16_at(w[1] + (size_t)b * bytes),
                                          (short)qr_u16_at(w[2] + (size_t)b * bytes), (short)qr_u16_at(w[3] + (size_t)b * bytes),
                                          0, 0, 0, 0);
        const __m512 dd = _mm512_castps128_ps512(_mm_mul_ps(_mm_cvtph_ps(dh), _mm_set1_ps(j->xq.d[b])));
        for (int p = 0; p < LANES_DR / 2; p++) {
            const uint8_t *b0 = w[2 * p] + (size_t)b * bytes, *b1 = w[2 * p + 1] + (size_t)b * bytes;
            if (b % 2 == 0) {
                qr_prefetch_l2(b0 + (size_t)(2 * LANES_DR) * j->row_bytes, 2 * bytes);
                qr_prefetch_l2(b1 + (size_t)(2 * LANES_DR) * j->row_bytes, 2 * bytes);
            }
            const __m512i l = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lanes_quants(t, b0, b1), a), off);
            const __m512 d = _mm512_permutexvar_ps(_mm512_set_epi32(2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1,
                                                                    2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p, 2 * p, 2 * p,
                                                                    2 * p, 2 * p, 2 * p, 2 * p, 2 * p),
                                                   dd);
            acc[p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(l), acc[p]);
        }
    }
    for (int k = 0; k < nr; k++) {
        const __m512 v = acc[k / 2];
        j->y[o + k] = qr_hsum8_ps(k % 2 ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v));
    }
}

static void lanes_decode_512(qr_type t, const mm_job *j, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o += LANES_DR) {
        const int nr = o1 - o < LANES_DR ? (int)(o1 - o) : LANES_DR;
        if (t == QR_TYPE_Q8_0) lanes_decode_pass(QR_TYPE_Q8_0, j, o, nr);
        else lanes_decode_pass(QR_TYPE_Q5_0, j, o, nr);
    }
}

#define QR_Q32_DECODE_Q4_0 q40_decode_512
#define QR_Q32_DECODE_LANES lanes_decode_512
#define QR_KFN(name) name##_avx512
#include "backend/cpu/cpu_mm_q32_impl.h"
