/* Prefix sharing in the paged KV cache (qr_kv_seq_copy / qr_ctx_seq_copy): reference
 * counts, copy on write, sliding-window cells, and, end to end on stories260K, that a
 * sequence continuing a shared prefix gives bit-identical logits to one that computed the
 * prefix itself (the independent reference is the recomputation in a fresh context). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kv_cache.h"
#include "model/descriptor.h"
#include "quarrel.h"
#include "testing.h"

static qr_descriptor descriptor(uint32_t n_layer, uint32_t n_swa, uint32_t pattern) {
    qr_descriptor d;
    memset(&d, 0, sizeof d);
    d.hp.n_layer = n_layer;
    d.hp.n_head = 2;
    d.hp.n_head_kv = 1;
    d.hp.head_dim_k = d.hp.head_dim_v = 4;
    d.n_swa = n_swa;
    d.swa_pattern = pattern;
    return d;
}

/* Writes a value identifying (seq, pos) into the first K element of the cell. */
static void stamp(qr_kv_cache *kv, uint32_t il, int32_t seq, int32_t pos, float v) {
    float *k = qr_kv_k(kv, il);
    k[(int64_t)qr_kv_cell(kv, il, seq, pos) * qr_kv_stride_k(kv)] = v;
}

static float read_k(qr_kv_cache *kv, uint32_t il, int32_t seq, int32_t pos) {
    const float *k = qr_kv_k(kv, il);
    return k[(int64_t)qr_kv_cell(kv, il, seq, pos) * qr_kv_stride_k(kv)];
}

typedef struct copies {
    int n_paged, n_swa;
    int64_t last_from, last_to, last_n;
} copies;

static void record_copy(void *user, bool swa, int64_t from, int64_t to, int64_t n) {
    copies *c = user;
    if (swa) c->n_swa++;
    else c->n_paged++;
    c->last_from = from;
    c->last_to = to;
    c->last_n = n;
}

static void test_refcounts_and_cow(void) {
    qr_descriptor d = descriptor(1, 0, 0);
    qr_kv_params p = {.n_ctx = 64, .n_seq_max = 3, .max_batch = 4, .page_size = 8, .f32 = true};
    qr_kv_cache *kv = NULL;
    qr_error err;
    REQUIRE(qr_kv_create(&d, &p, &kv, &err) == QR_OK);
    CHECK(qr_kv_n_pages(kv) == 8 && qr_kv_n_free_pages(kv) == 8);
    for (int32_t pos = 0; pos < 20; pos++) {
        REQUIRE(qr_kv_append(kv, 0, pos, &err) == QR_OK);
        stamp(kv, 0, 0, pos, (float)pos);
    }
    CHECK(qr_kv_n_free_pages(kv) == 5);
    /* Copying 12 positions shares two pages (one full, one partial) and allocates none. */
    REQUIRE(qr_kv_seq_copy(kv, 0, 1, 12, &err) == QR_OK);
    CHECK(qr_kv_seq_len(kv, 1) == 12);
    CHECK(qr_kv_n_free_pages(kv) == 5 && qr_kv_n_shared_pages(kv) == 2);
    for (int32_t pos = 0; pos < 12; pos++) CHECK(read_k(kv, 0, 1, pos) == (float)pos);
    /* Appending position 12 writes into the shared partial page: seq 1 gets its own copy,
     * with the prefix cells intact, and seq 0's cells stay untouched. */
    REQUIRE(qr_kv_append(kv, 1, 12, &err) == QR_OK);
    stamp(kv, 0, 1, 12, 1000.0f);
    CHECK(qr_kv_n_free_pages(kv) == 4 && qr_kv_n_shared_pages(kv) == 1);
    CHECK(read_k(kv, 0, 0, 12) == 12.0f);
    for (int32_t pos = 0; pos < 12; pos++) CHECK(read_k(kv, 0, 1, pos) == (float)pos);
    CHECK(read_k(kv, 0, 1, 12) == 1000.0f);
    /* Freeing seq 0 keeps the page seq 1 still holds; freeing seq 1 returns everything. */
    CHECK(qr_kv_seq_truncate(kv, 0, 0, &err) == QR_OK);
    CHECK(qr_kv_n_free_pages(kv) == 6 && qr_kv_n_shared_pages(kv) == 0);
    CHECK(read_k(kv, 0, 1, 3) == 3.0f);
    CHECK(qr_kv_seq_truncate(kv, 1, 0, &err) == QR_OK);
    CHECK(qr_kv_n_free_pages(kv) == 8);
    /* A device mirror hears of every copy: sharing copies nothing, a write into a shared
     * page copies that page's cells. */
    copies seen = {0};
    qr_kv_set_copy_hook(kv, record_copy, &seen);
    for (int32_t pos = 0; pos < 4; pos++) REQUIRE(qr_kv_append(kv, 0, pos, &err) == QR_OK);
    REQUIRE(qr_kv_seq_copy(kv, 0, 2, 4, &err) == QR_OK);
    CHECK(seen.n_paged == 0 && seen.n_swa == 0);
    REQUIRE(qr_kv_append(kv, 2, 4, &err) == QR_OK);
    CHECK(seen.n_paged == 1 && seen.n_swa == 0 && seen.last_n == 8);
    CHECK(seen.last_from == (int64_t)qr_kv_cell(kv, 0, 0, 0) && seen.last_to == (int64_t)qr_kv_cell(kv, 0, 2, 0));
    qr_kv_set_copy_hook(kv, NULL, NULL);
    qr_kv_seq_truncate(kv, 0, 0, NULL);
    qr_kv_seq_truncate(kv, 2, 0, NULL);
    /* Refusals name the parameter. */
    CHECK(qr_kv_seq_copy(kv, 0, 0, 0, &err) == QR_ERR && strstr(err.msg, "onto itself"));
    CHECK(qr_kv_seq_copy(kv, 0, 1, 1, &err) == QR_ERR && strstr(err.msg, "holds 0"));
    CHECK(qr_kv_seq_copy(kv, 0, 5, 0, &err) == QR_ERR && strstr(err.msg, "sequence id 5"));
    qr_kv_free(kv);
}

