/* src/backend/cuda: every device kernel against the scalar oracle of src/quant.
 *
 * - Dequantization (F32 and F16 output) must be bit-identical to qr_dequantize_row
 *   (then qr_f32_to_f16) for every block format, on quantized data and on random block
 *   bytes (every bit pattern of quants and scales, finite fp16 scales).
 * - GEMV y = W X (1..8 columns) must match a double-precision reference built from
 *   qr_dequantize_row to ||y - ref|| / ||ref|| < 1e-5, on shapes that are not multiples
 *   of the warp or tile sizes (1 row, odd rows, one block per row, long rows), and a row's
 *   result must be bit-identical whether it is computed alone or in a batch of 8.
 * - The integer GEMV (gemv_q8.h): the device's quantized activations equal the CPU
 *   backend's byte for byte, and y = W Xq matches the CPU's arithmetic (weights times the
 *   CPU-quantized activations, in double) to 1e-6 of sum |w a| per row, every integer
 *   format, 1..8 columns, bit-identical per column across batch sizes.
 * Outputs are poisoned (NaN) before each kernel so unwritten elements fail.
 * Exits 77 (skipped) when there is no CUDA device. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/gemv_q8.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "testing.h"

static const qr_type ALL_TYPES[] = {
    QR_TYPE_F32,  QR_TYPE_F16,  QR_TYPE_BF16, QR_TYPE_Q4_0, QR_TYPE_Q4_1,   QR_TYPE_Q5_0,
    QR_TYPE_Q5_1, QR_TYPE_Q8_0, QR_TYPE_Q8_1, QR_TYPE_Q2_K, QR_TYPE_Q3_K,   QR_TYPE_Q4_K,
    QR_TYPE_Q5_K, QR_TYPE_Q6_K, QR_TYPE_Q8_K, QR_TYPE_IQ4_NL, QR_TYPE_IQ4_XS,
};
#define N_TYPES (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static uint64_t next_u64(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static double uniform01(uint64_t *s) {
    return ((double)(next_u64(s) >> 11) + 0.5) / 9007199254740992.0;
}

static float normal(uint64_t *s) {
    const double u = uniform01(s), v = uniform01(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    REQUIRE(p != NULL);
    return p;
}

/* Offsets of the fp16 scale fields in one block (-1 ends the list). */
static const int *f16_fields(qr_type t) {
    static const int d0[] = {0, -1}, d0m2[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1}, none[] = {-1};
    switch (t) {
    case QR_TYPE_Q4_0: case QR_TYPE_Q5_0: case QR_TYPE_Q8_0: case QR_TYPE_IQ4_NL:
    case QR_TYPE_IQ4_XS: return d0;
    case QR_TYPE_Q4_1: case QR_TYPE_Q5_1: case QR_TYPE_Q8_1: case QR_TYPE_Q4_K:
    case QR_TYPE_Q5_K: return d0m2;
    case QR_TYPE_Q2_K: return q2k;
    case QR_TYPE_Q3_K: return q3k;
    case QR_TYPE_Q6_K: return q6k;
    default: return none;
    }
}

/* Random block bytes with finite scales, or (float types) random finite values. */
static void fill_random_blocks(qr_type t, uint8_t *buf, int64_t rows, int64_t cols, uint64_t *s) {
    const qr_type_traits *tr = qr_type_get_traits(t);
    const int64_t n = rows * cols;
    if (!tr->is_quantized) {
        float *f = xmalloc((size_t)n * sizeof *f);
        for (int64_t i = 0; i < n; i++) f[i] = normal(s) * 4.0f;
        qr_error err;
        REQUIRE(qr_quantize_row(t, f, buf, n, &err) == QR_OK);
        free(f);
        return;
    }
    const size_t bytes = qr_type_row_size(tr, cols) * (size_t)rows;
    for (size_t i = 0; i < bytes; i++) buf[i] = (uint8_t)next_u64(s);
    const int64_t nblocks = n / tr->block_size;
    for (int64_t b = 0; b < nblocks; b++) {
        uint8_t *blk = buf + b * tr->type_size;
        for (const int *o = f16_fields(t); *o >= 0; o++) {
            const uint16_t h = qr_f32_to_f16((float)(normal(s) * 0.05));
            memcpy(blk + *o, &h, 2);
        }
        if (t == QR_TYPE_Q8_K) {
            const float d = normal(s) * 0.01f;
            memcpy(blk, &d, 4);
        }
    }
}

