/* AVX-512 matmul for float weights (F32, F16, BF16) in the orders of the scalar kernels
 * (cpu_ggml_dots.c), bit for bit:
 *
 *   - prompt batches of F32 / F16 weights (tinyBLAS order, qr_cpu_dot_f32_gemm): 16
 *     lanes of fma over the row, lane l taking elements l, l+16, ..., then reduce16;
 *     a packed GEMM with 6 x 4 register tiles (below);
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

/* ---- Prompt batches: a packed, k-blocked GEMM in tinyBLAS's order ---------------------
 * Each output is one 16-lane fma chain over the whole row (lane l takes elements l, l+16,
 * ...) reduced once at the end (qr_cpu_dot_f32_gemm), so any tiling that carries a
 * tile's chains from slab to slab in order gives the same bits. Speed is about where the
 * operands come from:
 *   - a block of activation rows (up to 1 MiB of F32, in L2) is packed once per call
 *     into panels of TILE_X rows, [step][row][16] (one contiguous stream per tile; F16
 *     activations are rounded here, not in a serial pass before the threads start);
 *   - a group of TILE_W weight rows is widened to F32 one slab of SLAB elements at a
 *     time (24 KiB: stays in L1) and meets every panel of the block;
 *   - register tiles of 6 weight rows x 4 activation rows (24 accumulators, 4 activation
 *     vectors, 1 weight vector) load 10 vectors per 24 fmas, only the 4 activation ones
 *     from L2; the accumulators go to a small buffer between slabs.
 * Measured on the 1B model's shapes (bench numbers in docs/performance.md): slabs of 512
 * or 2048 elements and blocks of 640 KiB or 1.5 MiB were 5-10 % slower; software
 * prefetch of the next weight slab cost 7 % (the hardware prefetchers do better). */
#define TILE_W 6
#define TILE_X 4
#define SLAB 1024
#define TILE_VECS (TILE_W * TILE_X)
#define BLOCK_BYTES (1024 * 1024) /* half of a 2 MiB L2 */

/* Activation rows per block: a multiple of TILE_X whose F32 copy fits BLOCK_BYTES. */
static int64_t block_rows(int64_t n_in) {
    const int64_t rows = BLOCK_BYTES / (int64_t)sizeof(float) / n_in / TILE_X * TILE_X;
    return rows > TILE_X ? rows : TILE_X;
}

/* A weight slab, the accumulators of a block's panels and the packed block (+ alignment). */
size_t qr_cpu_mm_float_scratch_bytes(int64_t n_in) {
    const int64_t rows = block_rows(n_in);
    return (size_t)(TILE_W * SLAB + (rows / TILE_X + 1) * TILE_VECS * 16 + rows * n_in) * sizeof(float) + 64;
}

#define QR_FLOAT_INLINE static inline __attribute__((always_inline))

/* F32 activations rounded to F16 and back, as qr_f32_to_f16 rounds (NaNs become the
 * quiet NaN of their sign). */
QR_FLOAT_INLINE __m512 round_f16(__m512 v) {
    const __m512 r = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512i qnan = _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)),
                                         _mm512_set1_epi32(0x7fc00000));
    return _mm512_mask_mov_ps(r, nan, _mm512_castsi512_ps(qnan));
}

/* Activation rows [r0, r0 + nb) into panels of TILE_X rows (the last may be shorter):
 * panel p (its first row p) at xp + p * n_in, [step][row][16]. */
static void pack_x(const mm_job *j, int64_t r0, int64_t nb, float *xp) {
    const int64_t n_in = j->n_in;
    for (int64_t p = 0; p < nb; p += TILE_X) {
        const int nr = nb - p < TILE_X ? (int)(nb - p) : TILE_X;
        const float *src = j->xf + (r0 + p) * n_in;
        float *dst = xp + p * n_in;
        for (int64_t i = 0; i < n_in; i += 16) {
            for (int b = 0; b < nr; b++, dst += 16) {
                const __m512 v = _mm512_loadu_ps(src + b * n_in + i);
                _mm512_store_ps(dst, j->x_round_f16 ? round_f16(v) : v);
            }
        }
    }
}

/* Elements [k0, k1) of no weight rows from w0 widened to F32, [step][row][16]. */
QR_FLOAT_INLINE void pack_w_rows(qr_type t, const uint8_t *w0, size_t row_bytes, const int no, int64_t k0, int64_t k1,
                                 float *wp) {
    for (int64_t i = k0; i < k1; i += 16) {
        for (int a = 0; a < no; a++, wp += 16) _mm512_store_ps(wp, load_w(t, w0 + (size_t)a * row_bytes, i));
    }
}

static void pack_w(const mm_job *j, int64_t o, int no, int64_t k0, int64_t k1, float *wp) {
    const uint8_t *w0 = j->w + (size_t)o * j->row_bytes;
    if (j->wtype == QR_TYPE_F16 && no == TILE_W) pack_w_rows(QR_TYPE_F16, w0, j->row_bytes, TILE_W, k0, k1, wp);
    else pack_w_rows(j->wtype, w0, j->row_bytes, no, k0, k1, wp);
}

