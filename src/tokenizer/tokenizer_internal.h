/* Shared pieces of the tokenizer implementation (not part of the public API). */
#ifndef QR_TOKENIZER_INTERNAL_H
#define QR_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "tokenizer/bpe_pretok.h"
#include "tokenizer/vocab.h"

/* A growable array of token ids. */
typedef struct qr_ids {
    int32_t *v;
    size_t n, cap;
} qr_ids;

int qr_ids_push(qr_ids *ids, int32_t id);

/* A piece of the input after special-token splitting: raw text or one token. */
typedef struct qr_fragment {
    int32_t token; /* QR_TOKEN_NULL for raw text */
    size_t off, len;
} qr_fragment;

typedef struct qr_fragments {
    qr_fragment *v;
    size_t n, cap;
} qr_fragments;

/* Cuts text at every special token (llama.cpp's tokenizer_st_partition): control and
 * unknown tokens only when parse_special, user-defined tokens always. */
int qr_split_special(const qr_vocab *v, const char *text, size_t len, bool parse_special,
                     qr_fragments *out, qr_error *err);

/* Tokenizes one raw-text fragment, appending to out. */
int qr_spm_tokenize(const qr_vocab *v, const char *text, size_t len, bool prefix_space, qr_ids *out,
                    qr_error *err);
int qr_bpe_tokenize(const qr_vocab *v, const qr_pretok *p, const char *text, size_t len, qr_ids *out,
                    qr_error *err);
int qr_wpm_tokenize(const qr_vocab *v, const char *text, size_t len, qr_ids *out, qr_error *err);

#endif