/* Weights as a model would hold them: N(0,1) values through the reference quantizer
 * (random block bytes for the IQ formats, which have no quantizer here). */
static void fill_weights(qr_type t, uint8_t *buf, int64_t rows, int64_t cols, uint64_t *s) {
    if (!qr_can_quantize(t)) {
        fill_random_blocks(t, buf, rows, cols, s);
        return;
    }
    float *f = xmalloc((size_t)(rows * cols) * sizeof *f);
    for (int64_t i = 0; i < rows * cols; i++) f[i] = normal(s);
    qr_error err;
    REQUIRE(qr_quantize_row(t, f, buf, rows * cols, &err) == QR_OK);
    free(f);
}

/* The oracle's rows x cols floats. */
static float *host_dequant(qr_type t, const uint8_t *buf, int64_t rows, int64_t cols) {
    float *ref = xmalloc((size_t)(rows * cols) * sizeof *ref);
    qr_error err;
    REQUIRE(qr_dequantize_row(t, buf, ref, rows * cols, &err) == QR_OK);
    return ref;
}

static qr_cuda_matrix *upload(qr_type t, const uint8_t *buf, int64_t rows, int64_t cols) {
    qr_cuda_matrix *m = NULL;
    qr_error err;
    if (qr_cuda_matrix_upload(t, rows, cols, buf, &m, &err) != QR_OK) {
        fprintf(stderr, "upload %s %lldx%lld: %s\n", qr_type_name(t), (long long)rows,
                (long long)cols, err.msg);
        exit(1);
    }
    return m;
}

#define DEV(call)                                                                      \
    do {                                                                               \
        qr_error e_;                                                                   \
        if ((call) != QR_OK) {                                                         \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, e_.msg);     \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Device dequantization of one matrix to F32 and F16, compared bit for bit. */
static void check_dequant(qr_type t, const uint8_t *buf, int64_t rows, int64_t cols,
                          const char *what) {
    const int64_t n = rows * cols;
    float *ref = host_dequant(t, buf, rows, cols);
    qr_cuda_matrix *m = upload(t, buf, rows, cols);
    void *d_out;
    DEV(qr_cuda_malloc(&d_out, (size_t)n * 4, &e_));
    uint32_t *got = xmalloc((size_t)n * 4);

    DEV(qr_cuda_memset(d_out, 0xFF, (size_t)n * 4, &e_));
    DEV(qr_cuda_dequantize(m, d_out, QR_TYPE_F32, NULL, &e_));
    DEV(qr_cuda_copy_to_host(got, d_out, (size_t)n * 4, &e_));
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (got[i] != qr_f32_bits(ref[i])) bad++, first = first < 0 ? i : first;
    CHECK_MSG(bad == 0, "%s F32 %s %lldx%lld: %lld of %lld differ, first at %lld (%.9g vs %.9g)",
              qr_type_name(t), what, (long long)rows, (long long)cols, (long long)bad,
              (long long)n, (long long)first, first >= 0 ? (double)qr_bits_f32(got[first]) : 0.0,
              first >= 0 ? (double)ref[first] : 0.0);

    uint16_t *got16 = (uint16_t *)got;
    DEV(qr_cuda_memset(d_out, 0xFF, (size_t)n * 2, &e_));
    DEV(qr_cuda_dequantize(m, d_out, QR_TYPE_F16, NULL, &e_));
    DEV(qr_cuda_copy_to_host(got16, d_out, (size_t)n * 2, &e_));
    bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (got16[i] != qr_f32_to_f16(ref[i])) bad++;
    CHECK_MSG(bad == 0, "%s F16 %s %lldx%lld: %lld of %lld differ", qr_type_name(t), what,
              (long long)rows, (long long)cols, (long long)bad, (long long)n);

    free(got);
    free(ref);
    qr_cuda_free(d_out);
    qr_cuda_matrix_free(m);
}

static void test_dequant(uint64_t *s) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 2}, {7, 5}, {33, 3}, {2, 56}};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const qr_type t = ALL_TYPES[ti];
        const qr_type_traits *tr = qr_type_get_traits(t);
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t rows = shapes[si][0];
            const int64_t cols = shapes[si][1] * (tr->block_size > 1 ? tr->block_size : 37);
            uint8_t *buf = xmalloc(qr_type_row_size(tr, cols) * (size_t)rows);
            fill_random_blocks(t, buf, rows, cols, s);
            check_dequant(t, buf, rows, cols, "random blocks");
            if (qr_can_quantize(t)) {
                fill_weights(t, buf, rows, cols, s);
                check_dequant(t, buf, rows, cols, "quantized");
            }
            free(buf);
        }
    }
}

