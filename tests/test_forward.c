/* The forward pass through the public API on stories260K (../shared): batch-invariant
 * rows, sequences that do not see each other, results independent of the thread count,
 * rewinding a sequence, greedy-token outputs (QR_OUTPUT_ARGMAX), and refusals of bad batches that leave the cache untouched.
 * Token-level parity with llama.cpp is checked by tests/engine_*_test.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logits_compare.h"
#include "quarrel.h"
#include "testing.h"

static const qr_token PROMPT[] = {1, 403, 407, 261, 378, 432, 383, 286};
#define N_PROMPT 8

static qr_ctx *make_ctx(qr_model *m, int threads, bool invariant, int n_seq) {
    qr_ctx_params p = qr_ctx_default_params();
    p.n_ctx = 64;
    p.n_threads = threads;
    p.batch_invariant = invariant;
    p.n_seq_max = n_seq;
    char err[256];
    qr_ctx *c = qr_ctx_create(m, &p, err, sizeof err);
    if (!c) fprintf(stderr, "ctx: %s\n", err);
    REQUIRE(c != NULL);
    return c;
}

static void decode(qr_ctx *c, const qr_token *t, const int32_t *pos, const int32_t *seq, const int8_t *want, int n) {
    char err[256];
    qr_batch b = {n, t, pos, seq, want};
    int rc = qr_decode(c, &b, err, sizeof err);
    if (rc) fprintf(stderr, "decode: %s\n", err);
    REQUIRE(rc == 0);
}

static bool same_logits(const float *a, const float *b, int n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

/* Batch-invariant mode: every row of a prompt batch equals the same row decoded alone. */
static void test_batch_invariance(qr_model *m) {
    const int nv = qr_model_n_vocab(m);
    qr_ctx *a = make_ctx(m, 2, true, 1), *b = make_ctx(m, 2, true, 1);
    int8_t want[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) want[i] = 1;
    decode(a, PROMPT, NULL, NULL, want, N_PROMPT);
    for (int i = 0; i < N_PROMPT; i++) {
        decode(b, &PROMPT[i], NULL, NULL, NULL, 1);
        CHECK_MSG(same_logits(qr_get_logits(a, i), qr_get_logits(b, -1), nv), "row %d differs from its decode alone", i);
    }
    qr_ctx_free(a);
    qr_ctx_free(b);
}

/* Two sequences interleaved in one batch give each sequence's logits alone. */
static void test_sequences(qr_model *m) {
    const int nv = qr_model_n_vocab(m);
    qr_ctx *both = make_ctx(m, 2, true, 2), *solo = make_ctx(m, 2, true, 1);
    qr_token t[8];
    int32_t pos[8], seq[8];
    int8_t want[8];
    const qr_token other[4] = {1, 291, 376, 400};
    for (int i = 0; i < 4; i++) {
        t[2 * i] = PROMPT[i], pos[2 * i] = i, seq[2 * i] = 0, want[2 * i] = i == 3;
        t[2 * i + 1] = other[i], pos[2 * i + 1] = i, seq[2 * i + 1] = 1, want[2 * i + 1] = i == 3;
    }
    decode(both, t, pos, seq, want, 8);
    CHECK(qr_ctx_seq_len(both, 0) == 4 && qr_ctx_seq_len(both, 1) == 4);
    decode(solo, PROMPT, NULL, NULL, NULL, 4);
    CHECK(same_logits(qr_get_logits(both, 6), qr_get_logits(solo, -1), nv));
    char err[256];
    CHECK(qr_ctx_seq_truncate(solo, 0, 0, err, sizeof err) == 0);
    decode(solo, other, NULL, NULL, NULL, 4);
    CHECK(same_logits(qr_get_logits(both, 7), qr_get_logits(solo, -1), nv));
    CHECK(qr_get_logits(both, 0) == NULL); /* row 0 did not ask */
    qr_ctx_free(both);
    qr_ctx_free(solo);
}

/* The default (llama.cpp-order) mode still does not depend on the thread count, and
 * rewinding a sequence and decoding again reproduces the logits. */
