/* KV cache bookkeeping, the descriptor's refusals, and the CPU attention and GELU ops
 * against independent double-precision formulas. Needs no shared data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "engine/kv_cache.h"
#include "model/descriptor.h"
#include "model/model.h"
#include "testing.h"

static qr_descriptor swa_descriptor(uint32_t n_layer, uint32_t n_swa, uint32_t pattern) {
    qr_descriptor d;
    memset(&d, 0, sizeof d);
    d.hp.n_layer = n_layer;
    d.hp.n_head = 4;
    d.hp.n_head_kv = 2;
    d.hp.head_dim_k = d.hp.head_dim_v = 8;
    d.n_swa = n_swa;
    d.swa_pattern = pattern;
    return d;
}

static void test_swa_pattern(void) {
    /* llama.cpp set_swa_pattern: layer il is local iff il % P < P - 1 (gemma3 P = 6). */
    qr_descriptor d = swa_descriptor(12, 512, 6);
    for (uint32_t il = 0; il < 12; il++) CHECK(qr_descriptor_layer_is_swa(&d, il) == (il != 5 && il != 11));
    d.n_swa = 0;
    for (uint32_t il = 0; il < 12; il++) CHECK(!qr_descriptor_layer_is_swa(&d, il));
}

static void test_kv_positions(void) {
    qr_descriptor d = swa_descriptor(2, 4, 2); /* layer 0 slides, layer 1 is global */
    qr_kv_params p = {.n_ctx = 40, .n_seq_max = 2, .max_batch = 3, .page_size = 8};
    qr_kv_cache *kv = NULL;
    qr_error err;
    REQUIRE(qr_kv_create(&d, &p, &kv, &err) == QR_OK);
    CHECK(qr_kv_layer_is_swa(kv, 0) && !qr_kv_layer_is_swa(kv, 1));
    for (int32_t pos = 0; pos < 20; pos++) REQUIRE(qr_kv_append(kv, 0, pos, &err) == QR_OK);
    CHECK(qr_kv_seq_len(kv, 0) == 20);
    /* Ring of window + max_batch = 7 cells per sequence. */
    CHECK(qr_kv_cell(kv, 0, 0, 13) == 13 % 7);
    CHECK(qr_kv_cell(kv, 0, 1, 3) == 7 + 3);
    /* Global layer: distinct cells for distinct positions. */
    CHECK(qr_kv_cell(kv, 1, 0, 3) != qr_kv_cell(kv, 1, 0, 11));
    /* A gap, a bad sequence, a position past n_ctx are refused with the parameter named. */
    CHECK(qr_kv_append(kv, 0, 22, &err) == QR_ERR && strstr(err.msg, "gap"));
    CHECK(qr_kv_append(kv, 2, 0, &err) == QR_ERR && strstr(err.msg, "sequence id 2"));
    CHECK(qr_kv_append(kv, 1, 40, &err) == QR_ERR && strstr(err.msg, "context size"));
    /* Rewinding a little keeps the window; rewinding past the ring is refused. */
    CHECK(qr_kv_seq_truncate(kv, 0, 18, &err) == QR_OK && qr_kv_seq_len(kv, 0) == 18);
    CHECK(qr_kv_seq_truncate(kv, 0, 5, &err) == QR_ERR && strstr(err.msg, "sliding-window"));
    CHECK(qr_kv_seq_truncate(kv, 0, 0, &err) == QR_OK && qr_kv_seq_len(kv, 0) == 0);
    /* Pages are shared: 5 pages of 8 cells in all. Sequence 1 can take them all now. */
    for (int32_t pos = 0; pos < 40; pos++) CHECK(qr_kv_append(kv, 1, pos, &err) == QR_OK);
    CHECK(qr_kv_append(kv, 0, 0, &err) == QR_ERR && strstr(err.msg, "full"));
    qr_kv_free(kv);
}

/* Naive attention in double over F32 K/V, one row. */
static void naive_attention(const float *q, const float *k, const float *v, int n_keys, int dk, int dv, float scale,
                            double *out) {
    double *w = malloc((size_t)n_keys * sizeof *w), mx = -INFINITY, z = 0;
    for (int c = 0; c < n_keys; c++) {
        double s = 0;
        for (int i = 0; i < dk; i++) s += (double)q[i] * k[c * dk + i];
        w[c] = s * scale;
        mx = w[c] > mx ? w[c] : mx;
    }
    for (int c = 0; c < n_keys; c++) z += (w[c] = exp(w[c] - mx));
    for (int i = 0; i < dv; i++) {
        out[i] = 0;
        for (int c = 0; c < n_keys; c++) out[i] += w[c] / z * v[c * dv + i];
    }
    free(w);
}

