/* The CPU backend's SIMD matmul kernels against its scalar kernels (the oracle, which
 * reproduces llama.cpp's float order): every weight format, random block bytes (scales
 * set to sane values) and random activations, output counts of 21, 37 and 40 (the F16/F32
 * prompt GEMM takes multiples of 4), batches of 1..9 rows, both summation modes. Every output must be bit-identical, and in batch-invariant mode
 * every row of a batch must equal the same row run alone, at every kernel level. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "gguf/types.h"
#include "testing.h"

typedef struct scale_at {
    qr_type t;
    int off[2]; /* byte offsets of fp16 scale fields in a block; -1 = none */
} scale_at;

/* Where each block format keeps its fp16 scale (and min) fields. */
static const scale_at SCALES[] = {
    {QR_TYPE_Q4_0, {0, -1}},   {QR_TYPE_Q4_1, {0, 2}},  {QR_TYPE_Q5_0, {0, -1}},   {QR_TYPE_Q5_1, {0, 2}},
    {QR_TYPE_Q8_0, {0, -1}},   {QR_TYPE_IQ4_NL, {0, -1}}, {QR_TYPE_Q2_K, {80, 82}}, {QR_TYPE_Q3_K, {108, -1}},
    {QR_TYPE_Q4_K, {0, 2}},    {QR_TYPE_Q5_K, {0, 2}},  {QR_TYPE_Q6_K, {208, -1}}, {QR_TYPE_IQ4_XS, {0, -1}},
};

static const qr_type TYPES[] = {QR_TYPE_F32,  QR_TYPE_F16,  QR_TYPE_BF16, QR_TYPE_Q4_0,  QR_TYPE_Q4_1,
                                QR_TYPE_Q5_0, QR_TYPE_Q5_1, QR_TYPE_Q8_0, QR_TYPE_IQ4_NL, QR_TYPE_Q2_K,
                                QR_TYPE_Q3_K, QR_TYPE_Q4_K, QR_TYPE_Q5_K, QR_TYPE_Q6_K,  QR_TYPE_IQ4_XS};

static void fill_weights(qr_rng *rng, qr_type t, uint8_t *w, int64_t n_in, int64_t n_out) {
    const qr_type_traits *tr = qr_type_get_traits(t);
    const size_t row = qr_type_row_size(tr, n_in), total = row * (size_t)n_out;
    if (t == QR_TYPE_F32 || t == QR_TYPE_F16 || t == QR_TYPE_BF16) {
        for (int64_t i = 0; i < n_in * n_out; i++) {
            const float v = (float)qr_rng_normal(rng) * 0.05f;
            if (t == QR_TYPE_F32) memcpy(w + 4 * i, &v, 4);
            else {
                const uint16_t h = t == QR_TYPE_F16 ? qr_f32_to_f16(v) : qr_f32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)(qr_rng_next(rng) >> 56);
    const scale_at *sa = NULL;
    for (size_t k = 0; k < sizeof SCALES / sizeof SCALES[0]; k++) {
        if (SCALES[k].t == t) sa = &SCALES[k];
    }
    const size_t bs = (size_t)tr->type_size;
    for (size_t b = 0; b < total / bs; b++) {
        for (int f = 0; f < 2; f++) {
            if (!sa || sa->off[f] < 0) continue;
            const uint16_t h = qr_f32_to_f16((float)(qr_rng_uniform(rng) * 0.02 + 0.001) * (f ? -1.0f : 1.0f));
            memcpy(w + b * bs + (size_t)sa->off[f], &h, 2);
        }
    }
}

static qr_backend *make(qr_cpu_kernels k, int threads, bool invariant) {
    qr_backend *be = NULL;
    qr_error err;
    REQUIRE(qr_backend_cpu_create_with(threads, k, &be, &err) == QR_OK);
    be->batch_invariant = invariant;
    return be;
}

static int run_mm(qr_backend *be, qr_type t, const uint8_t *w, int64_t n_in, int64_t n_out, const float *x,
                  int64_t n_rows, float *y) {
    qr_error err;
    const int rc = be->ops->matmul(be, t, w, n_in, n_out, x, n_rows, y, &err);
    if (rc != QR_OK) fprintf(stderr, "matmul: %s\n", err.msg);
    return rc;
}

static int first_diff(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], 4) != 0) return (int)i;
    }
    return -1;
}