static void test_copy_on_write_when_full(void) {
    qr_descriptor d = descriptor(1, 0, 0);
    qr_kv_params p = {.n_ctx = 16, .n_seq_max = 2, .max_batch = 2, .page_size = 8, .f32 = true};
    qr_kv_cache *kv = NULL;
    qr_error err;
    REQUIRE(qr_kv_create(&d, &p, &kv, &err) == QR_OK);
    for (int32_t pos = 0; pos < 12; pos++) REQUIRE(qr_kv_append(kv, 0, pos, &err) == QR_OK);
    REQUIRE(qr_kv_seq_copy(kv, 0, 1, 12, &err) == QR_OK);
    CHECK(qr_kv_n_free_pages(kv) == 0);
    /* No page left for the copy: refused, and the sequence is unchanged. */
    CHECK(qr_kv_append(kv, 1, 12, &err) == QR_ERR && strstr(err.msg, "full"));
    CHECK(qr_kv_seq_len(kv, 1) == 12);
    qr_kv_free(kv);
}

static void test_sliding_window_copy(void) {
    /* Layer 0 slides (window 4, ring 4 + 2 = 6 cells), layer 1 is global. */
    qr_descriptor d = descriptor(2, 4, 2);
    qr_kv_params p = {.n_ctx = 64, .n_seq_max = 2, .max_batch = 2, .page_size = 8, .f32 = true};
    qr_kv_cache *kv = NULL;
    qr_error err;
    REQUIRE(qr_kv_create(&d, &p, &kv, &err) == QR_OK);
    for (int32_t pos = 0; pos < 20; pos++) {
        REQUIRE(qr_kv_append(kv, 0, pos, &err) == QR_OK);
        stamp(kv, 0, 0, pos, (float)pos);
    }
    /* The ring holds 14..19: a copy of 18 positions needs keys 15..17, held. */
    REQUIRE(qr_kv_seq_copy(kv, 0, 1, 18, &err) == QR_OK);
    for (int32_t pos = 15; pos < 18; pos++) CHECK(read_k(kv, 0, 1, pos) == (float)pos);
    /* The copy holds 14..17 only: rewinding it to 16 needs 13..15, which it lacks. */
    CHECK(qr_kv_seq_truncate(kv, 1, 16, &err) == QR_ERR && strstr(err.msg, "sliding-window"));
    CHECK(qr_kv_seq_truncate(kv, 1, 17, &err) == QR_OK);
    /* A copy of 10 positions would need keys 7..9, long overwritten in seq 0's ring. */
    CHECK(qr_kv_seq_copy(kv, 0, 1, 10, &err) == QR_ERR && strstr(err.msg, "sliding-window"));
    /* The hook sees the ring cells a copy makes (positions 14..17 of seq 0 -> seq 1). */
    copies seen = {0};
    qr_kv_set_copy_hook(kv, record_copy, &seen);
    REQUIRE(qr_kv_seq_copy(kv, 0, 1, 18, &err) == QR_OK);
    CHECK(seen.n_swa == 4 && seen.n_paged == 0 && seen.last_n == 1);
    CHECK(seen.last_from == (int64_t)qr_kv_cell(kv, 0, 0, 17) && seen.last_to == (int64_t)qr_kv_cell(kv, 0, 1, 17));
    qr_kv_set_copy_hook(kv, NULL, NULL);
    qr_kv_seq_truncate(kv, 1, 0, NULL);
    CHECK(qr_kv_seq_len(kv, 1) == 0);
    qr_kv_free(kv);
}

