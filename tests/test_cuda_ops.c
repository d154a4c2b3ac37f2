/* src/backend/cuda/cuda_ops.h: each row op of the CUDA forward pass against the CPU
 * backend's op (the engine's numeric reference, src/backend/backend.h) or the scalar
 * quantizers of src/quant, on random data and odd shapes. Outputs are poisoned (NaN)
 * before each kernel so unwritten elements fail.
 *   - get_rows of every block type: bit-identical to qr_dequantize_row (times scale);
 *   - activation rounding: Q8_K bit-identical to qr_quantize_row + qr_dequantize_row,
 *     Q8_0 to ggml's x86 rule, F16/BF16 to the core conversions;
 *   - rmsnorm (alone and fused with a residual add), rope (both modes, partial rotation,
 *     frequency factors; alone and fused with the Q scale and the K/V store), glu:
 *     relative error < 1e-5 (rope < 1e-4: angles at positions in the thousands);
 *   - attention over random cell lists (GQA, head dims 8..256, soft-capping, F32 and F16
 *     caches, 1 and 7 splits): < 1e-5 with F32 cells; < 3e-3 with F16 cells, where the
 *     CPU rounds Q and its V accumulator to F16 and CUDA keeps both in F32.
 *   - the tensor-core prompt attention (one sequence, causal, sliding windows shorter and
 *     longer than its 64-row tiles, GQA, soft-capping, head dims 64/128/256): < 4e-3.
 *   - RMSNorm and GLU with the product's quantization fused: the same F32 rows and the
 *     same quantized bytes as the plain kernel followed by qr_cuda_quantize_act;
 *   - the greedy argmax of rows (1 to 262144 long): equal to a scalar scan, with ties,
 *     rows of only -inf, and NaN / +inf reported at their first index.
 * Exits 77 without a CUDA device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/gemv_q8.h"
#include "core/fp16.h"
#include "logits_compare.h"
#include "quant/quant.h"
#include "testing.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double unif(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static float gauss(void) { return (float)(sqrt(-2.0 * log(unif() + 1e-300)) * cos(6.283185307179586 * unif())); }

static float *rand_floats(int64_t n, float scale) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    REQUIRE(p);
    for (int64_t i = 0; i < n; i++) p[i] = gauss() * scale;
    return p;
}

static void *dev_copy(const void *h, size_t bytes) {
    qr_error e;
    void *d = NULL;
    REQUIRE(qr_cuda_malloc(&d, bytes ? bytes : 1, &e) == QR_OK);
    if (bytes) REQUIRE(qr_cuda_copy_to_device(d, h, bytes, &e) == QR_OK);
    return d;
}

static float *dev_poisoned(int64_t n) {
    qr_error e;
    void *d = NULL;
    REQUIRE(qr_cuda_malloc(&d, (size_t)(n > 0 ? n : 1) * sizeof(float), &e) == QR_OK);
    REQUIRE(qr_cuda_memset(d, 0xFF, (size_t)(n > 0 ? n : 1) * sizeof(float), &e) == QR_OK); /* NaN */
    return d;
}

static float *download(const float *d, int64_t n) {
    qr_error e;
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    REQUIRE(h);
    REQUIRE(qr_cuda_copy_to_host(h, d, (size_t)n * sizeof(float), &e) == QR_OK);
    return h;
}

