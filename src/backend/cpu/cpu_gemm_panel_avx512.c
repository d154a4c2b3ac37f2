/* Prompt-batch matmul (AVX-512 VNNI): 16 weight rows at a time, lanes = output rows.
 *
 * The row kernels (cpu_mm_*_impl.h) dot one weight row with one activation row and need
 * horizontal sums per block. For batches this file instead copies 16 weight rows into a
 * small interleaved panel once (per thread, in scratch: the mmapped weights are never
 * changed or duplicated whole), so that one vector holds 4 quants of each of 16 rows and
 * one VNNI instruction against 4 broadcast activation bytes gives 16 rows' partial sums.
 * The panel is then met by every activation row of the batch.
 *
 * The float steps per (output row, activation row) are those of the scalar kernels, with
 * the 16 output rows in the lanes of each vector: the results are bit-identical to them
 * (tests/test_cpu_kernels.c), whichever path a row takes.
 *
 * Quants are stored unsigned (plus an offset where the format is signed: Q4_0 +8, Q5_0
 * +16, Q8_0 +128) and the offset times the activation sums is subtracted exactly. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx2.h"

#define PR 16 /* weight rows per panel */

/* ---- Panel building ------------------------------------------------------------------------ */

/* Puts the 32 quants q[0..31] of row `row` into block slot `blk` of the interleaved panel:
 * vector g of the block holds elements 4g..4g+3 of every row (64 bytes). */
static void panel_put(uint8_t *pq, int64_t blk, int row, const uint8_t q[32]) {
    uint8_t *dst = pq + blk * 8 * 64 + 4 * row;
    for (int g = 0; g < 8; g++) memcpy(dst + g * 64, q + 4 * g, 4);
}

/* The 32-element formats: unsigned quants + offset, and the weight scale per block. */
static void panel_q32(qr_type t, const uint8_t *w, size_t row_bytes, int64_t nb, uint8_t *pq, float *pd) {
    for (int r = 0; r < PR; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t q[32];
            const uint8_t *blk;
            if (t == QR_TYPE_Q8_0) {
                blk = row + b * 34;
                for (int k = 0; k < 32; k++) q[k] = (uint8_t)((int8_t)blk[2 + k] + 128);
            } else if (t == QR_TYPE_Q4_0) {
                blk = row + b * 18;
                for (int k = 0; k < 16; k++) q[k] = blk[2 + k] & 15, q[k + 16] = blk[2 + k] >> 4;
            } else { /* Q5_0 */
                blk = row + b * 22;
                uint32_t qh;
                memcpy(&qh, blk + 2, 4);
                for (int k = 0; k < 16; k++) {
                    q[k] = (uint8_t)((blk[6 + k] & 15) | (((qh >> k) & 1) << 4));
                    q[k + 16] = (uint8_t)((blk[6 + k] >> 4) | (((qh >> (k + 16)) & 1) << 4));
                }
            }
            panel_put(pq, b, r, q);
            pd[b * PR + r] = qr_f16_load(blk);
        }
    }
}

/* Q4_K: per super-block d, dmin (float[16] each) and scales, mins (int32[8][16] each). */
static void panel_q4k(const uint8_t *w, size_t row_bytes, int64_t nsb, uint8_t *pq, float *pf, int32_t *pi) {
    for (int r = 0; r < PR; r++) {
        const qr_block_q4_k *x = (const qr_block_q4_k *)(w + (size_t)r * row_bytes);
        for (int64_t i = 0; i < nsb; i++) {
            for (int c = 0; c < 4; c++) {
                uint8_t lo[32], hi[32];
                for (int l = 0; l < 32; l++) lo[l] = x[i].qs[32 * c + l] & 15, hi[l] = x[i].qs[32 * c + l] >> 4;
                panel_put(pq, i * 8 + 2 * c, r, lo);
                panel_put(pq, i * 8 + 2 * c + 1, r, hi);
            }
            pf[(i * 2 + 0) * PR + r] = qr_f16_load((const uint8_t *)&x[i].d);
            pf[(i * 2 + 1) * PR + r] = qr_f16_load((const uint8_t *)&x[i].dmin);
            for (int s = 0; s < 8; s++) {
                int sc, m;
                qr_cpu_scale_min_k4(s, x[i].scales, &sc, &m);
                pi[((i * 2 + 0) * 8 + s) * PR + r] = sc;
                pi[((i * 2 + 1) * 8 + s) * PR + r] = m;
            }
        }
    }
}

