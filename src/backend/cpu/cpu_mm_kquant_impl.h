/* AVX2 matmul for the K-quants and IQ4_XS against Q8_K activations, in the float order
 * of the scalar kernels in cpu_ggml_qdots.c:
 *
 *   - Q6_K, Q5_K, Q3_K, IQ4_XS: 8 int32 lanes over the super-block (lane l collects the
 *     elements e with (e % 32) / 4 == l, which is what maddubs + madd give on each
 *     32-element slice), acc = fma(d, float(lanes), acc), hsum8 at the end; Q6_K first
 *     subtracts 32 * (bsums . scales) per lane pair, Q5_K adds a scalar chain of mins;
 *   - Q4_K, Q2_K (llama.cpp's repacked kernels): exact int sums per super-block (decode
 *     order) or per 64 / 128 elements (its 4-row prompt kernel, rows < n_gemm_rows), each
 *     turned into fma(float(sum), dw * d8, acc); the mins likewise; result acc - accm.
 * Every integer sum is exact; only the float steps above decide the bits. */
/* Included by one small .c file per instruction set (*_avx2.c, *_avx512.c), which
 * defines QR_KFN to name the entry point; the AVX-512 build turns maddubs + madd into
 * VNNI dot products (cpu_simd_avx2.h). It may also define QR_KQ_DECODE_Q4K and
 * QR_KQ_DECODE_Q6K: wider single-row kernels with the same bits, which run() then uses. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx2.h"

#define ROWS_PER_PASS 4

/* int16 lanes: the low 8 (bytes 0-15 of a slice) scaled by lo, the high 8 by hi. */
QR_INLINE __m256i scale_pair(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo));
}

QR_INLINE __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* ---- Q4_K ---------------------------------------------------------------------------------- */

typedef struct q4k_unpacked {
    __m256i q[8];     /* sub-block s (32 elements): low nibbles of chunk s/2 (even s), high (odd) */
    __m256i sc, m;    /* the 8 scales and 8 mins as int32 lanes */
    float d, dmin;
} q4k_unpacked;

/* The 12 scale bytes to 8 six-bit scales (bytes 0-7) and mins (bytes 8-15), all at once. */
QR_INLINE void q4k_scales(const uint8_t *p, uint8_t out[16]) {
    uint32_t u[3], r[4];
    memcpy(u, p, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, hi2 = 0x03030303;
    r[0] = u[0] & m6;                                     /* sc 0-3 */
    r[2] = u[1] & m6;                                     /* m 0-3 */
    r[1] = (u[2] & m4) | (((u[0] >> 6) & hi2) << 4);      /* sc 4-7 */
    r[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & hi2) << 4); /* m 4-7 */
    memcpy(out, r, 16);
}

QR_INLINE void q4k_unpack(const qr_block_q4_k *x, q4k_unpacked *u) {
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int c = 0; c < 4; c++) {
        const __m256i q = load32(x->qs + 32 * c);
        u->q[2 * c] = _mm256_and_si256(q, m4);
        u->q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    }
    uint8_t sm[16];
    q4k_scales(x->scales, sm);
    const __m128i v = _mm_loadu_si128((const __m128i *)sm);
    u->sc = _mm256_cvtepu8_epi32(v);
    u->m = _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8));
    u->d = _cvtsh_ss(x->d);
    u->dmin = _cvtsh_ss(x->dmin);
}

QR_INLINE void q4k_block(const q4k_unpacked *u, const qr_block_q8_k *y, bool gemm, float *acc, float *accm) {
    const float dd = u->d * y->d, dm = u->dmin * y->d;
    __m256i l[8];
    for (int s = 0; s < 8; s++) l[s] = qr_dot_u8s8(u->q[s], load32(y->qs + 32 * s));
    /* sub-block sums times scales; mins times the bsums of each sub-block (pairs of 16) */
    const __m256i prod = _mm256_mullo_epi32(qr_hsum8x8_epi32(l), u->sc);
    const __m256i pairs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), _mm256_set1_epi16(1));
    const __m256i prodm = _mm256_mullo_epi32(pairs, u->m);
    if (!gemm) {
        *acc = fmaf((float)qr_hsum8_epi32(prod), dd, *acc);
        *accm = fmaf((float)qr_hsum8_epi32(prodm), dm, *accm);
        return;
    }
    int32_t ps[8], pm[8];
    _mm256_storeu_si256((__m256i *)ps, prod);
    _mm256_storeu_si256((__m256i *)pm, prodm);
    for (int c = 0; c < 4; c++) {
        *acc = fmaf((float)(ps[2 * c] + ps[2 * c + 1]), dd, *acc);
        *accm = fmaf((float)(pm[2 * c] + pm[2 * c + 1]), dm, *accm);
    }
}