static void test_get_rows(void) {
    const qr_type types[] = {QR_TYPE_F32, QR_TYPE_F16, QR_TYPE_BF16, QR_TYPE_Q4_0, QR_TYPE_Q4_1, QR_TYPE_Q5_0,
                             QR_TYPE_Q5_1, QR_TYPE_Q8_0, QR_TYPE_Q2_K, QR_TYPE_Q3_K, QR_TYPE_Q4_K, QR_TYPE_Q5_K,
                             QR_TYPE_Q6_K, QR_TYPE_IQ4_NL, QR_TYPE_IQ4_XS};
    qr_error e;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const qr_type_traits *tr = qr_type_get_traits(types[t]);
        const int64_t rows = 13, cols = 2 * 256;
        float *src = rand_floats(rows * cols, 1.0f);
        const size_t rb = qr_type_row_size(tr, cols);
        uint8_t *q = malloc(rb * rows);
        REQUIRE(q);
        bool ok = true;
        for (int64_t r = 0; r < rows && ok; r++) {
            if (qr_quantize_row(types[t], src + r * cols, q + r * rb, cols, &e) != QR_OK) ok = false;
        }
        if (!ok) { /* IQ types have no quantizer: random bytes with finite fp16 scales */
            for (size_t i = 0; i < rb * rows; i++) q[i] = (uint8_t)(unif() * 256);
            for (int64_t r = 0; r < rows; r++)
                for (size_t b = 0; b < rb / tr->type_size; b++) q[r * rb + b * tr->type_size + 1] &= 0x3B;
        }
        qr_cuda_matrix *m = NULL;
        REQUIRE(qr_cuda_matrix_upload(types[t], rows, cols, q, &m, &e) == QR_OK);
        const int32_t ids[] = {12, 0, 5, 5, 7};
        int32_t *dids = dev_copy(ids, sizeof ids);
        float *dout = dev_poisoned(5 * cols);
        REQUIRE(qr_cuda_get_rows(m, dids, 5, 0.5f, dout, NULL, &e) == QR_OK);
        float *got = download(dout, 5 * cols), *ref = malloc((size_t)cols * sizeof(float));
        int bad = 0;
        for (int i = 0; i < 5; i++) {
            REQUIRE(qr_dequantize_row(types[t], q + ids[i] * rb, ref, cols, &e) == QR_OK);
            for (int64_t c = 0; c < cols; c++) bad += memcmp(&got[i * cols + c], &(float){ref[c] * 0.5f}, 4) != 0;
        }
        CHECK_MSG(bad == 0, "get_rows %s: %d elements differ", tr->name, bad);
        qr_cuda_matrix_free(m);
        qr_cuda_free(dids);
        qr_cuda_free(dout);
        free(got), free(ref), free(q), free(src);
    }
}

static void test_round_activations(void) {
    qr_error e;
    const int64_t n = 4 * 256;
    float *x = rand_floats(n, 3.0f);
    x[5] = 0.0f, x[300] = -x[301]; /* a tie for the largest magnitude is possible */
    for (int i = 32; i < 64; i++) x[i] = 0.0f; /* an all-zero block */
    float *dx = dev_copy(x, (size_t)n * 4);
    const qr_type vts[] = {QR_TYPE_Q8_0, QR_TYPE_Q8_K, QR_TYPE_F16, QR_TYPE_BF16};
    for (size_t t = 0; t < 4; t++) {
        float *dy = dev_poisoned(n);
        REQUIRE(qr_cuda_round_activations(vts[t], dx, dy, n, NULL, &e) == QR_OK);
        float *got = download(dy, n), *ref = malloc((size_t)n * 4);
        if (vts[t] == QR_TYPE_Q8_K) {
            uint8_t *blk = malloc(qr_type_row_size(qr_type_get_traits(QR_TYPE_Q8_K), n));
            REQUIRE(qr_quantize_row(QR_TYPE_Q8_K, x, blk, n, &e) == QR_OK);
            REQUIRE(qr_dequantize_row(QR_TYPE_Q8_K, blk, ref, n, &e) == QR_OK);
            free(blk);
        } else if (vts[t] == QR_TYPE_Q8_0) {
            for (int64_t b = 0; b < n / 32; b++) {
                float amax = 0.0f;
                for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
                const float d = qr_f16_to_f32(qr_f32_to_f16(amax / 127.f)), id = amax != 0.0f ? 127.f / amax : 0.0f;
                for (int j = 0; j < 32; j++) ref[b * 32 + j] = d * (float)(int)nearbyintf(x[b * 32 + j] * id);
            }
        } else {
            for (int64_t i = 0; i < n; i++)
                ref[i] = vts[t] == QR_TYPE_F16 ? qr_f16_to_f32(qr_f32_to_f16(x[i])) : qr_bf16_to_f32(qr_f32_to_bf16(x[i]));
        }
        int bad = 0;
        for (int64_t i = 0; i < n; i++) bad += memcmp(&got[i], &ref[i], 4) != 0;
        CHECK_MSG(bad == 0, "round_activations %s: %d of %lld values differ", qr_type_name(vts[t]), bad, (long long)n);
        qr_cuda_free(dy);
        free(got), free(ref);
    }
    CHECK(qr_cuda_round_activations(QR_TYPE_Q8_K, dx, dx, 100, NULL, &e) == QR_ERR);
    qr_cuda_free(dx);
    free(x);
}