/* y = W X for ncols columns against a double reference: e_rel = ||y - ref|| / ||ref||,
 * and e_abs = ||y - ref|| / || |W| |X| ||, the scale an F32 dot's rounding error is
 * proportional to, which stays meaningful when a few outputs cancel to near zero. */
static void gemv_error(const float *ref_w, int64_t rows, int64_t cols, const float *x, int ncols,
                       const float *y, double *e_rel, double *e_abs) {
    double num = 0.0, den = 0.0, mag = 0.0;
    for (int c = 0; c < ncols; c++) {
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0.0, absacc = 0.0;
            const float *w = ref_w + r * cols, *xc = x + c * cols;
            for (int64_t k = 0; k < cols; k++) {
                acc += (double)w[k] * (double)xc[k];
                absacc += fabs((double)w[k] * (double)xc[k]);
            }
            const double got = y[c * rows + r];
            if (!isfinite(got)) { /* unwritten (still NaN) or overflow */
                *e_rel = *e_abs = INFINITY;
                return;
            }
            num += (got - acc) * (got - acc);
            den += acc * acc;
            mag += absacc * absacc;
        }
    }
    *e_rel = den > 0.0 ? sqrt(num / den) : sqrt(num);
    *e_abs = mag > 0.0 ? sqrt(num / mag) : sqrt(num);
}

static void run_gemv(qr_cuda_matrix *m, const float *d_x, float *d_y, int64_t rows, int ncols,
                     float *y) {
    DEV(qr_cuda_memset(d_y, 0xFF, (size_t)(rows * ncols) * 4, &e_));
    DEV(qr_cuda_gemv(m, d_x, d_y, ncols, NULL, &e_));
    DEV(qr_cuda_copy_to_host(y, d_y, (size_t)(rows * ncols) * 4, &e_));
}