static void q4k_rows(const mm_job *j, const uint8_t *wrow, int64_t o, int64_t r0, int nr) {
    const int64_t nb = j->n_in / 256;
    float acc[ROWS_PER_PASS] = {0}, accm[ROWS_PER_PASS] = {0};
    for (int64_t i = 0; i < nb; i++) {
        q4k_unpacked u;
        qr_prefetch_block(wrow + i * sizeof(qr_block_q4_k), sizeof(qr_block_q4_k));
        q4k_unpack((const qr_block_q4_k *)wrow + i, &u);
        for (int k = 0; k < nr; k++) {
            const int64_t r = r0 + k;
            q4k_block(&u, j->xk + r * nb + i, r < j->n_gemm_rows, &acc[k], &accm[k]);
        }
    }
    for (int k = 0; k < nr; k++) j->y[(r0 + k) * j->n_out + o] = acc[k] - accm[k];
}

/* ---- Q2_K (same float scheme, halves of 128 for the prompt order) ---------------------------- */

QR_INLINE void q2k_block(const qr_block_q2_k *x, const qr_block_q8_k *y, bool gemm, float *acc, float *accm) {
    const float dd = _cvtsh_ss(x->d) * y->d, dm = _cvtsh_ss(x->dmin) * y->d;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i all = _mm256_setzero_si256();
    int imin = 0;
    for (int h = 0; h < 2; h++) {
        const __m256i qs = load32(x->qs + 32 * h);
        __m256i hv = _mm256_setzero_si256();
        int hmin = 0;
        for (int jj = 0; jj < 4; jj++) {
            const int sub = 8 * h + 2 * jj;
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * jj), m3);
            const __m256i sc = scale_pair(x->scales[sub] & 15, x->scales[sub + 1] & 15);
            hv = _mm256_add_epi32(hv, qr_dot_u8s8_scaled(q, load32(y->qs + 128 * h + 32 * jj), sc));
            hmin += (x->scales[sub] >> 4) * y->bsums[sub] + (x->scales[sub + 1] >> 4) * y->bsums[sub + 1];
        }
        if (gemm) {
            *acc = fmaf((float)qr_hsum8_epi32(hv), dd, *acc);
            *accm = fmaf((float)hmin, dm, *accm);
        } else {
            all = _mm256_add_epi32(all, hv);
            imin += hmin;
        }
    }
    if (!gemm) {
        *acc = fmaf((float)qr_hsum8_epi32(all), dd, *acc);
        *accm = fmaf((float)imin, dm, *accm);
    }
}

static void q2k_rows(const mm_job *j, const uint8_t *wrow, int64_t o, int64_t r0, int nr) {
    const int64_t nb = j->n_in / 256;
    float acc[ROWS_PER_PASS] = {0}, accm[ROWS_PER_PASS] = {0};
    for (int64_t i = 0; i < nb; i++) {
        qr_prefetch_block(wrow + i * sizeof(qr_block_q2_k), sizeof(qr_block_q2_k));
        for (int k = 0; k < nr; k++) {
            const int64_t r = r0 + k;
            q2k_block((const qr_block_q2_k *)wrow + i, j->xk + r * nb + i, r < j->n_gemm_rows, &acc[k], &accm[k]);
        }
    }
    for (int k = 0; k < nr; k++) j->y[(r0 + k) * j->n_out + o] = acc[k] - accm[k];
}

/* ---- Lane formats: Q6_K, Q5_K, Q3_K, IQ4_XS ------------------------------------------------- */

/* A super-block as 8 slices of 32 quants (unsigned, or signed for Q3_K / IQ4_XS) with
 * int16 scales per half slice, plus what the float steps need. */
typedef struct lane_block {
    __m256i q[8], sc[8];
    bool is_signed;
    float dw;           /* weight scale (f16 d, widened) */
    int mins[8];        /* Q5_K: m of each sub-block of 32 */
    float dmin;         /* Q5_K */
    __m256i q6_scales;  /* Q6_K: the 16 scales as int16, for the bsums correction */
} lane_block;

