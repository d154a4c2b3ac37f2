/* A cache from a word's bytes to its tokens, for one tokenize call: running text repeats
 * its words, and a word's tokens depend on nothing but its bytes (BPE words after
 * pre-tokenization, SentencePiece words when merged one at a time), so a hit gives
 * exactly what merging again would. Bounded: long words and entries past a limit are
 * simply not cached. */
#ifndef QR_TOKENIZER_WORD_CACHE_H
#define QR_TOKENIZER_WORD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct qr_word_cache_slot {
    uint32_t hash;
    uint32_t key_off, key_len; /* in `keys`; key_len 0 = empty slot */
    uint32_t ids_off, n_ids;   /* in `ids` */
} qr_word_cache_slot;

typedef struct qr_word_cache {
    qr_word_cache_slot *slots;
    size_t cap, n;
    char *keys;
    size_t keys_n, keys_cap;
    qr_ids ids;
} qr_word_cache;

/* On a hit appends the word's ids to out (a failed push sets *rc) and returns true.
 * *hash receives the word's hash for a following put. */
bool qr_word_cache_get(const qr_word_cache *c, const char *w, size_t len, uint32_t *hash, qr_ids *out,
                       int *rc);
/* Remembers that word w produced out->v[from..out->n). Failing only skips caching. */
void qr_word_cache_put(qr_word_cache *c, const char *w, size_t len, uint32_t hash, const qr_ids *out,
                       size_t from);
void qr_word_cache_free(qr_word_cache *c);

#endif