/* One weight type at one shape: every kernel level against the scalar one. */
static void check_shape(qr_rng *rng, qr_type t, int64_t n_in, int64_t n_out, int64_t n_rows, qr_backend **levels,
                        int n_levels, const char *mode) {
    const size_t row = qr_type_row_size(qr_type_get_traits(t), n_in);
    uint8_t *w = malloc(row * (size_t)n_out);
    float *x = malloc((size_t)(n_in * n_rows) * sizeof *x);
    float *ref = malloc((size_t)(n_out * n_rows) * sizeof *ref), *y = malloc((size_t)(n_out * n_rows) * sizeof *y);
    REQUIRE(w && x && ref && y);
    fill_weights(rng, t, w, n_in, n_out);
    qr_rng_fill_normal(rng, x, n_in * n_rows, 1.0f);
    REQUIRE(run_mm(levels[0], t, w, n_in, n_out, x, n_rows, ref) == QR_OK);
    for (int l = 1; l < n_levels; l++) {
        memset(y, 0xff, (size_t)(n_out * n_rows) * sizeof *y);
        REQUIRE(run_mm(levels[l], t, w, n_in, n_out, x, n_rows, y) == QR_OK);
        const int d = first_diff(ref, y, n_out * n_rows);
        CHECK_MSG(d < 0, "%s %s level %d n_in %lld n_out %lld rows %lld: output %d is %.9g, scalar %.9g",
                  qr_type_get_traits(t)->name, mode, l, (long long)n_in, (long long)n_out, (long long)n_rows, d,
                  d < 0 ? 0.0 : y[d], d < 0 ? 0.0 : ref[d]);
    }
    /* Batch invariance: each row alone gives the bits it had in the batch. */
    if (levels[0]->batch_invariant) {
        for (int l = 0; l < n_levels; l++) {
            REQUIRE(run_mm(levels[l], t, w, n_in, n_out, x, n_rows, ref) == QR_OK);
            for (int64_t r = 0; r < n_rows; r++) {
                REQUIRE(run_mm(levels[l], t, w, n_in, n_out, x + r * n_in, 1, y) == QR_OK);
                CHECK_MSG(first_diff(ref + r * n_out, y, n_out) < 0, "%s level %d: row %lld of %lld differs alone",
                          qr_type_get_traits(t)->name, l, (long long)r, (long long)n_rows);
            }
        }
    }
    free(w);
    free(x);
    free(ref);
    free(y);
}

/* Attention: random Q, K, V and causal cell lists with holes, every kernel level against
 * the scalar one, tiled (prompt) and per-row (decode) orders, F16 and F32 caches. */
static void check_attention(qr_rng *rng, qr_backend **levels, int n_levels, int32_t head_dim, bool kv_f32,
                            bool tiled) {
    const int32_t n_head = 4, n_head_kv = 2, n_rows = 70, n_cells = 200;
    const int64_t stride = (int64_t)n_head_kv * head_dim, n_kv = n_cells * stride;
    float *q = malloc(sizeof(float) * (size_t)(n_rows * n_head * head_dim));
    float *kf = malloc(sizeof(float) * (size_t)n_kv), *vf = malloc(sizeof(float) * (size_t)n_kv);
    uint16_t *kh = malloc(2 * (size_t)n_kv), *vh = malloc(2 * (size_t)n_kv);
    int32_t *cells = malloc(sizeof(int32_t) * (size_t)(n_rows * n_cells));
    int64_t off[71];
    float *ref = malloc(sizeof(float) * (size_t)(n_rows * n_head * head_dim)), *y = malloc(sizeof(float) * (size_t)(n_rows * n_head * head_dim));
    REQUIRE(q && kf && vf && kh && vh && cells && ref && y);
    qr_rng_fill_normal(rng, q, n_rows * n_head * head_dim, 1.0f);
    qr_rng_fill_normal(rng, kf, n_kv, 1.0f);
    qr_rng_fill_normal(rng, vf, n_kv, 1.0f);
    for (int64_t i = 0; i < n_kv; i++) kh[i] = qr_f32_to_f16(kf[i]), vh[i] = qr_f32_to_f16(vf[i]);
    int64_t n = 0;
    for (int32_t r = 0; r < n_rows; r++) {
        off[r] = n;
        const int32_t last = 130 + r; /* prompt rows attend to 0..last, some cells skipped */
        for (int32_t c = 0; c <= last; c++) {
            if (c != last && qr_rng_uniform(rng) < 0.1) continue;
            cells[n++] = c;
        }
    }
    off[n_rows] = n;
    qr_attn_args a = {.q = q, .n_rows = n_rows, .n_head = n_head, .n_head_kv = n_head_kv, .head_dim_k = head_dim,
                      .head_dim_v = head_dim, .kv_f32 = kv_f32, .k = kv_f32 ? (void *)kf : (void *)kh,
                      .v = kv_f32 ? (void *)vf : (void *)vh, .kv_stride_k = stride, .kv_stride_v = stride,
                      .cells = cells, .cells_off = off, .scale = 1.0f / sqrtf((float)head_dim), .tiled = tiled};
    qr_error err;
    a.out = ref;
    REQUIRE(levels[0]->ops->attention(levels[0], &a, &err) == QR_OK);
    for (int l = 1; l < n_levels; l++) {
        a.out = y;
        REQUIRE(levels[l]->ops->attention(levels[l], &a, &err) == QR_OK);
        const int d = first_diff(ref, y, n_rows * n_head * head_dim);
        CHECK_MSG(d < 0, "attention level %d head_dim %d %s %s: output %d is %.9g, scalar %.9g", l, head_dim,
                  kv_f32 ? "F32" : "F16", tiled ? "tiled" : "per-row", d, d < 0 ? 0.0 : y[d], d < 0 ? 0.0 : ref[d]);
    }
    free(q), free(kf), free(vf), free(kh), free(vh), free(cells), free(ref), free(y);
}