QR_INLINE void unpack_q6k(const qr_block_q6_k *x, lane_block *b) {
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        const __m256i la = load32(x->ql + 64 * h), lb = load32(x->ql + 64 * h + 32), qh = load32(x->qh + 32 * h);
        b->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        b->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        b->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(qh, m30));
        b->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
    }
    for (int s = 0; s < 8; s++) b->sc[s] = scale_pair(x->scales[2 * s], x->scales[2 * s + 1]);
    b->q6_scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    b->is_signed = false;
    b->dw = _cvtsh_ss(x->d);
}

QR_INLINE void unpack_q5k(const qr_block_q5_k *x, lane_block *b) {
    const __m256i m4 = _mm256_set1_epi8(15), qh = load32(x->qh), h10 = _mm256_set1_epi8(0x10);
    for (int c = 0; c < 4; c++) {
        const __m256i q = load32(x->qs + 32 * c);
        const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * c))), b1 = _mm256_set1_epi8((char)(1 << (2 * c + 1)));
        const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0), h10);
        const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1), h10);
        b->q[2 * c] = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
        b->q[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
        int sc0, m0, sc1, m1;
        qr_cpu_scale_min_k4(2 * c, x->scales, &sc0, &m0);
        qr_cpu_scale_min_k4(2 * c + 1, x->scales, &sc1, &m1);
        b->sc[2 * c] = _mm256_set1_epi16((short)sc0);
        b->sc[2 * c + 1] = _mm256_set1_epi16((short)sc1);
        b->mins[2 * c] = m0;
        b->mins[2 * c + 1] = m1;
    }
    b->is_signed = false;
    b->dw = _cvtsh_ss(x->d);
    b->dmin = _cvtsh_ss(x->dmin);
}

QR_INLINE void unpack_q3k(const qr_block_q3_k *x, lane_block *b) {
    const uint8_t *s = x->scales;
    int sc[16];
    for (int k = 0; k < 16; k++) {
        const int lo = k < 8 ? s[k] & 15 : s[k - 8] >> 4;
        const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        sc[k] = (lo | hi << 4) - 32;
    }
    const __m256i m3 = _mm256_set1_epi8(3), hm = load32(x->hmask), four = _mm256_set1_epi8(4);
    for (int h = 0; h < 2; h++) {
        const __m256i qs = load32(x->qs + 32 * h);
        for (int jj = 0; jj < 4; jj++) {
            const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + jj)));
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * jj), m3);
            /* q - 4 where the high bit is clear */
            const __m256i clear = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), _mm256_setzero_si256());
            b->q[4 * h + jj] = _mm256_sub_epi8(q, _mm256_and_si256(clear, four));
            b->sc[4 * h + jj] = scale_pair(sc[8 * h + 2 * jj], sc[8 * h + 2 * jj + 1]);
        }
    }
    b->is_signed = true;
    b->dw = _cvtsh_ss(x->d);
}