/* ---- End to end on stories260K ---------------------------------------------------------- */

#define N_GEN 12

static qr_ctx *make_ctx(qr_model *m, int32_t n_seq) {
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = 256;
    cp.n_seq_max = n_seq;
    cp.n_threads = 2;
    cp.batch_invariant = true;
    char err[256];
    qr_ctx *c = qr_ctx_create(m, &cp, err, sizeof err);
    if (!c) fprintf(stderr, "qr_ctx_create: %s\n", err);
    return c;
}

/* Decodes toks[from..n) into seq (one batch), then N_GEN greedy tokens; returns the last
 * row's logits of each step into out (N_GEN + 1 rows). */
static void generate(qr_ctx *c, qr_model *m, int32_t seq, const qr_token *toks, int32_t from, int32_t n,
                     float *out) {
    const int32_t nv = qr_model_n_vocab(m);
    char err[256];
    int32_t seqs[64];
    for (int32_t i = 0; i < 64; i++) seqs[i] = seq;
    qr_batch b = {.n_tokens = n - from, .tokens = toks + from, .seq_id = seqs};
    REQUIRE(qr_decode(c, &b, err, sizeof err) == 0);
    for (int32_t step = 0; step <= N_GEN; step++) {
        const float *lg = qr_get_logits(c, -1);
        REQUIRE(lg != NULL);
        memcpy(out + (size_t)step * nv, lg, (size_t)nv * sizeof(float));
        qr_token best = 0;
        for (int32_t t = 1; t < nv; t++) best = lg[t] > lg[best] ? t : best;
        qr_batch one = {.n_tokens = 1, .tokens = &best, .seq_id = &seq};
        if (step < N_GEN) REQUIRE(qr_decode(c, &one, err, sizeof err) == 0);
    }
}

static void test_shared_prefix_logits(void) {
    const char *path = qr_test_shared_file_or_skip("models/stories260K.gguf");
    char err[256];
    qr_model *m = qr_model_load(path, err, sizeof err);
    REQUIRE(m != NULL);
    const char *text = "Once upon a time, there was a little girl named Lily. She loved to play";
    qr_token toks[64];
    const int32_t n = qr_model_tokenize(m, text, strlen(text), true, false, toks, 64, err, sizeof err);
    REQUIRE(n > 8 && n <= 64);
    const size_t nv = (size_t)qr_model_n_vocab(m), rows = N_GEN + 1;
    float *ref = malloc(rows * nv * sizeof(float)), *a = malloc(rows * nv * sizeof(float));
    float *b = malloc(rows * nv * sizeof(float));
    REQUIRE(ref && a && b);

    /* Reference: the whole prompt computed alone in a fresh context. */
    qr_ctx *c0 = make_ctx(m, 1);
    REQUIRE(c0 != NULL);
    generate(c0, m, 0, toks, 0, n, ref);
    qr_ctx_free(c0);

    /* Seq 0 computes the prompt and generates; seq 1 reuses n - 1 positions of it (one
     * full page and a partial one, written later by both) and computes only the last. */
    qr_ctx *c = make_ctx(m, 3);
    REQUIRE(c != NULL);
    generate(c, m, 0, toks, 0, n, a);
    REQUIRE(qr_ctx_seq_copy(c, 0, 1, n - 1, err, sizeof err) == 0);
    CHECK(qr_ctx_kv_stats(c).n_shared >= 1);
    generate(c, m, 1, toks, n - 1, n, b);
    CHECK_MSG(memcmp(ref, a, rows * nv * sizeof(float)) == 0, "seq 0 differs from the fresh context");
    CHECK_MSG(memcmp(ref, b, rows * nv * sizeof(float)) == 0, "the shared-prefix sequence differs");
    /* Freeing both returns every page. */
    qr_ctx_seq_truncate(c, 0, 0, NULL, 0);
    qr_ctx_seq_truncate(c, 1, 0, NULL, 0);
    const qr_kv_stats st = qr_ctx_kv_stats(c);
    CHECK(st.n_free == st.n_pages && st.n_shared == 0 && st.page_size > 0);
    CHECK(qr_ctx_seq_copy(c, 0, 1, 5, err, sizeof err) == -1 && strstr(err, "holds 0"));
    qr_ctx_free(c);
    free(ref);
    free(a);
    free(b);
    qr_model_free(m);
}

int main(void) {
    test_refcounts_and_cow();
    test_copy_on_write_when_full();
    test_sliding_window_copy();
    test_shared_prefix_logits();
    return qr_test_finish("prefix_share");
}