/* GLU activations (SiLU with ggml's vector expf, GELU through the F16 table). */
static void check_glu(qr_rng *rng, qr_backend **levels, int n_levels) {
    const int64_t n = 4096 + 13;
    float *g = malloc(sizeof(float) * (size_t)n), *u = malloc(sizeof(float) * (size_t)n);
    float *ref = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    REQUIRE(g && u && ref && y);
    qr_rng_fill_normal(rng, g, n, 6.0f);
    qr_rng_fill_normal(rng, u, n, 1.0f);
    g[0] = -10.0f, g[1] = 10.0f, g[2] = -100.0f, g[3] = 95.0f, g[4] = 0.0f;
    for (int kind = 0; kind < 2; kind++) {
        levels[0]->ops->glu(levels[0], (qr_glu_kind)kind, g, u, ref, n);
        for (int l = 1; l < n_levels; l++) {
            levels[l]->ops->glu(levels[l], (qr_glu_kind)kind, g, u, y, n);
            const int d = first_diff(ref, y, n);
            CHECK_MSG(d < 0, "glu %s level %d: element %d (x %g) is %.9g, scalar %.9g", kind ? "gelu" : "silu", l, d,
                      d < 0 ? 0.0 : g[d], d < 0 ? 0.0 : y[d], d < 0 ? 0.0 : ref[d]);
        }
    }
    free(g), free(u), free(ref), free(y);
}

int main(void) {
    qr_rng rng;
    qr_rng_init(&rng, 7);
    const qr_cpu_kernels kinds[] = {QR_CPU_KERNELS_SCALAR, QR_CPU_KERNELS_AVX2, QR_CPU_KERNELS_AVX512_NOFP16,
                                    QR_CPU_KERNELS_AVX512};
    static const int64_t ROWS[] = {1, 2, 3, 4, 5, 9, 17};
    for (int inv = 0; inv < 2; inv++) {
        qr_backend *levels[4];
        int n_levels = 0;
        for (int k = 0; k < 4; k++) {
            qr_backend *be = make(kinds[k], 2, inv);
            /* A level the CPU lacks falls back to a lower one: test each distinct one once. */
            if (n_levels > 0 && qr_backend_cpu_kernels(be) == qr_backend_cpu_kernels(levels[n_levels - 1])) {
                qr_backend_destroy(be);
                continue;
            }
            levels[n_levels++] = be;
        }
        if (inv == 0) {
            static const char *const NAMES[] = {"auto", "scalar", "avx2", "avx512-nofp16", "avx512"};
            printf("kernel levels tested on this CPU:");
            for (int l = 0; l < n_levels; l++) printf(" %s", NAMES[qr_backend_cpu_kernels(levels[l])]);
            printf("\n");
        }
        for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
            const qr_type t = TYPES[ti];
            const int64_t blk = qr_type_get_traits(t)->block_size >= 256 ? 256 : 32;
            const int64_t n_ins[] = {blk * 8, blk * 3 + (blk == 32 && qr_type_get_traits(t)->block_size == 1 ? 4 : 0), 2048};
            for (size_t si = 0; si < 3; si++) {
                for (size_t ri = 0; ri < sizeof ROWS / sizeof ROWS[0]; ri++) {
                    check_shape(&rng, t, n_ins[si], si == 2 ? 21 : si == 1 ? 37 : 40, ROWS[ri], levels, n_levels,
                                inv ? "batch-invariant" : "llama.cpp order");
                }
            }
            /* Rows of 1, 2, 7 and 13 blocks for the single-row decode kernels, which take
             * several weight rows (37: not a whole number of passes) and activation blocks
             * in groups that such rows end inside. */
            static const int64_t BLOCKS[] = {1, 2, 7, 13};
            for (size_t bi = 0; bi < sizeof BLOCKS / sizeof BLOCKS[0]; bi++)
                check_shape(&rng, t, blk * BLOCKS[bi], 37, 1, levels, n_levels, inv ? "batch-invariant" : "llama.cpp order");
        }
        if (inv == 0) check_glu(&rng, levels, n_levels);
        if (inv == 0) {
            static const int32_t DIMS[] = {8, 64, 80, 128, 256};
            for (size_t di = 0; di < sizeof DIMS / sizeof DIMS[0]; di++) {
                for (int f32 = 0; f32 < 2; f32++) {
                    for (int tiled = 0; tiled < 2; tiled++) check_attention(&rng, levels, n_levels, DIMS[di], f32, tiled);
                }
            }
        }
        for (int l = 0; l < n_levels; l++) qr_backend_destroy(levels[l]);
    }
    return qr_test_finish("test_cpu_kernels");
}