static void check_gemv(qr_type t, int64_t rows, int64_t cols, uint64_t *s, double worst[2]) {
    const qr_type_traits *tr = qr_type_get_traits(t);
    const int maxc = QR_CUDA_GEMV_MAX_COLS;
    uint8_t *buf = xmalloc(qr_type_row_size(tr, cols) * (size_t)rows);
    fill_weights(t, buf, rows, cols, s);
    float *ref = host_dequant(t, buf, rows, cols);
    qr_cuda_matrix *m = upload(t, buf, rows, cols);
    float *x = xmalloc((size_t)(cols * maxc) * 4), *y = xmalloc((size_t)(rows * maxc) * 4);
    float *y1 = xmalloc((size_t)rows * 4);
    for (int64_t i = 0; i < cols * maxc; i++) x[i] = normal(s);
    void *d_x, *d_y;
    DEV(qr_cuda_malloc(&d_x, (size_t)(cols * maxc) * 4, &e_));
    DEV(qr_cuda_malloc(&d_y, (size_t)(rows * maxc) * 4, &e_));
    DEV(qr_cuda_copy_to_device(d_x, x, (size_t)(cols * maxc) * 4, &e_));

    static const int NCOLS[] = {1, 2, 3, 8};
    for (size_t ci = 0; ci < sizeof NCOLS / sizeof NCOLS[0]; ci++) {
        const int nc = NCOLS[ci];
        run_gemv(m, d_x, d_y, rows, nc, y);
        double e, ea;
        gemv_error(ref, rows, cols, x, nc, y, &e, &ea);
        CHECK_MSG(ea < 1e-6, "%s %lldx%lld ncols=%d: error %.3g of |W||X|", qr_type_name(t),
                  (long long)rows, (long long)cols, nc, ea);
        if (ea > worst[1]) worst[1] = ea;
        /* Fewer than 8 outputs: ||ref|| can be a lucky cancellation (seen once: a single
         * Q8_K row of 4352 at 1.5e-5, every other case under 2.1e-6); e_abs covers those. */
        if (rows * nc < 8) continue;
        if (e > worst[0]) worst[0] = e;
        CHECK_MSG(e < 1e-5, "%s %lldx%lld ncols=%d: relative error %.3g", qr_type_name(t),
                  (long long)rows, (long long)cols, nc, e);
    }
    /* Batch invariance: column 5 of the batch of 8 equals the same x alone (possible when
     * column 5 of X is 16-byte aligned, the API's requirement for x). */
    if ((cols * 5) % 4 == 0) {
        run_gemv(m, d_x, d_y, rows, 8, y);
        run_gemv(m, (const float *)d_x + cols * 5, d_y, rows, 1, y1);
        CHECK_MSG(memcmp(y + rows * 5, y1, (size_t)rows * 4) == 0,
                  "%s %lldx%lld: row results differ between batch 8 and batch 1",
                  qr_type_name(t), (long long)rows, (long long)cols);
    }
    qr_cuda_free(d_x);
    qr_cuda_free(d_y);
    qr_cuda_matrix_free(m);
    free(buf);
    free(ref);
    free(x);
    free(y);
    free(y1);
}

static void test_gemv(uint64_t *s) {
    /* rows x (cols in blocks): one block, odd rows, partial tiles, rows of 1 to 14 tiles,
     * 4096- and 28672-long rows */
    static const int64_t shapes[][2] = {{1, 1}, {5, 3}, {37, 9}, {130, 16}, {3, 112}, {1, 17}};
    /* float formats: element counts with 1..7 left over after the 16-byte chunks */
    static const int64_t fshapes[][2] = {{1, 1}, {7, 37}, {33, 4096}, {5, 4101}, {2, 14343}};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const qr_type t = ALL_TYPES[ti];
        const qr_type_traits *tr = qr_type_get_traits(t);
        double worst[2] = {0.0, 0.0};
        if (tr->is_quantized) {
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                /* 32-element formats get 8x the blocks so rows reach the same lengths */
                const int64_t nb = shapes[si][1] * (tr->block_size == 32 && shapes[si][1] > 3 ? 8 : 1);
                check_gemv(t, shapes[si][0], nb * tr->block_size, s, worst);
            }
            /* The tiled formats on many rows (more CTAs than fit on the device at once, an
             * odd row count, a full and a partial tile per row). */
            if (t == QR_TYPE_Q4_0 || t == QR_TYPE_Q8_0 || t == QR_TYPE_Q4_K || t == QR_TYPE_Q5_K ||
                t == QR_TYPE_Q6_K)
                check_gemv(t, 8193, 2304, s, worst);
        } else {
            for (size_t si = 0; si < sizeof fshapes / sizeof fshapes[0]; si++)
                check_gemv(t, fshapes[si][0], fshapes[si][1], s, worst);
        }
        printf("gemv %-7s worst relative error %.3g, worst error / |W||X| %.3g\n", qr_type_name(t),
               worst[0], worst[1]);
    }
}

/* ---- Integer GEMV (gemv_q8.h) ---------------------------------------------------------------- */

static const qr_type Q8_TYPES[] = {QR_TYPE_Q4_0, QR_TYPE_Q4_1, QR_TYPE_Q5_0, QR_TYPE_Q5_1, QR_TYPE_Q8_0,
                                   QR_TYPE_Q2_K, QR_TYPE_Q3_K, QR_TYPE_Q4_K, QR_TYPE_Q5_K, QR_TYPE_Q6_K,
                                   QR_TYPE_IQ4_NL, QR_TYPE_IQ4_XS};
