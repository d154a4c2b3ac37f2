/* The AVX-512 matmul kernels for the K-quants and IQ4_XS (cpu_mm_kquant_impl.h), plus
 * 512-bit decode kernels (one activation row) for Q4_K and Q6_K, bit-identical to the
 * 256-bit ones: each output keeps its float steps, only the exact integer sums are formed
 * differently and several weight rows run side by side (rows in float lanes).
 *
 * Q4_K decode: four weight rows per pass share each activation block. A row's super-block
 * sum is exact in any integer order, so it is computed the cheap way: 64 quants per VNNI
 * dot (a 32-byte chunk broadcast to both halves, low nibbles in one, high in the other),
 * the 6-bit scales applied by vpdpwssd to the dot's int32 lanes (each fits an int16), and
 * the four rows' sums gathered by one transposing reduction. The float steps are the
 * single-row kernel's (q4k_block, gemm = false), one lane per row:
 *     acc  = fma(float(sum sc * dot), d * y.d, acc)
 *     accm = fma(float(sum m * bsum pair), dmin * y.d, accm)      y = acc - accm. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx2.h"
#include "backend/cpu/cpu_simd_avx512.h"

#define Q4K_DR 4 /* weight rows per pass */

/* Per 128-bit lane (one row's bytes 0-15: d, dmin, 12 scale bytes u0 u1 u2) to
 * [sc0-3, sc4-7, m0-3, m4-7] bytes; dword 0 of the input keeps d and dmin. */
static inline __m512i q4k_unpack_scales(__m512i h) {
    const __m512i p = _mm512_shuffle_epi32(h, (_MM_PERM_ENUM)_MM_SHUFFLE(3, 2, 3, 1)); /* u0 u2 u1 u2 */
    const __m512i q = _mm512_shuffle_epi32(h, (_MM_PERM_ENUM)_MM_SHUFFLE(2, 2, 1, 1)); /* u0 u0 u1 u1 */
    const __m512i lo = _mm512_and_si512(_mm512_srlv_epi32(p, _mm512_set4_epi32(4, 0, 0, 0)),
                                        _mm512_set4_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(q, 2), _mm512_set4_epi32(0x30303030, 0, 0x30303030, 0));
    return _mm512_or_si512(lo, hi);
}

