#include "tokenizer/word_cache.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/strmap.h"

#define CACHE_MAX_WORD 64 /* longer words are rare: not cached */
#define CACHE_MAX_ENTRIES (1 << 20)


static qr_word_cache_slot *cache_find(const qr_word_cache *c, const char *w, size_t len, uint32_t h) {
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        qr_word_cache_slot *sl = &c->slots[i];
        if (sl->key_len == 0) return sl;
        if (sl->hash == h && sl->key_len == len && memcmp(c->keys + sl->key_off, w, len) == 0) return sl;
    }
}

static int cache_grow(qr_word_cache *c) {
    size_t cap = c->cap ? c->cap * 2 : 4096;
    qr_word_cache_slot *old = c->slots;
    size_t old_cap = c->cap;
    c->slots = calloc(cap, sizeof *c->slots);
    if (!c->slots) {
        c->slots = old;
        return QR_ERR;
    }
    c->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key_len == 0) continue;
        *cache_find(c, c->keys + old[i].key_off, old[i].key_len, old[i].hash) = old[i];
    }
    free(old);
    return QR_OK;
}

void qr_word_cache_put(qr_word_cache *c, const char *w, size_t len, uint32_t h, const qr_ids *out,
                       size_t from) {
    if (len == 0 || len > CACHE_MAX_WORD || c->n >= CACHE_MAX_ENTRIES) return;
    if ((c->n + 1) * 2 > c->cap && cache_grow(c) != QR_OK) return;
    if (c->keys_n + len > c->keys_cap) {
        size_t cap = (c->keys_n + len) * 2 + 4096;
        char *k = realloc(c->keys, cap);
        if (!k) return;
        c->keys = k;
        c->keys_cap = cap;
    }
    size_t ids_off = c->ids.n;
    for (size_t i = from; i < out->n; i++) {
        if (qr_ids_push(&c->ids, out->v[i]) != QR_OK) {
            c->ids.n = ids_off;
            return;
        }
    }
    qr_word_cache_slot *sl = cache_find(c, w, len, h);
    memcpy(c->keys + c->keys_n, w, len);
    *sl = (qr_word_cache_slot){h, (uint32_t)c->keys_n, (uint32_t)len, (uint32_t)ids_off,
                       (uint32_t)(out->n - from)};
    c->keys_n += len;
    c->n++;
}

void qr_word_cache_free(qr_word_cache *c) {
    free(c->slots);
    free(c->keys);
    free(c->ids.v);
}

bool qr_word_cache_get(const qr_word_cache *c, const char *w, size_t len, uint32_t *hash, qr_ids *out,
                       int *rc) {
    *hash = qr_strmap_hash(w, len);
    if (len > CACHE_MAX_WORD || c->cap == 0) return false;
    const qr_word_cache_slot *sl = cache_find(c, w, len, *hash);
    if (sl->key_len == 0) return false;
    for (uint32_t k = 0; k < sl->n_ids && *rc == QR_OK; k++) *rc = qr_ids_push(out, c->ids.v[sl->ids_off + k]);
    return true;
}