/* Q6_K: per super-block d (float[16]) and the 16 scales, each as int32 = scale in both
 * int16 halves (for madd) and as plain int32 (bsums correction). */
static void panel_q6k(const uint8_t *w, size_t row_bytes, int64_t nsb, uint8_t *pq, float *pf, int32_t *pi) {
    for (int r = 0; r < PR; r++) {
        const qr_block_q6_k *x = (const qr_block_q6_k *)(w + (size_t)r * row_bytes);
        for (int64_t i = 0; i < nsb; i++) {
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
                uint8_t q[4][32];
                for (int b = 0; b < 32; b++) {
                    q[0][b] = (uint8_t)((ql[b] & 15) | ((qh[b] & 3) << 4));
                    q[1][b] = (uint8_t)((ql[b + 32] & 15) | (((qh[b] >> 2) & 3) << 4));
                    q[2][b] = (uint8_t)((ql[b] >> 4) | (((qh[b] >> 4) & 3) << 4));
                    q[3][b] = (uint8_t)((ql[b + 32] >> 4) | (((qh[b] >> 6) & 3) << 4));
                }
                for (int k = 0; k < 4; k++) panel_put(pq, i * 8 + 4 * h + k, r, q[k]);
            }
            pf[i * PR + r] = qr_f16_load((const uint8_t *)&x[i].d);
            for (int s = 0; s < 16; s++) {
                const int32_t v = x[i].scales[s];
                pi[((i * 2 + 0) * 16 + s) * PR + r] = (int32_t)(((uint32_t)(uint16_t)v << 16) | (uint16_t)v);
                pi[((i * 2 + 1) * 16 + s) * PR + r] = v;
            }
        }
    }
}

/* ---- Kernels ------------------------------------------------------------------------------- */

static inline __m512i bcast4(const int8_t *a) {
    int32_t v;
    memcpy(&v, a, 4);
    return _mm512_set1_epi32(v);
}

static inline __m512i vload(const void *p) { return _mm512_loadu_si512(p); }

#define RR 4 /* activation rows per pass: independent dependency chains, panel loads shared */

/* Exact int sums of one 32-element block for 16 weight rows against nr activation blocks
 * a[k] (the nr chains interleave, so the VNNI latency is hidden). */
QR_INLINE void block_dots(const uint8_t *pq, int64_t blk, const int8_t *const a[RR], int nr, __m512i out[RR]) {
    const uint8_t *v = pq + blk * 8 * 64;
    for (int k = 0; k < nr; k++) out[k] = _mm512_setzero_si512();
    for (int g = 0; g < 8; g++) {
        const __m512i w = vload(v + 64 * g);
        for (int k = 0; k < nr; k++) out[k] = _mm512_dpbusd_epi32(out[k], w, bcast4(a[k] + 4 * g));
    }
}

static void store_col(const mm_job *j, int64_t o0, int64_t r, __m512 v) {
    float tmp[PR];
    _mm512_storeu_ps(tmp, v);
    for (int k = 0; k < PR; k++) j->y[r * j->n_out + o0 + k] = tmp[k];
}

/* hsum8 of the scalar kernels over 8 lane accumulators (lanes = output rows):
 * ((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3)). */
static inline __m512 hsum8_lanes(const __m512 acc[8]) {
    return _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[4], acc[0]), _mm512_add_ps(acc[6], acc[2])),
                         _mm512_add_ps(_mm512_add_ps(acc[5], acc[1]), _mm512_add_ps(acc[7], acc[3])));
}

