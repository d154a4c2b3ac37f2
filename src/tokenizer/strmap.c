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

/* Slot index of a hash: the multiply-shift range reduction (Lemire), so the table size need
 * not be a power of two and can follow the key count closely. */
static size_t home(const qr_strmap *m, uint32_t h) { return (size_t)(((uint64_t)h * m->cap) >> 32); }

int qr_strmap_init(qr_strmap *m, const char *arena, size_t expected) {
    m->arena = arena;
    m->n = 0;
    m->cap = expected + expected / 4 + 1; /* load factor <= 4/5: linear probes stay short */
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) {
        m->cap = 0;
        return QR_ERR;
    }
    for (size_t i = 0; i < m->cap; i++) m->slots[i].value = -1;
    return QR_OK;
}

void qr_strmap_free(qr_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

/* The slot holding key, or the empty slot where it would go (the table is never full:
 * put refuses more keys than init sized it for). */
static qr_strmap_slot *find(const qr_strmap *m, const char *key, size_t len, uint32_t h) {
    const uint16_t tag = (uint16_t)h;
    for (size_t i = home(m, h);; i = i + 1 == m->cap ? 0 : i + 1) {
        qr_strmap_slot *s = &m->slots[i];
        if (s->value < 0) return s;
        if (s->tag == tag && s->len == len && memcmp(m->arena + s->off, key, len) == 0) return s;
    }
}

int qr_strmap_put(qr_strmap *m, const char *key, size_t len, int32_t value) {
    if (value < 0 || len > QR_STRMAP_MAX_KEY || key < m->arena || (uint64_t)(key - m->arena) > UINT32_MAX) return QR_ERR;
    const uint32_t h = qr_strmap_hash(key, len);
    qr_strmap_slot *s = find(m, key, len, h);
    if (s->value < 0) {
        if (m->n + 1 >= m->cap) return QR_ERR; /* one slot stays empty: probes end */
        s->off = (uint32_t)(key - m->arena);
        s->len = (uint16_t)len;
        s->tag = (uint16_t)h;
        m->n++;
    }
    s->value = value;
    return QR_OK;
}

int32_t qr_strmap_get(const qr_strmap *m, const char *key, size_t len) {
    if (m->cap == 0 || len > QR_STRMAP_MAX_KEY) return -1;
    return find(m, key, len, qr_strmap_hash(key, len))->value;
}
