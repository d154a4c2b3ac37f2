/* libFuzzer target: tokenizes arbitrary bytes (invalid UTF-8 included) with every
 * vocabulary of ../shared/tokenizer-vectors (or those listed, colon-separated, in
 * $QUARREL_FUZZ_VOCABS), then detokenizes. Must never crash; every id must be in range;
 * the streaming detokenizer must produce the same bytes as qr_detokenize wherever that
 * does no space clean-up.
 * Input: byte 0 picks the vocabulary and the add_special / parse_special flags; the
 * rest is the text. */
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

#define MAX_VOCABS 16

typedef struct {
    qr_tokenizer *tok[MAX_VOCABS];
    bool cleans[MAX_VOCABS];
    int n;
} vocab_set;

static vocab_set g_vocabs; /* loaded once: the fuzzer's own state, not the library's */

static void load_one(const char *path) {
    if (g_vocabs.n >= MAX_VOCABS) return;
    qr_error err = {{0}};
    qr_tokenizer *t = NULL;
    if (qr_tokenizer_load_file(path, &t, &err) != QR_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        return;
    }
    /* Does detokenize clean spaces? Probe: " ," must survive unless it does. */
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t bl = 0;
    bool cleans = true;
    if (qr_tokenize(t, "a ,", 3, false, false, &ids, &n, &err) == QR_OK &&
        qr_detokenize(t, ids, n, false, false, &back, &bl, &err) == QR_OK) {
        cleans = !(bl >= 2 && memcmp(back + bl - 2, " ,", 2) == 0);
    }
    free(ids);
    free(back);
    g_vocabs.cleans[g_vocabs.n] = cleans;
    g_vocabs.tok[g_vocabs.n++] = t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *list = getenv("QUARREL_FUZZ_VOCABS");
    if (list && *list) {
        char *copy = strdup(list), *save = NULL;
        for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) load_one(p);
        free(copy);
    } else {
        /* ../shared next to the source tree: this file is fuzz/fuzz_tokenizer.c. */
        char pattern[4096];
        snprintf(pattern, sizeof pattern, "%s", __FILE__);
        char *slash = strrchr(pattern, '/');
        if (slash) *slash = '\0';
        else snprintf(pattern, sizeof pattern, ".");
        size_t l = strlen(pattern);
        snprintf(pattern + l, sizeof pattern - l, "/../../shared/tokenizer-vectors/ggml-vocab-*.gguf");
        glob_t g;
        if (glob(pattern, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++) load_one(g.gl_pathv[i]);
            globfree(&g);
        }
    }
    if (g_vocabs.n == 0) {
        fprintf(stderr, "fuzz_tokenizer: no vocabulary found (set QUARREL_FUZZ_VOCABS)\n");
        abort();
    }
    return 0;
}

static void check_stream(const qr_tokenizer *t, const int32_t *ids, size_t n, const char *want,
                         size_t want_len) {
    qr_detok_stream *s = qr_detok_stream_new(t, false);
    if (!s) abort();
    char *acc = malloc(want_len + 1);
    size_t acc_len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = qr_detok_stream_push(s, ids[i], &len);
        if (!p || acc_len + len > want_len) abort();
        memcpy(acc + acc_len, p, len);
        acc_len += len;
    }
    size_t len;
    const char *p = qr_detok_stream_flush(s, &len);
    if (acc_len + len != want_len) abort();
    memcpy(acc + acc_len, p, len);
    if (memcmp(acc, want, want_len) != 0) abort();
    free(acc);
    qr_detok_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t sel = data[0];
    int which = (sel >> 2) % g_vocabs.n;
    const qr_tokenizer *t = g_vocabs.tok[which];
    bool add_special = sel & 1, parse_special = sel & 2;
    qr_error err = {{0}};
    int32_t *ids = NULL;
    size_t n = 0;
    if (qr_tokenize(t, (const char *)data + 1, size - 1, add_special, parse_special, &ids, &n, &err) != QR_OK) {
        abort(); /* only running out of memory may fail */
    }
    int32_t nv = qr_tokenizer_n_vocab(t);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= nv) abort();
    }
    char *text = NULL;
    size_t len = 0;
    if (qr_detokenize(t, ids, n, false, false, &text, &len, &err) != QR_OK) abort();
    if (!g_vocabs.cleans[which]) check_stream(t, ids, n, text, len);
    free(text);
    free(ids);
    return 0;
}