static void test_attention_op(bool f32) {
    enum { N = 37, DK = 64, DV = 64 };
    qr_backend *be = NULL;
    qr_error err;
    REQUIRE(qr_backend_cpu_create(2, &be, &err) == QR_OK);
    qr_rng rng;
    qr_rng_init(&rng, 7);
    float q[DK], kf[N * DK], vf[N * DV], out[DV];
    uint16_t kh[N * DK], vh[N * DV];
    qr_rng_fill_normal(&rng, q, DK, 1.0f);
    qr_rng_fill_normal(&rng, kf, N * DK, 1.0f);
    qr_rng_fill_normal(&rng, vf, N * DV, 1.0f);
    for (int i = 0; i < N * DK; i++) kh[i] = qr_f32_to_f16(kf[i]), kf[i] = f32 ? kf[i] : qr_f16_to_f32(kh[i]);
    for (int i = 0; i < N * DV; i++) vh[i] = qr_f32_to_f16(vf[i]), vf[i] = f32 ? vf[i] : qr_f16_to_f32(vh[i]);
    int32_t cells[N];
    for (int i = 0; i < N; i++) cells[i] = i;
    int64_t off[2] = {0, N};
    qr_attn_args a = {.q = q, .n_rows = 1, .n_head = 1, .n_head_kv = 1, .head_dim_k = DK, .head_dim_v = DV,
                      .kv_f32 = f32, .k = f32 ? (const void *)kf : kh, .v = f32 ? (const void *)vf : vh,
                      .kv_stride_k = DK, .kv_stride_v = DV, .cells = cells, .cells_off = off,
                      .scale = 0.125f, .out = out};
    REQUIRE(be->ops->attention(be, &a, &err) == QR_OK);
    double ref[DV];
    naive_attention(q, kf, vf, N, DK, DV, 0.125f, ref);
    /* F16 rounds Q and the accumulator: about 1e-3 relative. */
    const double tol = f32 ? 1e-5 : 4e-3;
    for (int i = 0; i < DV; i++) CHECK_MSG(fabs(out[i] - ref[i]) <= tol * (1 + fabs(ref[i])), "%d: %g vs %g", i, out[i], ref[i]);
    qr_backend_destroy(be);
}

static void test_gelu(void) {
    qr_backend *be = NULL;
    qr_error err;
    REQUIRE(qr_backend_cpu_create(1, &be, &err) == QR_OK);
    const float xs[] = {-12.0f, -3.0f, -0.5f, 0.0f, 0.3f, 1.0f, 2.5f, 9.0f, 11.0f};
    float up[9], out[9];
    for (int i = 0; i < 9; i++) up[i] = 2.0f;
    be->ops->glu(be, QR_GLU_GELU_TANH, xs, up, out, 9);
    for (int i = 0; i < 9; i++) {
        const double x = xs[i];
        double g = 0.5 * x * (1 + tanh(0.7978845608028654 * x * (1 + 0.044715 * x * x)));
        if (x <= -10) g = 0;
        if (x >= 10) g = x;
        CHECK_MSG(fabs(out[i] - 2 * g) <= 2e-3 * (1 + fabs(2 * g)), "gelu(%g): %g vs %g", x, out[i] / 2, g);
    }
    qr_backend_destroy(be);
}

/* A GGUF with only the given architecture keys, to check the loader's refusals. */
static void write_gguf(const char *path, const char *arch, bool with_eps) {
    qr_gguf_writer *w = NULL;
    qr_error err;
    REQUIRE(qr_gguf_writer_create(path, &w, &err) == QR_OK);
    char key[96];
    REQUIRE(qr_gguf_writer_add_str(w, "general.architecture", arch, &err) == QR_OK);
    snprintf(key, sizeof key, "%s.context_length", arch);
    qr_gguf_writer_add_u32(w, key, 64, &err);
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    qr_gguf_writer_add_u32(w, key, 32, &err);
    snprintf(key, sizeof key, "%s.block_count", arch);
    qr_gguf_writer_add_u32(w, key, 1, &err);
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    qr_gguf_writer_add_u32(w, key, 4, &err);
    if (with_eps) {
        snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
        qr_gguf_writer_add_f32(w, key, 1e-5f, &err);
    }
    REQUIRE(qr_gguf_writer_finish(w, &err) == QR_OK);
}

static void test_model_refusals(void) {
    qr_model *m = NULL;
    qr_error err;
    CHECK(qr_model_open("/nonexistent/model.gguf", &m, &err) == QR_ERR && m == NULL);
    CHECK(strstr(err.msg, "/nonexistent/model.gguf") != NULL);
    char path[] = "/tmp/qr_test_kv_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    write_gguf(path, "gpt2", true);
    CHECK(qr_model_open(path, &m, &err) == QR_ERR);
    CHECK_MSG(strstr(err.msg, "unsupported architecture 'gpt2'") != NULL, "%s", err.msg);
    write_gguf(path, "llama", false);
    CHECK(qr_model_open(path, &m, &err) == QR_ERR);
    CHECK_MSG(strstr(err.msg, "llama.attention.layer_norm_rms_epsilon") != NULL, "%s", err.msg);
    write_gguf(path, "llama", true); /* keys fine, but no vocabulary and no tensors */
    CHECK(qr_model_open(path, &m, &err) == QR_ERR);
    CHECK_MSG(strlen(err.msg) > 0, "empty message");
    remove(path);
}

int main(void) {
    test_swa_pattern();
    test_kv_positions();
    test_attention_op(true);
    test_attention_op(false);
    test_gelu();
    test_model_refusals();
    return qr_test_finish("test_kv_cache");
}