static void test_threads_and_rewind(qr_model *m) {
    const int nv = qr_model_n_vocab(m);
    qr_ctx *one = make_ctx(m, 1, false, 1), *three = make_ctx(m, 3, false, 1);
    decode(one, PROMPT, NULL, NULL, NULL, N_PROMPT);
    decode(three, PROMPT, NULL, NULL, NULL, N_PROMPT);
    CHECK(same_logits(qr_get_logits(one, -1), qr_get_logits(three, -1), nv));
    float *keep = malloc((size_t)nv * sizeof *keep);
    REQUIRE(keep);
    memcpy(keep, qr_get_logits(one, -1), (size_t)nv * sizeof *keep);
    /* Rows 5..7 again as one batch (position 5 rewinds the sequence). In this mode a
     * batch of 2+ rows sums like llama.cpp's prompt path, so the rows match the first
     * pass's. */
    const int32_t pos[3] = {5, 6, 7};
    decode(one, &PROMPT[5], pos, NULL, NULL, 3);
    CHECK(qr_ctx_seq_len(one, 0) == N_PROMPT);
    CHECK(same_logits(keep, qr_get_logits(one, -1), nv));
    free(keep);
    qr_ctx_free(one);
    qr_ctx_free(three);
}

/* QR_OUTPUT_ARGMAX rows give no logits and the first index of the largest logit of the
 * same row decoded with QR_OUTPUT_LOGITS; rows without an output give no token. */
static void test_argmax_outputs(qr_model *m) {
    const int nv = qr_model_n_vocab(m);
    qr_ctx *a = make_ctx(m, 2, true, 1), *b = make_ctx(m, 2, true, 1);
    int8_t all[N_PROMPT], mixed[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) all[i] = QR_OUTPUT_LOGITS, mixed[i] = (int8_t)(i % 3);
    decode(a, PROMPT, NULL, NULL, all, N_PROMPT);
    decode(b, PROMPT, NULL, NULL, mixed, N_PROMPT);
    char err[256];
    for (int i = 0; i < N_PROMPT; i++) {
        const float *l = qr_get_logits(a, i);
        const int want = qr_argmax(l, nv);
        const qr_token t = qr_get_argmax(b, i, err, sizeof err);
        if (mixed[i] == QR_OUTPUT_NONE) CHECK(t == -1 && strstr(err, "no output") && !qr_get_logits(b, i));
        if (mixed[i] == QR_OUTPUT_LOGITS) CHECK(t == want && same_logits(qr_get_logits(b, i), l, nv));
        if (mixed[i] == QR_OUTPUT_ARGMAX) CHECK_MSG(t == want && !qr_get_logits(b, i), "row %d: %d, want %d", i, t, want);
    }
    CHECK(qr_get_argmax(b, -1, err, sizeof err) == qr_get_argmax(b, N_PROMPT - 1, err, sizeof err));
    qr_ctx_free(a);
    qr_ctx_free(b);
}

static void test_bad_batches(qr_model *m) {
    qr_ctx *c = make_ctx(m, 1, false, 1);
    char err[256];
    decode(c, PROMPT, NULL, NULL, NULL, 3);
    qr_token bad[2] = {5, 99999};
    qr_batch b = {2, bad, NULL, NULL, NULL};
    CHECK(qr_decode(c, &b, err, sizeof err) != 0 && strstr(err, "token 99999"));
    CHECK(qr_ctx_seq_len(c, 0) == 3);
    int32_t gap[1] = {7};
    qr_batch g = {1, PROMPT, gap, NULL, NULL};
    CHECK(qr_decode(c, &g, err, sizeof err) != 0 && strstr(err, "gap"));
    int32_t seq[1] = {1};
    qr_batch s = {1, PROMPT, NULL, seq, NULL};
    CHECK(qr_decode(c, &s, err, sizeof err) != 0 && strstr(err, "sequence id 1"));
    CHECK(qr_ctx_seq_len(c, 0) == 3);
    /* Past the context: 64 cells. */
    int32_t far[1] = {64};
    qr_ctx_seq_truncate(c, 0, 0, err, sizeof err);
    qr_batch f = {1, PROMPT, far, NULL, NULL};
    CHECK(qr_decode(c, &f, err, sizeof err) != 0);
    qr_ctx_free(c);
}

int main(void) {
    qr_model *m = qr_test_load_shared_model("models/stories260K.gguf");
    CHECK(strcmp(qr_model_arch(m), "llama") == 0);
    CHECK(qr_model_n_vocab(m) == 512 && qr_model_n_layer(m) == 5 && qr_model_n_embd(m) == 64);
    test_batch_invariance(m);
    test_sequences(m);
    test_threads_and_rewind(m);
    test_argmax_outputs(m);
    test_bad_batches(m);
    qr_model_free(m);
    return qr_test_finish("test_forward");
}