QR_INLINE void unpack_iq4xs(const qr_block_iq4_xs *x, lane_block *b) {
    static const int8_t K[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    const __m128i tab = _mm_loadu_si128((const __m128i *)K);
    const __m256i tab2 = _mm256_set_m128i(tab, tab);
    for (int ib = 0; ib < 8; ib++) {
        const int ls = (((x->scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((x->scales_h >> (2 * ib)) & 3) << 4)) - 32;
        b->q[ib] = _mm256_shuffle_epi8(tab2, qr_nibbles32(x->qs + 16 * ib));
        b->sc[ib] = _mm256_set1_epi16((short)ls);
    }
    b->is_signed = true;
    b->dw = _cvtsh_ss(x->d);
}

/* The 8 lanes of one super-block against one Q8_K block. */
QR_INLINE __m256i lane_sums(const lane_block *b, const qr_block_q8_k *y) {
    __m256i acc = _mm256_setzero_si256();
    for (int s = 0; s < 8; s++) {
        const __m256i a = load32(y->qs + 32 * s);
        /* Signed quants: |a| times q with a's sign (Q8_K may hold -128, whose negation
         * would wrap; the quants here stay within -127..127). */
        const __m256i p = b->is_signed ? qr_dot_u8s8_scaled(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b->q[s], a), b->sc[s])
                                       : qr_dot_u8s8_scaled(b->q[s], a, b->sc[s]);
        acc = _mm256_add_epi32(acc, p);
    }
    return acc;
}

QR_INLINE void lane_rows(qr_type t, const mm_job *j, const uint8_t *wrow, int64_t o, int64_t r0, int nr) {
    const int64_t nb = j->n_in / 256;
    __m256 acc[ROWS_PER_PASS];
    float summs[ROWS_PER_PASS];
    for (int k = 0; k < nr; k++) acc[k] = _mm256_setzero_ps(), summs[k] = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        lane_block b;
        qr_prefetch_block(wrow + i * j->row_bytes / (size_t)nb, j->row_bytes / (size_t)nb);
        if (t == QR_TYPE_Q6_K) unpack_q6k((const qr_block_q6_k *)wrow + i, &b);
        else if (t == QR_TYPE_Q5_K) unpack_q5k((const qr_block_q5_k *)wrow + i, &b);
        else if (t == QR_TYPE_Q3_K) unpack_q3k((const qr_block_q3_k *)wrow + i, &b);
        else unpack_iq4xs((const qr_block_iq4_xs *)wrow + i, &b);
        for (int k = 0; k < nr; k++) {
            const qr_block_q8_k *y = j->xk + (r0 + k) * nb + i;
            __m256i l = lane_sums(&b, y);
            float d = y->d * b.dw;
            if (t == QR_TYPE_Q6_K) {
                const __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), b.q6_scales);
                l = _mm256_sub_epi32(l, _mm256_slli_epi32(corr, 5));
            } else if (t == QR_TYPE_Q5_K) {
                int msum = 0;
                for (int c = 0; c < 4; c++) {
                    msum += b.mins[2 * c] * (y->bsums[4 * c] + y->bsums[4 * c + 1]) +
                            b.mins[2 * c + 1] * (y->bsums[4 * c + 2] + y->bsums[4 * c + 3]);
                }
                summs[k] = fmaf(-y->d * b.dmin, (float)msum, summs[k]);
            } else if (t == QR_TYPE_IQ4_XS) {
                d = b.dw * y->d;
            }
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(l), acc[k]);
        }
    }
    for (int k = 0; k < nr; k++) {
        const float s = qr_hsum8_ps(acc[k]);
        j->y[(r0 + k) * j->n_out + o] = t == QR_TYPE_Q5_K ? s + summs[k] : s;
    }
}

/* ---- Dispatch ---------------------------------------------------------------------------------- */

QR_INLINE void run(qr_type t, const mm_job *j, int64_t o0, int64_t o1) {
#ifdef QR_KQ_DECODE_Q4K
    /* a wider decode kernel where the instruction set has one (same bits) */
    if (t == QR_TYPE_Q4_K && j->n_rows == 1) {
        QR_KQ_DECODE_Q4K(j, o0, o1);
        return;
    }
    if (t == QR_TYPE_Q6_K && j->n_rows == 1) {
        QR_KQ_DECODE_Q6K(j, o0, o1);
        return;
    }
#endif
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *wrow = j->w + (size_t)o * j->row_bytes;
        for (int64_t r0 = 0; r0 < j->n_rows; r0 += ROWS_PER_PASS) {
            const int nr = j->n_rows - r0 < ROWS_PER_PASS ? (int)(j->n_rows - r0) : ROWS_PER_PASS;
            if (t == QR_TYPE_Q4_K) q4k_rows(j, wrow, o, r0, nr);
            else if (t == QR_TYPE_Q2_K) q2k_rows(j, wrow, o, r0, nr);
            else lane_rows(t, j, wrow, o, r0, nr);
        }
    }
}

bool QR_KFN(qr_cpu_mm_kquant)(const mm_job *j, int64_t o0, int64_t o1) {
    switch (j->wtype) {
    case QR_TYPE_Q4_K: run(QR_TYPE_Q4_K, j, o0, o1); return true;
    case QR_TYPE_Q2_K: run(QR_TYPE_Q2_K, j, o0, o1); return true;
    case QR_TYPE_Q6_K: run(QR_TYPE_Q6_K, j, o0, o1); return true;
    case QR_TYPE_Q5_K: run(QR_TYPE_Q5_K, j, o0, o1); return true;
    case QR_TYPE_Q3_K: run(QR_TYPE_Q3_K, j, o0, o1); return true;
    case QR_TYPE_IQ4_XS: run(QR_TYPE_IQ4_XS, j, o0, o1); return true;
    default: return false;
    }
}