static void test_rmsnorm_glu(qr_backend *cpu) {
    qr_error e;
    const int64_t dims[] = {1, 7, 64, 4099};
    for (size_t k = 0; k < 4; k++) {
        const int64_t rows = 3, dim = dims[k], n = rows * dim;
        float *x = rand_floats(n, 2.0f), *w = rand_floats(dim, 1.0f), *ref = malloc((size_t)n * 4);
        float *dx = dev_copy(x, (size_t)n * 4), *dw = dev_copy(w, (size_t)dim * 4), *dy = dev_poisoned(n);
        cpu->ops->rmsnorm(cpu, x, w, rows, dim, 1e-6f, ref);
        REQUIRE(qr_cuda_rmsnorm(dx, dw, rows, dim, 1e-6f, dy, NULL, &e) == QR_OK);
        float *got = download(dy, n);
        const double err = qr_rel_l2(got, ref, n);
        CHECK_MSG(err < 1e-5, "rmsnorm dim %lld: relative error %.3g", (long long)dim, err);
        free(got);
        /* The fused residual add + norm: sum = x + x2 exactly, y = rmsnorm(sum) * w. */
        float *x2 = rand_floats(n, 2.0f), *sum = malloc((size_t)n * 4), *dx2 = dev_copy(x2, (size_t)n * 4);
        float *dsum = dev_poisoned(n);
        for (int64_t i = 0; i < n; i++) sum[i] = x[i] + x2[i];
        cpu->ops->rmsnorm(cpu, sum, w, rows, dim, 1e-6f, ref);
        REQUIRE(qr_cuda_add_rmsnorm(dx, dx2, dsum, dw, rows, dim, 1e-6f, dy, true, NULL, &e) == QR_OK);
        got = download(dy, n);
        float *gsum = download(dsum, n);
        CHECK_MSG(memcmp(gsum, sum, (size_t)n * 4) == 0, "add_rmsnorm dim %lld: the sum differs", (long long)dim);
        const double ea = qr_rel_l2(got, ref, n);
        CHECK_MSG(ea < 1e-5, "add_rmsnorm dim %lld: relative error %.3g", (long long)dim, ea);
        free(got), free(gsum), free(x2), free(sum);
        qr_cuda_free(dx2), qr_cuda_free(dsum);
        for (int kind = 0; kind < 2; kind++) {
            float *g = rand_floats(n, 4.0f), *dg = dev_copy(g, (size_t)n * 4);
            cpu->ops->glu(cpu, (qr_glu_kind)kind, g, x, ref, n);
            REQUIRE(qr_cuda_glu((qr_glu_kind)kind, dg, dx, dy, n, true, NULL, &e) == QR_OK);
            got = download(dy, n);
            const double eg = qr_rel_l2(got, ref, n);
            CHECK_MSG(eg < 1e-5, "glu %s n %lld: relative error %.3g", kind ? "gelu" : "silu", (long long)n, eg);
            free(got), free(g);
            qr_cuda_free(dg);
        }
        qr_cuda_free(dx), qr_cuda_free(dw), qr_cuda_free(dy);
        free(x), free(w), free(ref);
    }
}

/* The producers with the product's quantization fused (RMSNorm, with and without the
 * residual add, and GLU) write the same F32 rows as the plain kernels and the same bytes
 * as qr_cuda_quantize_act of those rows, for each activation type (Q8_0, Q8_1, Q8_K). */