#define N_Q8_TYPES (sizeof Q8_TYPES / sizeof Q8_TYPES[0])

/* One column of activations as the CPU backend quantizes them, in the device layout:
 * Q8_0/Q8_1 as ggml's x86 quantize_row_q8_0/q8_1 (d = amax / 127 kept as fp16, q =
 * round-half-even(x * (127 / amax)), s = fp16(d * sum q)); Q8_K through the src/quant
 * reference (qr_quantize_row). */
static void host_quantize_act(const qr_cuda_act_layout *L, const float *x, uint8_t *col) {
    memset(col, 0, L->col_bytes);
    int8_t *q = (int8_t *)col;
    float *d = (float *)(col + L->d_off), *s = (float *)(col + L->s_off);
    int16_t *bs = (int16_t *)(col + L->bsum_off);
    if (L->vt == QR_TYPE_Q8_K) {
        qr_block_q8_k blk;
        for (int64_t b = 0; b < L->n / 256; b++) {
            qr_error err;
            REQUIRE(qr_quantize_row(QR_TYPE_Q8_K, x + 256 * b, &blk, 256, &err) == QR_OK);
            memcpy(q + 256 * b, blk.qs, 256);
            d[b] = blk.d;
            memcpy(bs + 16 * b, blk.bsums, sizeof blk.bsums);
        }
        return;
    }
    for (int64_t b = 0; b < L->n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax;
        const float dd = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const float v = xb[j] * id;
            q[32 * b + j] = (int8_t)nearbyintf(v);
            sum += q[32 * b + j];
        }
        for (int h = 0; h < 2; h++) {
            int s16 = 0;
            for (int j = 0; j < 16; j++) s16 += q[32 * b + 16 * h + j];
            bs[2 * b + h] = (int16_t)s16;
        }
        d[b] = qr_f16_to_f32(qr_f32_to_f16(dd));
        if (L->vt == QR_TYPE_Q8_1) {
            const float ds = dd * (float)sum;
            s[b] = qr_f16_to_f32(qr_f32_to_f16(ds));
        }
    }
}

/* Activations with the cases the rounding rules single out: an all-zero block, exact
 * ties of the largest magnitude with both signs, halves (x * 127 / amax = k + 0.5). */
static void fill_act(float *x, int64_t n, uint64_t *s) {
    for (int64_t i = 0; i < n; i++) x[i] = normal(s);
    if (n >= 64) {
        for (int j = 0; j < 32; j++) x[j] = 0.0f;
        /* amax 127 makes the scale 1 (Q8_K: -1), so the halves are exact ties */
        x[40] = 127.0f, x[45] = -127.0f, x[33] = 2.5f, x[34] = -3.5f, x[35] = 0.5f, x[36] = -0.5f;
    }
    if (n >= 512) x[300] = -5.0f, x[301] = 5.0f, x[260] = 5.0f;
}