static int rows_in_pass(const mm_job *j, int64_t r0) { return j->n_rows - r0 < RR ? (int)(j->n_rows - r0) : RR; }

/* Runs pass(j, ..., r0, NR) with NR a constant (so the row arrays live in registers). */
#define FOR_PASSES(pass, ...)                                                          \
    for (int64_t r0 = 0; r0 < j->n_rows; r0 += RR) {                                   \
        switch (rows_in_pass(j, r0)) {                                                 \
        case 4: pass(__VA_ARGS__, r0, 4); break;                                       \
        case 3: pass(__VA_ARGS__, r0, 3); break;                                       \
        case 2: pass(__VA_ARGS__, r0, 2); break;                                       \
        default: pass(__VA_ARGS__, r0, 1); break;                                      \
        }                                                                              \
    }

/* Q4_0: sum = fma(isum * dw, da, sum) per block, isum = dot(q + 8, a) - 8 * sum(a). */
QR_INLINE void q4_0_pass(const mm_job *j, const uint8_t *pq, const float *pd, int64_t o0, int64_t r0, const int nr) {
    const int64_t nb = j->n_in / 32;
    __m512 sum[RR];
    for (int k = 0; k < nr; k++) sum[k] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *a[RR];
        for (int k = 0; k < nr; k++) a[k] = j->xq.q + (r0 + k) * j->n_in + 32 * b;
        __m512i is[RR];
        block_dots(pq, b, a, nr, is);
        const __m512 dw = _mm512_loadu_ps(pd + b * PR);
        for (int k = 0; k < nr; k++) {
            const int64_t rb = (r0 + k) * nb + b;
            const __m512i v = _mm512_sub_epi32(is[k], _mm512_set1_epi32(8 * j->xq.sum[rb]));
            const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(v), dw);
            sum[k] = _mm512_fmadd_ps(t, _mm512_set1_ps(j->xq.d[rb]), sum[k]);
        }
    }
    for (int k = 0; k < nr; k++) store_col(j, o0, r0 + k, sum[k]);
}

static void kern_q4_0(const mm_job *j, const uint8_t *pq, const float *pd, int64_t o0) {
    FOR_PASSES(q4_0_pass, j, pq, pd, o0)
}

/* Q8_0 / Q5_0: 8 lanes per block (lane l = elements 4l..4l+3), acc_l = fma(dw * da,
 * float(lane_l), acc_l); then hsum8: ((a4+a0) + (a6+a2)) + ((a5+a1) + (a7+a3)). The
 * offset comes off as a second VNNI product of the same activation bytes. */
static void kern_lanes(const mm_job *j, const uint8_t *pq, const float *pd, int off, int64_t o0) {
    const int64_t nb = j->n_in / 32;
    const __m512i offv = _mm512_set1_epi8((char)off);
    for (int64_t r = 0; r < j->n_rows; r++) {
        const int8_t *a = j->xq.q + r * j->n_in;
        __m512 acc[8];
        for (int l = 0; l < 8; l++) acc[l] = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const int8_t *ab = a + 32 * b;
            const __m512 dd = _mm512_mul_ps(_mm512_loadu_ps(pd + b * PR), _mm512_set1_ps(j->xq.d[r * nb + b]));
            const uint8_t *v = pq + b * 8 * 64;
            for (int l = 0; l < 8; l++) {
                const __m512i av = bcast4(ab + 4 * l);
                const __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), offv, av);
                const __m512i d = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), vload(v + 64 * l), av), corr);
                acc[l] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(d), acc[l]);
            }
        }
        store_col(j, o0, r, hsum8_lanes(acc));
    }
}

/* Q4_K: sub-block sums times scales; per super-block (decode order) or per 64 elements
 * (llama.cpp's 4-row prompt kernel, rows < n_gemm_rows) acc = fma(float(sum), d * d8),
 * accm likewise with the mins; result acc - accm. */