static void test_fused_quant(void) {
    qr_error e;
    const qr_type wtypes[] = {QR_TYPE_Q4_0, QR_TYPE_Q4_1, QR_TYPE_Q4_K, QR_TYPE_Q6_K};
    const int64_t dims[] = {256, 1152, 4096};
    for (size_t t = 0; t < sizeof wtypes / sizeof wtypes[0]; t++) {
        for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
            const int64_t rows = 5, dim = dims[k], n = rows * dim;
            qr_cuda_act_layout L;
            if (qr_cuda_act_q8_layout(wtypes[t], dim, &L, &e) != QR_OK) {
                CHECK_MSG(dim % 256 != 0, "no activation layout for %s, %lld values", qr_type_name(wtypes[t]), (long long)dim);
                continue; /* 1152 is not whole Q8_K blocks */
            }
            const size_t ab = (size_t)rows * L.col_bytes;
            float *x = rand_floats(n, 2.0f), *x2 = rand_floats(n, 2.0f), *w = rand_floats(dim, 1.0f);
            float *dx = dev_copy(x, (size_t)n * 4), *dx2 = dev_copy(x2, (size_t)n * 4), *dw = dev_copy(w, (size_t)dim * 4);
            float *dy = dev_poisoned(n), *dy2 = dev_poisoned(n), *ds = dev_poisoned(n), *ds2 = dev_poisoned(n);
            void *act = dev_poisoned((int64_t)ab / 4 + 1), *act2 = dev_poisoned((int64_t)ab / 4 + 1);
            for (int variant = 0; variant < 4; variant++) { /* norm, add + norm, silu, gelu */
                if (variant == 0) {
                    REQUIRE(qr_cuda_rmsnorm(dx, dw, rows, dim, 1e-6f, dy, NULL, &e) == QR_OK);
                    REQUIRE(qr_cuda_add_rmsnorm_quant(dx, NULL, NULL, dw, rows, dim, 1e-6f, dy2, wtypes[t], act2, true, NULL, &e) == QR_OK);
                } else if (variant == 1) {
                    REQUIRE(qr_cuda_add_rmsnorm(dx, dx2, ds, dw, rows, dim, 1e-6f, dy, false, NULL, &e) == QR_OK);
                    REQUIRE(qr_cuda_add_rmsnorm_quant(dx, dx2, ds2, dw, rows, dim, 1e-6f, dy2, wtypes[t], act2, true, NULL, &e) == QR_OK);
                } else {
                    const qr_glu_kind kind = variant == 2 ? QR_GLU_SILU : QR_GLU_GELU_TANH;
                    REQUIRE(qr_cuda_glu(kind, dx, dx2, dy, n, false, NULL, &e) == QR_OK);
                    REQUIRE(qr_cuda_glu_quant(kind, dx, dx2, dy2, rows, dim, wtypes[t], act2, true, NULL, &e) == QR_OK);
                }
                REQUIRE(qr_cuda_quantize_act(wtypes[t], dy, dim, rows, act, false, NULL, &e) == QR_OK);
                float *y = download(dy, n), *y2 = download(dy2, n);
                uint8_t *a = malloc(ab), *a2 = malloc(ab);
                REQUIRE(a && a2);
                REQUIRE(qr_cuda_copy_to_host(a, act, ab, &e) == QR_OK && qr_cuda_copy_to_host(a2, act2, ab, &e) == QR_OK);
                CHECK_MSG(memcmp(y, y2, (size_t)n * 4) == 0, "fused quant %s dim %lld variant %d: F32 rows differ",
                          qr_type_name(wtypes[t]), (long long)dim, variant);
                /* Compare only the bytes the layout defines (padding between sections is unwritten). */
                bool same = true;
                for (int64_t r = 0; r < rows; r++) {
                    const uint8_t *c = a + r * L.col_bytes, *c2 = a2 + r * L.col_bytes;
                    same &= memcmp(c, c2, (size_t)dim) == 0;
                    same &= memcmp(c + L.d_off, c2 + L.d_off, (size_t)(dim / L.block) * 4) == 0;
                    same &= memcmp(c + L.bsum_off, c2 + L.bsum_off, (size_t)(dim / 16) * 2) == 0;
                    if (L.s_off) same &= memcmp(c + L.s_off, c2 + L.s_off, (size_t)(dim / 32) * 4) == 0;
                }
                CHECK_MSG(same, "fused quant %s dim %lld variant %d: quantized bytes differ", qr_type_name(wtypes[t]),
                          (long long)dim, variant);
                free(y), free(y2), free(a), free(a2);
            }
            qr_cuda_free(dx), qr_cuda_free(dx2), qr_cuda_free(dw), qr_cuda_free(dy), qr_cuda_free(dy2);
            qr_cuda_free(ds), qr_cuda_free(ds2), qr_cuda_free(act), qr_cuda_free(act2);
            free(x), free(x2), free(w);
        }
    }
    printf("fused quantization: norm, add + norm, silu, gelu x Q8_0/Q8_1/Q8_K layouts\n");
}