/* Lane k of the result: the sum of v[k]'s 16 lanes. */
static inline __m128i hsum4x16_epi32(const __m512i v[4]) {
    const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
    const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
    const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

static void q4k_decode_pass(const mm_job *j, int64_t o, int nr) {
    const int64_t nb = j->n_in / 256;
    const uint8_t *w[Q4K_DR];
    qr_pass_rows(j->w, j->row_bytes, o, nr, Q4K_DR, w);
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i halves = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0); /* high half: high nibbles */
    /* pshufb indices (per 128-bit lane, from the unpacked scales): scale of sub-block 2c in
     * the low 16 bits of dwords 0-7, 2c + 1 in dwords 8-15; mins 0-3 / 4-7 as int16 pairs. */
    __m512i sc_idx[4];
    for (int c = 0; c < 4; c++) {
        const __m128i il = _mm_set1_epi32((int)(0x80808000u | (unsigned)(2 * c)));
        const __m128i ih = _mm_set1_epi32((int)(0x80808000u | (unsigned)(2 * c + 1)));
        sc_idx[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(il, il)), _mm256_set_m128i(ih, ih), 1);
    }
    const __m512i mn_lo = _mm512_broadcast_i32x4(_mm_setr_epi8(8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11, -1, 11, -1));
    const __m512i mn_hi = _mm512_broadcast_i32x4(_mm_setr_epi8(12, -1, 12, -1, 13, -1, 13, -1, 14, -1, 14, -1, 15, -1, 15, -1));
    const __m512i mpick = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 acc = _mm256_setzero_ps(); /* lanes 0-3: acc of rows 0-3; 4-7: accm */
    for (int64_t i = 0; i < nb; i++) {
        const qr_block_q8_k *y = j->xk + i;
        const size_t off = (size_t)i * sizeof(qr_block_q4_k);
        __m512i h = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(w[0] + off)));
        h = _mm512_inserti32x4(h, _mm_loadu_si128((const __m128i *)(w[1] + off)), 1);
        h = _mm512_inserti32x4(h, _mm_loadu_si128((const __m128i *)(w[2] + off)), 2);
        h = _mm512_inserti32x4(h, _mm_loadu_si128((const __m128i *)(w[3] + off)), 3);
        const __m512i sm = q4k_unpack_scales(h);
        __m512i a[4];
        for (int c = 0; c < 4; c++) a[c] = _mm512_loadu_si512((const void *)(y->qs + 64 * c));
        /* row k's scales and mins in every 128-bit lane */
        const __m512i smr[Q4K_DR] = {_mm512_shuffle_i32x4(sm, sm, 0x00), _mm512_shuffle_i32x4(sm, sm, 0x55),
                                     _mm512_shuffle_i32x4(sm, sm, 0xAA), _mm512_shuffle_i32x4(sm, sm, 0xFF)};
        __m512i g[Q4K_DR];
        for (int k = 0; k < Q4K_DR; k++) {
            const uint8_t *qs = w[k] + off + 16;
            qr_prefetch_l2(w[k] + off + (size_t)(2 * Q4K_DR) * j->row_bytes, sizeof(qr_block_q4_k));
            const __m512i smk = smr[k];
            __m512i s = _mm512_setzero_si512();
            for (int c = 0; c < 4; c++) {
                const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
                const __m512i nib = _mm512_and_si512(_mm512_srlv_epi64(q, halves), m4);
                const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib, a[c]);
                s = _mm512_dpwssd_epi32(s, dot, _mm512_shuffle_epi8(smk, sc_idx[c]));
            }
            g[k] = s;
        }
        /* mins: lane k = row k's m_s * (bsums[2s] + bsums[2s + 1]) over s, as four partials */
        const __m512i b_lo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)y->bsums));
        const __m512i b_hi = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(y->bsums + 8)));
        __m512i mn = _mm512_madd_epi16(_mm512_shuffle_epi8(sm, mn_lo), b_lo);
        mn = _mm512_dpwssd_epi32(mn, _mm512_shuffle_epi8(sm, mn_hi), b_hi);
        mn = _mm512_add_epi32(mn, _mm512_shuffle_epi32(mn, (_MM_PERM_ENUM)_MM_SHUFFLE(1, 0, 3, 2)));
        mn = _mm512_add_epi32(mn, _mm512_shuffle_epi32(mn, (_MM_PERM_ENUM)_MM_SHUFFLE(2, 3, 0, 1)));
        const __m128i mins = _mm512_castsi512_si128(_mm512_permutexvar_epi32(mpick, mn));
        const __m256i isum = _mm256_set_m128i(mins, hsum4x16_epi32(g));
        /* d of rows 0-3, then dmin of rows 0-3 */
        __m128i hd = _mm512_castsi512_si128(_mm512_permutexvar_epi32(mpick, h)); /* (d, dmin) pairs */
        hd = _mm_shuffle_epi8(hd, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
        const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(hd), _mm256_set1_ps(y->d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
    }
    float out[8];
    _mm256_storeu_ps(out, acc);
    for (int k = 0; k < nr; k++) j->y[o + k] = out[k] - out[4 + k];
}

static void q4k_decode_512(const mm_job *j, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o += Q4K_DR) q4k_decode_pass(j, o, o1 - o < Q4K_DR ? (int)(o1 - o) : Q4K_DR);
}

/* ---- Q6_K decode ----------------------------------------------------------------------------
 * The single-row kernel's float order (lane_rows): per super-block 8 int32 lanes, lane l
 * holding the elements e with (e % 32) / 4 == l of every 32-element slice times their
 * scales, minus 32 * (bsums . scales) of its pair of 16-element groups; then
 * acc = fma(d * y.d, float(lanes), acc) per lane and one hsum8 per row at the end. Here
 * a VNNI dot covers two slices (64 quants) and vpdpwssd scales its lanes (each fits an
 * int16: 4 * 63 * 128); lanes l and l + 8 (two slices) add to the lane l above. Two
 * rows share one 512-bit float accumulator. */
#define Q6K_DR 4 /* weight rows per pass, in pairs */