QR_INLINE void q4k_pass(const mm_job *j, const uint8_t *pq, const float *pf, const int32_t *pi, int64_t o0,
                           int64_t r0, const int nr) {
    const int64_t nsb = j->n_in / 256;
    {
        __m512 acc[RR], accm[RR];
        for (int k = 0; k < nr; k++) acc[k] = accm[k] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nsb; i++) {
            const qr_block_q8_k *y[RR];
            for (int k = 0; k < nr; k++) y[k] = j->xk + (r0 + k) * nsb + i;
            const int32_t *sc = pi + (i * 2) * 8 * PR, *mn = pi + (i * 2 + 1) * 8 * PR;
            __m512i isum[RR], imin[RR], cs[RR], cm[RR];
            for (int k = 0; k < nr; k++) isum[k] = imin[k] = cs[k] = cm[k] = _mm512_setzero_si512();
            for (int s = 0; s < 8; s++) {
                const int8_t *a[RR];
                for (int k = 0; k < nr; k++) a[k] = y[k]->qs + 32 * s;
                __m512i d[RR];
                block_dots(pq, i * 8 + s, a, nr, d);
                const __m512i scv = vload(sc + s * PR), mnv = vload(mn + s * PR);
                for (int k = 0; k < nr; k++) {
                    const int rk = (int)(r0 + k);
                    const int pair = y[k]->bsums[2 * s] + y[k]->bsums[2 * s + 1];
                    const __m512i p = _mm512_mullo_epi32(d[k], scv);
                    const __m512i pm = _mm512_mullo_epi32(_mm512_set1_epi32(pair), mnv);
                    if (s % 2 == 0) {
                        cs[k] = p;
                        cm[k] = pm;
                        continue;
                    }
                    cs[k] = _mm512_add_epi32(cs[k], p);
                    cm[k] = _mm512_add_epi32(cm[k], pm);
                    if (rk < j->n_gemm_rows) {
                        const __m512 dd = _mm512_mul_ps(_mm512_loadu_ps(pf + (i * 2) * PR), _mm512_set1_ps(y[k]->d));
                        const __m512 dm = _mm512_mul_ps(_mm512_loadu_ps(pf + (i * 2 + 1) * PR), _mm512_set1_ps(y[k]->d));
                        acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(cs[k]), dd, acc[k]);
                        accm[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(cm[k]), dm, accm[k]);
                    } else {
                        isum[k] = _mm512_add_epi32(isum[k], cs[k]);
                        imin[k] = _mm512_add_epi32(imin[k], cm[k]);
                    }
                }
            }
            for (int k = 0; k < nr; k++) {
                if (r0 + k < j->n_gemm_rows) continue;
                const __m512 dd = _mm512_mul_ps(_mm512_loadu_ps(pf + (i * 2) * PR), _mm512_set1_ps(y[k]->d));
                const __m512 dm = _mm512_mul_ps(_mm512_loadu_ps(pf + (i * 2 + 1) * PR), _mm512_set1_ps(y[k]->d));
                acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[k]), dd, acc[k]);
                accm[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin[k]), dm, accm[k]);
            }
        }
        for (int k = 0; k < nr; k++) store_col(j, o0, r0 + k, _mm512_sub_ps(acc[k], accm[k]));
    }
}

static void kern_q4k(const mm_job *j, const uint8_t *pq, const float *pf, const int32_t *pi, int64_t o0) {
    FOR_PASSES(q4k_pass, j, pq, pf, pi, o0)
}

/* Q6_K: lane l (elements with (e % 32) / 4 == l) = sum of scale * q * a over the slices,
 * minus 32 * (bsums[2l] sc[2l] + bsums[2l+1] sc[2l+1]); acc_l = fma(d, float(lane_l)). */