static void test_rope(qr_backend *cpu) {
    qr_error e;
    struct { int mode, n_rot, head_dim, n_head; bool ff; } cases[] = {
        {QR_ROPE_MODE_NORM, 128, 128, 4, true}, {QR_ROPE_MODE_NEOX, 64, 64, 3, false},
        {QR_ROPE_MODE_NEOX, 32, 80, 2, false}, {QR_ROPE_MODE_NORM, 8, 8, 5, false},
    };
    const int32_t pos[] = {0, 1, 17, 1000, 4095, 31000};
    const int64_t rows = 6;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int64_t n = rows * cases[k].n_head * cases[k].head_dim;
        float *x = rand_floats(n, 1.0f), *ff = NULL, *dff = NULL;
        if (cases[k].ff) {
            ff = rand_floats(cases[k].n_rot / 2, 1.0f);
            for (int i = 0; i < cases[k].n_rot / 2; i++) ff[i] = 1.0f + fabsf(ff[i]) * 8.0f;
            dff = dev_copy(ff, (size_t)cases[k].n_rot / 2 * 4);
        }
        float *dx = dev_copy(x, (size_t)n * 4);
        int32_t *dpos = dev_copy(pos, sizeof pos);
        qr_rope_args a = {(qr_rope_mode)cases[k].mode, cases[k].n_rot, 500000.0f, 0.25f, ff};
        cpu->ops->rope(cpu, x, rows, cases[k].n_head, cases[k].head_dim, pos, &a);
        a.freq_factors = dff;
        REQUIRE(qr_cuda_rope(dx, rows, cases[k].n_head, cases[k].head_dim, dpos, &a, NULL, &e) == QR_OK);
        float *got = download(dx, n);
        const double err = qr_rel_l2(got, x, n);
        CHECK_MSG(err < 1e-4, "rope case %zu: relative error %.3g", k, err);
        free(got);
        /* The fused form: Q rotated and scaled in place, K rotated and V copied into the
         * cells (F32 cache) of a reversed cell list. */
        const int nh = cases[k].n_head, hd = cases[k].head_dim;
        float *q0 = rand_floats(n, 1.0f), *k0 = rand_floats(n, 1.0f), *v0 = rand_floats(n, 1.0f);
        float *dq = dev_copy(q0, (size_t)n * 4), *dk = dev_copy(k0, (size_t)n * 4), *dv = dev_copy(v0, (size_t)n * 4);
        int32_t cell[6];
        for (int r = 0; r < rows; r++) cell[r] = (int32_t)(rows - 1 - r);
        int32_t *dcell = dev_copy(cell, sizeof cell);
        float *kc = dev_poisoned(n), *vc = dev_poisoned(n);
        REQUIRE(qr_cuda_rope_store(dq, dk, dv, rows, nh, nh, hd, hd, dpos, &a, 0.125f, dcell, kc, vc, true, true, NULL, &e) ==
                QR_OK);
        a.freq_factors = ff;
        cpu->ops->rope(cpu, q0, rows, nh, hd, pos, &a);
        cpu->ops->rope(cpu, k0, rows, nh, hd, pos, &a);
        for (int64_t i = 0; i < n; i++) q0[i] *= 0.125f;
        float *gq = download(dq, n), *gk = download(kc, n), *gv = download(vc, n);
        float *rk = malloc((size_t)n * 4), *rv = malloc((size_t)n * 4);
        const int64_t per = (int64_t)nh * hd;
        for (int r = 0; r < rows; r++) {
            memcpy(rk + cell[r] * per, k0 + r * per, (size_t)per * 4);
            memcpy(rv + cell[r] * per, v0 + r * per, (size_t)per * 4);
        }
        const double eq = qr_rel_l2(gq, q0, n), ek = qr_rel_l2(gk, rk, n);
        CHECK_MSG(eq < 1e-4 && ek < 1e-4, "rope_store case %zu: relative error q %.3g, k %.3g", k, eq, ek);
        CHECK_MSG(memcmp(gv, rv, (size_t)n * 4) == 0, "rope_store case %zu: V cells differ", k);
        free(q0), free(k0), free(v0), free(gq), free(gk), free(gv), free(rk), free(rv);
        qr_cuda_free(dq), qr_cuda_free(dk), qr_cuda_free(dv), qr_cuda_free(dcell), qr_cuda_free(kc), qr_cuda_free(vc);
        free(x), free(ff);
        qr_cuda_free(dx), qr_cuda_free(dpos), qr_cuda_free(dff);
    }
}