/* The device's quantized activations must equal the CPU's byte for byte. */
static void check_quantize_act(qr_type wt, int64_t n, int64_t ncols, uint64_t *s) {
    qr_cuda_act_layout L;
    qr_error err;
    REQUIRE(qr_cuda_act_q8_layout(wt, n, &L, &err) == QR_OK);
    float *x = xmalloc((size_t)(n * ncols) * 4);
    for (int64_t c = 0; c < ncols; c++) fill_act(x + c * n, n, s);
    uint8_t *want = xmalloc(L.col_bytes * (size_t)ncols), *got = xmalloc(L.col_bytes * (size_t)ncols);
    for (int64_t c = 0; c < ncols; c++) host_quantize_act(&L, x + c * n, want + c * L.col_bytes);
    void *d_x, *d_q;
    DEV(qr_cuda_malloc(&d_x, (size_t)(n * ncols) * 4, &e_));
    DEV(qr_cuda_malloc(&d_q, L.col_bytes * (size_t)ncols, &e_));
    DEV(qr_cuda_copy_to_device(d_x, x, (size_t)(n * ncols) * 4, &e_));
    DEV(qr_cuda_memset(d_q, 0, L.col_bytes * (size_t)ncols, &e_));
    DEV(qr_cuda_quantize_act(wt, d_x, n, ncols, d_q, false, NULL, &e_));
    DEV(qr_cuda_copy_to_host(got, d_q, L.col_bytes * (size_t)ncols, &e_));
    size_t first = 0;
    while (first < L.col_bytes * (size_t)ncols && got[first] == want[first]) first++;
    CHECK_MSG(first == L.col_bytes * (size_t)ncols,
              "quantize_act for %s, n=%lld x %lld: first difference at byte %zu of a %zu-byte column (%u vs %u)",
              qr_type_name(wt), (long long)n, (long long)ncols, first % L.col_bytes, L.col_bytes,
              first < L.col_bytes * (size_t)ncols ? got[first] : 0, first < L.col_bytes * (size_t)ncols ? want[first] : 0);
    qr_cuda_free(d_x);
    qr_cuda_free(d_q);
    free(x);
    free(want);
    free(got);
}

/* Values d * q of one quantized column, exact in double. */
static void act_values(const qr_cuda_act_layout *L, const uint8_t *col, double *out) {
    const float *d = (const float *)(col + L->d_off);
    for (int64_t i = 0; i < L->n; i++) out[i] = (double)d[i / L->block] * (double)((const int8_t *)col)[i];
}

/* Q4_1/Q5_1 weights (d * q + m) against Q8_1 activations: the CPU adds m * s with s the
 * fp16-rounded d * sum q of the block, not the exact value; this is the difference. */
static double q8_1_min_term(const qr_cuda_act_layout *L, const uint8_t *col, const uint8_t *wrow, int ts) {
    const float *d = (const float *)(col + L->d_off), *s = (const float *)(col + L->s_off);
    const int16_t *bs = (const int16_t *)(col + L->bsum_off);
    double t = 0.0;
    for (int64_t b = 0; b < L->n / 32; b++) {
        uint16_t m;
        memcpy(&m, wrow + b * ts + 2, 2);
        t += (double)qr_f16_to_f32(m) * ((double)s[b] - (double)d[b] * (bs[2 * b] + bs[2 * b + 1]));
    }
    return t;
}

/* Integer GEMV against the CPU's arithmetic: the weights' values (qr_dequantize_row)
 * times the CPU-quantized activations, summed in double. The device's integer sums are
 * exact, so only the final float combination differs: every row must be within 1e-6 of
 * sum |w a| (a single quant off by one in a 4096-long row moves a row by ~1e-4 of it) and
 * the whole product within 1e-6 in relative norm (Q4_1/Q5_1: with the CPU's fp16 block
 * sums, q8_1_min_term). Then batch invariance: each column of
 * every batch size 1..8 is bit-identical to the same column of the batch of 8. */
