/* Tokenizer metadata for synthetic models: every tokenizer.* key of a vocabulary file,
 * with the three per-token arrays padded to the model's vocabulary size. Padding tokens
 * are type 5 (UNUSED), score 0 and text "<unused_N>" (N from 0), which llama.cpp never
 * produces when tokenizing and renders as nothing when detokenizing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"

#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define TOKEN_TYPE_UNUSED 5

int synth_vocab_n_tokens(const qr_gguf *vocab, uint64_t *n, qr_error *err) {
    const qr_gguf_value *arr;
    if (qr_gguf_get_arr(vocab, KEY_TOKENS, QR_GGUF_STRING, &arr, err) != QR_OK) return QR_ERR;
    *n = arr->v.arr.count;
    if (*n == 0) return qr_fail(err, "%s: %s is empty", qr_gguf_path(vocab), KEY_TOKENS);
    return QR_OK;
}

static bool has_prefix(qr_gguf_str s, const char *prefix) {
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

/* A padding prefix no existing token starts with, so padded texts stay unique. */
static int pick_pad_prefix(const qr_gguf_value *tokens, const char **out, qr_error *err) {
    static const char *const CANDIDATES[] = {"<unused_", "<synth_unused_"};
    for (size_t c = 0; c < 2; c++) {
        bool clash = false;
        qr_gguf_array_iter it;
        qr_gguf_value v;
        qr_gguf_array_iter_init(&it, tokens);
        while (!clash && qr_gguf_array_iter_next(&it, &v)) clash = has_prefix(v.v.str, CANDIDATES[c]);
        if (!clash) {
            *out = CANDIDATES[c];
            return QR_OK;
        }
    }
    return qr_fail(err, "the vocabulary already has tokens named like every padding prefix");
}

static void free_strs(char **s, uint64_t n) {
    if (!s) return;
    for (uint64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

static int write_tokens(qr_gguf_writer *w, const qr_gguf *vocab, const qr_gguf_value *tokens,
                        uint64_t n_vocab, qr_error *err) {
    const char *prefix = NULL;
    if (pick_pad_prefix(tokens, &prefix, err) != QR_OK) return QR_ERR;
    char **strs = calloc(n_vocab, sizeof *strs);
    if (!strs) return qr_fail(err, "out of memory for %llu token texts", (unsigned long long)n_vocab);
    uint64_t i = 0;
    qr_gguf_array_iter it;
    qr_gguf_value v;
    qr_gguf_array_iter_init(&it, tokens);
    int rc = QR_OK;
    while (rc == QR_OK && qr_gguf_array_iter_next(&it, &v)) {
        if (memchr(v.v.str.ptr, '\0', v.v.str.len)) {
            rc = qr_fail(err, "%s: token %llu of %s contains a NUL byte", qr_gguf_path(vocab),
                         (unsigned long long)i, KEY_TOKENS);
            break;
        }
        strs[i] = strndup(v.v.str.ptr, v.v.str.len);
        if (!strs[i++]) rc = qr_fail(err, "out of memory copying token texts");
    }
    uint64_t n_real = i;
    for (; rc == QR_OK && i < n_vocab; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s%llu>", prefix, (unsigned long long)(i - n_real));
        strs[i] = strdup(buf);
        if (!strs[i]) rc = qr_fail(err, "out of memory for padding tokens");
    }
    if (rc == QR_OK) rc = qr_gguf_writer_add_str_arr(w, KEY_TOKENS, (const char *const *)strs, n_vocab, err);
    free_strs(strs, n_vocab);
    return rc;
}

/* Copies a FLOAT32 or INT32 array and appends `pad` up to n_vocab entries. */
static int write_padded_scalars(qr_gguf_writer *w, const qr_gguf *vocab, const char *key,
                                qr_gguf_vtype type, uint64_t n_tokens, uint64_t n_vocab,
                                int32_t pad_i, qr_error *err) {
    const qr_gguf_value *arr;
    if (qr_gguf_get_arr(vocab, key, type, &arr, err) != QR_OK) return QR_ERR;
    if (arr->v.arr.count != n_tokens) {
        return qr_fail(err, "%s: %s has %llu entries but %s has %llu", qr_gguf_path(vocab), key,
                       (unsigned long long)arr->v.arr.count, KEY_TOKENS, (unsigned long long)n_tokens);
    }
    uint32_t *vals = malloc(n_vocab * sizeof *vals); /* 4-byte elements either way */
    if (!vals) return qr_fail(err, "out of memory padding %s", key);
    memcpy(vals, arr->v.arr.data, n_tokens * sizeof *vals); /* little-endian file, LE host */
    for (uint64_t i = n_tokens; i < n_vocab; i++) {
        if (type == QR_GGUF_FLOAT32) {
            float z = 0.0f;
            memcpy(&vals[i], &z, sizeof z);
        } else {
            memcpy(&vals[i], &pad_i, sizeof pad_i);
        }
    }
    int rc = qr_gguf_writer_add_arr(w, key, type, vals, n_vocab, err);
    free(vals);
    return rc;
}

int synth_vocab_write(qr_gguf_writer *w, const qr_gguf *vocab, uint64_t n_vocab, qr_error *err) {
    const qr_gguf_value *tokens;
    if (qr_gguf_get_arr(vocab, KEY_TOKENS, QR_GGUF_STRING, &tokens, err) != QR_OK) return QR_ERR;
    uint64_t n_tokens = tokens->v.arr.count;
    if (n_vocab < n_tokens) {
        return qr_fail(err, "the vocabulary %s has %llu tokens, more than the model's %llu",
                       qr_gguf_path(vocab), (unsigned long long)n_tokens, (unsigned long long)n_vocab);
    }
    bool pad = n_vocab > n_tokens;
    for (int64_t i = 0; i < qr_gguf_n_kv(vocab); i++) {
        const qr_gguf_kv *kv = qr_gguf_kv_at(vocab, i);
        if (!has_prefix(kv->key, "tokenizer.")) continue;
        int rc;
        if (pad && qr_gguf_str_eq(kv->key, KEY_TOKENS)) {
            rc = write_tokens(w, vocab, tokens, n_vocab, err);
        } else if (pad && qr_gguf_str_eq(kv->key, KEY_SCORES)) {
            rc = write_padded_scalars(w, vocab, KEY_SCORES, QR_GGUF_FLOAT32, n_tokens, n_vocab, 0, err);
        } else if (pad && qr_gguf_str_eq(kv->key, KEY_TYPES)) {
            rc = write_padded_scalars(w, vocab, KEY_TYPES, QR_GGUF_INT32, n_tokens, n_vocab,
                                      TOKEN_TYPE_UNUSED, err);
        } else {
            rc = qr_gguf_writer_copy_kv(w, kv, err);
        }
        if (rc != QR_OK) return QR_ERR;
    }
    return QR_OK;
}