static void test_attention_case(qr_backend *cpu, int n_head, int n_head_kv, int hd, bool f32, float softcap,
                                int n_split) {
    qr_error e;
    const int n_rows = 5, n_cells = 320;
    const int64_t stride = (int64_t)n_head_kv * hd, nkv = n_cells * stride;
    float *q = rand_floats((int64_t)n_rows * n_head * hd, 1.0f), *kf = rand_floats(nkv, 1.0f), *vf = rand_floats(nkv, 1.0f);
    uint16_t *kh = malloc((size_t)nkv * 2), *vh = malloc((size_t)nkv * 2);
    for (int64_t i = 0; i < nkv; i++) kh[i] = qr_f32_to_f16(kf[i]), vh[i] = qr_f32_to_f16(vf[i]);
    /* Row r sees a random list of lengths 1, 17, 300, 2, 64 (cells in any order). */
    const int lens[] = {1, 17, 300, 2, 64};
    int32_t *cells = malloc(400 * sizeof *cells);
    int64_t off[6] = {0};
    for (int r = 0; r < n_rows; r++) {
        off[r + 1] = off[r] + lens[r];
        for (int i = 0; i < lens[r]; i++) cells[off[r] + i] = (int32_t)(unif() * n_cells);
    }
    const int64_t nout = (int64_t)n_rows * n_head * hd;
    float *ref = malloc((size_t)nout * 4);
    qr_attn_args a = {q, n_rows, n_head, n_head_kv, hd, hd, f32, f32 ? (void *)kf : kh, f32 ? (void *)vf : vh,
                      stride, stride, cells, off, 1.0f / sqrtf((float)hd), softcap, false, ref};
    REQUIRE(cpu->ops->attention(cpu, &a, &e) == QR_OK);
    float *dq = dev_copy(q, (size_t)nout * 4), *dout = dev_poisoned(nout);
    void *dk = f32 ? dev_copy(kf, (size_t)nkv * 4) : dev_copy(kh, (size_t)nkv * 2);
    void *dv = f32 ? dev_copy(vf, (size_t)nkv * 4) : dev_copy(vh, (size_t)nkv * 2);
    int32_t *dcells = dev_copy(cells, (size_t)off[n_rows] * 4);
    int64_t *doff = dev_copy(off, sizeof off);
    float *part = dev_poisoned(qr_cuda_attention_scratch(n_rows, n_head, hd, n_split));
    unsigned *cnt = NULL;
    REQUIRE(qr_cuda_malloc((void **)&cnt, (size_t)(n_rows * n_head) * sizeof *cnt, &e) == QR_OK);
    REQUIRE(qr_cuda_memset(cnt, 0, (size_t)(n_rows * n_head) * sizeof *cnt, &e) == QR_OK);
    qr_attn_args d = a;
    d.q = dq, d.k = dk, d.v = dv, d.cells = dcells, d.cells_off = doff, d.out = dout;
    REQUIRE(qr_cuda_attention(&d, n_split, part, cnt, true, NULL, &e) == QR_OK);
    float *got = download(dout, nout);
    /* The counters are zero again, and a second call gives the same bits. */
    unsigned *hc = malloc((size_t)(n_rows * n_head) * sizeof *hc);
    REQUIRE(qr_cuda_copy_to_host(hc, cnt, (size_t)(n_rows * n_head) * sizeof *hc, &e) == QR_OK);
    int nonzero = 0;
    for (int i = 0; i < n_rows * n_head; i++) nonzero += hc[i] != 0;
    CHECK_MSG(nonzero == 0, "attention: %d counters left non-zero", nonzero);
    REQUIRE(qr_cuda_attention(&d, n_split, part, cnt, true, NULL, &e) == QR_OK);
    float *again = download(dout, nout);
    CHECK_MSG(memcmp(again, got, (size_t)nout * 4) == 0, "attention: a second call differs");
    free(hc), free(again);
    qr_cuda_free(cnt);
    const double err = qr_rel_l2(got, ref, nout);
    CHECK_MSG(err < (f32 ? 1e-5 : 3e-3), "attention heads %d/%d dim %d %s softcap %g splits %d: relative error %.3g",
              n_head, n_head_kv, hd, f32 ? "F32" : "F16", (double)softcap, n_split, err);
    free(q), free(kf), free(vf), free(kh), free(vh), free(cells), free(ref), free(got);
    qr_cuda_free(dq), qr_cuda_free(dout), qr_cuda_free(dk), qr_cuda_free(dv), qr_cuda_free(dcells);
    qr_cuda_free(doff), qr_cuda_free(part);
}