static void check_gemv_q8(qr_type t, int64_t rows, int64_t cols, uint64_t *s, double worst[2]) {
    enum { MAXC = QR_CUDA_GEMV_MAX_COLS };
    const qr_type_traits *tr = qr_type_get_traits(t);
    qr_cuda_act_layout L;
    qr_error err;
    REQUIRE(qr_cuda_act_q8_layout(t, cols, &L, &err) == QR_OK);
    const size_t rsize = qr_type_row_size(tr, cols);
    uint8_t *buf = xmalloc(rsize * (size_t)rows);
    fill_weights(t, buf, rows, cols, s);
    float *wref = host_dequant(t, buf, rows, cols);
    qr_cuda_matrix *m = upload(t, buf, rows, cols);
    float *x = xmalloc((size_t)(cols * MAXC) * 4), *y8 = xmalloc((size_t)(rows * MAXC) * 4);
    float *y = xmalloc((size_t)(rows * MAXC) * 4);
    uint8_t *xq = xmalloc(L.col_bytes * MAXC);
    double *a = xmalloc((size_t)cols * sizeof *a);
    for (int64_t c = 0; c < MAXC; c++) {
        fill_act(x + c * cols, cols, s);
        host_quantize_act(&L, x + c * cols, xq + c * L.col_bytes);
    }
    void *d_x, *d_q, *d_y;
    DEV(qr_cuda_malloc(&d_x, (size_t)(cols * MAXC) * 4, &e_));
    DEV(qr_cuda_malloc(&d_q, L.col_bytes * MAXC, &e_));
    DEV(qr_cuda_malloc(&d_y, (size_t)(rows * MAXC) * 4, &e_));
    DEV(qr_cuda_copy_to_device(d_x, x, (size_t)(cols * MAXC) * 4, &e_));
    DEV(qr_cuda_quantize_act(t, d_x, cols, MAXC, d_q, false, NULL, &e_));
    DEV(qr_cuda_memset(d_y, 0xFF, (size_t)(rows * MAXC) * 4, &e_));
    DEV(qr_cuda_gemv_q8(m, d_q, d_y, MAXC, false, NULL, &e_));
    DEV(qr_cuda_copy_to_host(y8, d_y, (size_t)(rows * MAXC) * 4, &e_));

    double num = 0.0, den = 0.0, worst_row = 0.0;
    int64_t worst_at = -1;
    for (int c = 0; c < MAXC; c++) {
        act_values(&L, xq + c * L.col_bytes, a);
        for (int64_t r = 0; r < rows; r++) {
            const float *w = wref + r * cols;
            double acc = 0.0, mag = 0.0;
            for (int64_t k = 0; k < cols; k++) acc += (double)w[k] * a[k], mag += fabs((double)w[k] * a[k]);
            if (L.vt == QR_TYPE_Q8_1) acc += q8_1_min_term(&L, xq + c * L.col_bytes, buf + r * rsize, tr->type_size);
            const double got = y8[c * rows + r], e = fabs(got - acc) / (mag > 0.0 ? mag : 1.0);
            if (!(e <= worst_row)) worst_row = e, worst_at = c * rows + r; /* NaN too */
            num += (got - acc) * (got - acc), den += acc * acc;
        }
    }
    const double rel = den > 0.0 ? sqrt(num / den) : sqrt(num);
    CHECK_MSG(worst_row < 1e-6, "%s %lldx%lld int8: row %lld (column %lld) off by %.3g of sum |w a|",
              qr_type_name(t), (long long)rows, (long long)cols, (long long)(worst_at % rows),
              (long long)(worst_at / rows), worst_row);
    CHECK_MSG(rel < 1e-6, "%s %lldx%lld int8: relative error %.3g", qr_type_name(t), (long long)rows,
              (long long)cols, rel);
    if (worst_row > worst[0]) worst[0] = worst_row;
    if (rel > worst[1]) worst[1] = rel;

    for (int nc = 1; nc < MAXC; nc++) { /* columns 8 - nc .. 7 alone in a batch of nc */
        const int c0 = MAXC - nc;
        DEV(qr_cuda_memset(d_y, 0xFF, (size_t)(rows * nc) * 4, &e_));
        DEV(qr_cuda_gemv_q8(m, (const uint8_t *)d_q + c0 * L.col_bytes, d_y, nc, false, NULL, &e_));
        DEV(qr_cuda_copy_to_host(y, d_y, (size_t)(rows * nc) * 4, &e_));
        CHECK_MSG(memcmp(y, y8 + c0 * rows, (size_t)(rows * nc) * 4) == 0,
                  "%s %lldx%lld int8: columns %d..7 differ between a batch of %d and the batch of 8",
                  qr_type_name(t), (long long)rows, (long long)cols, c0, nc);
    }
    qr_cuda_free(d_x);
    qr_cuda_free(d_q);
    qr_cuda_free(d_y);
    qr_cuda_matrix_free(m);
    free(buf);
    free(wref);
    free(x);
    free(y);
    free(y8);
    free(xq);
    free(a);
}

