#include "tokenizer/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* A small multiply-xorshift hash over 8-byte words: token strings are short, so the
 * per-call cost matters more than quality on long inputs. */
uint32_t qr_strmap_hash(const char *s, size_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xC2B2AE3D27D4EB4Full);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, s + i, len - i);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
    }
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    return (uint32_t)h;
}

int qr_strmap_init(qr_strmap *m, size_t expected) {
    size_t cap = 16;
    /* load factor at most 3/4: linear probing stays short, and a 262k-token vocabulary
     * (Gemma 3) takes 12 MiB of slots instead of 24 */
    while (cap < expected + expected / 3 + 1) cap <<= 1;
    m->slots = calloc(cap, sizeof *m->slots);
    m->cap = m->slots ? cap : 0;
    m->n = 0;
    return m->slots ? QR_OK : QR_ERR;
}

void qr_strmap_free(qr_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

/* The slot holding key, or the empty slot where it would go. */
static qr_strmap_slot *find(const qr_strmap *m, const char *key, size_t len, uint32_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        qr_strmap_slot *s = &m->slots[i];
        if (!s->key) return s;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

void qr_strmap_put(qr_strmap *m, const char *key, size_t len, int32_t value) {
    uint32_t h = qr_strmap_hash(key, len);
    qr_strmap_slot *s = find(m, key, len, h);
    if (!s->key) {
        s->key = key;
        s->len = (uint32_t)len;
        s->hash = h;
        m->n++;
    }
    s->value = value;
}

int32_t qr_strmap_get(const qr_strmap *m, const char *key, size_t len) {
    if (m->cap == 0) return -1;
    const qr_strmap_slot *s = find(m, key, len, qr_strmap_hash(key, len));
    return s->key ? s->value : -1;
}