static void kern_q6k(const mm_job *j, const uint8_t *pq, const float *pf, const int32_t *pi, int64_t o0) {
    const int64_t nsb = j->n_in / 256;
    for (int64_t r = 0; r < j->n_rows; r++) {
        __m512 acc[8];
        for (int l = 0; l < 8; l++) acc[l] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nsb; i++) {
            const qr_block_q8_k *y = j->xk + r * nsb + i;
            const int32_t *sc16 = pi + (i * 2) * 16 * PR, *sc32 = pi + (i * 2 + 1) * 16 * PR;
            const __m512 d = _mm512_mul_ps(_mm512_set1_ps(y->d), _mm512_loadu_ps(pf + i * PR));
            for (int l = 0; l < 8; l++) {
                __m512i lane = _mm512_setzero_si512();
                for (int s = 0; s < 8; s++) {
                    const __m512i p = _mm512_maddubs_epi16(vload(pq + (i * 8 + s) * 8 * 64 + 64 * l),
                                                           bcast4(y->qs + 32 * s + 4 * l));
                    lane = _mm512_add_epi32(lane, _mm512_madd_epi16(p, vload(sc16 + (2 * s + (l >= 4)) * PR)));
                }
                const __m512i corr = _mm512_add_epi32(
                    _mm512_mullo_epi32(_mm512_set1_epi32(y->bsums[2 * l]), vload(sc32 + (2 * l) * PR)),
                    _mm512_mullo_epi32(_mm512_set1_epi32(y->bsums[2 * l + 1]), vload(sc32 + (2 * l + 1) * PR)));
                lane = _mm512_sub_epi32(lane, _mm512_slli_epi32(corr, 5));
                acc[l] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(lane), acc[l]);
            }
        }
        store_col(j, o0, r, hsum8_lanes(acc));
    }
}

/* ---- Entry ----------------------------------------------------------------------------------- */

size_t qr_cpu_gemm_panel_bytes(int64_t n_in) {
    /* quants 16 per element; floats/ints: at most 2 * 16 floats + 32 * 16 ints per 256. */
    return (size_t)n_in * PR + (size_t)(n_in / 32 + 1) * PR * 4 * 2 + (size_t)(n_in / 256 + 1) * PR * 4 * 34 + 64;
}

bool qr_cpu_gemm_panel_supported(qr_type t) {
    return t == QR_TYPE_Q4_0 || t == QR_TYPE_Q5_0 || t == QR_TYPE_Q8_0 || t == QR_TYPE_Q4_K || t == QR_TYPE_Q6_K;
}

/* Full panels of 16 rows inside [o0, o1); returns the first row it did not do. */
int64_t qr_cpu_gemm_panel_avx512(const mm_job *j, int64_t o0, int64_t o1, void *scratch) {
    uint8_t *pq = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *pf = (float *)(pq + (size_t)j->n_in * PR);
    int32_t *pi = (int32_t *)(pf + (size_t)(j->n_in / 32 + 1) * PR * 2);
    int64_t o = o0;
    for (; o + PR <= o1; o += PR) {
        const uint8_t *w = j->w + (size_t)o * j->row_bytes;
        switch (j->wtype) {
        case QR_TYPE_Q4_0:
            panel_q32(j->wtype, w, j->row_bytes, j->n_in / 32, pq, pf);
            kern_q4_0(j, pq, pf, o);
            break;
        case QR_TYPE_Q8_0:
        case QR_TYPE_Q5_0:
            panel_q32(j->wtype, w, j->row_bytes, j->n_in / 32, pq, pf);
            kern_lanes(j, pq, pf, j->wtype == QR_TYPE_Q8_0 ? 128 : 16, o);
            break;
        case QR_TYPE_Q4_K:
            panel_q4k(w, j->row_bytes, j->n_in / 256, pq, pf, pi);
            kern_q4k(j, pq, pf, pi, o);
            break;
        case QR_TYPE_Q6_K:
            panel_q6k(w, j->row_bytes, j->n_in / 256, pq, pf, pi);
            kern_q6k(j, pq, pf, pi, o);
            break;
        default:
            return o;
        }
    }
    return o;
}