static void q6k_decode_pass(const mm_job *j, int64_t o, int nr) {
    const int64_t nb = j->n_in / 256;
    const uint8_t *w[Q6K_DR];
    qr_pass_rows(j->w, j->row_bytes, o, nr, Q6K_DR, w);
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), shr = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    __m512i sc_idx[4];
    for (int c = 0; c < 4; c++) {
        sc_idx[c] = _mm512_set_epi32(4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 2, 4 * c + 2, 4 * c + 2,
                                     4 * c + 2, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c, 4 * c, 4 * c, 4 * c);
    }
    __m512 acc[Q6K_DR / 2];
    for (int p = 0; p < Q6K_DR / 2; p++) acc[p] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const qr_block_q8_k *y = j->xk + i;
        const size_t off = (size_t)i * sizeof(qr_block_q6_k);
        __m512i a[4];
        for (int c = 0; c < 4; c++) a[c] = _mm512_loadu_si512((const void *)(y->qs + 64 * c));
        const __m512i bs = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)y->bsums));
        for (int p = 0; p < Q6K_DR / 2; p++) {
            __m512i g[2];
            __m256i sc16[2];
            float dw[2];
            for (int h2 = 0; h2 < 2; h2++) {
                const qr_block_q6_k *x = (const qr_block_q6_k *)(w[2 * p + h2] + off);
                qr_prefetch_l2(w[2 * p + h2] + off + (size_t)(2 * Q6K_DR) * j->row_bytes, sizeof(qr_block_q6_k));
                sc16[h2] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
                const __m512i sc32 = _mm512_cvtepu16_epi32(sc16[h2]); /* int16 scale, zero high half */
                dw[h2] = _cvtsh_ss(x->d);
                __m512i s = _mm512_setzero_si512();
                for (int h = 0; h < 2; h++) {
                    const __m512i l = _mm512_loadu_si512((const void *)(x->ql + 64 * h));
                    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
                    const __m512i q0 = _mm512_ternarylogic_epi32(_mm512_and_si512(l, m4), _mm512_sllv_epi64(qh, shl), m30, 0xF8);
                    const __m512i q1 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                                                 _mm512_srlv_epi64(qh, shr), m30, 0xF8);
                    const __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q0, a[2 * h]);
                    const __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q1, a[2 * h + 1]);
                    s = _mm512_dpwssd_epi32(s, d0, _mm512_permutexvar_epi32(sc_idx[2 * h], sc32));
                    s = _mm512_dpwssd_epi32(s, d1, _mm512_permutexvar_epi32(sc_idx[2 * h + 1], sc32));
                }
                g[h2] = s;
            }
            /* lanes l and l + 8 of each row, minus 32 * the bsums correction */
            const __m512i lo = _mm512_shuffle_i64x2(g[0], g[1], _MM_SHUFFLE(1, 0, 1, 0));
            const __m512i hi = _mm512_shuffle_i64x2(g[0], g[1], _MM_SHUFFLE(3, 2, 3, 2));
            const __m512i corr = _mm512_madd_epi16(bs, _mm512_inserti64x4(_mm512_castsi256_si512(sc16[0]), sc16[1], 1));
            const __m512i l = _mm512_sub_epi32(_mm512_add_epi32(lo, hi), _mm512_slli_epi32(corr, 5));
            const __m512 d = _mm512_insertf32x8(_mm512_set1_ps(y->d * dw[0]), _mm256_set1_ps(y->d * dw[1]), 1);
            acc[p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(l), acc[p]);
        }
    }
    for (int k = 0; k < nr; k++) {
        const __m512 v = acc[k / 2];
        j->y[o + k] = qr_hsum8_ps(k % 2 ? _mm512_extractf32x8_ps(v, 1) : _mm512_castps512_ps256(v));
    }
}

static void q6k_decode_512(const mm_job *j, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o += Q6K_DR) q6k_decode_pass(j, o, o1 - o < Q6K_DR ? (int)(o1 - o) : Q6K_DR);
}

#define QR_KQ_DECODE_Q4K q4k_decode_512
#define QR_KQ_DECODE_Q6K q6k_decode_512
#define QR_KFN(name) name##_avx512
#include "backend/cpu/cpu_mm_kquant_impl.h"