static void test_gemv_q8(uint64_t *s) {
    /* activation rounding, each vec-dot type: Q8_0 (Q4_0), Q8_1 (Q4_1), Q8_K (Q4_K) */
    check_quantize_act(QR_TYPE_Q4_0, 32, 1, s);
    check_quantize_act(QR_TYPE_Q4_0, 4096, 3, s);
    check_quantize_act(QR_TYPE_Q4_1, 4096, 3, s);
    check_quantize_act(QR_TYPE_Q4_K, 256, 1, s);
    check_quantize_act(QR_TYPE_Q4_K, 14336, 2, s);
    /* rows x (cols in blocks): one block, rows not a multiple of the CTA's 4, partial and
     * whole tiles (64 blocks of 32 elements, 8 or 16 super-blocks), long rows */
    static const int64_t shapes[][2] = {{1, 1}, {5, 3}, {37, 9}, {130, 16}, {3, 112}, {1, 17}, {6, 33}};
    for (size_t ti = 0; ti < N_Q8_TYPES; ti++) {
        const qr_type t = Q8_TYPES[ti];
        const qr_type_traits *tr = qr_type_get_traits(t);
        double worst[2] = {0.0, 0.0};
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t nb = shapes[si][1] * (tr->block_size == 32 && shapes[si][1] > 3 ? 8 : 1);
            check_gemv_q8(t, shapes[si][0], nb * tr->block_size, s, worst);
        }
        check_gemv_q8(t, 1027, 4096, s, worst);
        printf("gemv int8 %-6s worst row error / sum|w a| %.3g, worst relative error %.3g\n", qr_type_name(t),
               worst[0], worst[1]);
    }
    qr_error err;
    qr_cuda_act_layout L;
    CHECK(!qr_cuda_gemv_q8_supported(QR_TYPE_F16) && !qr_cuda_gemv_q8_supported(QR_TYPE_Q8_K));
    CHECK(qr_cuda_act_q8_layout(QR_TYPE_Q4_K, 32, &L, &err) == QR_ERR && strstr(err.msg, "Q8_K") != NULL);
    CHECK(qr_cuda_act_q8_layout(QR_TYPE_F16, 32, &L, &err) == QR_ERR);
}

static void test_errors(void) {
    qr_error err;
    qr_cuda_matrix *m = NULL;
    uint8_t blk[256] = {0};
    CHECK(qr_cuda_matrix_upload(QR_TYPE_Q4_K, 1, 100, blk, &m, &err) == QR_ERR && m == NULL);
    CHECK(strstr(err.msg, "block size") != NULL);
    CHECK(qr_cuda_matrix_upload(QR_TYPE_Q8_0, 0, 32, blk, &m, &err) == QR_ERR);
    REQUIRE(qr_cuda_matrix_upload(QR_TYPE_Q8_0, 1, 32, blk, &m, &err) == QR_OK);
    void *d;
    REQUIRE(qr_cuda_malloc(&d, 4096, &err) == QR_OK);
    CHECK(qr_cuda_gemv(m, d, d, 0, NULL, &err) == QR_ERR);
    CHECK(qr_cuda_gemv(m, d, d, QR_CUDA_GEMV_MAX_COLS + 1, NULL, &err) == QR_ERR);
    CHECK(strstr(err.msg, "ncols") != NULL);
    CHECK(qr_cuda_gemv(m, (const float *)d + 1, d, 1, NULL, &err) == QR_ERR);
    CHECK(qr_cuda_dequantize(m, d, QR_TYPE_Q8_0, NULL, &err) == QR_ERR);
    qr_cuda_free(d);
    qr_cuda_matrix_free(m);
}

int main(void) {
    int count = 0;
    qr_error err;
    if (qr_cuda_device_count(&count, &err) != QR_OK) {
        fprintf(stderr, "cuda device query: %s\n", err.msg);
        return 1;
    }
    if (count == 0) qr_test_skip("no CUDA device");
    char name[256];
    REQUIRE(qr_cuda_device_name(name, sizeof name, &err) == QR_OK);
    printf("device: %s\n", name);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    test_errors();
    test_dequant(&s);
    test_gemv(&s);
    test_gemv_q8(&s);
    return qr_test_finish("test_cuda_kernels");
}
