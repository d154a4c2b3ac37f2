/* AVX-512 matmul for float weights (F32, F16, BF16) in the orders of the scalar kernels
 * (cpu_ggml_dots.c), bit for bit:
 *
 *   - prompt batches of F32 / F16 weights (tinyBLAS order, qr_cpu_dot_f32_gemm): 16
 *     lanes of fma over the row, lane l taking elements l, l+16, ..., then reduce16;
 *     tiles of 4 weight rows x 4 activation rows keep 16 accumulators in registers;
 *   - single rows of F16 weights (ggml_vec_dot_f16): native F16 blocks of 128 (needs
 *     AVX512-FP16), the remainder in double;
 *   - F32 single rows and all BF16 (ggml_vec_dot_f32 order, qr_cpu_dot_f32_vec): 4 x 16
 *     lanes over blocks of 64, folded, reduced, then the tail as the scalar kernel sums it. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx512.h"

/* 16 weights of a row as floats. */
static inline __m512 load_w(qr_type t, const uint8_t *row, int64_t i) {
    if (t == QR_TYPE_F32) return _mm512_loadu_ps((const float *)row + i);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i));
    if (t == QR_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* BF16 */
}

/* tinyBLAS order, tiles of up to 4 x 4 (weight rows x activation rows); the weight rows
 * come already widened to F32 (wf, 4 rows of n_in). */
static inline __attribute__((always_inline)) void gemm_tile(const mm_job *j, const float *wf, int64_t o, const int no,
                                                            int64_t r, const int nr) {
    __m512 acc[4][4];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) acc[a][b] = _mm512_setzero_ps();
    for (int64_t i = 0; i < j->n_in; i += 16) {
        __m512 x[4];
        for (int b = 0; b < nr; b++) x[b] = _mm512_loadu_ps(j->xf + (r + b) * j->n_in + i);
        for (int a = 0; a < no; a++) {
            const __m512 wv = _mm512_loadu_ps(wf + a * j->n_in + i);
            for (int b = 0; b < nr; b++) acc[a][b] = _mm512_fmadd_ps(wv, x[b], acc[a][b]);
        }
    }
    for (int a = 0; a < no; a++)
        for (int b = 0; b < nr; b++) j->y[(r + b) * j->n_out + o + a] = qr_reduce16_ps(acc[a][b]);
}

static void gemm_edge(const mm_job *j, const float *wf, int64_t o, int no, int64_t r, int nr) {
    gemm_tile(j, wf, o, no, r, nr);
}

/* Cache blocking: 64 activation rows (F32, in L2) meet every 4-row weight group of the
 * range, each group widened to F32 once per block into scratch (in L1). */
#define GEMM_ROW_BLOCK 64

static void gemm(const mm_job *j, int64_t o0, int64_t o1, float *wf) {
    for (int64_t r0 = 0; r0 < j->n_rows; r0 += GEMM_ROW_BLOCK) {
        const int64_t r1 = j->n_rows - r0 < GEMM_ROW_BLOCK ? j->n_rows : r0 + GEMM_ROW_BLOCK;
        for (int64_t o = o0; o < o1; o += 4) {
            const int no = o1 - o < 4 ? (int)(o1 - o) : 4;
            for (int a = 0; a < no; a++) {
                const uint8_t *row = j->w + (size_t)(o + a) * j->row_bytes;
                for (int64_t i = 0; i < j->n_in; i += 16) _mm512_storeu_ps(wf + a * j->n_in + i, load_w(j->wtype, row, i));
            }
            for (int64_t r = r0; r < r1; r += 4) {
                const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
                if (no == 4 && nr == 4) gemm_tile(j, wf, o, 4, r, 4); /* constant: registers only */
                else gemm_edge(j, wf, o, no, r, nr);
            }
        }
    }
}

/* ggml_vec_dot_f32's order on a weight row converted on the fly. */
static float dot_vec(qr_type t, const uint8_t *row, const float *x, int64_t n) {
    const int64_t np = n & ~(int64_t)63;
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < np; i += 64) {
        for (int k = 0; k < 4; k++) s[k] = _mm512_fmadd_ps(load_w(t, row, i + 16 * k), _mm512_loadu_ps(x + i + 16 * k), s[k]);
    }
    s[0] = _mm512_add_ps(s[0], s[2]);
    s[1] = _mm512_add_ps(s[1], s[3]);
    float sum = qr_reduce16_ps(_mm512_add_ps(s[0], s[1]));
    if (np == n) return sum;
    /* the tail as qr_cpu_dot_f32_vec sums it (blocks of 16 and 8 multiply then add, the
     * last < 8 fused) */
    float wt[64];
    for (int64_t i = np; i < n; i++) {
        if (t == QR_TYPE_F32) wt[i - np] = ((const float *)row)[i];
        else {
            uint16_t h;
            memcpy(&h, row + 2 * i, 2);
            wt[i - np] = t == QR_TYPE_F16 ? _cvtsh_ss(h) : _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128((int)((uint32_t)h << 16))));
        }
    }
    int64_t i = np;
    for (; n - i >= 16; i += 16)
        for (int k = 0; k < 16; k++) sum += wt[i - np + k] * x[i + k];
    if (n - i >= 8) {
        for (int k = 0; k < 8; k++) sum += wt[i - np + k] * x[i + k];
        i += 8;
    }
    for (; i < n; i++) sum = fmaf(wt[i - np], x[i], sum);
    return sum;
}

bool qr_cpu_mm_float_avx512(const mm_job *j, int64_t o0, int64_t o1, bool has_fp16, void *scratch) {
    const qr_type t = j->wtype;
    if (t != QR_TYPE_F32 && t != QR_TYPE_F16 && t != QR_TYPE_BF16) return false;
    if (j->gemm_order) {
        gemm(j, o0, o1, (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63));
        return true;
    }
    if (j->xh) { /* F16 weights, decode order */
        if (!has_fp16) return false;
        for (int64_t o = o0; o < o1; o++) {
            const uint16_t *wrow = (const uint16_t *)(j->w + (size_t)o * j->row_bytes);
            for (int64_t off = 0; off < (int64_t)j->row_bytes; off += 64) _mm_prefetch((const char *)wrow + j->row_bytes + off, _MM_HINT_T0);
            for (int64_t r = 0; r < j->n_rows; r++) j->y[r * j->n_out + o] = qr_cpu_dot_f16_fp16(wrow, j->xh + r * j->n_in, j->n_in);
        }
        return true;
    }
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *wrow = j->w + (size_t)o * j->row_bytes;
        for (int64_t r = 0; r < j->n_rows; r++) j->y[r * j->n_out + o] = dot_vec(t, wrow, j->xf + r * j->n_in, j->n_in);
    }
    return true;
}