static void test_attention(qr_backend *cpu) {
    test_attention_case(cpu, 6, 2, 64, true, 0.0f, 1);
    test_attention_case(cpu, 6, 2, 64, false, 0.0f, 7);
    test_attention_case(cpu, 4, 4, 8, false, 0.0f, 3);
    test_attention_case(cpu, 4, 1, 256, false, 50.0f, 7);
    test_attention_case(cpu, 8, 8, 128, true, 30.0f, 16);
    test_attention_case(cpu, 3, 3, 40, false, 0.0f, 1);
    qr_error e;
    qr_attn_args bad = {0};
    bad.n_head = 4, bad.n_head_kv = 3, bad.head_dim_k = bad.head_dim_v = 64, bad.n_rows = 1;
    CHECK(qr_cuda_attention(&bad, 1, NULL, NULL, false, NULL, &e) == QR_ERR);
    bad.n_head_kv = 4, bad.head_dim_k = 512;
    CHECK(qr_cuda_attention(&bad, 1, NULL, NULL, false, NULL, &e) == QR_ERR);
}

/* The tensor-core prompt kernel against the CPU op: one sequence whose positions p0 ..
 * p0 + n_rows - 1 are new (earlier positions already cached), each position in a random
 * cell, rows seeing positions max(0, pos - window + 1) .. pos (window 0: all). n_rows not
 * a multiple of the CTA's 64 rows, windows shorter than 64 (rows of one CTA then read
 * disjoint ranges), GQA, soft-capping, every head dim the kernel takes. */
static void test_attention_prefill_case(qr_backend *cpu, int n_head, int n_head_kv, int hd, int n_rows, int p0,
                                        int window, float softcap) {
    qr_error e;
    const int n_pos = p0 + n_rows, n_cells = n_pos + 7;
    const int64_t stride = (int64_t)n_head_kv * hd, nkv = (int64_t)n_cells * stride;
    float *q = rand_floats((int64_t)n_rows * n_head * hd, 1.0f), *kf = rand_floats(nkv, 1.0f), *vf = rand_floats(nkv, 1.0f);
    uint16_t *kh = malloc((size_t)nkv * 2), *vh = malloc((size_t)nkv * 2);
    for (int64_t i = 0; i < nkv; i++) kh[i] = qr_f32_to_f16(kf[i]), vh[i] = qr_f32_to_f16(vf[i]);
    int32_t *cell_of = malloc((size_t)n_cells * sizeof *cell_of), *pos = malloc((size_t)n_rows * sizeof *pos);
    for (int i = 0; i < n_cells; i++) cell_of[i] = i;
    for (int i = n_cells - 1; i > 0; i--) { /* a random cell per position */
        const int j = (int)(unif() * (i + 1)), t = cell_of[i];
        cell_of[i] = cell_of[j], cell_of[j] = t;
    }
    int64_t *off = malloc((size_t)(n_rows + 1) * sizeof *off);
    int32_t *cells = malloc((size_t)n_rows * n_pos * sizeof *cells);
    off[0] = 0;
    for (int r = 0; r < n_rows; r++) {
        pos[r] = p0 + r;
        const int lo = window > 0 && pos[r] - window + 1 > 0 ? pos[r] - window + 1 : 0;
        off[r + 1] = off[r];
        for (int p = lo; p <= pos[r]; p++) cells[off[r + 1]++] = cell_of[p];
    }
    const int64_t nout = (int64_t)n_rows * n_head * hd;
    float *ref = malloc((size_t)nout * 4);
    qr_attn_args a = {q, n_rows, n_head, n_head_kv, hd, hd, false, kh, vh, stride, stride, cells, off,
                      1.0f / sqrtf((float)hd), softcap, false, ref};
    REQUIRE(cpu->ops->attention(cpu, &a, &e) == QR_OK);
    qr_attn_args d = a;
    d.q = dev_copy(q, (size_t)nout * 4), d.out = dev_poisoned(nout);
    d.k = dev_copy(kh, (size_t)nkv * 2), d.v = dev_copy(vh, (size_t)nkv * 2);
    d.cells = dev_copy(cells, (size_t)off[n_rows] * 4), d.cells_off = dev_copy(off, (size_t)(n_rows + 1) * 8);
    int32_t *dpos = dev_copy(pos, (size_t)n_rows * 4);
    REQUIRE(qr_cuda_attention_prefill_supported(&d));
    REQUIRE(qr_cuda_attention_prefill(&d, dpos, NULL, &e) == QR_OK);
    float *got = download(d.out, nout);
    const double err = qr_rel_l2(got, ref, nout);
    CHECK_MSG(err < 4e-3, "prefill attention heads %d/%d dim %d rows %d from %d window %d softcap %g: relative error %.3g",
              n_head, n_head_kv, hd, n_rows, p0, window, (double)softcap, err);
    free(q), free(kf), free(vf), free(kh), free(vh), free(cell_of), free(pos), free(off), free(cells), free(ref);
    free(got);
    qr_cuda_free((void *)d.q), qr_cuda_free(d.out), qr_cuda_free((void *)d.k), qr_cuda_free((void *)d.v);
    qr_cuda_free((void *)d.cells), qr_cuda_free((void *)d.cells_off), qr_cuda_free(dpos);
}