/* One register tile over one slab: no weight rows x nr activation rows (constants after
 * inlining). The chains start at zero (first slab) or from acc, and end in acc or, after
 * the last slab (y not NULL), reduced into y[b * ldy + a]. */
QR_FLOAT_INLINE void tile(const float *wp, const float *xp, int64_t steps, const int no, const int nr, float *acc,
                          bool first, float *y, int64_t ldy) {
    __m512 c[TILE_W][TILE_X];
    for (int a = 0; a < no; a++)
        for (int b = 0; b < nr; b++) c[a][b] = first ? _mm512_setzero_ps() : _mm512_load_ps(acc + 16 * (a * nr + b));
    for (int64_t s = 0; s < steps; s++, wp += 16 * no, xp += 16 * nr) {
        __m512 xv[TILE_X];
        for (int b = 0; b < nr; b++) xv[b] = _mm512_load_ps(xp + 16 * b);
        for (int a = 0; a < no; a++) {
            const __m512 wv = _mm512_load_ps(wp + 16 * a);
            for (int b = 0; b < nr; b++) c[a][b] = _mm512_fmadd_ps(wv, xv[b], c[a][b]);
        }
    }
    if (y) {
        for (int a = 0; a < no; a++)
            for (int b = 0; b < nr; b++) y[b * ldy + a] = qr_reduce16_ps(c[a][b]);
    } else {
        for (int a = 0; a < no; a++)
            for (int b = 0; b < nr; b++) _mm512_store_ps(acc + 16 * (a * nr + b), c[a][b]);
    }
}

/* Every tile shape, compiled with its constants: the full one inline in the loop, the
 * edges (last weight group of a call, last panel of a block) through this table. */
typedef void (*tile_fn)(const float *wp, const float *xp, int64_t steps, float *acc, bool first, float *y,
                        int64_t ldy);
#define TILE_FN(NO, NR)                                                                                          \
    static void tile_##NO##x##NR(const float *wp, const float *xp, int64_t steps, float *acc, bool first, float *y, \
                                 int64_t ldy) {                                                                  \
        tile(wp, xp, steps, NO, NR, acc, first, y, ldy);                                                         \
    }
#define TILE_ROW(NO) TILE_FN(NO, 1) TILE_FN(NO, 2) TILE_FN(NO, 3) TILE_FN(NO, 4)
TILE_ROW(1)
TILE_ROW(2)
TILE_ROW(3)
TILE_ROW(4)
TILE_ROW(5)
TILE_ROW(6)
#define TILE_REF(NO) {tile_##NO##x1, tile_##NO##x2, tile_##NO##x3, tile_##NO##x4}
static const tile_fn TILES[TILE_W][TILE_X] = {TILE_REF(1), TILE_REF(2), TILE_REF(3),
                                               TILE_REF(4), TILE_REF(5), TILE_REF(6)};

/* Rows of the weight group at o: TILE_W, but a range of 6k + 2 rows ends in two groups
 * of 4 rather than one of 2. */
static int group_rows(int64_t o, int64_t o1) {
    const int64_t left = o1 - o;
    return left < TILE_W ? (int)left : left == TILE_W + 2 ? 4 : TILE_W;
}

static void gemm(const mm_job *j, int64_t o0, int64_t o1, float *scratch) {
    const int64_t n_in = j->n_in, nb_max = block_rows(n_in);
    float *wp = scratch, *acc = wp + TILE_W * SLAB, *xp = acc + (nb_max / TILE_X + 1) * TILE_VECS * 16;
    for (int64_t r0 = 0; r0 < j->n_rows; r0 += nb_max) {
        const int64_t nb = j->n_rows - r0 < nb_max ? j->n_rows - r0 : nb_max;
        pack_x(j, r0, nb, xp);
        for (int64_t o = o0, no; o < o1; o += no) {
            no = group_rows(o, o1);
            for (int64_t k0 = 0; k0 < n_in; k0 += SLAB) {
                const int64_t k1 = n_in - k0 < SLAB ? n_in : k0 + SLAB, steps = (k1 - k0) / 16;
                pack_w(j, o, no, k0, k1, wp);
                for (int64_t p = 0; p < nb; p += TILE_X) {
                    const int nr = nb - p < TILE_X ? (int)(nb - p) : TILE_X;
                    float *y = k1 == n_in ? j->y + (r0 + p) * j->n_out + o : NULL;
                    float *a = acc + p / TILE_X * TILE_VECS * 16;
                    const float *x = xp + p * n_in + k0 * nr;
                    if (no == TILE_W && nr == TILE_X) tile(wp, x, steps, TILE_W, TILE_X, a, k0 == 0, y, j->n_out);
                    else TILES[no - 1][nr - 1](wp, x, steps, a, k0 == 0, y, j->n_out);
                }
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