static void test_attention_prefill(qr_backend *cpu) {
    test_attention_prefill_case(cpu, 8, 2, 64, 150, 0, 0, 0.0f);
    test_attention_prefill_case(cpu, 4, 4, 128, 64, 37, 0, 0.0f);
    test_attention_prefill_case(cpu, 6, 3, 128, 200, 300, 50, 0.0f);
    test_attention_prefill_case(cpu, 4, 1, 256, 97, 5, 70, 50.0f);
    test_attention_prefill_case(cpu, 2, 1, 64, 9, 1000, 16, 0.0f);
    qr_attn_args bad = {0};
    bad.n_head = bad.n_head_kv = 4, bad.head_dim_k = bad.head_dim_v = 40, bad.kv_stride_k = bad.kv_stride_v = 160;
    CHECK(!qr_cuda_attention_prefill_supported(&bad));
    qr_error e;
    CHECK(qr_cuda_attention_prefill(&bad, NULL, NULL, &e) == QR_ERR);
}

/* The scalar rule qr_cuda_argmax_rows implements: the first NaN/+inf index wins (coded),
 * else the first index of the largest value, else -1 (every value -inf). */
static int32_t scalar_argmax(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] < INFINITY)) return QR_CUDA_ARGMAX_BAD((int32_t)i);
    int32_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > -INFINITY && (best < 0 || x[i] > x[best])) best = (int32_t)i;
    return best;
}

static void test_argmax(void) {
    const int64_t lens[] = {1, 5, 1025, 3000, 262144};
    enum { ROWS = 6 };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        const int64_t n = lens[k];
        float *x = rand_floats(ROWS * n, 4.0f);
        float *r1 = x + n, *r2 = x + 2 * n, *r3 = x + 3 * n, *r4 = x + 4 * n, *r5 = x + 5 * n;
        for (int64_t i = 0; i < n; i++) r1[i] = 0.5f, r2[i] = -INFINITY, r4[i] = -INFINITY;
        r1[n / 3] = r1[n - 1] = 7.0f; /* a tie: the first index wins */
        r3[n / 2] = NAN;
        r3[n - 1] = INFINITY;
        r4[n - 1] = -1e30f;
        r5[n - 1] = INFINITY;
        if (n > 2) r5[n / 4] = NAN;
        float *dx = (float *)dev_copy(x, (size_t)(ROWS * n) * sizeof(float));
        int32_t *dout = (int32_t *)dev_poisoned(ROWS), got[ROWS];
        qr_error e;
        REQUIRE(qr_cuda_argmax_rows(dx, ROWS, n, dout, NULL, &e) == QR_OK);
        REQUIRE(qr_cuda_copy_to_host(got, dout, sizeof got, &e) == QR_OK);
        for (int r = 0; r < ROWS; r++) {
            const int32_t want = scalar_argmax(x + r * n, n);
            CHECK_MSG(got[r] == want, "argmax of row %d (n %lld): %d, want %d", r, (long long)n, got[r], want);
        }
        qr_cuda_free(dx);
        qr_cuda_free(dout);
        free(x);
    }
    printf("argmax: 6 rows each of 1..262144 values\n");
}

int main(void) {
    qr_error e;
    int n = 0;
    if (qr_cuda_device_count(&n, &e) != QR_OK || n == 0) qr_test_skip("no CUDA device");
    qr_backend *cpu = NULL;
    REQUIRE(qr_backend_cpu_create(2, &cpu, &e) == QR_OK);
    test_get_rows();
    test_round_activations();
    test_rmsnorm_glu(cpu);
    test_fused_quant();
    test_rope(cpu);
    test_attention(cpu);
    test_attention_prefill(cpu);
    test_argmax();
    REQUIRE(qr_cuda_synchronize(&e) == QR_OK);
    qr_backend_destroy(cpu);
    return qr_test_finish("test_cuda_ops");
}
